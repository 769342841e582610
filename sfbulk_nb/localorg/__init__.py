"""The local org: a Bulk API 2.0 server on SQLite for demos, notebooks and tests.

It shares nothing with the client but the protocol, so any Salesforce client can use it.
"""
from .server import LocalOrg, default_path

__all__ = ["LocalOrg", "default_path"]
