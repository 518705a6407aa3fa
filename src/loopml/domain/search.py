"""The run search language: a small, strict parser producing a typed expression tree.

    metrics.rmse < 0.3 and params.model = 'gbr' and tags.team = 'x'
    (metrics.r2 >= 0.8 or tags.stage in ('a', 'b')) and status = 'finished'

Keys are ``metrics.K``, ``params.K``, ``tags.K`` or a run attribute (``status``, ``name``,
``run_id``, ``parent_id``, ``start_time``, ``end_time``); keys with unusual characters go in
backquotes: ``metrics.`val/rmse```. ``and`` binds tighter than ``or``. Params and tags are
text and take ``= != like ilike in``; metrics and times are numbers and take
``= != < <= > >=``. Every error names the position and what was expected there.
Storage adapters compile the tree; nothing here knows SQL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from loopml.domain.errors import InvalidInput

Kind = Literal["metric", "param", "tag", "attr"]
Scalar = float | str
Value = Scalar | tuple[Scalar, ...]

TEXT_OPS = ("=", "!=", "like", "ilike", "in", "not in")
NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=")
ATTRIBUTES: dict[str, str] = {  # attribute -> "text" | "number"
    "status": "text",
    "name": "text",
    "run_id": "text",
    "parent_id": "text",
    "start_time": "number",
    "end_time": "number",
}
_PREFIXES: dict[str, Kind] = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attr",
    "attribute": "attr",
    "attr": "attr",
}
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<op><=|>=|!=|==|=|<|>)
    | (?P<punct>[(),])
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:`[^`]+`|[A-Za-z0-9_][A-Za-z0-9_.:/@-]*))?)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Comparison:
    kind: Kind
    key: str
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


Expr = Comparison | And | Or


@dataclass(frozen=True, slots=True)
class OrderKey:
    kind: Kind
    key: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise InvalidInput(
                f"search filter {text!r}: unexpected character {text[pos:].lstrip()[:1]!r} "
                f"at position {pos}"
            )
        kind = m.lastgroup or ""
        tokens.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def fail(self, expected: str) -> InvalidInput:
        if self.i < len(self.tokens):
            tok = self.tokens[self.i]
            seen = f"{tok.text!r} at position {tok.pos}"
        else:
            seen = "the end of the filter"
        return InvalidInput(
            f"search filter {self.text!r}: expected {expected}, found {seen}. "
            "Example: metrics.rmse < 0.3 and params.model = 'gbr'"
        )

    def peek_word(self) -> str | None:
        if self.i < len(self.tokens) and self.tokens[self.i].kind == "ident":
            return self.tokens[self.i].text.lower()
        return None

    def take(self, kind: str, text: str | None = None) -> _Tok | None:
        if self.i < len(self.tokens):
            tok = self.tokens[self.i]
            if tok.kind == kind and (text is None or tok.text.lower() == text):
                self.i += 1
                return tok
        return None

    def parse(self) -> Expr:
        expr = self.or_expr()
        if self.i != len(self.tokens):
            raise self.fail("'and', 'or' or the end of the filter")
        return expr

    def or_expr(self) -> Expr:
        items = [self.and_expr()]
        while self.take("ident", "or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Expr:
        items = [self.atom()]
        while self.take("ident", "and"):
            items.append(self.atom())
        return items[0] if len(items) == 1 else And(tuple(items))

    def atom(self) -> Expr:
        if self.take("punct", "("):
            expr = self.or_expr()
            if not self.take("punct", ")"):
                raise self.fail("')'")
            return expr
        return self.comparison()

    def comparison(self) -> Comparison:
        tok = self.take("ident")
        if tok is None or tok.text.lower() in ("and", "or", "in", "not", "like", "ilike"):
            raise self.fail("a key such as metrics.rmse, params.model, tags.team or status")
        kind, key = parse_key(tok.text, self.text)
        op = self.operator()
        numeric = kind == "metric" or (kind == "attr" and ATTRIBUTES[key] == "number")
        allowed = NUMBER_OPS if numeric else TEXT_OPS
        if op not in allowed:
            what = "numbers" if numeric else "text"
            hint = (
                ""
                if numeric
                else (
                    " Params and tags are stored as text; log a number you want to range over "
                    "as a metric."
                )
            )
            raise InvalidInput(
                f"search filter {self.text!r}: operator {op!r} does not apply to {tok.text} "
                f"({what}); expected one of {', '.join(allowed)}.{hint}"
            )
        value: Value = self.value_list() if op in ("in", "not in") else self.scalar()
        for v in value if isinstance(value, tuple) else (value,):
            if numeric != isinstance(v, float):
                expected = "a number" if numeric else "a quoted string"
                raise InvalidInput(
                    f"search filter {self.text!r}: {tok.text} compares with {expected}, got {v!r}"
                )
        return Comparison(kind, key, op, value)

    def operator(self) -> str:
        tok = self.take("op")
        if tok:
            return "=" if tok.text == "==" else tok.text
        word = self.peek_word()
        if word in ("like", "ilike", "in"):
            self.i += 1
            return word
        if (
            word == "not"
            and self.i + 1 < len(self.tokens)
            and self.tokens[self.i + 1].text.lower() == "in"
        ):
            self.i += 2
            return "not in"
        raise self.fail("an operator (=, !=, <, <=, >, >=, like, ilike, in, not in)")

    def scalar(self) -> Scalar:
        tok = self.take("num")
        if tok:
            return float(tok.text)
        tok = self.take("str")
        if tok:
            return re.sub(r"\\(.)", r"\1", tok.text[1:-1])
        raise self.fail("a number or a quoted string")

    def value_list(self) -> tuple[Scalar, ...]:
        if not self.take("punct", "("):
            raise self.fail("'(' to open a list of values")
        items = [self.scalar()]
        while self.take("punct", ","):
            items.append(self.scalar())
        if not self.take("punct", ")"):
            raise self.fail("',' or ')'")
        return tuple(items)


def parse_key(text: str, context: str) -> tuple[Kind, str]:
    """Split ``metrics.rmse`` into ``("metric", "rmse")``; bare names are attributes."""
    prefix, dot, rest = text.partition(".")
    if not dot:
        prefix, rest = "attributes", text
    kind = _PREFIXES.get(prefix.lower())
    if kind is None:
        raise InvalidInput(
            f"search {context!r}: unknown key prefix {prefix!r} in {text!r}; expected "
            "metrics., params., tags. or attributes."
        )
    key = rest[1:-1] if rest.startswith("`") and rest.endswith("`") else rest
    if kind == "attr":
        key = key.lower()
        if key not in ATTRIBUTES:
            raise InvalidInput(
                f"search {context!r}: unknown run attribute {key!r}; expected one of "
                f"{', '.join(ATTRIBUTES)}"
            )
    return kind, key


def parse_filter(text: str | None) -> Expr | None:
    """Parse a filter string; ``None`` or blank means no filter."""
    if text is None or not text.strip():
        return None
    return _Parser(text).parse()


def order_items(order_by: str | Sequence[str] | None) -> list[str]:
    """The items of an order_by given as a list, or as one comma-separated string."""
    if order_by is None:
        return []
    return order_by.split(",") if isinstance(order_by, str) else list(order_by)


def parse_order_by(order_by: str | Sequence[str] | None) -> tuple[OrderKey, ...]:
    """Parse ``["metrics.rmse asc", "start_time desc"]`` (or one comma-separated string)."""
    keys = []
    for raw in order_items(order_by):
        words = raw.split()
        if not words or len(words) > 2:
            raise InvalidInput(
                f"order_by item {raw!r} must be 'KEY' or 'KEY asc|desc', e.g. 'metrics.rmse asc'"
            )
        descending = False
        if len(words) == 2:
            direction = words[1].lower()
            if direction not in ("asc", "desc"):
                raise InvalidInput(
                    f"order_by item {raw!r}: direction {words[1]!r} must be asc or desc"
                )
            descending = direction == "desc"
        kind, key = parse_key(words[0], raw)
        keys.append(OrderKey(kind, key, descending))
    return tuple(keys)
