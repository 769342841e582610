"""Salesforce record ids: 15-character base-62 ids plus the 3-character case checksum.

The checksum makes an 18-character id case-insensitive: each 5-character chunk of the
15-character id contributes one suffix character that encodes which of its positions hold
an upper-case letter.
"""
from __future__ import annotations

import re

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Z]{3})?\Z")

# Characters 4-5 of a real id name the server pod; every local id carries "0L" there, so a
# local id can never collide with one minted by a real org's pods.
POD = "0L"

KEY_PREFIXES = {
    "Organization": "00D",
    "User": "005",
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "IngestJob": "750",
    "QueryJob": "750",
}


def checksum(id15: str) -> str:
    """The 3-character suffix for a 15-character id."""
    out = []
    for start in (0, 5, 10):
        value = 0
        for i, ch in enumerate(id15[start:start + 5]):
            if "A" <= ch <= "Z":
                value |= 1 << i
        out.append(_SUFFIX[value])
    return "".join(out)


def to18(id15: str) -> str:
    """Extend a 15-character id with its checksum (18-character ids are returned as is)."""
    if len(id15) == 18:
        return id15
    return id15 + checksum(id15)


def make_id(prefix: str, number: int) -> str:
    """The 18-character id of the `number`-th record with key prefix `prefix`."""
    digits = []
    n = number
    for _ in range(10):
        n, r = divmod(n, 62)
        digits.append(_BASE62[r])
    if n:
        raise OverflowError(f"id counter {number} does not fit in 10 base-62 digits")
    return to18(prefix + POD + "".join(reversed(digits)))


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
