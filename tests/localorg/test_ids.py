"""Record ids: the checksum vectors from the protocol notes, minting, normalising."""
from __future__ import annotations

import pytest

from sfbulk_nb.localorg import ids

VECTORS = [("a0RE000000IJmcN", "a0RE000000IJmcNMAT"), ("001M000000qfPyS", "001M000000qfPySIAU"),
           ("AbCdEfGhIjKlMnO", "AbCdEfGhIjKlMnOVKV"), ("aBcDEfgHIJKLMNO", "aBcDEfgHIJKLMNO025"),
           ("7500Y00000BSfbr", "7500Y00000BSfbrQAD")]


@pytest.mark.parametrize("id15, id18", VECTORS)
def test_checksum_matches_the_published_vectors(id15, id18):
    assert ids.to18(id15) == id18


@pytest.mark.parametrize("id15, id18", VECTORS)
def test_normalize_accepts_15_and_any_case_of_18(id15, id18):
    assert ids.normalize(id15) == id18
    assert ids.normalize(id18.lower()) == id18
    assert ids.normalize(id18.upper()) == id18


@pytest.mark.parametrize("bad", ["", "001", "001M000000qfPy!", "001M000000qfPySIA", "0" * 19,
                                 "001M000000qfPyS999"])
def test_normalize_rejects_malformed_ids(bad):
    assert ids.normalize(bad) is None


def test_minted_ids_are_sequential_checksum_valid_and_cross_chunk_boundaries():
    start = 62 ** 5 - 3  # the low five digits roll over inside this range
    minted = ids.make_ids("001", start, 8)
    assert len(set(minted)) == 8
    for number, value in enumerate(minted, start):
        assert value.startswith("0010L") and len(value) == 18
        assert ids.to18(value[:15]) == value
        assert ids.make_id("001", number) == value
    assert minted[2][5:15] == "00000zzzzz" and minted[3][5:15] == "0000100000"


def test_sequence_and_counter_limits():
    # a batch minted at once equals the same ids minted one by one
    assert ids.make_ids("003", 3840, 10) == [ids.make_id("003", n) for n in range(3840, 3850)]
    with pytest.raises(OverflowError):
        ids.make_id("001", 62 ** 10)
