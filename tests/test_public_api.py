"""The public surface is what __all__ says, no more, no less."""
from __future__ import annotations

import types

import sfbulk_nb


def test_all_lists_exactly_the_public_names():
    public = {name for name, value in vars(sfbulk_nb).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public | {"__version__"} == set(sfbulk_nb.__all__)
    assert sfbulk_nb.__all__ == sorted(sfbulk_nb.__all__)
    for name in sfbulk_nb.__all__:
        assert getattr(sfbulk_nb, name) is not None


def test_every_error_is_an_sfbulkerror():
    for name in sfbulk_nb.__all__:
        value = getattr(sfbulk_nb, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, sfbulk_nb.SFBulkError), name


def test_the_streamed_loads_are_public():
    for name in ("upsert_csv", "insert_csv", "update_csv", "delete_csv", "validate_csv",
                 "StreamResult"):
        assert name in sfbulk_nb.__all__
