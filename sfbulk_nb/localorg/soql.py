"""The SOQL subset of the local org: a tokenizer, a recursive-descent parser and a compiler
to SQLite over the store's object tables (`"sobj_<Object>"`).

Grammar (keywords ignore case; it follows the SOQL grammar of Salesforce's apex-parser,
where one level of a WHERE clause joins its conditions with AND or with OR, never both,
so `a AND b OR c` is MALFORMED_QUERY and needs parentheses, as in Salesforce):

    query      := SELECT selection FROM name [WHERE logical] [GROUP BY path (',' path)*]
                  [HAVING logical] [ORDER BY order (',' order)*]
                  [LIMIT integer] [OFFSET integer]
    selection  := COUNT '(' ')' | item (',' item)*
    item       := (path | aggregate) [alias] | '(' query ')'   -- a parent-to-child subquery
    aggregate  := (COUNT | COUNT_DISTINCT | SUM | AVG | MIN | MAX) '(' path ')'
    path       := name ('.' name)*                 -- parent relationships, any depth
    logical    := NOT condition | condition (AND condition)* | condition (OR condition)*
    condition  := '(' logical ')' | operand operator value | operand LIKE string
                | operand [NOT] IN '(' value (',' value)* ')'
                | path [NOT] IN '(' query ')'      -- a semi-join / anti-join
    operand    := path | aggregate                 -- aggregates only in HAVING
    operator   := '=' | '!=' | '<>' | '<' | '<=' | '>' | '>='
    value      := string | number | date | datetime | NULL | TRUE | FALSE | dateliteral
    dateliteral:= TODAY | YESTERDAY | TOMORROW | THIS_MONTH | LAST_MONTH | NEXT_MONTH
                | THIS_YEAR | LAST_YEAR | NEXT_YEAR | LAST_90_DAYS | NEXT_90_DAYS
                | (LAST|NEXT)_N_(DAYS|MONTHS|YEARS) ':' integer
    order      := operand [ASC | DESC] [NULLS (FIRST | LAST)]

Semantics follow the stored forms of `values.py`. Values reach SQLite only as bound
parameters; the only names in the SQL are table and column names taken from the catalog
after a field resolved, plus generated aliases (t0, t1, ...).

- Conditions are two-valued, as in SOQL: a comparison with a null value is false, so
  `!= 'x'`, `NOT IN (...)` and `NOT (...)` keep the records whose field is null.
  Booleans are never null in Salesforce: `= null` means `= false`.
- Text comparisons ignore case (`= 'acme'` finds "Acme"), as do LIKE and ORDER BY on
  text. SQLite's NOCASE and LIKE fold ASCII letters only, so "é" and "É" differ here.
- A date value filters date fields only and a dateTime value dateTime fields only
  (Salesforce documents this and rejects the other mix); relative date literals work on
  both: on a dateTime field TODAY is the whole UTC day. Date literals are evaluated in
  UTC (the org's user is on GMT) against `now`.
- Ids compare in their 18-character form, so a 15-character id finds its record.
- Deleted records (IsDeleted = 1) are left out unless include_deleted (queryAll); the
  same goes for deleted parents behind a relationship path, children of a subquery and
  the records a semi-join's sub-select reads.
- Aggregate queries (an aggregate function, GROUP BY or HAVING) give AggregateResult rows
  (`CompiledQuery.outputs` names their keys: the alias, else expr0, expr1... for
  aggregates in order, else the grouped field's name). A plain field must be grouped.
- A parent-to-child subquery names a child relationship of the object's describe
  (`childRelationships`); it is compiled on its own and run once per parent record.
- A semi-join / anti-join becomes SQL `IN (SELECT ...)` with Salesforce's documented
  restrictions: an Id or reference field on both sides, referencing the same object; at
  most two; not under OR or NOT; not nested; no ORDER BY / LIMIT inside.
"""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterator, NamedTuple

from . import ids, values
from .catalog import Catalog, Field, SObject
from .store import Store, quote_name, table_name

FETCH_CHUNK = 5000
MAX_OFFSET = 2000  # Salesforce's limit on OFFSET
MAX_LENGTH = 100_000  # Salesforce's limit on the length of a SOQL statement
# Parentheses nested deeper than this in WHERE are refused (ours: Salesforce's depth limit
# is not recorded). SQLite's parser overflows at about 25 levels of the SQL they become,
# and a deep enough nesting would exhaust Python's recursion first.
MAX_NESTING = 20
MAX_SEMI_JOINS = 2  # "Maximum 2 semi join sub-selects are allowed" (Salesforce)
# AND/OR chains are written in groups of at most this many terms: SQLite refuses
# expressions more than 1000 deep, and a flat chain is as deep as it is long.
_CHAIN = 32
# What SQLite says when a statement is beyond its limits rather than wrong.
_SQLITE_LIMITS = ("parser stack overflow", "Expression tree is too large",
                  "too many SQL variables")

_INVALID_FIELD_HINT = ("If you are attempting to use a custom field, be sure to append the "
                       "'__c' after the custom field name. Please reference your WSDL or the "
                       "describe call for the appropriate names.")
_INVALID_RELATIONSHIP_HINT = ("If you are attempting to use a custom relationship, be sure to "
                              "append the '__r' after the custom relationship name. Please "
                              "reference your WSDL or the describe call for the appropriate "
                              "names.")
_INVALID_TYPE_HINT = ("If you are attempting to use a custom object, be sure to append the "
                      "'__c' after the entity name. Please reference your WSDL or the "
                      "describe call for the appropriate names.")


class SoqlError(Exception):
    """A query Salesforce would refuse: `code` is its errorCode, `message` its message."""

    def __init__(self, code: str, message: str):
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _located(text: str, pos: int, detail: str) -> str:
    """Salesforce's positioned message: the query line, a caret, then Row/Column."""
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start:len(text) if end < 0 else end].rstrip("\r")
    row = text.count("\n", 0, pos) + 1
    column = pos - start + 1
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{detail}"


# -- tokens -------------------------------------------------------------------------

NAME, STRING, NUMBER, DATE, DATETIME, OP, EOF = (
    "name", "string", "number", "date", "datetime", "op", "eof")


class Token(NamedTuple):
    kind: str
    text: str   # as written in the query
    pos: int    # offset in the query text
    value: Any = None


@dataclass(frozen=True)
class Text:
    """A string literal: its value, and the same text as a LIKE pattern (ESCAPE '\\')."""

    value: str
    pattern: str
    like_only_escape: int | None  # offset of a \\% or \\_, which only LIKE allows


_SPACE = " \t\r\n\f"
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:?\d{2})")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TAIL_RE = re.compile(r"[A-Za-z0-9:.+-]*")  # the rest of a malformed date(time)
_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)")
_OPERATORS = ("<=", ">=", "!=", "<>", "=", "<", ">", "(", ")", ",", ".", ":")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f",
            '"': '"', "'": "'", "\\": "\\"}


class _Lexer:
    """Produces one token at a time, so errors surface in the order of the text."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.last_end = 0  # where the previous token ended: the position of <EOF>

    def error(self, pos: int, detail: str) -> SoqlError:
        return SoqlError("MALFORMED_QUERY", _located(self.text, pos, detail))

    def next(self) -> Token:
        text, i = self.text, self.pos
        while i < len(text) and text[i] in _SPACE:
            i += 1
        if i == len(text):
            self.pos = i
            return Token(EOF, "<EOF>", self.last_end)
        ch = text[i]
        nxt = text[i + 1:i + 2]
        if ch == "'":
            token = self._string(i)
        elif "0" <= ch <= "9" or (ch in "-." and "0" <= nxt <= "9"):
            token = self._number_or_date(i)
        elif match := _NAME_RE.match(text, i):
            token = Token(NAME, match.group(), i)
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                row = text.count("\n", 0, i) + 1
                col = i - (text.rfind("\n", 0, i) + 1)
                raise self.error(i, f"line {row}:{col} no viable alternative at character "
                                    f"'{ch}'")
            token = Token(OP, op, i)
        self.pos = self.last_end = token.pos + len(token.text)
        return token

    def _string(self, start: int) -> Token:
        text = self.text
        value: list[str] = []
        pattern: list[str] = []
        like_only = None
        i = start + 1
        while i < len(text):
            ch = text[i]
            if ch == "'":
                return Token(STRING, text[start:i + 1], start,
                             Text("".join(value), "".join(pattern), like_only))
            if ch != "\\":
                value.append(ch)
                pattern.append(ch)  # an unescaped % or _ is a LIKE wildcard
                i += 1
                continue
            code = text[i + 1:i + 2]
            hex4 = text[i + 2:i + 6]
            if code and code.lower() in _ESCAPES:  # \N, \R, ... mean \n, \r, ... too
                char = _ESCAPES[code.lower()]
                i += 2
            elif code in ("%", "_"):
                char = code
                if like_only is None:
                    like_only = i
                i += 2
            elif code == "u" and len(hex4) == 4 and all(c in "0123456789abcdefABCDEF"
                                                        for c in hex4):
                char = chr(int(hex4, 16))
                i += 6
            else:
                # Salesforce: "If you use a backslash character in any other context, an
                # error occurs" (the wording of the message is ours).
                seq = text[i:i + 2]
                raise self.error(i, f"Invalid string literal '{text[start + 1:i + 2]}'. Illegal "
                                    f"character sequence '{seq}' in string literal.")
            value.append(char)
            pattern.append("\\" + char if char in "%_\\" else char)
        # An unterminated literal: the lone quote is what cannot be read.
        raise self.error(start, "unexpected token: '''")

    def _number_or_date(self, start: int) -> Token:
        text = self.text
        if match := _DATETIME_RE.match(text, start):
            raw = match.group()
            parsed = values.parse_datetime(raw.upper())
            if parsed is None:
                raise self.error(start, f"Invalid datetime: {raw}")
            return Token(DATETIME, raw, start, values.format_datetime(parsed))
        if match := _DATE_RE.match(text, start):
            raw = match.group() + _DATE_TAIL_RE.match(text, match.end()).group()
            if raw != match.group():
                raise self.error(start, f"Invalid datetime: {raw}")
            try:
                return Token(DATE, raw, start, date.fromisoformat(raw).isoformat())
            except ValueError:
                raise self.error(start, f"Invalid date: {raw}") from None
        raw = _NUMBER_RE.match(text, start).group()
        # Longer digit strings are beyond SQLite's integers anyway (and int() refuses more
        # than 4300 digits); float() takes any length.
        number = float(raw) if "." in raw or len(raw) > 20 else int(raw)
        if isinstance(number, int) and not -2**63 <= number < 2**63:
            number = float(raw)  # beyond SQLite's integers; compares as a REAL
        return Token(NUMBER, raw, start, number)


# -- syntax tree --------------------------------------------------------------------


@dataclass(frozen=True)
class FieldPath:
    names: tuple[str, ...]  # as written
    pos: int


@dataclass(frozen=True)
class Value:
    kind: str  # string, number, date, datetime, null, boolean, dateliteral
    value: Any
    pos: int
    text: str


@dataclass(frozen=True)
class Aggregate:
    """An aggregate function call, `SUM(Amount)`; COUNT() alone is a Select without items."""

    function: str  # one of AGGREGATE_FUNCTIONS, upper case
    path: FieldPath
    pos: int


@dataclass(frozen=True)
class Condition:
    path: FieldPath | Aggregate  # an Aggregate only in HAVING
    op: str  # = != < <= > >= LIKE IN NOT IN
    values: tuple[Value, ...]


@dataclass(frozen=True)
class SemiJoin:
    """`path [NOT] IN (SELECT field FROM Object ...)`: a semi-join, or an anti-join."""

    path: FieldPath
    negated: bool
    select: "Select"
    pos: int  # of the inner SELECT


@dataclass(frozen=True)
class Logic:
    op: str  # AND, OR
    parts: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    part: Any


@dataclass(frozen=True)
class OrderItem:
    path: FieldPath | Aggregate
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class SelectItem:
    expr: Any  # FieldPath, Aggregate, or Select (a parent-to-child subquery)
    alias: str | None = None
    alias_pos: int = 0


@dataclass(frozen=True)
class Select:
    items: tuple[SelectItem, ...] | None  # None: COUNT()
    object_name: str
    object_pos: int
    where: Any
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None
    group_by: tuple[FieldPath, ...] = ()
    having: Any = None
    pos: int = 0  # of SELECT

    @property
    def is_aggregate(self) -> bool:
        return bool(self.group_by) or self.having is not None or any(
            isinstance(item.expr, Aggregate) for item in self.items or ())


AGGREGATE_FUNCTIONS = ("COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX")


# Salesforce's reserved keywords: never a field or object name.
_RESERVED = frozenset({
    "AND", "ASC", "DESC", "EXCLUDES", "FIRST", "FROM", "GROUP", "HAVING", "IN", "INCLUDES",
    "LAST", "LIKE", "LIMIT", "NOT", "NULL", "NULLS", "OR", "SELECT", "WHERE", "WITH"})
_COMPARISONS = {"=": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _months(first: date, k: int) -> date:
    """The first day of the month k months after the month starting on `first`."""
    year, month = divmod(first.year * 12 + first.month - 1 + k, 12)
    return date(year, month + 1, 1)


_DAY = timedelta(days=1)
# Each relative date literal is a range [start, end) of days around today.
_DATE_LITERALS: dict[str, Callable[[date, int], tuple[date, date]]] = {
    "YESTERDAY": lambda t, n: (t - _DAY, t),
    "TODAY": lambda t, n: (t, t + _DAY),
    "TOMORROW": lambda t, n: (t + _DAY, t + 2 * _DAY),
    # LAST_N_DAYS includes today: LAST_N_DAYS:1 is yesterday and today.
    "LAST_N_DAYS": lambda t, n: (t - n * _DAY, t + _DAY),
    "NEXT_N_DAYS": lambda t, n: (t + _DAY, t + (n + 1) * _DAY),
    "LAST_90_DAYS": lambda t, n: (t - 90 * _DAY, t + _DAY),
    "NEXT_90_DAYS": lambda t, n: (t + _DAY, t + 91 * _DAY),
    "THIS_MONTH": lambda t, n: (t.replace(day=1), _months(t.replace(day=1), 1)),
    "LAST_MONTH": lambda t, n: (_months(t.replace(day=1), -1), t.replace(day=1)),
    "NEXT_MONTH": lambda t, n: (_months(t.replace(day=1), 1), _months(t.replace(day=1), 2)),
    "LAST_N_MONTHS": lambda t, n: (_months(t.replace(day=1), -n), t.replace(day=1)),
    "NEXT_N_MONTHS": lambda t, n: (_months(t.replace(day=1), 1),
                                   _months(t.replace(day=1), n + 1)),
    "THIS_YEAR": lambda t, n: (date(t.year, 1, 1), date(t.year + 1, 1, 1)),
    "LAST_YEAR": lambda t, n: (date(t.year - 1, 1, 1), date(t.year, 1, 1)),
    "NEXT_YEAR": lambda t, n: (date(t.year + 1, 1, 1), date(t.year + 2, 1, 1)),
    "LAST_N_YEARS": lambda t, n: (date(t.year - n, 1, 1), date(t.year, 1, 1)),
    "NEXT_N_YEARS": lambda t, n: (date(t.year + 1, 1, 1), date(t.year + 1 + n, 1, 1)),
}
_TAKES_N = frozenset(k for k in _DATE_LITERALS if "_N_" in k)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.lexer = _Lexer(text)
        self.tok = self.lexer.next()
        self.nesting = 0
        self.last_pos = 0

    def advance(self) -> Token:
        tok = self.tok
        self.tok = self.lexer.next()
        return tok

    def unexpected(self) -> SoqlError:
        return SoqlError("MALFORMED_QUERY",
                         _located(self.text, self.tok.pos, f"unexpected token: '{self.tok.text}'"))

    def at_word(self, *words: str) -> bool:
        return self.tok.kind == NAME and self.tok.text.upper() in words

    def at_op(self, op: str) -> bool:
        return self.tok.kind == OP and self.tok.text == op

    def expect_word(self, word: str) -> None:
        if not self.at_word(word):
            raise self.unexpected()
        self.advance()

    def expect_op(self, op: str) -> None:
        if not self.at_op(op):
            raise self.unexpected()
        self.advance()

    def name(self) -> Token:
        if self.tok.kind != NAME or self.tok.text.upper() in _RESERVED:
            raise self.unexpected()
        return self.advance()

    def integer(self) -> int:
        # SOQL's integers (LIMIT, OFFSET, the n of LAST_N_DAYS:n) are 32-bit.
        if self.tok.kind != NUMBER or not self.tok.text.isdigit() or self.tok.value >= 2**31:
            raise self.unexpected()
        return self.advance().value

    # -- clauses --------------------------------------------------------------------

    def query(self) -> Select:
        if self.tok.kind == EOF:
            raise SoqlError("MALFORMED_QUERY", "SOQL statements cannot be empty or null")
        if not self.at_word("SELECT"):
            # Salesforce answers a query that does not start with SELECT without a position.
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {self.tok.text}")
        select = self.select()
        if self.tok.kind != EOF:
            raise self.unexpected()
        return select

    def select(self) -> Select:
        """SELECT ... up to the end of the statement or the ')' closing a subquery."""
        start = self.tok.pos
        self.expect_word("SELECT")
        items = self.selection()
        self.expect_word("FROM")
        obj = self.name()
        where = having = None
        if self.at_word("WHERE"):
            self.advance()
            where = self.logical()
        group: list[FieldPath] = []
        if self.at_word("GROUP"):
            self.advance()
            self.expect_word("BY")
            group.append(self.path())
            while self.at_op(","):
                self.advance()
                group.append(self.path())
        if self.at_word("HAVING"):
            self.advance()
            having = self.logical()
        order: list[OrderItem] = []
        if self.at_word("ORDER"):
            self.advance()
            self.expect_word("BY")
            order.append(self.order_item())
            while self.at_op(","):
                self.advance()
                order.append(self.order_item())
        limit = offset = None
        if self.at_word("LIMIT"):
            self.advance()
            limit = self.integer()
        if self.at_word("OFFSET"):
            self.advance()
            offset = self.integer()
        return Select(items, obj.text, obj.pos, where, tuple(order), limit, offset,
                      tuple(group), having, start)

    def selection(self) -> tuple[SelectItem, ...] | None:
        first = self.select_item()
        if first is None:
            return None  # COUNT(): alone in the list, so FROM must follow
        items = [first]
        while self.at_op(","):
            self.advance()
            item = self.select_item()
            if item is None:  # COUNT() among other items
                raise SoqlError("MALFORMED_QUERY", _located(  # the wording is ours
                    self.text, self.last_pos, "COUNT() must be the only element in the "
                    "SELECT list."))
            items.append(item)
        return tuple(items)

    def select_item(self) -> SelectItem | None:
        """A field, an aggregate call or a subquery, with an optional alias; None for COUNT()."""
        if self.at_op("("):
            self.advance()
            if not self.at_word("SELECT"):
                raise self.unexpected()
            sub = self.select()
            self.expect_op(")")
            return SelectItem(sub)
        self.last_pos = self.tok.pos
        expr = self.field_or_aggregate(count_all=True)
        if expr is None:
            return None
        if self.tok.kind == NAME and self.tok.text.upper() not in _RESERVED \
                and self._alias_ends_item():
            alias = self.advance()
            return SelectItem(expr, alias.text, alias.pos)
        return SelectItem(expr)

    def _alias_ends_item(self) -> bool:
        """Whether the name at hand is an alias: followed by ',' or FROM. Otherwise it is
        left for FROM to refuse, so `SELECT Name FRM Account` points at FRM."""
        saved = (self.lexer.pos, self.lexer.last_end)
        try:
            after = self.lexer.next()
        except SoqlError:
            return False
        finally:
            self.lexer.pos, self.lexer.last_end = saved
        return (after.kind == OP and after.text == ",") or (
            after.kind == NAME and after.text.upper() == "FROM")

    def field_or_aggregate(self, count_all: bool = False) -> FieldPath | Aggregate | None:
        path = self.path()
        function = path.names[0].upper()
        if len(path.names) != 1 or function not in AGGREGATE_FUNCTIONS or not self.at_op("("):
            return path
        self.advance()
        if count_all and function == "COUNT" and self.at_op(")"):
            self.advance()
            return None
        arg = self.path()
        self.expect_op(")")
        return Aggregate(function, arg, path.pos)

    def path(self) -> FieldPath:
        first = self.name()
        names = [first.text]
        while self.at_op("."):
            self.advance()
            names.append(self.name().text)
        return FieldPath(tuple(names), first.pos)

    def order_item(self) -> OrderItem:
        path = self.field_or_aggregate()
        descending = False
        if self.at_word("ASC", "DESC"):
            descending = self.advance().text.upper() == "DESC"
        nulls_first = not descending  # Salesforce's default
        if self.at_word("NULLS"):
            self.advance()
            if not self.at_word("FIRST", "LAST"):
                raise self.unexpected()
            nulls_first = self.advance().text.upper() == "FIRST"
        return OrderItem(path, descending, nulls_first)

    # -- WHERE ----------------------------------------------------------------------

    def logical(self) -> Any:
        if self.at_word("NOT"):
            self.advance()
            return Not(self.conditional())
        first = self.conditional()
        if not self.at_word("AND", "OR"):
            return first
        joiner = self.tok.text.upper()
        parts = [first]
        while self.at_word(joiner):  # the other joiner at this level is a syntax error
            self.advance()
            parts.append(self.conditional())
        return Logic(joiner, tuple(parts))

    def conditional(self) -> Any:
        if self.at_op("("):
            if self.nesting == MAX_NESTING:
                raise SoqlError("MALFORMED_QUERY", _located(
                    self.text, self.tok.pos, f"Conditions nested more than {MAX_NESTING} "
                    "levels deep are not supported"))
            self.nesting += 1
            self.advance()
            inner = self.logical()
            self.expect_op(")")
            self.nesting -= 1
            return inner
        path = self.field_or_aggregate()
        tok = self.tok
        if tok.kind == OP and tok.text in _COMPARISONS:
            self.advance()
            return Condition(path, _COMPARISONS[tok.text], (self.value(),))
        if self.at_word("LIKE"):
            self.advance()
            if self.tok.kind != STRING:
                raise self.unexpected()
            return Condition(path, "LIKE", (self.value(),))
        op = "IN"
        if self.at_word("NOT"):
            self.advance()
            if not self.at_word("IN"):
                raise self.unexpected()
            op = "NOT IN"
        elif not self.at_word("IN"):
            raise self.unexpected()
        self.advance()
        self.expect_op("(")
        if self.at_word("SELECT"):
            pos = self.tok.pos
            sub = self.select()
            self.expect_op(")")
            if isinstance(path, Aggregate):
                raise SoqlError("MALFORMED_QUERY", _located(
                    self.text, path.pos, "semi join sub-selects compare a field, not an "
                    "aggregate function"))
            return SemiJoin(path, op == "NOT IN", sub, pos)
        items = [self.value()]
        while self.at_op(","):
            self.advance()
            items.append(self.value())
        self.expect_op(")")
        return Condition(path, op, tuple(items))

    def value(self) -> Value:
        tok = self.tok
        if tok.kind in (STRING, NUMBER, DATE, DATETIME):
            self.advance()
            return Value(tok.kind, tok.value, tok.pos, tok.text)
        word = tok.text.upper() if tok.kind == NAME else ""
        if word == "NULL":
            self.advance()
            return Value("null", None, tok.pos, tok.text)
        if word in ("TRUE", "FALSE"):
            self.advance()
            return Value("boolean", word == "TRUE", tok.pos, tok.text)
        if word in _DATE_LITERALS:
            self.advance()
            n = 0
            end = tok.pos + len(tok.text)
            if word in _TAKES_N:
                self.expect_op(":")
                end = self.tok.pos + len(self.tok.text)
                n = self.integer()
            return Value("dateliteral", (word, n), tok.pos, self.text[tok.pos:end])
        raise self.unexpected()


def parse(text: str) -> Select:
    """The syntax tree of a query (raises SoqlError MALFORMED_QUERY)."""
    if len(text) > MAX_LENGTH:
        # The documented limit; the wording follows the message of its old 20,000 value.
        raise SoqlError("MALFORMED_QUERY",
                        f"SOQL statements cannot be longer than {MAX_LENGTH} characters")
    return _Parser(text).query()


# -- compiling ----------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One selected field: `path` as Salesforce names it (the schema's case)."""

    path: str
    field: Field
    relationships: tuple[str, ...]
    objects: tuple[str, ...]


@dataclass
class CompiledQuery:
    object: SObject
    columns: list[Column]
    count_only: bool
    sql: str
    params: list
    limit: int | None
    offset: int
    # Rows end with one Id per entry: () for the queried record, then the lower-cased
    # relationship path of each joined parent, e.g. ("account",), ("account", "owner").
    id_paths: list[tuple[str, ...]] = field(default_factory=list)
    # An aggregate query's output names (alias or exprN, or the grouped field's name) and
    # the fields that type its values; None for other queries.
    outputs: list[Output] | None = None
    # Parent-to-child subqueries: (relationship name, the child query, run per parent id).
    children: list[tuple[str, CompiledQuery]] = field(default_factory=list)
    per_parent: bool = False  # a child query: its first parameter is the parent's id

    @property
    def aggregate(self) -> bool:
        return self.outputs is not None


class Output(NamedTuple):
    name: str
    field: Field


_RESULT_INT = Field({"name": "expr", "type": "int"})
_RESULT_DOUBLE = Field({"name": "expr", "type": "double"})


_NUMBER_TYPES = {"int", "long", "double", "currency", "percent"}


def _kind(f: Field) -> str:
    """How a field's stored values compare."""
    if f.type in ("id", "reference"):
        return "id"
    if f.type == "boolean":
        return "boolean"
    if f.type in _NUMBER_TYPES:
        return "number"
    if f.type in ("date", "datetime", "time"):
        return f.type
    return "string"


def _compound_sql(obj: SObject, f: Field, alias: str) -> str:
    """A compound field as the JSON object REST returns (`{"city": ..., "street": ...}`),
    built from its components (keys from SObject.components); null when every component
    is null."""
    pairs, cols = [], []
    for key, part in obj.components(f):
        col = f"{alias}.{quote_name(part.name)}"
        cols.append(col)
        pairs.append(f"'{key}', {col}")
    if not cols:
        return "NULL"
    nulls = " AND ".join(f"{c} IS NULL" for c in cols)
    return f"CASE WHEN {nulls} THEN NULL ELSE json_object({', '.join(pairs)}) END"


class _Compiler:
    """Compiles one SELECT. A semi-join's sub-select gets a compiler of its own whose table
    aliases start with another letter (s0, s1, ...), so the SQL nested in the outer query
    never mistakes one table for another."""

    def __init__(self, text: str, catalog: Catalog, obj: SObject, include_deleted: bool,
                 today: date, prefix: str = "t"):
        self.text = text
        self.catalog = catalog
        self.obj = obj
        self.include_deleted = include_deleted
        self.today = today
        self.prefix = prefix
        self.base = f"{prefix}0"
        self.joins: dict[tuple[str, ...], str] = {(): self.base}
        self.join_sql: list[str] = []
        self.params: list[Any] = []
        self.aggregates_allowed = False  # in HAVING and ORDER BY of an aggregate query
        self.semi_joins = 0

    def error(self, code: str, pos: int, detail: str) -> SoqlError:
        return SoqlError(code, _located(self.text, pos, detail))

    # -- field paths ----------------------------------------------------------------

    def resolve(self, path: FieldPath) -> tuple[Column, str]:
        """The column a path names and its SQL expression (LEFT JOINs added as needed)."""
        obj = self.obj
        names = path.names
        # Salesforce accepts fields prefixed with the queried object's name (Contact.Name).
        if len(names) > 1 and obj.relationship(names[0]) is None \
                and names[0].lower() == obj.name.lower():
            names = names[1:]
        key: tuple[str, ...] = ()
        alias = self.base
        relationships: list[str] = []
        objects = [obj.name]
        for rel in names[:-1]:
            lookup = obj.relationship(rel)
            # A polymorphic lookup (several referenceTo) follows the first of its types
            # that the catalog knows: the local org has no TYPEOF.
            parent = next((p for p in map(self.catalog.get, lookup.reference_to) if p),
                          None) if lookup else None
            if parent is None:
                raise self.error("INVALID_FIELD", path.pos,
                                 f"Didn't understand relationship '{rel}' in field path. "
                                 + _INVALID_RELATIONSHIP_HINT)
            relationships.append(lookup.describe["relationshipName"])
            key += (relationships[-1].lower(),)
            alias = self._join(key, alias, lookup, parent)
            obj = parent
            objects.append(obj.name)
        f = obj.field(names[-1])
        if f is None:
            raise self.error("INVALID_FIELD", path.pos,
                             f"No such column '{names[-1]}' on entity '{obj.name}'. "
                             + _INVALID_FIELD_HINT)
        column = Column(".".join([*relationships, f.name]), f, tuple(relationships),
                        tuple(objects))
        if f.is_compound:
            return column, _compound_sql(obj, f, alias)
        return column, f"{alias}.{quote_name(f.name)}"

    def _join(self, key: tuple[str, ...], child: str, lookup: Field, parent: SObject) -> str:
        if key not in self.joins:
            alias = f"{self.prefix}{len(self.joins)}"
            self.joins[key] = alias
            visible = "" if self.include_deleted else f" AND {alias}.IsDeleted = 0"
            self.join_sql.append(f" LEFT JOIN {table_name(parent)} AS {alias} ON {alias}.Id = "
                                 f"{child}.{quote_name(lookup.name)}{visible}")
        return self.joins[key]

    # -- WHERE ----------------------------------------------------------------------

    def where(self, node: Any) -> str:
        """SQL that is true exactly when the SOQL condition holds (null counts as false)."""
        if isinstance(node, Logic):
            if node.op == "OR" and (semi := _first_semi_join(node)) is not None:
                # Salesforce's message, recorded from real orgs.
                raise self.error("MALFORMED_QUERY", semi.pos, "Semi join sub-selects are not "
                                 "allowed with the 'OR' operator")
            return _chain(node.op, [self.where(p) for p in node.parts])
        if isinstance(node, Not):
            if (semi := _first_semi_join(node)) is not None:
                # Salesforce documents that NOT can't be used with semi-joins (use NOT IN);
                # the wording of its message is ours.
                raise self.error("MALFORMED_QUERY", semi.pos, "The NOT operator cannot be "
                                 "used with semi join sub-selects: write NOT IN instead")
            return _negate(self.where(node.part))
        if isinstance(node, SemiJoin):
            return self.semi_join(node)
        return self.condition(node)

    def operand_of(self, path: FieldPath | Aggregate) -> tuple[Field, str]:
        """The field (for typing values) and SQL of a condition's or ORDER BY's left side."""
        if isinstance(path, Aggregate):
            if not self.aggregates_allowed:
                # The wording is ours: Salesforce's message is not recorded.
                raise self.error("MALFORMED_QUERY", path.pos, "Aggregate functions are only "
                                 "allowed in the SELECT list, HAVING and ORDER BY of an "
                                 "aggregate query")
            return self.aggregate(path)
        column, expr = self.resolve(path)
        return column.field, expr

    def condition(self, cond: Condition) -> str:
        f, expr = self.operand_of(cond.path)
        if f.is_compound:
            # Salesforce filters compound fields only inside DISTANCE(), which the local
            # org does not implement; the wording of its refusal here is ours.
            raise self.error("INVALID_FIELD", cond.path.pos,
                             f"field '{f.name}' is a compound field: filter on its "
                             "components instead")
        if not f.describe.get("filterable", True):
            raise self.error("INVALID_FIELD", cond.path.pos,
                             f"field '{f.name}' can not be filtered in a query call")
        kind = _kind(f)
        if cond.op == "LIKE":
            value = cond.values[0]
            if kind == "id":
                raise self.error("INVALID_QUERY_FILTER_OPERATOR", cond.path.pos,
                                 "invalid operator on id field")
            if kind != "string":
                raise self._type_error(f, value)
            self.params.append(value.value.pattern)
            return f"{expr} LIKE ? ESCAPE '\\'"
        operands = [self.operand(f, kind, v) for v in cond.values]
        collate = " COLLATE NOCASE" if kind == "string" else ""
        if cond.op in ("IN", "NOT IN"):
            equal = [o[1] for o in operands if o[0] == "eq"]
            parts = []
            if equal:
                self.params.extend(equal)
                parts.append(f"{expr}{collate} IN ({','.join('?' * len(equal))})")
            parts += [self.compare(expr, "=", o, collate) for o in operands if o[0] != "eq"]
            sql = parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
            return _negate(sql) if cond.op == "NOT IN" else sql
        if cond.op == "!=":
            return _negate(self.compare(expr, "=", operands[0], collate))
        return self.compare(expr, cond.op, operands[0], collate)

    def compare(self, expr: str, op: str, operand: tuple, collate: str) -> str:
        tag = operand[0]
        if tag == "null":
            return f"{expr} IS NULL" if op == "=" else "0"  # ordering against null: false
        if tag == "false":  # a boolean that is false or null
            return f"IFNULL({expr}, 0) = 0" if op == "=" else \
                self.compare(expr, op, ("eq", 0), "")
        if tag == "eq":
            self.params.append(operand[1])
            return f"{expr}{collate} {op} ?"
        start, end = operand[1], operand[2]  # a date literal's range [start, end)
        if op == "=":
            self.params += [start, end]
            return f"({expr} >= ? AND {expr} < ?)"
        bound, sql_op = {"<": (start, "<"), "<=": (end, "<"),
                         ">": (end, ">="), ">=": (start, ">=")}[op]
        self.params.append(bound)
        return f"{expr} {sql_op} ?"

    def operand(self, f: Field, kind: str, v: Value) -> tuple:
        """A literal checked against the field's type, in the field's stored form."""
        if v.kind == "null":
            return ("false",) if kind == "boolean" else ("null",)
        if kind == "string" and v.kind == "string":
            if v.value.like_only_escape is not None:
                pos = v.value.like_only_escape
                raise self.error("MALFORMED_QUERY", pos,
                                 f"Invalid string literal '{v.text[1:-1]}'. Illegal character "
                                 f"sequence '{self.text[pos:pos + 2]}' in string literal.")
            return ("eq", v.value.value)
        if kind == "id" and v.kind == "string":
            normal = ids.normalize(v.value.value)
            if normal is None:
                raise self.error("INVALID_QUERY_FILTER_OPERATOR", v.pos,
                                 f"invalid ID field: {v.value.value}")
            return ("eq", normal)
        if kind == "boolean" and v.kind == "boolean":
            return ("eq", 1) if v.value else ("false",)
        if kind == "number" and v.kind == "number":
            return ("eq", v.value)
        if kind in ("date", "datetime") and v.kind == kind:
            return ("eq", v.value)
        if kind in ("date", "datetime") and v.kind == "dateliteral":
            name, n = v.value
            try:
                start, end = _DATE_LITERALS[name](self.today, n)
            except (OverflowError, ValueError):  # a range beyond year 1 or 9999
                raise self.error("MALFORMED_QUERY", v.pos,
                                 f"unexpected token: '{v.text}'") from None
            if kind == "date":
                return ("range", start.isoformat(), end.isoformat())
            return ("range", f"{start.isoformat()}T00:00:00.000Z",
                    f"{end.isoformat()}T00:00:00.000Z")
        raise self._type_error(f, v)

    def _type_error(self, f: Field, v: Value) -> SoqlError:
        type_name = (f.describe.get("soapType") or f.type).rpartition(":")[2]
        quoted = "should be enclosed in quotes" if _kind(f) in ("string", "id") \
            else "should not be enclosed in quotes"
        return self.error("INVALID_FIELD", v.pos, f"value of filter criterion for field "
                                                  f"'{f.name}' must be of type {type_name} "
                                                  f"and {quoted}")

    # -- aggregates -----------------------------------------------------------------

    def aggregate(self, agg: Aggregate) -> tuple[Field, str]:
        """An aggregate call's SQL, and a field that types its value: COUNT an int, AVG a
        double, the others the argument's type (SUM of integers stays whole: UNCONFIRMED)."""
        column, expr = self.resolve(agg.path)
        f = column.field
        kind = _kind(f)
        function = agg.function
        allowed = {"COUNT": True, "COUNT_DISTINCT": kind != "boolean",
                   "SUM": kind == "number", "AVG": kind == "number",
                   "MIN": kind not in ("boolean", "id"), "MAX": kind not in ("boolean", "id")}
        if f.is_compound or not allowed[function] or not f.describe.get("aggregatable", True):
            # Salesforce's code and message (recorded: "field Id does not support aggregate
            # operator COUNT", MALFORMED_QUERY with the position).
            raise self.error("MALFORMED_QUERY", agg.pos,
                             f"field {f.name} does not support aggregate operator {function}")
        collate = " COLLATE NOCASE" if kind == "string" else ""
        if function == "COUNT":
            return _RESULT_INT, f"COUNT({expr})"
        if function == "COUNT_DISTINCT":
            return _RESULT_INT, f"COUNT(DISTINCT {expr}{collate})"
        if function == "AVG":
            return _RESULT_DOUBLE, f"AVG({expr})"
        if function == "SUM":
            return f, f"SUM({expr})"
        return f, f"{function}({expr}{collate})"

    # -- semi-joins and anti-joins -----------------------------------------------------

    def semi_join(self, semi: SemiJoin) -> str:
        """`field [NOT] IN (SELECT ...)` as SQL `IN (SELECT ...)`, with the restrictions
        Salesforce documents for semi-joins and anti-joins (the messages are Salesforce's
        where a real one was recorded, ours where marked)."""
        if self.prefix != "t":
            raise self.error("MALFORMED_QUERY", semi.pos,
                             "Nesting of semi join sub-selects is not supported")
        self.semi_joins += 1
        if self.semi_joins > MAX_SEMI_JOINS:
            raise self.error("MALFORMED_QUERY", semi.pos,
                             f"Maximum {MAX_SEMI_JOINS} semi join sub-selects are allowed")
        column, expr = self.resolve(semi.path)
        left = column.field
        if _kind(left) != "id":
            # Documented: the left operand is an Id or a reference field (wording ours).
            raise self.error("INVALID_FIELD", semi.path.pos,
                             f"semi join sub-selects can only be compared with an Id or "
                             f"reference field, not '{left.name}'")
        sub = semi.select
        if sub.items is None or sub.is_aggregate or len(sub.items) != 1 \
                or not isinstance(sub.items[0].expr, FieldPath) or sub.items[0].alias:
            raise self.error("MALFORMED_QUERY", semi.pos, "a semi join sub-select selects "
                             "exactly one Id or reference field")  # wording ours
        if sub.order_by or sub.limit is not None or sub.offset is not None:
            # Documented: no ORDER BY or LIMIT in a semi-join sub-select (wording ours).
            raise self.error("MALFORMED_QUERY", semi.pos, "ORDER BY, LIMIT and OFFSET are "
                             "not allowed in semi join sub-selects")
        obj = self.catalog.get(sub.object_name)
        if obj is None:
            raise self.error("INVALID_TYPE", sub.object_pos, f"sObject type "
                             f"'{sub.object_name}' is not supported. " + _INVALID_TYPE_HINT)
        inner = _Compiler(self.text, self.catalog, obj, self.include_deleted, self.today, "s")
        item = sub.items[0].expr
        sub_column, sub_expr = inner.resolve(item)
        right = sub_column.field
        if _kind(right) != "id" or sub_column.relationships:
            # Documented: the sub-select's field is an Id or a reference of the queried
            # object itself, not one reached through a relationship (wording ours).
            raise self.error("INVALID_FIELD", item.pos, "the field of a semi join sub-select "
                             f"must be an Id or reference field of {obj.name}, not "
                             f"'{sub_column.path}'")
        targets = _targets(left, column.objects[-1]) & _targets(right, obj.name)
        if not targets:
            raise self.error("INVALID_FIELD", item.pos,  # wording ours
                             f"'{sub_column.path}' and '{column.path}' do not reference the "
                             "same object")
        conditions = [] if self.include_deleted else [f"{inner.base}.IsDeleted = 0"]
        if sub.where is not None:
            conditions.append(inner.where(sub.where))
        sql = (f"SELECT {sub_expr} FROM {table_name(obj)} AS {inner.base}"
               + "".join(inner.join_sql))
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        self.params.extend(inner.params)
        membership = f"{expr} IN ({sql})"
        return _negate(membership) if semi.negated else membership

    # -- ORDER BY -------------------------------------------------------------------

    def order(self, item: OrderItem) -> str:
        f, expr = self.operand_of(item.path)
        if not f.describe.get("sortable", True):
            raise self.error("INVALID_FIELD", item.path.pos,
                             f"field '{f.name}' can not be sorted in a query call")
        collate = " COLLATE NOCASE" if _kind(f) == "string" else ""
        return (f"{expr}{collate} {'DESC' if item.descending else 'ASC'} "
                f"NULLS {'FIRST' if item.nulls_first else 'LAST'}")


def _chain(op: str, parts: list[str]) -> str:
    """`parts` joined by AND or OR, in nested groups of at most _CHAIN terms (the same
    truth values: both are associative, nulls included)."""
    while len(parts) > _CHAIN:
        parts = [_chain(op, parts[i:i + _CHAIN]) for i in range(0, len(parts), _CHAIN)]
    return "(" + f" {op} ".join(parts) + ")"


def _negate(sql: str) -> str:
    # The positive forms are true or false-or-null; IFNULL makes them two-valued first, so
    # NOT keeps the records a comparison with null left out.
    return f"NOT IFNULL({sql}, 0)"


def _first_semi_join(node: Any) -> SemiJoin | None:
    if isinstance(node, SemiJoin):
        return node
    if isinstance(node, Logic):
        return next((s for s in map(_first_semi_join, node.parts) if s is not None), None)
    if isinstance(node, Not):
        return _first_semi_join(node.part)
    return None


def _targets(f: Field, owner: str) -> set[str]:
    """The objects whose ids a field holds: its own object for Id, else its referenceTo."""
    return {owner.lower()} if f.type == "id" else {t.lower() for t in f.reference_to}


def compile_query(text: str, catalog: Catalog, *, include_deleted: bool = False,
                  now: datetime | None = None) -> CompiledQuery:
    """Parse a SOQL query and compile it to SQLite (raises SoqlError)."""
    if not text or not text.strip():
        raise SoqlError("MALFORMED_QUERY", "SOQL statements cannot be empty or null")
    tree = parse(text)
    obj = catalog.get(tree.object_name)
    if obj is None:
        raise SoqlError("INVALID_TYPE", _located(
            text, tree.object_pos,
            f"sObject type '{tree.object_name}' is not supported. " + _INVALID_TYPE_HINT))
    now = now or datetime.now(timezone.utc)
    today = (now if now.tzinfo else now.replace(tzinfo=timezone.utc)) \
        .astimezone(timezone.utc).date()
    return _compile(text, tree, catalog, obj, include_deleted, today, None)


def _compile(text: str, tree: Select, catalog: Catalog, obj: SObject, include_deleted: bool,
             today: date, link: Field | None) -> CompiledQuery:
    """One SELECT on `obj`; `link` is set for a parent-to-child subquery: the child's
    reference to its parent, compared with a parent id given when the query runs."""
    c = _Compiler(text, catalog, obj, include_deleted, today)
    aggregate = tree.is_aggregate
    c.aggregates_allowed = aggregate
    columns: list[Column] = []
    outputs: list[Output] = []
    children: list[tuple[str, CompiledQuery]] = []
    exprs: list[str] = []
    groups: list[tuple[Column, str]] = [_grouped(c, path) for path in tree.group_by]
    unnamed = 0
    for item in tree.items or ():
        if isinstance(item.expr, Select):
            if aggregate or link is not None:
                # Salesforce allows one level of parent-to-child subqueries in REST; the
                # wording of this refusal is ours.
                raise c.error("MALFORMED_QUERY", item.expr.pos, "a parent-to-child subquery "
                              "can not be used here" if aggregate else "parent-to-child "
                              "subqueries can not be nested in the local org")
            children.append(_child(text, item.expr, catalog, obj, include_deleted, today))
            continue
        if item.alias and not aggregate:
            # Salesforce's message for an alias in a query that aggregates nothing.
            raise c.error("MALFORMED_QUERY", item.alias_pos,
                          "Only aggregate expressions use field aliasing")
        if isinstance(item.expr, Aggregate):
            f, expr = c.aggregate(item.expr)
            name = item.alias
            if name is None:
                # Unaliased aggregates are named expr0, expr1, ... in their order.
                name, unnamed = f"expr{unnamed}", unnamed + 1
            outputs.append(Output(name, f))
            exprs.append(expr)
            continue
        column, expr = c.resolve(item.expr)
        if aggregate:
            if not any(g.path.lower() == column.path.lower() for g, _ in groups):
                # Salesforce's message for a plain field in an aggregate query.
                raise c.error("MALFORMED_QUERY", item.expr.pos,
                              f"Field must be grouped or aggregated: {column.field.name}")
            outputs.append(Output(item.alias or column.field.name, column.field))
        elif any(col.path.lower() == column.path.lower() for col in columns):
            raise SoqlError("INVALID_FIELD", f"duplicate field selected: {column.path}")
        columns.append(column)
        exprs.append(expr)
    names = [o.name.lower() for o in outputs]
    if len(set(names)) < len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise SoqlError("MALFORMED_QUERY", f"duplicate alias: {duplicate}")  # wording ours
    base = c.base
    conditions = [] if include_deleted else [f"{base}.IsDeleted = 0"]
    if link is not None:
        # The parent id is the first parameter (execute() puts it there): nothing before
        # this condition binds one.
        conditions.append(f"{base}.{quote_name(link.name)} = ?")
    if tree.where is not None:
        c.aggregates_allowed = False
        conditions.append(c.where(tree.where))
        c.aggregates_allowed = aggregate
    having = c.where(tree.having) if tree.having is not None else None
    order = [c.order(item) for item in tree.order_by]
    if tree.offset is not None and tree.offset > MAX_OFFSET:
        raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE",
                        f"Maximum SOQL offset allowed is {MAX_OFFSET}")

    # After the selected columns, the Id of the base record and of every joined parent:
    # REST needs them for `attributes.url` and to tell a missing parent from null fields.
    # An aggregate row has no record behind it.
    id_paths = [key for key in c.joins] if (exprs or children) and not aggregate else []
    exprs += [f"{c.joins[key]}.Id" for key in id_paths]
    sql = (f"SELECT {', '.join(exprs) if exprs else '1'} FROM {table_name(obj)} AS {base}"
           + "".join(c.join_sql))
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    if groups:
        sql += " GROUP BY " + ", ".join(expr for _, expr in groups)
    if having is not None:
        sql += " HAVING " + having
    if order:
        sql += " ORDER BY " + ", ".join(order)
    params = c.params
    if tree.limit is not None or tree.offset is not None:
        sql += " LIMIT ? OFFSET ?"
        params = [*params, -1 if tree.limit is None else tree.limit, tree.offset or 0]
    if tree.items is None:
        sql = f"SELECT COUNT(*) FROM ({sql})"
    return CompiledQuery(obj, columns, tree.items is None, sql, params, tree.limit,
                         tree.offset or 0, id_paths, outputs if aggregate else None, children,
                         link is not None)


def _grouped(c: _Compiler, path: FieldPath) -> tuple[Column, str]:
    column, expr = c.resolve(path)
    f = column.field
    if f.is_compound or not f.describe.get("groupable", True):
        # The form of Salesforce's "can not be filtered/sorted in a query call" messages.
        raise c.error("MALFORMED_QUERY", path.pos,
                      f"field '{f.name}' can not be grouped in a query call")
    return column, expr


def _child(text: str, sub: Select, catalog: Catalog, parent: SObject, include_deleted: bool,
           today: date) -> tuple[str, CompiledQuery]:
    """A parent-to-child subquery: FROM names a child relationship of the parent's describe
    (`childRelationships`), whose child object the catalog knows."""
    wanted = sub.object_name.lower()
    for rel in parent.describe.get("childRelationships") or ():
        name = rel.get("relationshipName")
        child = catalog.get(rel.get("childSObject") or "")
        link = child.field(rel.get("field") or "") if child else None
        if name and name.lower() == wanted and link is not None:
            if sub.items is None or sub.is_aggregate:
                raise SoqlError("MALFORMED_QUERY", _located(  # wording ours
                    text, sub.pos, "a parent-to-child subquery selects fields, not "
                    "aggregates or COUNT()"))
            return name, _compile(text, sub, catalog, child, include_deleted, today, link)
    # Salesforce's code and message for an unknown child relationship.
    raise SoqlError("INVALID_TYPE", _located(
        text, sub.object_pos, f"Didn't understand relationship '{sub.object_name}' in FROM "
        "part of query call. " + _INVALID_RELATIONSHIP_HINT))


def execute(store: Store, query: CompiledQuery, *, with_ids: bool = False,
            parent_id: str | None = None) -> Iterator[tuple]:
    """The rows of a compiled query, as tuples of stored values in column order (followed
    by the ids of `query.id_paths` when `with_ids`); for COUNT() one tuple `(n,)`.

    The store's lock is taken for each chunk, not for the whole result, so a long result
    streamed to a slow client does not stall the job worker. Rows written on the shared
    connection between two chunks may or may not be seen (SQLite leaves it undefined).
    """
    params = [parent_id, *query.params] if query.per_parent else query.params
    with store.lock:
        cursor = store.conn.execute(query.sql, params)
    try:
        while True:
            with store.lock:
                rows = cursor.fetchmany(FETCH_CHUNK)
            if not rows:
                return
            if with_ids or not query.id_paths:
                yield from rows
            else:
                width = len(query.columns)
                yield from (row[:width] for row in rows)
    finally:
        with store.lock:
            cursor.close()


def count(store: Store, query: CompiledQuery) -> int:
    """How many rows the query returns (LIMIT and OFFSET applied): Salesforce's totalSize."""
    with store.lock:
        return store.conn.execute(_count_sql(query), query.params).fetchone()[0]


def check(store: Store, query: CompiledQuery) -> None:
    """Raise QUERY_TOO_COMPLICATED if SQLite cannot compile the query: it limits how deep
    an expression nests and how many values a statement binds, and the parser's limits on
    SOQL do not rule out every query beyond them. Compiling runs nothing, so it is cheap.
    The count form checked is one level deeper than the query itself."""
    try:
        with store.lock:
            store.conn.execute("EXPLAIN QUERY PLAN " + _count_sql(query), query.params)
    except sqlite3.OperationalError as e:
        if any(limit in str(e) for limit in _SQLITE_LIMITS):
            # Salesforce's code and message for a query too complex to run.
            raise SoqlError("QUERY_TOO_COMPLICATED", "Query is either selecting too many "
                            "fields or the filter conditions are too complicated.") from None
        raise


def _count_sql(query: CompiledQuery) -> str:
    return query.sql if query.count_only else f"SELECT COUNT(*) FROM ({query.sql})"
