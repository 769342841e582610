"""sfbulk_nb: a Jupyter-first toolkit for the Salesforce Bulk API 2.0.

`sfbulk_nb.localorg.LocalOrg` is a local Bulk API 2.0 server on SQLite to run it all on.
"""
__version__ = "0.1.0"

__all__ = ["__version__"]
