"""Loads of a Dask DataFrame: its partitions are checked and encoded on the Dask workers,
the jobs run from here, and the outcome is a Dask DataFrame aligned to the input.

    import dask.dataframe as dd
    ddf = dd.read_parquet("accounts/")            # or dd.from_pandas(df, npartitions=8)
    out = sfb.upsert_df(ddf, "Account", "customExtIdField__c", parallel=4)
    out.sf_status.value_counts().compute()        # same partitions, index and divisions
    sfb.last_result()                             # the BulkResult behind it (jobs, errors)

What happens where:

1. Here: the object's describe (and its parents', the key prefixes) is fetched once. It is
   plain data (`plan.Described`): it goes to the workers with the options, never the Org,
   so no token, password or session leaves this process.
2. On the workers, one task per partition (`_plan_partition`): the same checks and
   encoder as a pandas frame (validate.py, encode.py), giving the partition's problems,
   its rows to send as text and its byte-exact CSV chunks (a job never spans partitions).
3. Here: the problems of all partitions are put together, with the duplicate keys
   across partitions (each partition's key texts, compared as the org compares them).
   With on_invalid="raise" (the default) any error refuses the load before anything is
   sent, naming the rows (index labels) and partitions. "skip" and "send" work as for
   pandas; a row skipped for a key repeated in another partition has its partition's
   chunks re-encoded on the workers.
4. Here: one `api.Run` uploads every partition's chunks as jobs, `parallel` at a time,
   with the journal, retries and fault handling of any load, and aligns the results.
5. The status columns (`BulkResult.STATUS_COLUMNS`) come back as a Dask DataFrame with
   the input's partitions, index and divisions.

The client holds the encoded chunks and the sent texts while the jobs run (as for a
pandas frame); the workers hold the input. `sfbulk_nb` never imports dask itself: a frame
is recognised as Dask's only when dask is already imported.
"""
from __future__ import annotations

import dataclasses
import hashlib
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from . import errors, journal, validate
from . import plan as plan_stage
from .encode import Chunk
from .problems import ERROR, Block, Problems

# Options a Dask load cannot take yet: they look records up (only_changed, undoable,
# if_unmodified_since) or query the Tooling API (rules) from the workers' rows.
_NOT_FOR_DASK = ("only_changed", "undoable", "if_unmodified_since", "rules")


def is_dask(obj: Any) -> bool:
    """Whether ``obj`` is a Dask DataFrame or Series (without importing dask)."""
    if "dask.dataframe" not in sys.modules:
        return False
    import dask.dataframe as dd

    return isinstance(obj, (dd.DataFrame, dd.Series))


@dataclass
class PartitionPlan:
    """What a worker found and encoded for one partition (positions are the partition's)."""

    rows: int
    index: pd.Index
    blocks: list[Block]  # every problem, the key's duplicates left to the client
    key_text: pa.Array | None  # the key column's texts as sent (all rows), for duplicates
    key_column: Any  # the column holding the key, its order among the checked columns
    key_order: int
    refusal: str | None  # why the partition's problems stop the load (ValidationError note)
    positions: np.ndarray  # rows to send
    sent_text: pd.DataFrame | None
    chunks: list[Chunk]
    fields: list  # per column, the describe of the field it writes
    fingerprint: str  # journal.fingerprint of the partition (not for checks alone)


def _plan_partition(part: pd.DataFrame, context: tuple, encode: bool = True) -> PartitionPlan:
    """One partition through the checks and (``encode``) the encoder; runs on a worker."""
    described, options = context
    checked = described.check(part, options)
    n = len(part)
    key_text, key_order = None, -1
    if checked.key_column is not None:
        checked_columns = (validate._id_column_only(part).columns
                           if described.operation in ("delete", "hardDelete") else part.columns)
        key_order = list(checked_columns).index(checked.key_column)
        if checked.cells[key_order] is not None:
            key_text = checked.cells[key_order].text
    refusal, positions, sent_text, chunks = None, np.zeros(0, np.int64), None, []
    try:
        if encode:
            positions, sent_text, chunks = plan_stage.rows_and_chunks(
                checked, options, n, keyed=described.key is not None)
    except errors.ValidationError as e:
        refusal = e.note
    # Keys repeated within the partition are found again across all of them (step 3).
    blocks = [b for b in checked.blocks if b.code != "DUPLICATE_VALUE"
              or b.column != checked.key_column or b.positions is None]
    return PartitionPlan(n, part.index, blocks, key_text, checked.key_column, key_order,
                         refusal, positions, sent_text, chunks, list(checked.describes),
                         journal.fingerprint(part) if encode else "")


def run(df: Any, sobject: str, operation: str, external_id: str | None, **options: Any):
    """upsert_df & co for a Dask frame (see the module docstring): the outcome's status
    columns as a Dask DataFrame with ``df``'s partitions, index and divisions."""
    from . import api

    api._check_options(options)
    _refuse_unsupported(options)
    if options.get("wait") is False:
        raise errors.InputError("wait=False is not available for a Dask frame: the outcome "
                                "frame needs the run; use timeout= and sfb.last_result().wait()")
    settings = api._run_settings(options)
    load_options = plan_stage.LoadOptions(**options)
    plan_stage.check_change_options(operation, load_options)
    plan, parts = make_plan(settings["org"], df, sobject, operation, external_id, load_options)
    run_ = api.run_plan(plan, _fingerprint([p.fingerprint for p in parts]), settings,
                        legacy_print=lambda: fingerprint(df, legacy=True))
    return outcome_frame(run_.result(), parts, df.divisions)


def dry_run(org, df: Any, sobject: str, operation: str, external_id: str | None,
            options: dict[str, Any]) -> plan_stage.LoadPlan:
    """dry_run for a Dask frame: the LoadPlan its load would run (nothing sent)."""
    _refuse_unsupported(options)
    load_options = plan_stage.LoadOptions(**options)
    plan_stage.check_change_options(operation, load_options)
    return make_plan(org, df, sobject, operation, external_id, load_options)[0]


def _refuse_unsupported(options: dict[str, Any]) -> None:
    unsupported = [name for name in _NOT_FOR_DASK if options.get(name) not in (None, False)]
    if unsupported:
        raise errors.InputError(f"{', '.join(unsupported)} cannot be used with a Dask frame "
                                "yet; load df.compute() (a pandas frame) instead")


def make_plan(org, df: Any, sobject: str, operation: str, external_id: str | None,
              options: plan_stage.LoadOptions) -> tuple[plan_stage.LoadPlan, list]:
    """The LoadPlan of a Dask frame (steps 1 to 3 of the module docstring), and the
    partitions' plans (for `outcome_frame`)."""
    df = _as_frame(df, operation)
    described = plan_stage.describe_load(org, df.columns, sobject, operation, external_id,
                                         options)
    parts = _partition_plans(df, described, options, encode=True)
    return _combine(org, described, options, parts), parts


def problems_of(org, df: Any, sobject: str, operation: str, external_id: str | None,
                options: plan_stage.LoadOptions) -> Problems:
    """validate_df for a Dask frame: every problem of every partition (checked on the
    workers, nothing encoded), keys repeated across partitions included."""
    df = _as_frame(df, operation)
    described = plan_stage.describe_load(org, df.columns, sobject, operation, external_id,
                                         options)
    parts = _partition_plans(df, described, options, encode=False)
    return _problems(described, parts)[0]


def _as_frame(df: Any, operation: str) -> Any:
    import dask.dataframe as dd

    if isinstance(df, dd.Series):  # ids to delete, or one column
        return df.to_frame(name="Id" if operation in ("delete", "hardDelete") else df.name)
    return df


def _partition_plans(df: Any, described: plan_stage.Described,
                     options: plan_stage.LoadOptions, encode: bool) -> list[PartitionPlan]:
    import dask

    # One shared task for the context: each partition's task refers to it, not a copy.
    context = dask.delayed((described, options), pure=True, traverse=False)
    tasks = [dask.delayed(_plan_partition, pure=True)(part, context, encode)
             for part in df.to_delayed()]
    return list(dask.compute(*tasks))


def fingerprint(df: Any, legacy: bool = False) -> str:
    """The journal's fingerprint of a Dask frame (its partitions', computed where they
    are): the same frame, partitioned the same way, gives the same text. ``legacy``: the
    one versions before journal.PRINT_VERSION wrote."""
    import dask

    of_part = journal.legacy_fingerprint if legacy else journal.fingerprint
    prints = list(dask.compute(*[dask.delayed(of_part, pure=True)(part)
                                 for part in df.to_delayed()]))
    return _fingerprint(prints, legacy)


def _fingerprint(partitions: list[str], legacy: bool = False) -> str:
    digest = hashlib.sha256(" ".join(["dask", *partitions]).encode()).hexdigest()[:32]
    return digest if legacy else journal.PRINT_VERSION + digest


def outcome_frame(result: Any, parts: list[PartitionPlan], divisions: tuple):
    """A BulkResult's status columns as a Dask DataFrame, one partition per input
    partition, with its index."""
    import dask
    import dask.dataframe as dd

    frame = pd.DataFrame(result.frame)
    pieces, start = [], 0
    for p in parts:
        piece = frame.iloc[start:start + p.rows]
        piece.index = p.index
        pieces.append(piece)
        start += p.rows
    meta = pieces[0].iloc[:0] if pieces else frame.iloc[:0]
    client = _distributed_client()
    if client is not None and pieces:
        # On a cluster the pieces go to the workers once, as the data they are: put in
        # the graph, a million rows made every compute() ship ~100 MB with it, and
        # distributed warned "Sending large graph" at the user's first look.
        # hash=False: keys of their own, as below.
        return dd.from_delayed(client.scatter(pieces, hash=False), meta=meta,
                               divisions=divisions)
    # Keys of their own (pure=False), not a hash of each piece's data: a resumed run's
    # frame must not share keys with the one its first call gave.
    return dd.from_delayed([dask.delayed(piece, pure=False) for piece in pieces], meta=meta,
                           divisions=divisions)


def _distributed_client() -> Any:
    """The distributed Client that computes Dask collections here, or None (Dask's
    local schedulers)."""
    if "distributed" not in sys.modules:
        return None
    import dask
    import distributed

    if dask.config.get("scheduler", None) not in (None, "dask.distributed", "distributed"):
        return None  # a scheduler chosen for the moment (threads, processes, sync)
    try:
        return distributed.default_client()
    except ValueError:  # no client: the local schedulers
        return None


def _combine(org, described: plan_stage.Described, options: plan_stage.LoadOptions,
             parts: list[PartitionPlan]) -> plan_stage.LoadPlan:
    """The partitions' plans as one LoadPlan (rows by position across the partitions);
    raises ValidationError when their problems stop the load."""
    problems, duplicates, index, starts = _problems(described, parts)
    refused = [i for i, p in enumerate(parts) if p.refusal is not None]
    if options.on_invalid == "raise" and not problems.ok:
        refused = sorted(set(refused) | set(_partitions_of(problems, starts)))
    if refused:
        note = parts[refused[0]].refusal or errors.ValidationError.ROWS_NOTE
        named = ", ".join(map(str, refused[:10])) + (
            f" and {len(refused) - 10:,} more" if len(refused) > 10 else "")
        raise errors.ValidationError(problems, note=f"{note} (partition"
                                     f"{'s' if len(refused) > 1 else ''} {named})")
    if duplicates and options.on_invalid == "skip":
        parts = _skip_duplicates(parts, starts, duplicates, options)
    positions, texts, chunks, sent = [], [], [], 0
    for p, start in zip(parts, starts):
        if not len(p.positions):
            continue
        global_positions = np.asarray(p.positions, np.int64) + start
        positions.append(global_positions)
        texts.append(p.sent_text.set_axis(index[global_positions]))
        chunks += [dataclasses.replace(c, positions=range(c.positions.start + sent,
                                                          c.positions.stop + sent))
                   for c in p.chunks]
        sent += len(p.positions)
    columns = parts[0].sent_text.columns if parts and parts[0].sent_text is not None else []
    sent_text = pd.concat(texts) if texts else pd.DataFrame(columns=columns)
    return plan_stage.LoadPlan(
        org, described.describe["name"], described.operation, described.key,
        pd.DataFrame(index=index), options, problems,
        np.concatenate(positions) if positions else np.zeros(0, np.int64), sent_text, chunks,
        described.key_case_insensitive, described.describe_calls,
        fields=parts[0].fields if parts else [])


def _problems(described: plan_stage.Described, parts: list[PartitionPlan]):
    """The partitions' problems as one Problems frame (positions across the partitions,
    a whole column's problem once), with the keys repeated across partitions; also
    those duplicates' blocks, the index of the whole frame and the partitions' starts."""
    starts = np.cumsum([0] + [p.rows for p in parts])
    index = (parts[0].index.append([p.index for p in parts[1:]]) if parts
             else pd.RangeIndex(0))
    blocks, seen = [], set()
    for p, start in zip(parts, starts):
        for b in p.blocks:
            if b.positions is None:  # a problem of a whole column: said once
                if (b.column, b.code) not in seen:
                    seen.add((b.column, b.code))
                    blocks.append(b)
            else:
                blocks.append(dataclasses.replace(
                    b, positions=np.asarray(b.positions, np.int64) + start))
    duplicates = _duplicate_keys(described, parts, starts)
    return Problems.from_blocks(blocks + duplicates, index), duplicates, index, starts


def _duplicate_keys(described: plan_stage.Described, parts: list[PartitionPlan],
                    starts: np.ndarray) -> list[Block]:
    """Rows whose key another row repeats, in any partition, as validate reports them."""
    found = [(p, start) for p, start in zip(parts, starts) if p.key_text is not None]
    if not found or len(found) < len(parts):
        return []  # no key column (a problem of its own), or one not sent at all
    key_positions = np.concatenate([np.arange(p.rows) + start for p, start in found])
    text = pa.concat_arrays([p.key_text for p, _ in found])
    column, order = found[0][0].key_column, found[0][0].key_order
    blocks = []
    for positions, code, reason, hint in validate.key_problems(
            text, described.operation, described.key, described.key_case_insensitive, column):
        if code == "DUPLICATE_VALUE":
            blocks.append(Block(column, described.key, code, reason, hint, ERROR,
                                key_positions[positions], text.take(pa.array(positions)),
                                order))
    return blocks


def _partitions_of(problems: Problems, starts: np.ndarray) -> list[int]:
    errors_ = problems[(problems["severity"] == ERROR) & problems["position"].notna()]
    if len(errors_) < (problems["severity"] == ERROR).sum():
        return list(range(len(starts) - 1))  # a whole column: every partition
    where = np.searchsorted(starts, errors_["position"].to_numpy(np.int64), side="right") - 1
    return sorted(set(where.tolist()))


def _skip_duplicates(parts: list[PartitionPlan], starts: np.ndarray, duplicates: list[Block],
                     options: plan_stage.LoadOptions) -> list[PartitionPlan]:
    """on_invalid="skip": leave out rows whose key another partition repeats; the
    partitions that lose rows have their chunks encoded again on the workers."""
    import dask

    drop = np.concatenate([b.positions for b in duplicates])
    changed, tasks = [], []
    for i, (p, start) in enumerate(zip(parts, starts)):
        keep = ~np.isin(np.asarray(p.positions, np.int64) + start, drop)
        if keep.all():
            continue
        text = p.sent_text.iloc[keep]
        parts[i] = dataclasses.replace(p, positions=np.asarray(p.positions)[keep],
                                       sent_text=text, chunks=[])
        if len(text):
            changed.append(i)
            tasks.append(dask.delayed(plan_stage._chunks_of_text, pure=True)(text, options))
    for i, chunks in zip(changed, dask.compute(*tasks)):
        parts[i].chunks = chunks
    return parts
