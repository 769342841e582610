"""Pure checks of a frame against an object's describe, before anything is sent.

Every cell is checked as the exact text that would be sent (`encode`'s formatting and null
policy), with the rules the org applies to that text, so the client and the org agree
(tests/test_validate_contract.py holds them to it). All problems of all rows come back
in one pass, vectorised per column, as a `Problems` frame (`problems.py`).

================================  ==================================  ======================================
check                             code (Salesforce's where it has one) hint
================================  ==================================  ======================================
column not a field of the object  INVALID_FIELD (the job would fail)  rename (API name, label, case, spaces,
                                                                      BOM; close matches) or drop
relationship column whose parent  INVALID_FIELD                       rename to an external id / idLookup
field is no external id, or with                                      field of the parent (drop the prefix)
a ParentType: prefix on a lookup
to one object
two columns for one field (a      DUPLICATE_FIELD                     drop one
lookup and its relationship too)
key column missing                MISSING_ARGUMENT                    rename the close match
field not createable / not        INVALID_FIELD_FOR_INSERT_UPDATE     drop the column
updateable for the operation      (upsert: warning where it depends
                                  on whether the row creates)
required field blank on insert    REQUIRED_FIELD_MISSING (upsert:     drop the rows without it
(or cleared by #N/A)              warning, it applies to new keys)
text longer than the field        STRING_TOO_LONG                     str.slice(0, length)
restricted picklist value         INVALID_OR_NULL_FOR_RESTRICTED_     replace with the closest valid value
                                  PICKLIST                            (case, spaces, spelling), else blank
unrestricted picklist value not   PICKLIST_VALUE_NOT_DEFINED          as above
defined                           (warning)
number with $ , % spaces, 12.0    INVALID_TYPE_ON_FIELD_IN_RECORD     pd.to_numeric(...str.replace(...))
for an int, European decimals
number beyond precision/scale     NUMBER_OUTSIDE_VALID_RANGE          fix the values
more decimals than the scale      NUMBER_ROUNDED (warning)            round(scale)
boolean other than true/false/1/0 INVALID_TYPE_ON_FIELD_IN_RECORD     map Yes/No, Y/N, ... to True/False
date / datetime not ISO 8601      INVALID_TYPE_ON_FIELD_IN_RECORD     pd.to_datetime(format= the format seen:
                                                                      US or European order, Excel serials)
e-mail address                    INVALID_EMAIL_ADDRESS               strip, else blank the bad ones
an Excel error ('#REF!') in text  EXCEL_ERROR_VALUE (warning; key:     blank them
                                  error)
'#N/A' written in the frame on    CLEARS_FIELD (warning: Bulk API     blank them if they are Excel's
an update (clears the field)      clears the field)                   "lookup found nothing"
text in Excel's scientific        NUMBER_IN_SCIENTIFIC_NOTATION       none in pandas: save the column as
notation ('1.23457E+11'), a key   (an error on the key, else a        Text and read it again (dtype=str)
read as float                     warning)
id: shape, checksum, key prefix   MALFORMED_ID                        strip, else drop/blank the bad ones
lookup id of an object the field  FIELD_INTEGRITY_EXCEPTION (needs    blank the bad ones
does not point at                 describeGlobal's key prefixes)
key blank / repeated              MISSING_ARGUMENT / DUPLICATE_VALUE  drop them / drop_duplicates
list, dict, bytes... in a cell    INVALID_CELL_TYPE                   flatten / decode
a minority type in a column       MIXED_TYPES                         one type for the column
NUL character, lone surrogate     INVALID_CHARACTER                   remove it
infinity, year beyond 9999        NUMBER_OUTSIDE_VALID_RANGE /        replace them
                                  INVALID_TYPE_ON_FIELD_IN_RECORD
the org's validation rules        FIELD_CUSTOM_VALIDATION_EXCEPTION   drop the rows, or change them so the
(rules=True; sfbulk_nb.rules)     (VALIDATION_RULE_NOT_CHECKED:       rule's formula is false
                                  warning, a rule the frame cannot
                                  decide)
================================  ==================================  ======================================
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field as dataclass_field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import encode, results
from .errors import InputError
from .problems import ERROR, WARNING, Block, Problems

_LSTR = pa.large_string()
CLEAR = "#N/A"
_TRUE_WORDS = ("true", "1", "yes", "y", "t", "x", "on", "ja", "oui", "si", "sí", "wahr")
_FALSE_WORDS = ("false", "0", "no", "n", "f", "off", "nein", "non", "falsch")
_ACCEPTED_BOOLEANS = ("true", "false", "1", "0")
_STRING_TYPES = ("string", "textarea", "phone", "url", "email", "picklist", "multipicklist",
                 "combobox", "encryptedstring")
_NUMBER_TYPES = ("double", "currency", "percent")
_INT_TYPES = ("int", "long")
_ID_TYPES = ("id", "reference")
# The org's own forms (localorg/values.py), as RE2 patterns. Python's \s also takes
# Unicode spaces and \v, \x1c-\x1f, \x85: spelled out so both sides agree.
_SPACE = r"\s\x{0b}\x{1c}-\x{1f}\x{85}\p{Z}"
_EMAIL = rf"^[^@{_SPACE}]+@[^@{_SPACE}]+\.[^@{_SPACE}.]+$"
_INT = r"^[+-]?[0-9]+$"
_NUMBER = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DATETIME = (r"^(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})T(?P<clock>[0-9]{2}:[0-9]{2}:[0-9]{2})"
             r"(?:\.[0-9]{1,9})?(?P<zone>Z|[+-][0-9]{2}:?[0-9]{2})?$")
_CLOCK = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"
_ZONE = r"^(?:|Z|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])$"
# What Excel writes into a cell whose formula failed; saved as text in a CSV export.
_EXCEL_ERRORS = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#SPILL!",
                 "#CALC!", "#FIELD!", "#GETTING_DATA", "#BLOCKED!", "#CONNECT!", "#BUSY!",
                 "#UNKNOWN!")
# A number as Excel's General format shows one past 11 digits, and saves it so in CSV:
# '1.23457E+11' for 123456789012, the digits past the 6th gone.
_SCIENTIFIC = r"^[+-]?[0-9](?:\.[0-9]+)?[eE][+-][0-9]{1,3}$"
_SCIENTIFIC_START = np.zeros(256, bool)  # the bytes such a value can start with
_SCIENTIFIC_START[np.frombuffer(b"+-0123456789", np.uint8)] = True
_TIME = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,3})?)?Z?$"
_ID_SHAPE = r"^[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$"
_ID_SUFFIX = np.full(256, -1, np.int16)
_ID_SUFFIX[np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", np.uint8)] = np.arange(32)
_ID_SUFFIX[np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8)] = np.arange(26)
# Characters an export puts into numbers: currency, thousands separators, spaces, percent.
_NUMBER_JUNK = "$€£¥%, \u00a0'"
_DATE_FORMATS = (  # (strftime format, how to call it); US first where both read a value
    ("%m/%d/%Y", "US month/day/year"), ("%d/%m/%Y", "day/month/year"),
    ("%m/%d/%y", "US month/day/2-digit year"), ("%d/%m/%y", "day/month/2-digit year"),
    ("%d.%m.%Y", "day.month.year"), ("%d.%m.%y", "day.month.2-digit year"),
    ("%Y/%m/%d", "year/month/day"), ("%Y.%m.%d", "year.month.day"),
    ("%d-%m-%Y", "day-month-year"), ("%m-%d-%Y", "month-day-year"),
    ("%d %b %Y", "day month-name year"), ("%d-%b-%Y", "day-month-name-year"),
    ("%d-%b-%y", "day-month-name-2-digit year"), ("%b %d, %Y", "month-name day, year"),
    ("%B %d, %Y", "month-name day, year"), ("%d %B %Y", "day month-name year"),
    ("%Y%m%d", "yyyymmdd"),
)
_TIME_PARTS = ("%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p", "%H:%M:%S.%f")
_SAMPLE = 500  # distinct bad values a hint's date format is worked out from
_SPELLINGS = 50  # distinct bad picklist values a hint maps one by one


# The name pandas gives a blank header cell (read_csv; "_level_1" in a multi-line header).
_PANDAS_UNNAMED = re.compile(r"^Unnamed: \d+(_level_\d+)?$")


class _Cells:
    """A prepared column's cells as sent: their texts, rendered only when a check needs
    them (a column whose dtype fits its field is checked on its values), and which cells
    write something."""

    def __init__(self, col: "encode._Column | None", text: pa.Array | None = None):
        self.col = col
        self._text = text
        self._masks: dict[str, pa.Array] = {}

    @classmethod
    def of_text(cls, text: pa.Array) -> "_Cells":
        return cls(None, text)

    def __len__(self) -> int:
        return len(self._text) if self._text is not None else len(self.col.values)

    @property
    def text(self) -> pa.Array:
        if self._text is None:
            self._text = pc.fill_null(self.col.render(self.col.values), self.col.null_text)
        return self._text

    def at(self, positions) -> pa.Array:
        take = pa.array(np.asarray(positions, np.int64))
        if self._text is not None:
            return self._text.take(take)
        return pc.fill_null(self.col.render(self.col.values.take(take)), self.col.null_text)

    def _mask(self, name: str) -> pa.Array:
        if name not in self._masks:
            if self.col is None or self.col.is_text or self._text is not None:
                text = self.text
                blank, clear = pc.equal(text, ""), pc.equal(text, CLEAR)
            else:  # only a null is blank or #N/A: no value renders as either
                null = self.col.values.is_null()
                nothing = pa.repeat(pa.scalar(False), len(null))
                blank, clear = (null, nothing) if self.col.null_text == "" else (nothing, null)
            self._masks.update(sent=pc.invert(blank), cleared=clear,
                               empty=pc.or_(blank, clear),
                               filled=pc.invert(pc.or_(blank, clear)))
        return self._masks[name]

    @property
    def sent(self) -> pa.Array:
        """Cells that write something (#N/A writes: it clears the field)."""
        return self._mask("sent")

    @property
    def filled(self) -> pa.Array:
        """Cells that hold a value (neither blank nor #N/A)."""
        return self._mask("filled")

    @property
    def cleared(self) -> pa.Array:
        return self._mask("cleared")

    @property
    def empty(self) -> pa.Array:
        """Blank or #N/A: no value."""
        return self._mask("empty")


@dataclass
class Checked:
    """What validation found and what it prepared: the problems, and (unless a column
    problem blocks every row) the frame's columns prepared for encoding with their texts."""

    problems: Problems
    encoding: encode.Encoding | None
    cells: list["_Cells | None"] = dataclass_field(default_factory=list)
    key_column: Any = None  # the frame's column holding the key (upsert/update/delete)
    unsendable: Problems | None = None  # the cells with no CSV form (sending cannot help)
    blocks: list[Block] = dataclass_field(default_factory=list)  # what problems is made of
    fields: list[str | None] = dataclass_field(default_factory=list)  # per column: the field
    # it writes its texts to (None: unknown, or a relationship column, which holds a key)
    # Per column, the describe of the field it writes (a relationship column: its lookup
    # field's), or None.
    describes: list = dataclass_field(default_factory=list)
    # Whether two rows share a key as alignment compares them (results.KeyCodes.repeat);
    # None when the key was not checked.
    key_repeats: bool | None = None

    @property
    def key_cells(self) -> "_Cells | None":
        """The key column's cells (its texts as sent), or None without a key column."""
        if self.key_column is None:
            return None
        return self.cells[list(self.encoding.df.columns).index(self.key_column)]

    def with_blocks(self, extra: list[Block]) -> "Checked":
        """The same, with more problems (validation rules, checked on the texts sent)."""
        if not extra:
            return self
        blocks = self.blocks + extra
        return dataclasses.replace(self, blocks=blocks,
                                   problems=Problems.from_blocks(blocks, self.encoding.df.index))

    def texts(self, positions: np.ndarray | None = None) -> list[pa.Array]:
        """Per column, the texts sent, optionally of only the rows at ``positions``."""
        return [c.text if positions is None else c.at(positions) for c in self.cells]

    def text_frame(self, positions: np.ndarray | None = None,
                   texts: list[pa.Array] | None = None) -> pd.DataFrame:
        """The texts sent, as a frame (the frame's index and columns), optionally of only
        the rows at ``positions``; ``texts``: self.texts(positions), when at hand."""
        df = self.encoding.df
        texts = self.texts(positions) if texts is None else texts
        out = pd.DataFrame({i: text.to_pandas() for i, text in enumerate(texts)})
        out.index = df.index if positions is None else df.index[positions]
        out.columns = df.columns
        return out


def check(df: pd.DataFrame, describe: dict, operation: str, key: str | None, *,
          nulls: Any = "keep", tz: str | None = None, column_delimiter: str = "COMMA",
          parents: dict[str, dict] | None = None, key_case_insensitive: bool = False,
          key_prefixes: dict[str, str] | None = None) -> Checked:
    """Every problem of ``df`` for ``operation`` on the object ``describe`` describes.

    ``key`` is the external id field of an upsert, ``Id`` for update/delete, None for
    insert. ``parents`` holds the describes of objects that relationship columns
    (``Account.customExtIdField__c``) point at; ``key_prefixes`` maps key prefixes to
    object names (describeGlobal), to tell an id of the wrong object in a lookup field. Raises InputError only for arguments
    (``nulls``, ``tz``, the delimiter), never for the data."""
    if not isinstance(df, pd.DataFrame):
        raise InputError(encode.not_a_frame(df))
    delimiter = encode.COLUMN_DELIMITERS.get(column_delimiter)
    if delimiter is None:
        raise InputError(f"column_delimiter must be one of {', '.join(encode.COLUMN_DELIMITERS)}; "
                         f"got {column_delimiter!r}")
    columns = df.columns
    if operation in ("delete", "hardDelete"):
        df = _id_column_only(df)  # a delete sends the ids alone
    policies = _null_policies(nulls, list(df.columns))
    encode._check_tz(tz)
    v = _Validator(df, describe, operation, key, delimiter, parents or {}, key_case_insensitive,
                   columns, key_prefixes or {})
    return v.run(policies, tz)


def _id_column_only(df: pd.DataFrame) -> pd.DataFrame:
    """The column a delete sends: Id (any case, or spelled as an export does); none when
    the frame has no such column (the checks then say so)."""
    for order, column in enumerate(df.columns):
        if isinstance(column, str) and _clean_name(column).lower() == "id":
            return df.iloc[:, [order]]
    return df.iloc[:, :0]


def _null_policies(nulls: Any, columns: list) -> list[str]:
    if isinstance(nulls, str):
        if nulls not in ("keep", "clear"):
            raise InputError(f"nulls must be 'keep', 'clear' or a dict of column -> 'keep'/'clear'; got {nulls!r}")
        return [nulls] * len(columns)
    if not isinstance(nulls, dict):
        raise InputError(f"nulls must be 'keep', 'clear' or a dict of column -> 'keep'/'clear'; got {nulls!r}")
    unknown = [k for k in nulls if k not in columns]
    if unknown:
        raise InputError(f"nulls names columns that are not in the frame: {unknown!r}; its "
                         f"columns are {_some_names(columns)}")
    bad = {k: p for k, p in nulls.items() if p not in ("keep", "clear")}
    if bad:
        raise InputError(f"nulls values must be 'keep' or 'clear'; got {bad!r}")
    return [nulls.get(c, "keep") for c in columns]


def _norm(name: str) -> str:
    """A name reduced for matching: lower case, letters and digits only, no __c."""
    name = name.lower()
    if name.endswith("__c"):
        name = name[:-3]
    return re.sub(r"[^0-9a-z]", "", name)


def _clean_name(name: str) -> str:
    """What an export does to a header: BOM, zero-width and non-breaking spaces, ends."""
    # "ï»¿" is a UTF-8 byte order mark read as Latin-1 or Windows-1252.
    return (name.replace("\ufeff", "").replace("\u00ef\u00bb\u00bf", "").replace("\u200b", "")
            .replace("\u00a0", " ").strip().strip('"').strip())


def _py(values) -> str:
    """A Python literal for a hint: a list or dict of texts."""
    return repr(values)


class _Validator:
    def __init__(self, df, describe, operation, key, delimiter, parents, key_case_insensitive,
                 all_columns, key_prefixes):
        self.df = df
        self.all_columns = all_columns  # the input's columns (a delete checks only Id)
        self.describe = describe
        self.sobject = describe["name"]
        self.fields = {f["name"].lower(): f for f in describe["fields"]}
        self.relationships = {f["relationshipName"].lower(): f for f in describe["fields"]
                              if f.get("relationshipName") and f.get("type") == "reference"}
        self.op = operation
        self.key = key
        self.delimiter = delimiter
        self.parents = {name.lower(): d for name, d in parents.items()}
        self.key_case_insensitive = key_case_insensitive
        self.key_repeats: bool | None = None  # found by _check_keys
        self.key_prefixes = key_prefixes
        self.blocks: list[Block] = []
        self.unsendable: list[Block] = []
        # Per column, the cells with no CSV form: their error is said, and they stand in
        # as blanks from then on, which no later check may report ("is blank").
        self.no_csv_form: dict[int, np.ndarray] = {}

    # -- column names --------------------------------------------------------------

    def _column_problem(self, column, order, code, reason, hint, field=None, severity=ERROR):
        self.blocks.append(Block(column, field, code, reason, hint, severity, order=order))

    def _suggest(self, name: str) -> list[tuple[str, str]]:
        """(API name, why) of fields the column may mean, best first."""
        clean = _clean_name(name)
        by_api = self.fields.get(clean.lower())
        if by_api is not None:
            return [(by_api["name"], "API name")]
        wanted = _norm(clean)
        for f in self.fields.values():
            if _norm(f["name"]) == wanted or _norm(f.get("label") or "") == wanted:
                return [(f["name"], "label" if _norm(f["name"]) != wanted else "API name")]
        keys = {}
        for f in self.fields.values():
            keys.setdefault(_norm(f["name"]), f["name"])
            keys.setdefault(_norm(f.get("label") or ""), f["name"])
        close = difflib.get_close_matches(wanted, [k for k in keys if k], n=3, cutoff=0.8)
        return list(dict.fromkeys((keys[c], "close match") for c in close))

    def _resolve(self, column, order) -> tuple[dict | None, str]:
        """The field a column writes and the name hints call it by (the name after the
        renames the problems suggest)."""
        if not isinstance(column, str):
            self._column_problem(column, order, "INVALID_FIELD",
                                 f"column {order} is named {column!r} ({type(column).__name__}); "
                                 "Bulk CSV headers are field names, so every column name must be a string",
                                 "df.columns = df.columns.map(str)")
            return None, str(column)
        if column.lower().startswith("sf__") or column in results.STATUS_COLUMNS:
            self._column_problem(column, order, "INVALID_FIELD",
                                 f"column {column!r} is a result column, not a field of {self.sobject}",
                                 f"df = df.drop(columns={_py([column])})")
            return None, column
        if "." in column and "\n" not in column:
            return self._resolve_relationship(column, order), column
        exact = self.fields.get(column.lower())
        if exact is not None and not any(c in column for c in '"\r\n' + self.delimiter):
            return exact, column
        if _PANDAS_UNNAMED.match(column):
            self._unnamed_column(column, order)
            return None, column
        if re.fullmatch(r"sep=.", column) and order == 0:
            sep = column[-1]
            self._column_problem(column, order, "INVALID_FIELD",
                                 f"column {column!r} is Excel's separator line, read as the "
                                 "header: the header is the line after it",
                                 f"# read the file again past it: df = pd.read_csv(path, "
                                 f"{'' if sep == ',' else f'sep={sep!r}, '}skiprows=1)")
            return None, column
        suggestions = self._suggest(column)
        if len(suggestions) == 1 and suggestions[0][1] != "close match" or (
                suggestions and difflib.SequenceMatcher(
                    None, _norm(column), _norm(suggestions[0][0])).ratio() >= 0.85):
            target = suggestions[0][0]
            why = {"API name": "its API name", "label": "the field's API name (this is its label)",
                   "close match": "the closest field name"}[suggestions[0][1]]
            others = [s for s, _ in suggestions[1:]]
            self._column_problem(column, order, "INVALID_FIELD",
                                 f"column {column!r} is not a field name of {self.sobject}: rename it "
                                 f"to {why} {target!r}" + (f" (or {', '.join(map(repr, others))})"
                                                           if others else ""),
                                 f"df = df.rename(columns={_py({column: target})})", field=target)
            return self.fields[target.lower()], target
        maybe = f"; did you mean {', '.join(repr(s) for s, _ in suggestions)}?" if suggestions else ""
        self._column_problem(column, order, "INVALID_FIELD",
                             f"{self.sobject} has no field {column!r} (the whole job would fail: "
                             f"\"Field name not found\"){maybe}",
                             f"df = df.drop(columns={_py([column])})")
        return None, column

    def _unnamed_column(self, column: str, order: int) -> None:
        """A column pandas named 'Unnamed: N': its header cell was blank (an Excel export's
        trailing comma makes one). Said as such, with the fix its cells call for."""
        values = self.df.iloc[:, order]
        filled = values.notna() & (values.astype("string").str.strip() != "")
        why = (f"column {column!r} has no name in the file's header (pandas names a blank "
               "header cell so")
        why += ("; a separator at the end of every line, as some Excel exports have, makes "
                "one)" if order == self.df.shape[1] - 1 else ")")
        if not filled.any():
            self._column_problem(column, order, "INVALID_FIELD",
                                 f"{why}, and it is empty: drop it",
                                 f"df = df.drop(columns={_py([column])})")
            return
        first = self.df.index[int(np.flatnonzero(filled.to_numpy(bool))[0])]
        self._column_problem(column, order, "INVALID_FIELD",
                             f"{why}, but it holds values (row {first!r} first): name it after "
                             "the field it writes",
                             f"df = df.rename(columns={_py({column: '<its field API name>'})})")

    def _resolve_relationship(self, column, order) -> dict | None:
        rel_part, _, key_name = column.partition(".")
        parent_type, _, rel_name = rel_part.rpartition(":")
        inverted = self.relationships.get(parent_type.lower()) if parent_type else None
        if inverted is not None and len(inverted.get("referenceTo") or []) > 1 and \
                rel_name.lower() in {t.lower() for t in inverted["referenceTo"]}:
            # `What:Account.X`: relationship and type swapped. Salesforce reads the part
            # before the colon as the type, and fails the job ("Unable to find
            # relationship", or "type is not needed..." when the type is also the name of
            # another lookup, as Account is on Task).
            parent = next(t for t in inverted["referenceTo"] if t.lower() == rel_name.lower())
            fixed = f"{parent}:{inverted['relationshipName']}.{key_name}"
            self._column_problem(column, order, "INVALID_FIELD",
                                 f"{column!r} puts the relationship before the type: a "
                                 f"polymorphic column is ObjectType:Relationship.Field; write "
                                 f"{fixed}", f"df = df.rename(columns={_py({column: fixed})})",
                                 field=inverted["name"])
            return None
        lookup = self.relationships.get(rel_name.lower())
        if lookup is None:
            names = sorted({f["relationshipName"] for f in self.relationships.values()})
            self._column_problem(column, order, "INVALID_FIELD",
                                 f"{self.sobject} has no relationship {rel_name!r} (relationships: "
                                 f"{', '.join(names) or 'none'}); the whole job would fail",
                                 f"df = df.drop(columns={_py([column])})")
            return None
        targets = lookup.get("referenceTo") or []
        if parent_type and len(targets) == 1:
            # The "ObjectType:" prefix is for polymorphic lookups only: Salesforce fails
            # the job ("type is not needed for non polymorphic foreign key references").
            self._column_problem(column, order, "INVALID_FIELD",
                                 f"{lookup['name']} points at {targets[0]} only: a relationship "
                                 f"column names the parent type only for a lookup that can point "
                                 f"at several objects (the whole job would fail: \"type is not "
                                 f"needed for non polymorphic foreign key references\")",
                                 f"df = df.rename(columns={_py({column: f'{rel_name}.{key_name}'})})",
                                 field=lookup["name"])
            return None
        if parent_type:
            parent_name = next((t for t in targets if t.lower() == parent_type.lower()), None)
        else:
            parent_name = targets[0] if len(targets) == 1 else None
        if parent_name is None:
            shown = ", ".join(targets[:8]) + (f" and {len(targets) - 8} more"
                                              if len(targets) > 8 else "")
            self._column_problem(column, order, "INVALID_FIELD",
                                 f"{lookup['name']} can point at {shown}: name the "
                                 f"parent type, as in '{targets[0]}:{rel_name}.{key_name}'",
                                 f"df = df.rename(columns={_py({column: f'{targets[0]}:{rel_name}.{key_name}'})})",
                                 field=lookup["name"])
            return None
        parent = self.parents.get(parent_name.lower())
        if parent is None:
            return lookup  # the parent's fields are unknown here; the org checks them
        fields = {f["name"].lower(): f for f in parent["fields"]}
        key_field = fields.get(key_name.lower())
        if key_field is None or not (key_field["name"] == "Id" or key_field.get("externalId")
                                     or key_field.get("idLookup")):
            keys = [f["name"] for f in parent["fields"] if f.get("externalId")] or ["Id"]
            what = "no field" if key_field is None else "a field that is not an External ID:"
            self._column_problem(column, order, "INVALID_FIELD",
                                 f"{parent['name']} has {what} {key_name!r}; a relationship column "
                                 f"matches parents by an External ID field ({', '.join(keys)})",
                                 f"df = df.rename(columns={_py({column: f'{rel_part}.{keys[0]}'})})",
                                 field=lookup["name"])
            return None
        return lookup

    # -- the run ---------------------------------------------------------------------

    def run(self, policies, tz) -> Checked:
        df = self.df
        if df.shape[1] == 0 and self.op not in ("delete", "hardDelete"):
            self._column_problem("(frame)", -1, "INVALID_FIELD",
                                 "the frame has no columns; a job needs at least one field",
                                 "df = pd.DataFrame({'Name': [...]})  # a column per field, "
                                 "named by its API name")
        resolved = []
        claimed: dict[str, Any] = {}
        for order, column in enumerate(df.columns):
            f, name = self._resolve(column, order)
            if f is not None:
                # A relationship column writes its lookup field: beside that field, or
                # beside another column of the same relationship, it is a second value
                # for one field, and the org fails the job ("Duplicate field name").
                other = claimed.get(f["name"].lower())
                if other is not None:
                    self._column_problem(column, order, "DUPLICATE_FIELD",
                                         f"columns {other!r} and {column!r} both write "
                                         f"{self.sobject}.{f['name']}; keep one",
                                         f"df = df.drop(columns={_py([column])})", field=f["name"])
                    f = None
                else:
                    claimed[f["name"].lower()] = column
            resolved.append((f, name))
        key_pos = self._key_position(resolved)

        columns, cells_of = [], []
        for order, column in enumerate(df.columns):
            f, name = resolved[order]
            field_type = f["type"] if f is not None and "." not in str(column) else None
            cell_problems: list[encode.CellProblem] = []
            try:
                col = encode.prepare_column(str(column), df.iloc[:, order], nulls=policies[order],
                                            tz=tz, field_type=field_type, problems=cell_problems)
            except encode.EncodeError as e:
                self._column_problem(column, order, "INVALID_CELL_TYPE", str(e),
                                     f"df[{name!r}] = df[{name!r}].astype('string')",
                                     field=f and f["name"])
                columns.append(None)
                cells_of.append(None)
                continue
            for p in cell_problems:
                values = pa.array([_cell_repr(v) for v in df.iloc[p.positions, order]], _LSTR)
                block = Block(column, f and f["name"], p.code, p.reason,
                              p.hint.replace(f"df[{str(column)!r}]", f"df[{name!r}]"),
                              ERROR, p.positions, values, order)
                self.blocks.append(block)
                self.unsendable.append(block)
                self.no_csv_form[order] = np.union1d(self.no_csv_form.get(order, []),
                                                     p.positions).astype(np.int64)
            cells = _Cells(col)
            columns.append(col)
            cells_of.append(cells)
            if col.is_text:
                self._check_characters(column, order, name, f, cells)
            if f is not None:
                self._check_cells(column, order, name, f, cells, is_key=order == key_pos)
        self._check_required(resolved, cells_of)
        if key_pos is not None and cells_of[key_pos] is not None:
            self._check_keys(df.columns[key_pos], key_pos, resolved[key_pos][1], cells_of)

        problems = Problems.from_blocks(self.blocks, df.index)
        encoding = None
        if all(c is not None for c in columns) and df.shape[1]:
            encoding = encode.Encoding(df, columns=columns)
        unsendable = Problems.from_blocks(self.unsendable, df.index)
        key_column = df.columns[key_pos] if key_pos is not None else None
        fields = [f["name"] if f is not None and "." not in str(column) else None
                  for (f, _), column in zip(resolved, df.columns)]
        return Checked(problems, encoding, cells_of, key_column, unsendable, self.blocks, fields,
                       [f for f, _ in resolved], self.key_repeats)

    def _key_position(self, resolved) -> int | None:
        if self.op == "insert" or self.key is None:
            return None
        wanted = self.key.lower()
        for order, (f, _) in enumerate(resolved):
            if f is not None and f["name"].lower() == wanted and "." not in str(self.df.columns[order]):
                return order
        what = "the External ID" if self.op == "upsert" else "the record ids"
        hint = f"df[{self.key!r}] = ...  # the {self.key} of each row"
        if self.key == "Id" and "sf_id" in self.all_columns:  # a result frame's ids
            hint = "df = df.rename(columns={'sf_id': 'Id'})"
        self._column_problem(self.key, -1, "MISSING_ARGUMENT",
                             f"{self.op} needs a {self.key!r} column ({what}); the frame has "
                             f"{_some_names(self.all_columns) if len(self.all_columns) else 'none'}",
                             hint)
        return None

    # -- cells -----------------------------------------------------------------------

    def _add(self, column, order, name, f, mask, cells, code, reason, hint, severity=ERROR):
        positions = np.flatnonzero(_np(mask))
        if order in self.no_csv_form:
            positions = np.setdiff1d(positions, self.no_csv_form[order], assume_unique=True)
        if not len(positions):
            return
        values = cells.at(positions)
        self.blocks.append(Block(column, f and f["name"], code, reason, hint, severity,
                                 positions, values, order))

    def _check_characters(self, column, order, name, f, cells):
        text = cells.text
        if not (encode._offsets_and_data(text)[1] == 0).any():
            return  # one pass over the bytes: far cheaper than a search per value
        nul = pc.match_substring(text, "\x00")
        if pc.any(nul).as_py():
            self._add(column, order, name, f, nul,
                      _Cells.of_text(pc.replace_substring(text, "\x00", "\\0")),
                      "INVALID_CHARACTER", "holds a NUL character (\\0), which Salesforce cannot store",
                      f"df[{name!r}] = df[{name!r}].str.replace('\\x00', '', regex=False)")

    def _check_cells(self, column, order, name, f, cells, *, is_key: bool):
        if not pc.any(cells.sent).as_py():
            return  # blank cells write nothing
        if "." in str(column):  # a relationship column holds the parent's key, not a value
            self._check_writable(column, order, name, f, cells)
            return
        if self.op == "insert" and f["name"] == "Id":
            self._add(column, order, name, f, cells.sent, cells,
                      "INVALID_FIELD_FOR_INSERT_UPDATE", "is an Id: an insert creates new records",
                      f"df = df.drop(columns={_py([name])})")
            return
        if not is_key and not self._check_writable(column, order, name, f, cells):
            return
        if not is_key and self.op in ("upsert", "update"):
            self._check_literal_clear(column, order, name, f, cells)
        filled = cells.filled
        if not pc.any(filled).as_py():
            return
        col = cells.col
        kind = f["type"]
        # A column whose dtype matches the field is written in the form the org reads
        # (encode's formats): only the limits of its values are left to check.
        native = {"boolean": ("boolean",), "date": ("date",), "datetime": ("datetime",)}.get(
            kind, ("integer", "float", "decimal") if kind in _INT_TYPES + _NUMBER_TYPES else ())
        if col.kind in native:
            if kind in _INT_TYPES + _NUMBER_TYPES:
                self._check_number(column, order, name, f, cells, filled, col)
            return
        if kind in _STRING_TYPES and kind not in ("picklist", "multipicklist"):
            if col.kind == "float" and is_key:  # other floats in text fields are numbers as text
                self._check_scientific(column, order, name, f, cells, filled, is_key)
            elif col.kind == "text":
                # Both start with a digit, a sign or '#': one look at the first bytes spares
                # the searches for most text (names, cities), a fifth of the checks' time.
                first = _first_bytes(cells.text)
                if _SCIENTIFIC_START[first].any():
                    self._check_scientific(column, order, name, f, cells, filled, is_key)
                if (first == ord("#")).any():
                    self._check_excel_errors(column, order, name, f, cells, filled, is_key)
        if kind in _STRING_TYPES:
            self._check_text(column, order, name, f, cells, filled)
        elif kind == "boolean":
            self._check_boolean(column, order, name, f, cells, filled)
        elif kind in _INT_TYPES or kind in _NUMBER_TYPES:
            self._check_number(column, order, name, f, cells, filled)
        elif kind == "date":
            self._check_date(column, order, name, f, cells, filled)
        elif kind == "datetime":
            self._check_datetime(column, order, name, f, cells, filled)
        elif kind == "time":
            bad = pc.and_(filled, pc.invert(pc.match_substring_regex(cells.text, _TIME)))
            self._add(column, order, name, f, bad, cells, "INVALID_TYPE_ON_FIELD_IN_RECORD",
                      "is not a time of day (HH:MM:SS.sss)",
                      f"df[{name!r}] = pd.to_datetime(df[{name!r}]).dt.strftime('%H:%M:%S')")
        elif kind in _ID_TYPES:
            self._check_ids(column, order, name, f, cells, filled, is_key)

    def _check_writable(self, column, order, name, f, cells) -> bool:
        """Problems of writing ``f`` at all in this operation; False when no row can."""
        create, update = bool(f.get("createable")), bool(f.get("updateable"))
        sent = cells.sent  # #N/A writes too (it clears the field)
        reason = (f"cannot be written: {self.sobject}.{f['name']} is read-only for "
                  f"{'inserts' if self.op == 'insert' else 'updates' if self.op == 'update' else 'both inserts and updates'}")
        hint = f"df = df.drop(columns={_py([name])})"
        code = "INVALID_FIELD_FOR_INSERT_UPDATE"
        writable = {"insert": create, "update": update}.get(self.op, create or update)
        if not writable:
            self._add(column, order, name, f, sent, cells, code, reason, hint)
            return False
        is_key_field = f["name"] == "Id" or f.get("externalId") or f.get("idLookup")
        if self.op == "upsert" and not is_key_field and create != update:
            when = "updates an existing record" if create else "creates a record (its key is new)"
            self._add(column, order, name, f, sent, cells, code,
                      f"fails if the row {when}: {f['name']} is "
                      f"{'createable only' if create else 'updateable only'}", hint, WARNING)
        return True

    def _check_scientific(self, column, order, name, f, cells, filled, is_key):
        """Text in Excel's scientific notation ('1.23457E+11'), or a key that pandas read
        from it (123457000000): digits lost before the frame was made, which no fix of
        the frame brings back. On the key an error (the row would write a record under a
        key that is not its own); on another text field a warning."""
        again = (f"# the digits are gone: format the column as Text where the file was saved "
                 f"(Excel: Format Cells > Text), save it again and read it with dtype=str, or "
                 f"take {name!r} from the system it came from")
        if cells.col.kind == "float":  # a key (_check_cells looks at no other floats)
            lost = _excel_rounded(cells.col.values)
            self._add(column, order, name, f, pc.and_(filled, pa.array(lost)), cells,
                      "NUMBER_IN_SCIENTIFIC_NOTATION",
                      "is a key pandas read as a number from Excel's scientific notation "
                      "(123456789012 saved as '1.23457E+11' reads as 123457000000): the "
                      "digits past the 6th are lost (read keys with dtype=str: '007' as a "
                      "number is 7 too)", again)
            return
        bad = pc.and_(filled, pc.match_substring_regex(cells.text, _SCIENTIFIC))
        if pc.any(bad).as_py():
            self._add(column, order, name, f, bad, cells, "NUMBER_IN_SCIENTIFIC_NOTATION",
                      "is a number in scientific notation, as Excel saves a long number "
                      "(123456789012 as '1.23457E+11'): the digits past the 6th are lost",
                      again, ERROR if is_key else WARNING)

    def _check_excel_errors(self, column, order, name, f, cells, filled, is_key):
        """'#REF!', '#VALUE!'... in a text field: a formula that failed in the sheet the
        file came from, which would be written as that text."""
        bad = pc.and_(filled, pc.is_in(cells.text, pa.array(_EXCEL_ERRORS, _LSTR)))
        if pc.any(bad).as_py():
            found = sorted(pc.unique(pc.filter(cells.text, bad)).to_pylist())
            self._add(column, order, name, f, bad, cells, "EXCEL_ERROR_VALUE",
                      "is an Excel error (the cell's formula failed in the sheet the data "
                      "came from): it would be written as this text",
                      f"df[{name!r}] = df[{name!r}].replace({found!r}, '')  "
                      "# blank writes nothing", ERROR if is_key else WARNING)

    def _check_literal_clear(self, column, order, name, f, cells):
        """'#N/A' written in the frame (not a null sent so by nulls="clear"): Bulk API's
        'clear this field', and also what Excel writes where a lookup found nothing."""
        col = cells.col
        if col is None or not col.is_text:
            return  # only text can hold the characters; a null is the caller's nulls=
        literal = pc.and_(cells.cleared, col.values.is_valid())
        if pc.any(literal).as_py():
            self._add(column, order, name, f, literal, cells, "CLEARS_FIELD",
                      f"is '#N/A', which clears {f['name']} on the record it updates (Bulk "
                      "API's null); Excel also writes #N/A where a lookup found nothing: "
                      "if that is where it comes from, blank it (a blank changes nothing)",
                      f"df[{name!r}] = df[{name!r}].replace('#N/A', '')  "
                      "# blank: the record keeps its value", WARNING)

    def _check_text(self, column, order, name, f, cells, filled):
        text = cells.text
        length = int(f.get("length") or 0)
        offsets, _ = encode._offsets_and_data(text)
        if length and (np.diff(offsets) > length).any():  # no more bytes than characters allowed
            long = pc.and_(filled, pc.greater(pc.utf8_length(text), length))
            self._add(column, order, name, f, long, cells, "STRING_TOO_LONG",
                      f"is longer than the {length:,} characters {f['name']} takes",
                      f"df[{name!r}] = df[{name!r}].str.slice(0, {length})")
        values = [v["value"] for v in f.get("picklistValues") or () if v.get("active", True)]
        if f["type"] in ("picklist", "multipicklist") and values:
            self._check_picklist(column, order, name, f, cells, filled, values)
        if f["type"] == "email":
            bad = pc.and_(filled, pc.invert(pc.match_substring_regex(text, _EMAIL)))
            if pc.any(bad).as_py():
                stripped = pc.utf8_trim_whitespace(pc.filter(text, bad))
                if pc.all(pc.match_substring_regex(stripped, _EMAIL)).as_py():
                    hint = f"df[{name!r}] = df[{name!r}].str.strip()"
                else:
                    hint = (f"df[{name!r}] = df[{name!r}].str.strip().where("
                            f"df[{name!r}].str.strip().str.fullmatch(r'[^@\\s]+@[^@\\s]+\\.[^@\\s.]+'))"
                            f"  # bad addresses become blank")
                self._add(column, order, name, f, bad, cells, "INVALID_EMAIL_ADDRESS",
                          "is not an e-mail address (name@domain.tld)", hint)

    def _check_picklist(self, column, order, name, f, cells, filled, values):
        text = cells.text
        multi = f["type"] == "multipicklist"
        allowed = pa.array(values, _LSTR)
        if multi:
            parts = pc.split_pattern(text, ";")
            flat_ok = pc.is_in(pc.list_flatten(parts), value_set=allowed)
            parent = pc.list_parent_indices(parts).to_numpy()
            bad_rows = np.unique(parent[~_np(flat_ok)])
            bad = np.zeros(len(cells), bool)
            bad[bad_rows] = True
            bad &= _np(filled)
            bad_values = sorted({p for t in pc.filter(text, pa.array(bad)).to_pylist()
                                 for p in t.split(";") if p not in values})
        else:
            bad = pc.and_(filled, pc.invert(pc.is_in(text, value_set=allowed)))
            bad_values = pc.unique(pc.filter(text, bad)).to_pylist() if pc.any(bad).as_py() else []
        if not bad_values:
            return
        restricted = bool(f.get("restrictedPicklist"))
        many = len(bad_values) > _SPELLINGS
        if many:  # the most frequent get their closest value; a restricted list blanks the rest
            counts = pd.Series(pc.filter(text, bad).to_pylist() if not multi else bad_values)
            bad_values = list(counts.value_counts().index[:_SPELLINGS])
        mapping = {v: _closest(v, values) for v in bad_values}
        unmatched = [v for v, m in mapping.items() if m is None]
        if multi:
            keep = {v: m for v, m in mapping.items() if m is not None}
            hint = (f"df[{name!r}] = df[{name!r}].map(lambda v: ';'.join(filter(None, "
                    f"({_py(keep)}.get(x, x if x in {_py(set(values))} else None) for x in v.split(';')))) "
                    f"if isinstance(v, str) else v)")
        elif many:
            keep = {v: m for v, m in mapping.items() if m is not None}
            hint = f"df[{name!r}] = df[{name!r}].replace({_py(keep)})"
            if restricted:
                hint += f".where(lambda s: s.isin({_py(values)}))  # the rest: blank"
        else:
            hint = f"df[{name!r}] = df[{name!r}].replace({_py(mapping)})"
            if unmatched:
                hint += "  # no close value: blank"
        if restricted:
            self._add(column, order, name, f, bad, cells, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                      f"is not a value of the restricted picklist {f['name']}", hint)
        else:
            self._add(column, order, name, f, bad, cells, "PICKLIST_VALUE_NOT_DEFINED",
                      f"is not one of {f['name']}'s picklist values (Salesforce stores it "
                      f"anyway: a typo?)", hint, WARNING)

    def _check_boolean(self, column, order, name, f, cells, filled):
        text = cells.text
        low = pc.utf8_lower(pc.utf8_trim_whitespace(text))
        bad = pc.and_(filled, pc.invert(pc.is_in(pc.utf8_lower(text), value_set=pa.array(
            _ACCEPTED_BOOLEANS, _LSTR))))
        if not pc.any(bad).as_py():
            return
        seen = pc.unique(pc.filter(low, bad)).to_pylist()
        mapping = {w: True for w in _TRUE_WORDS} | {w: False for w in _FALSE_WORDS}
        # The accepted spellings too: map() blanks every value its dict lacks.
        used = {w: mapping[w] for w in sorted(set(seen) | set(_ACCEPTED_BOOLEANS)) if w in mapping}
        unknown = [w for w in seen if w not in mapping]
        extra = f"; the fix blanks {', '.join(map(repr, unknown))}" if unknown else ""
        self._add(column, order, name, f, bad, cells, "INVALID_TYPE_ON_FIELD_IN_RECORD",
                  f"is not a boolean: Salesforce takes true/false or 1/0{extra}",
                  f"df[{name!r}] = df[{name!r}].astype('string').str.strip().str.lower().map({_py(used)})")

    def _check_number(self, column, order, name, f, cells, filled, col=None):
        """Shape (for text), then range and scale. ``col``: a numeric column, whose texts
        are plain numbers by construction and whose values are read as they are."""
        whole = f["type"] in _INT_TYPES
        numeric = col is not None and col.kind in ("integer", "float")
        text = None if numeric else cells.text
        if col is not None:
            good = filled
        else:
            shape = pc.match_substring_regex(text, _INT if whole else _NUMBER)
            bad = pc.and_(filled, pc.invert(shape))
            if pc.any(bad).as_py():
                seen = pc.unique(pc.filter(text, bad))
                reason, hint = _number_fix(name, seen, whole, int(f.get("scale") or 0))
                self._add(column, order, name, f, bad, cells, "INVALID_TYPE_ON_FIELD_IN_RECORD",
                          reason, hint)
            good = pc.and_(filled, shape)
        if not pc.any(good).as_py():
            return
        positions = np.flatnonzero(_np(good))
        if numeric:
            self._check_number_range(column, order, name, f, cells, positions,
                                     pc.filter(col.values, good).to_numpy(zero_copy_only=False))
            return
        values = pc.filter(text, good)
        if whole:
            digits = int(f.get("digits") or 18)
            significant = pc.utf8_length(pc.utf8_ltrim(pc.utf8_ltrim(values, "+-"), "0"))
            out = _np(pc.greater(significant, digits))
            bound = f"{digits} digits"
            rounded = None
        else:
            precision, scale = int(f.get("precision") or 18), int(f.get("scale") or 0)
            numbers = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
            out = _beyond_precision(values, numbers, precision, scale)
            bound = f"{precision - scale} digits before the point"
            point = pc.find_substring(values, ".")
            # Trailing zeros change nothing ("456934.0" in a field of no decimals, as
            # spreadsheets and pandas write whole floats): only the digits up to the last
            # non-zero one count.
            fraction = pc.subtract(pc.utf8_length(pc.utf8_rtrim(values, "0")), pc.add(point, 1))
            rounded = (_np(pc.greater_equal(point, 0)) & (fraction.to_numpy(zero_copy_only=False) > scale)
                       & ~_np(pc.match_substring_regex(values, r"[eE]")) & ~out)
        mask = np.zeros(len(cells), bool)
        mask[positions[out]] = True
        self._add(column, order, name, f, mask, cells, "NUMBER_OUTSIDE_VALID_RANGE",
                  f"is too large for {f['name']} (at most {bound})",
                  f"df.loc[df[{name!r}].abs() >= 1e{digits if whole else precision - scale}, {name!r}] = None")
        if rounded is not None and rounded.any():
            mask = np.zeros(len(cells), bool)
            mask[positions[rounded]] = True
            prefix, rounding = _half_up(scale)
            self._add(column, order, name, f, mask, cells, "NUMBER_ROUNDED",
                      f"has more decimals than the {scale} {f['name']} keeps: Salesforce rounds it "
                      f"(half up)", f"{prefix}df[{name!r}] = pd.to_numeric(df[{name!r}]){rounding}",
                      WARNING)

    def _check_number_range(self, column, order, name, f, cells, positions, numbers):
        """Range and scale of numbers held as numbers (no text to parse)."""
        whole = f["type"] in _INT_TYPES
        digits = int(f.get("digits") or 18) if whole else (
            int(f.get("precision") or 18) - int(f.get("scale") or 0))
        scale = 0 if whole else int(f.get("scale") or 0)
        if numbers.dtype.kind in "iu":  # whole numbers: compared exactly (no float rounding)
            bound = 10 ** digits
            out = (np.abs(numbers.astype(np.int64)) >= bound if bound <= np.iinfo(np.int64).max
                   else np.zeros(len(numbers), bool))
            rounded = None
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                absolute = np.abs(numbers.astype(np.float64))
                out = (np.round(absolute, scale) >= 10.0 ** digits) if not whole else (
                    absolute >= 10.0 ** digits)
                rounded = ~out & (np.round(absolute, scale) != absolute) if not whole else None
        mask = np.zeros(len(cells), bool)
        mask[positions[out]] = True
        self._add(column, order, name, f, mask, cells, "NUMBER_OUTSIDE_VALID_RANGE",
                  f"is too large for {f['name']} (at most {digits} digits"
                  f"{'' if whole else ' before the point'})",
                  f"df.loc[df[{name!r}].abs() >= 1e{digits}, {name!r}] = None")
        if rounded is not None and rounded.any():
            mask = np.zeros(len(cells), bool)
            mask[positions[rounded]] = True
            prefix, rounding = _half_up(scale)
            self._add(column, order, name, f, mask, cells, "NUMBER_ROUNDED",
                      f"has more decimals than the {scale} {f['name']} keeps: Salesforce rounds it "
                      f"(half up)", f"{prefix}df[{name!r}] = pd.to_numeric(df[{name!r}]){rounding}",
                      WARNING)

    def _check_date(self, column, order, name, f, cells, filled):
        text = cells.text
        bad = pc.and_(filled, pc.invert(_is_iso_date(text)))
        if pc.any(bad).as_py():
            seen = pc.unique(pc.filter(text, bad)).to_pylist()
            reason, hint = _date_fix(name, seen, datetime=False, all_bad=_all(bad, filled))
            self._add(column, order, name, f, bad, cells, "INVALID_TYPE_ON_FIELD_IN_RECORD",
                      reason, hint)

    def _check_datetime(self, column, order, name, f, cells, filled):
        text = cells.text
        parts = pc.extract_regex(text, _DATETIME)
        ok = pc.and_(pc.and_(_is_iso_date(pc.fill_null(parts.field("date"), "")),
                             pc.match_substring_regex(pc.fill_null(parts.field("clock"), ""), _CLOCK)),
                     pc.match_substring_regex(pc.fill_null(parts.field("zone"), ""), _ZONE))
        bad = pc.and_(filled, pc.invert(pc.fill_null(ok, False)))
        if pc.any(bad).as_py():
            seen = pc.unique(pc.filter(text, bad)).to_pylist()
            reason, hint = _date_fix(name, seen, datetime=True, all_bad=_all(bad, filled))
            self._add(column, order, name, f, bad, cells, "INVALID_TYPE_ON_FIELD_IN_RECORD",
                      reason, hint)
        # Only the first and the last day can leave years 1-9999 once the offset is applied.
        edge = _np(pc.and_(pc.fill_null(ok, False), pc.is_in(
            pc.fill_null(parts.field("date"), ""), value_set=pa.array(["0001-01-01", "9999-12-31"], _LSTR))))
        beyond = np.zeros(len(text), bool)
        for i in np.flatnonzero(edge):
            beyond[i] = _beyond_utc_years(text[int(i)].as_py())
        self._add(column, order, name, f, beyond, cells, "INVALID_TYPE_ON_FIELD_IN_RECORD",
                  "is before year 1 or after 9999 in UTC, which no datetime holds",
                  f"df[{name!r}] = df[{name!r}].where(~df[{name!r}].isin("
                  f"{_py(pc.unique(pc.filter(text, pa.array(beyond))).to_pylist()[:50])}))")

    def _check_ids(self, column, order, name, f, cells, filled, is_key):
        text = cells.text
        malformed = pc.and_(filled, pa.array(_malformed_ids(text)))
        if is_key and f["name"] == "Id":
            prefix = self.describe.get("keyPrefix")
            start = pc.utf8_slice_codeunits(text, 0, 3)
            other = _np(pc.and_(pc.and_(filled, pc.invert(malformed)), pc.not_equal(start, prefix)))
            # An 18-character id may come in any case: its suffix restores the prefix's.
            recased = other & _np(pc.and_(pc.equal(pc.utf8_length(text), 18),
                                          pc.equal(pc.utf8_lower(start), str(prefix).lower())))
            for i in np.flatnonzero(recased):
                value = text[int(i)].as_py()
                other[i] = _restored_prefix(value[:3], value[15]) != prefix
            self._add(column, order, name, f, other, cells, "MALFORMED_ID",
                      f"is the id of another object: {self.sobject} ids start with {prefix}",
                      f"df = df[df[{name!r}].str.startswith({prefix!r})]")
        elif f["type"] == "reference" and self.key_prefixes:
            self._check_id_objects(column, order, name, f, cells, pc.and_(filled, pc.invert(malformed)))
        if not pc.any(malformed).as_py():
            return
        distinct = pc.unique(pc.filter(text, malformed))
        seen = distinct.to_pylist()
        if not _malformed_ids(pc.utf8_trim_whitespace(distinct)).any():
            hint = f"df[{name!r}] = df[{name!r}].str.strip()"
        elif is_key:
            hint = f"df = df[~df[{name!r}].isin({_py(seen[:50])})]" + (
                "  # and more: see .problems" if len(seen) > 50 else "")
        else:
            hint = f"df[{name!r}] = df[{name!r}].where(~df[{name!r}].isin({_py(seen[:50])}))"
        self._add(column, order, name, f, malformed, cells, "MALFORMED_ID",
                  "is not a Salesforce id (15 or 18 letters and digits, with a valid checksum)", hint)

    def _check_id_objects(self, column, order, name, f, cells, wellformed):
        """Ids of an object the lookup field does not point at (a Contact id in AccountId):
        the org refuses them with FIELD_INTEGRITY_EXCEPTION. Prefixes the org does not
        list are left to it."""
        if not pc.any(wellformed).as_py():
            return
        text = cells.text
        targets = f.get("referenceTo") or []
        ids = pc.filter(text, wellformed)
        # The prefix as written, and for an 18-character id the suffix letter with its case
        start = pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(ids, 0, 3),
            pc.if_else(pc.equal(pc.utf8_length(ids), 18), pc.utf8_slice_codeunits(ids, 15, 16),
                       pa.scalar("", _LSTR)),
            pa.scalar("", _LSTR))
        owner = {}
        for key in pc.unique(start).to_pylist():
            prefix = _restored_prefix(key[:3], key[3]) if len(key) == 4 else key
            owner[key] = self.key_prefixes.get(prefix)
        wrong = [k for k, o in owner.items() if o is not None and o not in targets]
        if not wrong:
            return
        bad = np.zeros(len(text), bool)
        bad[np.flatnonzero(_np(wellformed))[_np(pc.is_in(start, pa.array(wrong, _LSTR)))]] = True
        objects = sorted({owner[k] for k in wrong})
        seen = pc.unique(pc.filter(text, pa.array(bad))).to_pylist()
        self._add(column, order, name, f, bad, cells, "FIELD_INTEGRITY_EXCEPTION",
                  f"is the id of a record of {' or '.join(objects)}, but {f['name']} points at "
                  f"{' or '.join(targets)}",
                  f"df[{name!r}] = df[{name!r}].where(~df[{name!r}].isin({_py(seen[:50])}))" + (
                      "  # and more: see .problems" if len(seen) > 50 else ""))

    # -- rows ------------------------------------------------------------------------

    def _check_required(self, resolved, cells_of):
        if self.op not in ("insert", "upsert", "update"):
            return
        present = {}
        for order, (f, name) in enumerate(resolved):
            # A relationship column (Pricebook2.Name) fills its lookup field too: its
            # blank or #N/A cells leave the required lookup empty just the same.
            if f is not None and ("." not in str(self.df.columns[order])
                                  or f["name"] not in present):
                present[f["name"]] = (order, name)
        for f in self.describe["fields"]:
            required = f.get("createable") and not f.get("nillable") and not f.get("defaultedOnCreate")
            if not required:
                continue
            if f["name"] not in present:
                if self.op == "update":
                    continue
                severity = ERROR if self.op == "insert" else WARNING
                when = "" if self.op == "insert" else " for the rows that create records (new keys)"
                self._column_problem(f["name"], -1, "REQUIRED_FIELD_MISSING",
                                     f"{self.sobject} requires {f['name']} on every new record; the "
                                     f"frame has no {f['name']} column{when}",
                                     f"df[{f['name']!r}] = ...  # a value for every new record",
                                     field=f["name"], severity=severity)
                continue
            order, name = present[f["name"]]
            cells = cells_of[order]
            if cells is None:
                continue
            column = self.df.columns[order]
            if self.op != "insert":
                # #N/A clears the field: that fails an update as much as a create, so an
                # upsert row fails whatever its key finds.
                self._add(column, order, name, f, cells.cleared, cells, "REQUIRED_FIELD_MISSING",
                          f"would clear {f['name']}, which is required",
                          f"df[{name!r}] = df[{name!r}].replace({{'#N/A': None}})  # and nulls='keep'")
            if self.op == "update":
                continue
            severity = ERROR if self.op == "insert" else WARNING
            when = "" if self.op == "insert" else " (fails only if the row creates a record)"
            # An upsert's #N/A is an error above already; a blank is the warning here.
            empty = cells.empty if self.op == "insert" else pc.invert(cells.sent)
            self._add(column, order, name, f, empty, cells, "REQUIRED_FIELD_MISSING",
                      f"is blank, but {f['name']} is required on new records{when}",
                      f"df = df[df[{name!r}].notna() & (df[{name!r}].astype('string') != '')]",
                      severity)

    def _check_keys(self, column, order, name, cells_of):
        cells = cells_of[order]
        coded = results.KeyCodes.of(cells.text, self.op, self.key, self.key_case_insensitive)
        self.key_repeats = coded.repeat
        for positions, code, reason, hint in key_problems(cells.text, self.op, self.key,
                                                          self.key_case_insensitive, name,
                                                          coded):
            mask = np.zeros(len(cells), bool)
            mask[positions] = True
            self._add(column, order, name, self.fields.get(self.key.lower()), mask, cells,
                      code, reason, hint)


def _first_bytes(text: pa.Array) -> np.ndarray:
    """The first byte of each non-empty value of a large_string array."""
    offsets, data = encode._offsets_and_data(text)
    starts = offsets[:-1] - offsets[0]
    return data[starts[offsets[1:] > offsets[:-1]]]


def _excel_rounded(values: pa.Array) -> np.ndarray:
    """Which floats are whole numbers of 12 digits or more with at most 6 significant
    ones: what '1.23457E+11' (Excel's General format for 123456789012) reads as."""
    v = np.abs(values.to_numpy(zero_copy_only=False).astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        big = np.isfinite(v) & (v >= 1e11)
        scale = 10.0 ** (np.floor(np.log10(np.where(big, v, 1.0))) - 5)
        return big & (np.round(v / scale) * scale == v)


def key_problems(text: pa.Array, operation: str, key: str, key_case_insensitive: bool,
                 name: Any, coded: "results.KeyCodes | None" = None
                 ) -> list[tuple[np.ndarray, str, str, str]]:
    """Blank and repeated keys among a key column's texts (large_string), as (positions,
    code, reason, hint); ``name`` is the column as hints spell it."""
    positions, _, _, reasons = results.duplicate_keys(text, operation, key, key_case_insensitive,
                                                      coded)
    if not len(positions):
        return []
    found = []
    blank = np.array(reasons) == "blank"
    if blank.any():
        found.append((
            positions[blank], "MISSING_ARGUMENT",
            f"is blank: every row needs its {key} (the key it is matched on)",
            f"df = df[df[{name!r}].notna() & (df[{name!r}].astype('string').str.strip() != '')]"))
    if (~blank).any():
        folded = key_case_insensitive and key.lower() != "id"
        if folded:
            hint = f"df = df[~df[{name!r}].str.lower().duplicated(keep='last')]"
        else:
            hint = f"df = df.drop_duplicates(subset={_py([name])}, keep='last')"
        found.append((
            positions[~blank], "DUPLICATE_VALUE",
            f"appears in more than one row: each {key} may be sent once "
            f"(keep='last' keeps the last row of each)" + (
                " (matched ignoring case)" if folded else ""), hint))
    return found


# -- helpers ---------------------------------------------------------------------------


def _np(mask) -> np.ndarray:
    if isinstance(mask, np.ndarray):
        return mask
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def _all(bad, filled) -> bool:
    return bool(np.array_equal(_np(bad), _np(filled)))


def _some_names(columns) -> str:
    names = [str(c) for c in columns]
    return repr(names[:12])[:-1] + (", ...]" if len(names) > 12 else "]")


def _cell_repr(value) -> str:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return repr(value)


def _closest(value: str, choices: list[str]) -> str | None:
    """The choice a mistyped value most likely means: the same but for case and spaces,
    else a close spelling; None when nothing is close."""
    folded = {c.lower().strip(): c for c in choices}
    hit = folded.get(value.lower().strip())
    if hit is not None:
        return hit
    close = difflib.get_close_matches(value.lower().strip(), list(folded), n=1, cutoff=0.75)
    return folded[close[0]] if close else None


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _is_iso_date(text: pa.Array) -> pa.Array:
    """YYYY-MM-DD naming a real day of years 1-9999 (Arrow's strptime would roll
    2023-02-29 over to March 1st instead of refusing it)."""
    text = text.cast(_LSTR)
    shaped = _np(pc.match_substring_regex(text, _DATE))
    ok = np.zeros(len(text), bool)
    if shaped.any():
        _, data = encode._offsets_and_data(pc.filter(text, pa.array(shaped)))
        digits = data.reshape(-1, 10).astype(np.int64) - ord("0")
        year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
        month = digits[:, 5] * 10 + digits[:, 6]
        day = digits[:, 8] * 10 + digits[:, 9]
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        month_ok = (month >= 1) & (month <= 12)
        days = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + (leap & (month == 2))
        ok[np.flatnonzero(shaped)] = (year >= 1) & month_ok & (day >= 1) & (day <= days)
    return pa.array(ok)


def _beyond_utc_years(text: str) -> bool:
    """Whether an ISO datetime of 0001-01-01 or 9999-12-31 leaves years 1-9999 in UTC."""
    m = re.match(r"([0-9]{4})-[0-9]{2}-[0-9]{2}T([0-9]{2}):([0-9]{2}):([0-9]{2})[.0-9]*"
                 r"(?:Z|([+-])([0-9]{2}):?([0-9]{2}))?$", text)
    if not m or not m.group(5):
        return False
    year, hours, minutes, seconds, sign, zone_hours, zone_minutes = m.groups()
    offset = (1 if sign == "+" else -1) * (int(zone_hours) * 3600 + int(zone_minutes) * 60)
    utc = int(hours) * 3600 + int(minutes) * 60 + int(seconds) - offset
    return utc < 0 if year == "0001" else utc >= 86400


def _restored_prefix(start: str, suffix: str) -> str:
    """The key prefix of a well-formed 18-character id (its first three characters and
    the first of its suffix), in the case the suffix records."""
    upper = int(_ID_SUFFIX[ord(suffix)])
    return "".join(c.upper() if upper >> i & 1 else c.lower() for i, c in enumerate(start))


def _malformed_ids(text: pa.Array) -> np.ndarray:
    """Which texts the org would refuse as ids: not 15 or 18 ASCII letters and digits, or
    an 18-character id whose suffix marks a digit as an upper-case letter (or is no
    suffix at all). The suffix may be any case."""
    shaped = _np(pc.match_substring_regex(text, _ID_SHAPE))
    bad = ~shaped
    long = shaped & _np(pc.equal(pc.utf8_length(text), 18))
    if long.any():
        _, data = encode._offsets_and_data(pc.filter(text, pa.array(long)))
        raw = data.reshape(-1, 18)
        body = raw[:, :15].reshape(-1, 3, 5)
        letters = (((body >= 65) & (body <= 90)) | ((body >= 97) & (body <= 122)))
        suffix = _ID_SUFFIX[raw[:, 15:]]
        weights = np.array([1, 2, 4, 8, 16])
        letter_bits = (letters * weights).sum(axis=2)
        wrong = (suffix < 0).any(axis=1) | ((suffix & ~letter_bits) != 0).any(axis=1)
        where = np.flatnonzero(long)
        bad[where[wrong]] = True
    return bad


def _beyond_precision(texts: pa.Array, numbers: np.ndarray, precision: int, scale: int) -> np.ndarray:
    """Which numbers, rounded half up to ``scale`` as the org rounds them, have more than
    ``precision - scale`` digits before the point. Floats decide all but the numbers
    within a rounding step (or a float's error) of the bound: those Decimal decides, as a
    float cannot (18 nines read as 1e18, 99.995 as 99.99499...)."""
    bound = 10.0 ** (precision - scale)
    margin = max(10.0 ** -scale, bound * 2.0 ** -50)
    with np.errstate(over="ignore", invalid="ignore"):
        near = ~(np.abs(numbers) < bound - margin)  # NaN and infinities too
    out = near.copy()
    quantum, exact_bound = Decimal(1).scaleb(-scale), Decimal(10) ** (precision - scale)
    for i in np.flatnonzero(near):
        try:
            value = Decimal(texts[int(i)].as_py()).quantize(quantum, rounding=ROUND_HALF_UP)
        except InvalidOperation:  # more digits than Decimal's context holds: far beyond
            continue
        out[i] = abs(value) >= exact_bound
    return out


_EUROPEAN = r"^-?[0-9]{1,3}(\.[0-9]{3})+(,[0-9]+)?$|^-?[0-9]+,[0-9]{1,2}$"


def _number_fix(name: str, seen: pa.Array, whole: bool, scale: int) -> tuple[str, str]:
    """What is wrong with number texts an export made (``seen``: the distinct bad texts),
    and one line that fixes them: the steps it takes are applied here too, to learn
    whether every value then reads as a number and whether it needs rounding."""
    text = pc.utf8_trim_whitespace(seen)
    junk = [ch for ch in _NUMBER_JUNK if pc.any(pc.match_substring(seen, ch)).as_py()]
    accounting = pc.any(pc.match_substring_regex(text, r"^\(.*\)$")).as_py()
    european = pc.sum(pc.match_substring_regex(pc.utf8_trim(text, " \u20ac"), _EUROPEAN)).as_py()
    steps = f"df[{name!r}]"
    cleaned = text
    if accounting:
        steps += ".str.replace(r'^\\((.*)\\)$', r'-\\1', regex=True)"
        cleaned = pc.replace_substring_regex(cleaned, r"^\((.*)\)$", r"-\1")
    if european * 2 >= len(seen):
        steps += (".str.replace(r'[^0-9,.-]', '', regex=True).str.replace('.', '', regex=False)"
                  ".str.replace(',', '.', regex=False)")
        cleaned = pc.replace_substring(pc.replace_substring(
            pc.replace_substring_regex(cleaned, r"[^0-9,.\-]", ""), ".", ""), ",", ".")
        what = "a European number (1.234,56)"
    elif junk:
        shown = " and ".join({" ": "spaces", "\u00a0": "non-breaking spaces"}.get(ch, repr(ch))
                             for ch in junk)
        pattern = "[" + re.escape("".join(junk)) + "]"
        steps += ".str.replace(r'" + pattern.replace("'", "\\'") + "', '', regex=True)"
        cleaned = pc.replace_substring_regex(cleaned, pattern, "")
        what = f"a number written with {shown}"
    else:
        what = "not a number"
    parseable = pc.all(pc.match_substring_regex(cleaned, _NUMBER)).as_py()
    convert = f"pd.to_numeric({steps}{'' if parseable else ', errors=' + repr('coerce')})"
    # Decimals beyond what the field keeps (a nonzero digit past them).
    beyond = pc.any(pc.match_substring_regex(cleaned, rf"\.[0-9]{{{scale}}}[0-9]*[1-9]")).as_py()
    if whole:
        convert += (".round()" if beyond else "") + ".astype('Int64')"
        if what == "not a number" and parseable:
            what = "not a whole number as Salesforce writes one (no .0)"
    elif beyond:
        prefix, rounding = _half_up(scale)  # as Salesforce would: say so here
        return _number_reason(what, whole, parseable), f"{prefix}df[{name!r}] = {convert}{rounding}"
    return _number_reason(what, whole, parseable), f"df[{name!r}] = {convert}"


def _number_reason(what: str, whole: bool, parseable: bool) -> str:
    reason = f"is {what}: Salesforce takes plain digits" + ("" if whole else " with a '.' decimal point")
    if not parseable:
        reason += "; values that are still not numbers become blank"
    return reason


def _half_up(scale: int) -> tuple[str, str]:
    """(an import, a .map) rounding numbers as Salesforce does: the decimal text, half up
    (numpy's round() goes half to even, and binary floats miss ties such as 1.005)."""
    quantum = "1" if scale == 0 else f"1e-{scale}"
    return ("from decimal import Decimal; ",
            f".map(lambda v: v if v != v else float(Decimal(str(v)).quantize(Decimal('{quantum}'), "
            f"'ROUND_HALF_UP')))")


def _date_fix(name: str, seen: list[str], *, datetime: bool, all_bad: bool) -> tuple[str, str]:
    """What format date texts are in, and one line that converts them."""
    expected = "YYYY-MM-DDTHH:MM:SS.sssZ" if datetime else "YYYY-MM-DD"
    tail = "" if datetime else ".dt.date"
    zone = " (naive times are taken as UTC; pass tz= for local times)" if datetime else ""
    values = pd.Series(seen, dtype=object).astype(str).str.strip()
    serial = pd.to_numeric(values, errors="coerce")
    if serial.notna().all() and serial.between(1, 2_958_465).all():
        return (f"is an Excel serial day number, not a date ({expected}){zone}",
                f"df[{name!r}] = pd.to_datetime(pd.to_numeric(df[{name!r}]), unit='D', "
                f"origin='1899-12-30'){tail}")
    formats = [(f, label) for f, label in _DATE_FORMATS]
    formats += [(f"{f} {t}", f"{label} with a time") for f, label in _DATE_FORMATS[:4] for t in _TIME_PARTS]
    formats += [(f"%Y-%m-%d {t}", "year-month-day with a time") for t in _TIME_PARTS]
    formats += [(f"%Y-%m-%dT{t}", "ISO without milliseconds or zone") for t in _TIME_PARTS[:2]]
    # The formats are tried on a sample of the values; the one chosen then on them all.
    sample = values if len(values) <= _SAMPLE else values.sample(_SAMPLE, random_state=0)
    best = None
    for fmt, label in formats:
        parsed = pd.to_datetime(sample, format=fmt, errors="coerce")
        hits = int(parsed.notna().sum())
        if hits == len(sample):
            best = (fmt, label)
            break
        if hits and (best is None or hits > best[2]):
            best = (fmt, label, hits)
    if best is not None and len(best) == 2 and len(sample) < len(values):
        if pd.to_datetime(values, format=best[0], errors="coerce").isna().any():
            best = (*best, 0)
    if best is None or len(best) == 3:
        return (f"is not a date Salesforce reads: it takes {expected}{zone}",
                f"df[{name!r}] = pd.to_datetime(df[{name!r}], format='mixed', errors='coerce'){tail}"
                f"  # unreadable dates become blank")
    fmt, label = best
    ambiguous = ""
    if fmt.startswith("%m/%d"):
        other = fmt.replace("%m/%d", "%d/%m", 1)
        if pd.to_datetime(values, format=other, errors="coerce").notna().all():
            ambiguous = f" (every value also reads as day/month: check, and use format={other!r} if so)"
    reason = f"is a {label} date ({fmt}), but Salesforce takes {expected}{ambiguous}{zone}"
    if all_bad:
        return reason, f"df[{name!r}] = pd.to_datetime(df[{name!r}], format={fmt!r}){tail}"
    # Some values are already as Salesforce takes them: keep those, read the rest in the
    # format seen. (format='mixed' reads 03/04/2020 as March 4 whatever was seen, and
    # dayfirst=True turns 2020-01-02 into February 1.)
    return reason, (f"df[{name!r}] = pd.to_datetime(df[{name!r}], format='ISO8601', utc=True, "
                    f"errors='coerce').fillna(pd.to_datetime(df[{name!r}], format={fmt!r}, "
                    f"utc=True, errors='coerce')){tail}")

