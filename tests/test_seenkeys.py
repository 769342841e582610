"""Keys remembered across blocks (sfbulk_nb.seenkeys): in memory and spilled to disk, both
checked against a plain dictionary of the same keys."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from sfbulk_nb.seenkeys import SeenKeys, SpilledKeys


def _blocks(n: int, repeats: int, seed: int = 3):
    """Hashes of n keys in blocks of 997, `repeats` of them a key an earlier row had."""
    rng = np.random.default_rng(seed)
    keys = np.arange(n).astype(str).astype(object)
    again = rng.choice(np.arange(1, n), repeats, replace=False)
    keys[again] = keys[rng.integers(0, again)]  # each repeat copies an earlier row's key
    hashes = pd.util.hash_array(keys).astype(np.uint64)
    labels = np.arange(n, dtype=np.int64) * 3 + 2  # lines, not positions
    for start in range(0, n, 997):
        yield hashes[start:start + 997], labels[start:start + 997]


def _expected(n: int, repeats: int) -> dict[int, int]:
    first: dict[int, int] = {}
    out = {}
    for hashes, labels in _blocks(n, repeats):
        for h, label in zip(hashes.tolist(), labels.tolist()):
            if h in first:
                out[label] = first[h]
            else:
                first[h] = label
    return out


def test_spilled_keys_find_every_repeat_and_the_first_row_it_repeats():
    n, repeats = 50_000, 300
    with SpilledKeys() as spilled:
        for hashes, labels in _blocks(n, repeats):
            spilled.add(hashes, labels)
        later, earlier = spilled.repeats()
        folder = spilled._folder.name
        assert spilled.count == n
    expected = _expected(n, repeats)
    assert len(expected) > repeats * 0.9  # a copied key may itself be overwritten
    assert later.tolist() == sorted(expected)  # in the input's order
    assert dict(zip(later.tolist(), earlier.tolist())) == expected
    assert not os.path.exists(folder)  # the spill is gone with the check


def test_spilled_keys_without_repeats_and_without_keys():
    with SpilledKeys() as spilled:
        assert [len(a) for a in spilled.repeats()] == [0, 0]
    with SpilledKeys() as spilled:
        for hashes, labels in _blocks(5_000, 0):
            spilled.add(hashes, labels)
        assert [len(a) for a in spilled.repeats()] == [0, 0]


def test_seen_keys_in_memory_answer_block_by_block():
    seen, found = SeenKeys(), {}
    seen.CAP = 4096  # several merged runs in a small test
    for hashes, labels in _blocks(20_000, 150):
        earlier = seen.find(hashes)
        hit = earlier >= 0
        found.update(zip(labels[hit].tolist(), earlier[hit].tolist()))
        # a key repeated within the block is validation's to refuse; remember its first row
        _, first = np.unique(hashes[~hit], return_index=True)
        seen.add(hashes[~hit][first], labels[~hit][first])
    expected = _expected(20_000, 150)
    within = {k: v for k, v in expected.items() if k not in found}
    assert all(abs(k - v) < 997 * 3 for k, v in within.items())  # only same-block repeats missed
    assert {k: v for k, v in expected.items() if k in found} == found
