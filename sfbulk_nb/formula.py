"""A documented subset of Salesforce's formula language, for validation rules.

This is a language library, like the describe JSON: the local org evaluates rules with it
on writes, and the client (`validate_df(..., rules=True)`) evaluates the same rules before
sending. DESIGN.md's rule that the local org shares nothing with the client is about
client code (HTTP, encoding, results); a pure language module that both read is shared the
way the schema JSON is. Standard library only.

    formula = parse('AND(ISPICKVAL(Industry, "Banking"), ISBLANK(Phone))')
    formula.check(field_type)          # describe types; unknown fields are refused
    formula.evaluate(record, prior=..., is_new=...)

The subset: literals (numbers, "text" / 'text', TRUE, FALSE, NULL), fields and parent
fields through one relationship (`Account.Industry`), operators `+ - * / ^ &`,
`= == != <> < > <= >=`, `&& ||`, and the functions AND OR NOT IF CASE ISBLANK ISNULL LEN
BEGINS CONTAINS REGEX ISPICKVAL TEXT VALUE TODAY NOW ISNEW ISCHANGED PRIORVALUE. Anything
else raises `UnsupportedFormula` naming what is outside the subset: a rule using it is
skipped, never guessed at.

Semantics follow Salesforce Help ("Formula Operators and Functions", ISBLANK, ISNULL,
ISCHANGED, PRIORVALUE):
- text is never null: a blank text field is "" (ISNULL of text is always FALSE);
  text comparison and BEGINS / CONTAINS are case-sensitive;
- validation rules treat blank number, date and datetime fields as blanks (null), and
  null propagates through arithmetic; a comparison with a null is FALSE (Help, ISNULL:
  "OR(ISNULL(field__c), field__c<>1)" is the documented way to include blanks);
- percent fields are decimals in formulas (10% is 0.1);
- picklists are only usable in ISPICKVAL, TEXT, CASE, ISCHANGED and PRIORVALUE
  (Salesforce refuses `Industry = "x"`);
- CASE needs a default (an even argument count is a syntax error in Salesforce);
- REGEX matches the whole text (Java's String.matches);
- ISCHANGED is FALSE on a new record; PRIORVALUE on a new record returns the current
  value ("returns the value of the field referenced rather than null");
- names of functions and fields are case-insensitive.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any, Callable, Mapping

__all__ = ["FormulaError", "UnsupportedFormula", "Formula", "parse", "formula_type"]


class FormulaError(ValueError):
    """A formula that cannot be used: bad syntax, an unknown field, a type mismatch."""


class UnsupportedFormula(FormulaError):
    """A formula (maybe valid in Salesforce) outside the subset this module evaluates."""


# value types
TEXT, NUMBER, BOOL, DATE, DATETIME, PICKLIST, ANY = (
    "text", "number", "boolean", "date", "datetime", "picklist", "any")

_DESCRIBE_TYPES = {
    "int": NUMBER, "double": NUMBER, "currency": NUMBER, "percent": NUMBER, "long": NUMBER,
    "boolean": BOOL, "date": DATE, "datetime": DATETIME, "picklist": PICKLIST,
    "string": TEXT, "textarea": TEXT, "email": TEXT, "phone": TEXT, "url": TEXT,
    "id": TEXT, "reference": TEXT, "combobox": TEXT, "encryptedstring": TEXT,
}


def formula_type(describe_type: str) -> str | None:
    """The formula type of a describe field type; None for types outside the subset
    (multipicklist, time, address, location, base64...)."""
    return _DESCRIBE_TYPES.get(describe_type)


# -- tokens ---------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+|/\*.*?\*/)
  | (?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+))
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>[$A-Za-z_][A-Za-z0-9_]*(?:\.[$A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>==|!=|<>|<=|>=|&&|\|\||[-+*/^&=<>(),])
""", re.VERBOSE | re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\"}


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FormulaError(f"Syntax error at character {pos + 1}: {text[pos:pos + 10]!r}")
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group(), pos))
        pos = m.end()
    return out


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)


# -- AST ------------------------------------------------------------------------------

@dataclass
class Node:
    kind: str                 # lit, field, call, binop, neg
    value: Any = None         # literal value, field path (tuple), function or operator name
    args: list["Node"] = field(default_factory=list)
    type: str = ANY
    percent: bool = False     # a percent field: its value is a decimal in formulas


FUNCTIONS = {  # name: (min args, max args or None)
    "AND": (1, None), "OR": (1, None), "NOT": (1, 1), "IF": (3, 3), "CASE": (4, None),
    "ISBLANK": (1, 1), "ISNULL": (1, 1), "LEN": (1, 1), "BEGINS": (2, 2),
    "CONTAINS": (2, 2), "REGEX": (2, 2), "ISPICKVAL": (2, 2), "TEXT": (1, 1),
    "VALUE": (1, 1), "TODAY": (0, 0), "NOW": (0, 0), "ISNEW": (0, 0), "ISCHANGED": (1, 1),
    "PRIORVALUE": (1, 1),
}
# Lowest binding first. Salesforce's precedence: ^, then * /, then + - &, then
# comparisons, then && and || (Help, "Formula Operators": operators in order).
_LEVELS = [("||",), ("&&",), ("=", "==", "!=", "<>", "<", ">", "<=", ">="), ("+", "-", "&"),
           ("*", "/"), ("^",)]


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, op: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise FormulaError(f"Syntax error: the formula ends where {op or 'a value'!r} "
                               "was expected")
        if op is not None and tok[1] != op:
            raise FormulaError(f"Syntax error at character {tok[2] + 1}: expected {op!r}, "
                               f"found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr(0)
        tok = self.peek()
        if tok is not None:
            raise FormulaError(f"Syntax error at character {tok[2] + 1}: unexpected {tok[1]!r}")
        return node

    def expr(self, level: int) -> Node:
        if level == len(_LEVELS):
            return self.unary()
        node = self.expr(level + 1)
        while (tok := self.peek()) is not None and tok[0] == "op" and tok[1] in _LEVELS[level]:
            self.i += 1
            right = self.expr(level + 1)
            node = Node("binop", tok[1], [node, right])
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if tok is not None and tok[1] in ("-", "+"):
            self.i += 1
            operand = self.unary()
            return Node("neg", None, [operand]) if tok[1] == "-" else operand
        return self.atom()

    def atom(self) -> Node:
        kind, text, pos = self.take()
        if kind == "number":
            return Node("lit", Decimal(text), type=NUMBER)
        if kind == "string":
            return Node("lit", _unquote(text), type=TEXT)
        if text == "(":
            node = self.expr(0)
            self.take(")")
            return node
        if kind != "name":
            raise FormulaError(f"Syntax error at character {pos + 1}: unexpected {text!r}")
        upper = text.upper()
        nxt = self.peek()
        if nxt is not None and nxt[1] == "(":
            self.i += 1
            args: list[Node] = []
            if self.peek() is not None and self.peek()[1] == ")":
                self.i += 1
            else:
                while True:
                    args.append(self.expr(0))
                    if self.take()[1] == ")":
                        break
                    self.i -= 1
                    self.take(",")
            return self.call(upper, args, pos)
        if upper in ("TRUE", "FALSE"):
            return Node("lit", upper == "TRUE", type=BOOL)
        if upper == "NULL":
            return Node("lit", None, type=ANY)
        if text.startswith("$"):
            raise UnsupportedFormula(f"global variable {text.split('.')[0]} is not supported")
        path = tuple(text.split("."))
        if len(path) > 2:
            raise UnsupportedFormula(f"{text}: more than one relationship hop is not "
                                     "supported")
        return Node("field", path)

    def call(self, name: str, args: list[Node], pos: int) -> Node:
        if name not in FUNCTIONS:
            raise UnsupportedFormula(f"function {name}() is not supported")
        low, high = FUNCTIONS[name]
        if len(args) < low or (high is not None and len(args) > high):
            want = str(low) if low == high else f"at least {low}"
            raise FormulaError(f"Incorrect number of parameters for function '{name}()'. "
                               f"Expected {want}, received {len(args)}")
        if name == "CASE" and len(args) % 2:
            raise FormulaError("Incorrect number of parameters for function 'CASE()': "
                               "CASE needs pairs of value and result and a final default")
        if name in ("ISCHANGED", "PRIORVALUE") and args[0].kind != "field":
            raise FormulaError(f"{name}() takes a field")
        if name == "ISPICKVAL" and args[1].kind != "lit":
            raise FormulaError("ISPICKVAL() takes a text literal as its second parameter")
        return Node("call", name, args)


# -- type checking --------------------------------------------------------------------

FieldTypes = Callable[[tuple[str, ...]], "str | None"]
"""Given a field path (`("Industry",)` or `("Account", "Industry")`), its describe type, or
None when the object has no such field."""

_PICKLIST_OK = {"ISPICKVAL", "TEXT", "CASE", "ISCHANGED", "PRIORVALUE"}


def _check(node: Node, field_types: FieldTypes, parent: str | None) -> str:
    if node.kind == "lit":
        return node.type
    if node.kind == "field":
        describe_type = field_types(node.value)
        name = ".".join(node.value)
        if describe_type is None:
            raise FormulaError(f"Field {name} does not exist. Check spelling.")
        t = formula_type(describe_type)
        if t is None:
            raise UnsupportedFormula(f"field {name} of type {describe_type} is not supported")
        if t == PICKLIST and (parent or "").rstrip("()") not in _PICKLIST_OK:
            raise FormulaError(f"Field {name} is a picklist field. Picklist fields are only "
                               "supported in certain functions.")
        node.type = t
        node.percent = describe_type == "percent"
        return t
    if node.kind == "neg":
        _want(node.args[0], field_types, "-", NUMBER)
        node.type = NUMBER
        return NUMBER
    if node.kind == "binop":
        node.type = _check_binop(node, field_types)
        return node.type
    node.type = _check_call(node, field_types)
    return node.type


def _want(node: Node, field_types: FieldTypes, where: str, *types: str) -> str:
    t = _check(node, field_types, where)
    if t != ANY and t not in types:
        raise FormulaError(f"Incorrect parameter type for {where}. Expected "
                           f"{' or '.join(types)}, received {t}")
    return t


def _check_binop(node: Node, field_types: FieldTypes) -> str:
    op, (a, b) = node.value, node.args
    if op in ("&&", "||"):
        _want(a, field_types, op, BOOL)
        _want(b, field_types, op, BOOL)
        return BOOL
    ta, tb = _check(a, field_types, op), _check(b, field_types, op)
    if op == "&":
        for t in (ta, tb):
            if t not in (TEXT, ANY):
                raise FormulaError(f"Incorrect parameter type for operator '&'. Expected "
                                   f"text, received {t}")
        return TEXT
    if op in ("=", "==", "!=", "<>", "<", ">", "<=", ">="):
        if ANY not in (ta, tb) and ta != tb:
            raise FormulaError(f"Incorrect parameter type for operator '{op}'. Expected "
                               f"{ta}, received {tb}")
        if op in ("<", ">", "<=", ">=") and TEXT in (ta, tb):
            # UNCONFIRMED which releases order text; not evaluated rather than guessed.
            raise UnsupportedFormula(f"ordering text with '{op}' is not supported")
        if BOOL in (ta, tb) and op not in ("=", "==", "!=", "<>"):
            raise FormulaError(f"Incorrect parameter type for operator '{op}'")
        return BOOL
    if op == "+" and TEXT in (ta, tb) and {ta, tb} <= {TEXT, ANY}:
        return TEXT  # + joins texts too
    if op in ("+", "-") and ta in (DATE, DATETIME) and tb in (NUMBER, ANY):
        return ta
    if op == "+" and tb in (DATE, DATETIME) and ta == NUMBER:
        return tb
    if op == "-" and ta in (DATE, DATETIME) and tb == ta:
        return NUMBER
    for t in (ta, tb):
        if t not in (NUMBER, ANY):
            raise FormulaError(f"Incorrect parameter type for operator '{op}'. Expected "
                               f"number, received {t}")
    return NUMBER


def _check_call(node: Node, field_types: FieldTypes) -> str:
    name, args = node.value, node.args
    if name in ("AND", "OR", "NOT"):
        for a in args:
            _want(a, field_types, f"{name}()", BOOL)
        return BOOL
    if name == "IF":
        _want(args[0], field_types, "IF()", BOOL)
        return _same(name, [_check(a, field_types, name) for a in args[1:]])
    if name == "CASE":
        subject = _check(args[0], field_types, name)
        subject = TEXT if subject == PICKLIST else subject
        for value in args[1:-1:2]:
            t = _check(value, field_types, name)
            if ANY not in (t, subject) and t != subject:
                raise FormulaError(f"Incorrect parameter type for function 'CASE()'. "
                                   f"Expected {subject}, received {t}")
        return _same(name, [_check(a, field_types, name) for a in [*args[2:-1:2], args[-1]]])
    if name in ("ISBLANK", "ISNULL"):
        _check(args[0], field_types, name)
        return BOOL
    if name == "LEN":
        _want(args[0], field_types, "LEN()", TEXT)
        return NUMBER
    if name in ("BEGINS", "CONTAINS", "REGEX"):
        for a in args:
            _want(a, field_types, f"{name}()", TEXT)
        if name == "REGEX" and args[1].kind == "lit":
            try:
                re.compile(args[1].value)
            except re.error as e:
                raise FormulaError(f"REGEX(): invalid regular expression: {e}") from None
        return BOOL
    if name == "ISPICKVAL":
        _want(args[0], field_types, "ISPICKVAL()", PICKLIST)
        _want(args[1], field_types, "ISPICKVAL()", TEXT)
        return BOOL
    if name == "TEXT":
        t = _check(args[0], field_types, name)
        if t in (TEXT, BOOL):
            raise FormulaError(f"Incorrect parameter type for function 'TEXT()'. Expected "
                               f"number, date, date/time or picklist, received {t}")
        return TEXT
    if name == "VALUE":
        _want(args[0], field_types, "VALUE()", TEXT)
        return NUMBER
    if name == "TODAY":
        return DATE
    if name == "NOW":
        return DATETIME
    if name == "ISNEW":
        return BOOL
    target = args[0]
    if len(target.value) > 1:
        raise FormulaError(f"{name}() takes a field of the record, not "
                           f"{'.'.join(target.value)}")
    t = _check(target, field_types, name)
    return BOOL if name == "ISCHANGED" else t


def _same(name: str, types: list[str]) -> str:
    known = {t for t in types if t != ANY}
    if len(known) > 1:
        raise FormulaError(f"Incorrect parameter type for function '{name}()': its results "
                           f"must be of one type, received {', '.join(sorted(known))}")
    return known.pop() if known else ANY


# -- values ---------------------------------------------------------------------------

def _coerce(t: str, raw: Any) -> Any:
    """A field's value as the formula sees it, from what a store or a CSV cell holds."""
    if t in (TEXT, PICKLIST):
        return "" if raw is None else str(raw)
    if t == BOOL:
        if isinstance(raw, str):
            return raw.strip().lower() in ("true", "1", "yes")
        return bool(raw)
    if raw is None or raw == "":
        return None
    if t == NUMBER:
        if isinstance(raw, bool):
            return Decimal(int(raw))
        try:
            return Decimal(raw if isinstance(raw, (int, str)) else repr(raw))
        except InvalidOperation:
            return None
    if t == DATE:
        if isinstance(raw, datetime):
            return raw.date()
        return raw if isinstance(raw, date) else date.fromisoformat(str(raw)[:10])
    if t == DATETIME:
        if isinstance(raw, datetime):
            return raw if raw.tzinfo else raw.replace(tzinfo=timezone.utc)
        text = str(raw).replace("Z", "+00:00")
        dt = datetime.fromisoformat(text)
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    return raw


def _text_of(t: str, v: Any) -> str:
    if v is None:
        return ""
    if t == NUMBER:
        if v == v.to_integral_value():
            return str(v.quantize(Decimal(1)))
        return format(v.normalize(), "f")
    if t == DATETIME:
        # TEXT(datetime) gives GMT as "YYYY-MM-DD HH:MM:SSZ" (Help, TEXT).
        return v.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    if t == DATE:
        return v.isoformat()
    return str(v)


@dataclass
class _Context:
    record: Mapping[str, Any]
    prior: Mapping[str, Any] | None
    parents: Mapping[str, Mapping[str, Any]]
    is_new: bool
    now: datetime


def _lower_keys(m: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if m is None else {str(k).lower(): v for k, v in m.items()}


# -- the formula ----------------------------------------------------------------------

class Formula:
    """A parsed formula. `check(field_types)` binds it to an object's fields (required
    before `evaluate`)."""

    def __init__(self, text: str, root: Node):
        self.text = text
        self.root = root
        self.checked = False
        self.fields: set[tuple[str, ...]] = set()
        self.functions: set[str] = set()
        self._walk(root)

    def _walk(self, node: Node) -> None:
        if node.kind == "field":
            self.fields.add(node.value)
        if node.kind == "call":
            self.functions.add(node.value)
        for a in node.args:
            self._walk(a)

    @property
    def parent_fields(self) -> set[tuple[str, ...]]:
        return {f for f in self.fields if len(f) > 1}

    @property
    def needs_prior(self) -> bool:
        """Whether an update needs the record's current values (ISCHANGED, PRIORVALUE)."""
        return bool(self.functions & {"ISCHANGED", "PRIORVALUE"})

    def check(self, field_types: FieldTypes) -> "Formula":
        t = _check(self.root, field_types, None)
        if t not in (BOOL, ANY):
            raise FormulaError(f"Formula result is data type ({t}), incompatible with "
                               "expected data type (true/false).")
        self.checked = True
        return self

    def evaluate(self, record: Mapping[str, Any], *, prior: Mapping[str, Any] | None = None,
                 parents: Mapping[str, Mapping[str, Any]] | None = None,
                 is_new: bool = False, now: datetime | None = None) -> bool:
        """Whether the error condition holds for `record` (field name -> value, names in
        any case). `prior` is the stored record an update changes (None on insert);
        `parents` maps a relationship name to the parent record's fields."""
        if not self.checked:
            raise FormulaError("check() the formula against the object's fields first")
        ctx = _Context(_lower_keys(record), _lower_keys(prior),
                       {k.lower(): _lower_keys(v) for k, v in (parents or {}).items()},
                       is_new, now or datetime.now(timezone.utc))
        return bool(_eval(self.root, ctx))

    def __repr__(self) -> str:
        return f"Formula({self.text!r})"


def parse(text: str) -> Formula:
    """Parse a formula; raises FormulaError (syntax) or UnsupportedFormula (outside the
    subset)."""
    if not text or not text.strip():
        raise FormulaError("The formula is empty")
    return Formula(text, _Parser(text).parse())


def _field(node: Node, ctx: _Context, source: Mapping[str, Any] | None = None) -> Any:
    path = node.value
    if len(path) == 1:
        raw = (ctx.record if source is None else source).get(path[0].lower())
    else:
        parent = ctx.parents.get(path[0].lower()) or {}
        raw = parent.get(path[1].lower())
    value = _coerce(node.type, raw)
    return value / 100 if node.percent and value is not None else value


def _eval(node: Node, ctx: _Context) -> Any:
    kind = node.kind
    if kind == "lit":
        return node.value
    if kind == "field":
        return _field(node, ctx)
    if kind == "neg":
        v = _eval(node.args[0], ctx)
        return None if v is None else -v
    if kind == "binop":
        return _binop(node, ctx)
    return _CALLS[node.value](node, ctx)


def _compare(op: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if op in ("=", "=="):
        return a == b
    if op in ("!=", "<>"):
        return a != b
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


def _binop(node: Node, ctx: _Context) -> Any:
    op, (an, bn) = node.value, node.args
    if op == "&&":
        return bool(_eval(an, ctx)) and bool(_eval(bn, ctx))
    if op == "||":
        return bool(_eval(an, ctx)) or bool(_eval(bn, ctx))
    a, b = _eval(an, ctx), _eval(bn, ctx)
    if node.type == BOOL:
        if an.type in (TEXT, PICKLIST) or bn.type in (TEXT, PICKLIST):
            a, b = ("" if a is None else a), ("" if b is None else b)
        return _compare(op, a, b)
    if node.type == TEXT:
        return ("" if a is None else a) + ("" if b is None else b)
    if a is None or b is None:
        return None
    if node.type in (DATE, DATETIME):
        days = b if isinstance(b, Decimal) else a
        base = a if not isinstance(a, Decimal) else b
        delta = timedelta(days=float(days))
        if node.type == DATE:
            delta = timedelta(days=int(days))
        return base + delta if op == "+" else base - delta
    if isinstance(a, (date, datetime)):
        diff = a - b
        return Decimal(diff.days) if not isinstance(a, datetime) else (
            Decimal(repr(diff.total_seconds())) / Decimal(86400))
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        return a ** b
    except (DivisionByZero, InvalidOperation, ZeroDivisionError, OverflowError):
        # UNCONFIRMED: Salesforce shows #Error! for a division by zero; here the result
        # is blank, so comparisons with it are FALSE and the rule does not fire.
        return None


def _blank(node: Node, v: Any) -> bool:
    return v is None or (node.type in (TEXT, PICKLIST) and v == "")


def _case(node: Node, ctx: _Context) -> Any:
    subject = _eval(node.args[0], ctx)
    pairs = node.args[1:-1]
    for i in range(0, len(pairs), 2):
        if subject is not None and _eval(pairs[i], ctx) == subject:
            return _eval(pairs[i + 1], ctx)
    return _eval(node.args[-1], ctx)


def _text(node: Node, ctx: _Context) -> str:
    return _text_of(node.args[0].type, _eval(node.args[0], ctx))


def _value(node: Node, ctx: _Context) -> Decimal | None:
    text = _eval(node.args[0], ctx).strip()
    try:
        return Decimal(text) if text else None
    except InvalidOperation:
        return None  # UNCONFIRMED: Salesforce gives #Error! for VALUE("abc"); blank here


def _regex(node: Node, ctx: _Context) -> bool:
    text, pattern = (_eval(a, ctx) for a in node.args)
    return re.fullmatch(pattern, text or "") is not None


def _ischanged(node: Node, ctx: _Context) -> bool:
    if ctx.is_new or ctx.prior is None:
        return False
    target = node.args[0]
    return _field(target, ctx) != _field(target, ctx, ctx.prior)


def _priorvalue(node: Node, ctx: _Context) -> Any:
    target = node.args[0]
    if ctx.is_new or ctx.prior is None:
        return _field(target, ctx)
    return _field(target, ctx, ctx.prior)


_CALLS: dict[str, Callable[[Node, _Context], Any]] = {
    "AND": lambda n, c: all(_eval(a, c) for a in n.args),
    "OR": lambda n, c: any(_eval(a, c) for a in n.args),
    "NOT": lambda n, c: not _eval(n.args[0], c),
    "IF": lambda n, c: _eval(n.args[1] if _eval(n.args[0], c) else n.args[2], c),
    "CASE": _case,
    "ISBLANK": lambda n, c: _blank(n.args[0], _eval(n.args[0], c)),
    # Text is never null (Help, ISNULL): only numbers, dates and datetimes can be.
    "ISNULL": lambda n, c: (n.args[0].type not in (TEXT, PICKLIST)
                            and _eval(n.args[0], c) is None),
    "LEN": lambda n, c: Decimal(len(_eval(n.args[0], c) or "")),
    "BEGINS": lambda n, c: (_eval(n.args[0], c) or "").startswith(_eval(n.args[1], c) or ""),
    "CONTAINS": lambda n, c: (_eval(n.args[1], c) or "") in (_eval(n.args[0], c) or ""),
    "REGEX": _regex,
    "ISPICKVAL": lambda n, c: _eval(n.args[0], c) == _eval(n.args[1], c),
    "TEXT": _text,
    "VALUE": _value,
    "TODAY": lambda n, c: c.now.astimezone(timezone.utc).date(),
    "NOW": lambda n, c: c.now,
    "ISNEW": lambda n, c: c.is_new,
    "ISCHANGED": _ischanged,
    "PRIORVALUE": _priorvalue,
}
