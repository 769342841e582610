"""sfbulk_nb: a Jupyter-first toolkit for the Salesforce Bulk API 2.0.

    import sfbulk_nb as sfb
    org = sfb.connect("local")          # the built-in local org (or a real one, see connect)
    sfb.validate_df(df, "Account", "customExtIdField__c")   # every problem, with fixes
    res = sfb.upsert_df(df, "Account", "customExtIdField__c")
    res.frame                           # df plus sf_id, sf_status, sf_error_* per row
    sfb.validate_csv("big.csv", "Account", "customExtIdField__c")  # a file's, nothing sent
    sfb.upsert_csv("big.csv", "Account", "customExtIdField__c")  # streamed, any size

`sfbulk_nb.localorg.LocalOrg` is a local Bulk API 2.0 server on SQLite to run it all on.
`%load_ext sfbulk_nb` adds the magics (%sf_connect, %bulk_upsert, %%soql, ...).
"""
from .api import (delete_df, dry_run, insert_df, last_result, update_df, upsert_df,
                  validate_df)
from .bulkresult import BulkResult
from .errors import (AuthError, ConfigError, InputError, JobFailedError, LimitExceededError,
                     NotFoundError, RequestError, RunInProgressError, SFBulkError,
                     TransportError, ValidationError)
from .org import ApiUsage, Org, connect, default_org
from .plan import LoadPlan
from .problems import Problems
from .query import query_df, query_to_file
from .resume import resume, runs
from .rules import fetch_rules
from .schema import SchemaSnapshot, snapshot_schema
from .stream import (StreamResult, delete_csv, insert_csv, update_csv, upsert_csv,
                     validate_csv)
from .tables import ShownFrame, options
from .undo import UndoResult, undo

__version__ = "0.1.0"


def load_ipython_extension(ipython):
    """`%load_ext sfbulk_nb`: the %sf_connect, %bulk_*, %%soql magics (see sfbulk_nb.magics)."""
    from .magics import load_ipython_extension as load

    load(ipython)


__all__ = [
    "ApiUsage", "AuthError", "BulkResult", "ConfigError", "InputError", "JobFailedError",
    "LimitExceededError", "LoadPlan", "NotFoundError", "Org", "Problems", "RequestError",
    "RunInProgressError", "SFBulkError", "SchemaSnapshot", "ShownFrame", "StreamResult",
    "TransportError", "UndoResult", "ValidationError", "__version__",
    "connect", "default_org", "delete_csv", "delete_df", "dry_run", "fetch_rules",
    "insert_csv", "insert_df", "last_result", "load_ipython_extension", "options",
    "query_df", "query_to_file", "resume", "runs", "snapshot_schema", "undo", "update_csv",
    "update_df", "upsert_csv", "upsert_df", "validate_csv", "validate_df",
]
