"""Rules of particular standard objects that make loads fail, where they are cheap to keep.

Only PricebookEntry's are modelled: a product needs its price in the standard price book
before any other price book can list it, and a price book lists a product once. (What is
not modelled is listed in docs/localorg.md.) Each rule takes the batch's converted values
and returns the row errors it finds, by row index.
"""
from __future__ import annotations

from typing import Any, Callable

from .catalog import SObject
from .store import Store, table_name
from .values import RowError

Rule = Callable[[Store, SObject, dict[str, list[Any]]], dict[int, RowError]]


def _pricebook_entries(store: Store, obj: SObject, values: dict[str, list[Any]]
                       ) -> dict[int, RowError]:
    books, products = values.get("Pricebook2Id"), values.get("Product2Id")
    if books is None or products is None:
        return {}
    book_obj = store.catalog.get("Pricebook2")
    standard = store.query(f"SELECT Id FROM {table_name(book_obj)} WHERE IsStandard = 1 "
                           "AND IsDeleted = 0 LIMIT 1") if book_obj else []
    standard_id = standard[0][0] if standard else None
    rows = [i for i, (b, p) in enumerate(zip(books, products))
            if isinstance(b, str) and isinstance(p, str)]
    wanted = sorted({products[i] for i in rows})
    existing: set[tuple[str, str]] = set()
    for start in range(0, len(wanted), 900):
        part = wanted[start:start + 900]
        existing.update((r[0], r[1]) for r in store.query(
            f"SELECT Pricebook2Id, Product2Id FROM {table_name(obj)} WHERE IsDeleted = 0 AND "
            f"Product2Id IN ({','.join('?' * len(part))})", part))
    errors: dict[int, RowError] = {}
    for i in rows:  # in row order: a standard price earlier in the upload counts
        pair = (books[i], products[i])
        if pair in existing:
            # Message as commonly reported from Apex DML; the same in Bulk is UNCONFIRMED.
            errors[i] = RowError("DUPLICATE_VALUE",
                                 "This price definition already exists in this price book", ())
        elif books[i] != standard_id and (standard_id, products[i]) not in existing:
            errors[i] = RowError("STANDARD_PRICE_NOT_DEFINED",
                                 "No standard price defined for this product", ())
        else:
            existing.add(pair)
    return errors


RULES: dict[str, Rule] = {"PricebookEntry": _pricebook_entries}
