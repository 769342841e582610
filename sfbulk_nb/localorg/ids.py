"""Salesforce record ids: 15-character base-62 ids plus the 3-character case checksum.

The checksum makes an 18-character id case-insensitive: each 5-character chunk of the
15-character id contributes one suffix character that encodes which of its positions hold
an upper-case letter.
"""
from __future__ import annotations

import functools
import re

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Z]{3})?\Z")

# Characters 4-5 of a real id name the server pod; every local id carries "0L" there, so a
# local id can never collide with one minted by a real org's pods.
POD = "0L"

# Bulk API jobs, ingest and query alike, carry this key prefix; records take their
# object's keyPrefix from its describe.
JOB_PREFIX = "750"


# Maps a character to "1" when it is an upper-case letter, "0" otherwise, so the three
# checksum values become three binary numbers (read right to left within each chunk).
_UPPER_BITS = str.maketrans({c: "1" if c.isupper() else "0" for c in _BASE62})
_PAIRS = [a + b for a in _BASE62 for b in _BASE62]  # every 2-digit base-62 string


def checksum(id15: str) -> str:
    """The 3-character suffix for a 15-character id."""
    bits = id15.translate(_UPPER_BITS)
    return (_SUFFIX[int(bits[4::-1], 2)] + _SUFFIX[int(bits[9:4:-1], 2)]
            + _SUFFIX[int(bits[14:9:-1], 2)])


def to18(id15: str) -> str:
    """Extend a 15-character id with its checksum (18-character ids are returned as is)."""
    if len(id15) == 18:
        return id15
    return id15 + checksum(id15)


_PAIR_BITS = [(a.isupper()) | (b.isupper() << 1) for a in _BASE62 for b in _BASE62]


def _base62_5(n: int) -> str:
    """Five base-62 digits."""
    first, rest = divmod(n, 3844 * 3844)
    middle, last = divmod(rest, 3844)
    return _BASE62[first] + _PAIRS[middle] + _PAIRS[last]


def make_ids(prefix: str, start: int, count: int) -> list[str]:
    """The 18-character ids of records number start .. start+count-1.

    Built a block at a time: ids whose numbers differ only in the last two base-62 digits
    share everything but a 4-character tail, and each block's tails come from a cached
    list, so a 10,000-id batch costs one string concatenation per id."""
    if start < 0:
        raise OverflowError(f"id counter {start} is negative")
    if start + count > 62 ** 10:
        raise OverflowError(f"id counter {start + count - 1} does not fit in 10 base-62 digits")
    head = prefix + POD
    out: list[str] = []
    number, end = start, start + count
    while number < end:
        high, low = divmod(number, 62 ** 5)
        body = head + _base62_5(high)
        block, last = divmod(low, 3844)
        stop = min(3844, last + end - number)
        first, middle = divmod(block, 3844)
        char = _BASE62[first]
        tails = _tails(checksum(body + "00000")[:2], char.isupper() | _PAIR_BITS[middle] << 1)
        out.extend(map((body + char + _PAIRS[middle]).__add__, tails[last:stop]))
        number += stop - last
    return out


@functools.lru_cache(maxsize=64)
def _tails(suffix12: str, bits: int) -> list[str]:
    """The last four characters of every id in a block: two digits, then the checksum (two
    characters shared by the block, one from the chunk's upper-case bits)."""
    return [pair + suffix12 + _SUFFIX[bits | pair_bits << 3]
            for pair, pair_bits in zip(_PAIRS, _PAIR_BITS)]


def make_id(prefix: str, number: int) -> str:
    """The 18-character id of the `number`-th record with key prefix `prefix`."""
    return make_ids(prefix, number, 1)[0]


def normalize(value: str) -> str | None:
    """The canonical 18-character form of a 15- or 18-character id, or None when malformed.

    An 18-character id whose suffix does not match its case is malformed; the case of the
    suffix itself does not matter (Salesforce accepts lower-case suffixes).
    """
    if not _ID_RE.match(value if len(value) == 15 else value[:15] + value[15:].upper()):
        return None
    if len(value) == 18:
        # The 18-character form is case-insensitive: recover the case from the suffix.
        body = _restore_case(value[:15], value[15:].upper())
        return None if body is None else body + value[15:].upper()
    return to18(value)


def _restore_case(body: str, suffix: str) -> str | None:
    chars = list(body)
    for chunk, code in enumerate(suffix):
        bits = _SUFFIX.find(code)
        if bits < 0:
            return None
        for i in range(5):
            pos = chunk * 5 + i
            ch = chars[pos]
            if bits & (1 << i):
                if not ch.isalpha():
                    return None
                chars[pos] = ch.upper()
            elif ch.isalpha():
                chars[pos] = ch.lower()
    return "".join(chars)
