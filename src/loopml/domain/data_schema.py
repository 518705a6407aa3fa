"""Data schemas and the findings of validating data against them (the *data linter*).

A :class:`DataSchema` is what a dataset is expected to look like: one :class:`ColumnRule` per
column (type family, missing values, range, allowed categories, the environments the column
belongs to), an optional label column and an optional unique key. ``loopml.stats`` infers a
schema from a table and validates batches against it; the result is a
:class:`ValidationReport` of :class:`Finding` values, each saying which column, what was
expected, what was seen and what to do.

Environments say which columns a batch must carry where: the label is needed to train but
is absent when a model is served. A rule lists the environments of its column; the label,
when its rule lists none, belongs to every environment except ``"serving"``.

The file format is TOML, read with :mod:`tomllib` and written by a small emitter for this
fixed shape, with comments so a person can edit it: see :func:`schema_to_toml` and
:func:`schema_from_toml`. Reading it back gives an equal schema (the round trip is exact).
Standard library only, no I/O: the caller reads and writes the text.

One module past the usual 400 lines, on purpose: the rules, the file that stores them and
the findings that cite them change together, and the file reader reuses the rules' own
checks rather than repeating them.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, NoReturn

from loopml.domain.errors import InvalidInput

FORMAT_VERSION = 1
TRAINING = "training"
SERVING = "serving"
DEFAULT_ENVIRONMENTS = (TRAINING, SERVING)
# The command hints point at; the CLI that implements it lives outside the domain.
INFER_COMMAND = "loopml data schema NAME@VERSION"

Bound = int | float | date | datetime
Scalar = str | int | float | bool | None


class TypeFamily(StrEnum):
    """What kind of values a column holds, independent of the storage width (int8 or int64)."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    CATEGORY = "category"  # text restricted to a known set of values
    DATE = "date"
    DATETIME = "datetime"
    OTHER = "other"  # lists, structs, binary, times: checked for presence and nulls only


_FAMILIES = frozenset(f.value for f in TypeFamily)
RANGED = frozenset({TypeFamily.INT, TypeFamily.FLOAT, TypeFamily.DATE, TypeFamily.DATETIME})
_BOUND_EXAMPLES = {
    TypeFamily.INT: "a whole number such as 0",
    TypeFamily.FLOAT: "a number such as 0.5",
    TypeFamily.DATE: "a date such as 2024-01-31",
    TypeFamily.DATETIME: "a date and time such as 2024-01-31T08:00:00",
}


@dataclass(frozen=True, slots=True)
class ColumnRule:
    """What one column must look like.

    Args:
        name: the column name, exactly as in the data.
        family: the kind of values (a :class:`TypeFamily` or its text, e.g. ``"int"``).
        nullable: when false, any missing value (null, or NaN in a float column) is an error.
        max_null_fraction: when set, a batch whose share of missing values exceeds it gets a
            warning; only for nullable columns.
        minimum, maximum: the allowed range, inclusive, with any tolerance already applied;
            ``None`` is no bound. Only for int, float, date and datetime columns; datetime
            bounds with a time zone are kept in UTC.
        categories: the allowed values of a ``category`` column (required there, refused
            elsewhere).
        environments: the environments this column must be present in; it must be absent in
            the others. ``None`` means every environment (see :meth:`DataSchema.expects`).
    """

    name: str
    family: TypeFamily
    nullable: bool = True
    max_null_fraction: float | None = None
    minimum: Bound | None = None
    maximum: Bound | None = None
    categories: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInput(
                f"a column name must be a non-empty string, got {self.name!r}; use the column "
                "name exactly as it appears in the data"
            )
        where = f"column {self.name!r}"
        object.__setattr__(self, "family", _family(self.family, where))
        if not isinstance(self.nullable, bool):
            raise InvalidInput(f"{where}: nullable must be true or false, got {self.nullable!r}")
        object.__setattr__(self, "max_null_fraction", self._checked_fraction(where))
        low = _bound(self.family, self.minimum, "min", where)
        high = _bound(self.family, self.maximum, "max", where)
        if low is not None and high is not None and _greater(low, high, where):
            raise InvalidInput(
                f"{where}: min {_show(low)} is greater than max {_show(high)}; expected "
                "min <= max. Swap them, or remove one to leave that side unbounded"
            )
        object.__setattr__(self, "minimum", low)
        object.__setattr__(self, "maximum", high)
        object.__setattr__(self, "categories", self._checked_categories(where))
        if self.environments is not None:
            object.__setattr__(
                self, "environments", _names(self.environments, "environments", where)
            )

    def _checked_fraction(self, where: str) -> float | None:
        value = self.max_null_fraction
        if value is None:
            return None
        if not self.nullable:
            raise InvalidInput(
                f"{where}: max_null_fraction is set ({value!r}) but nullable is false; remove "
                "max_null_fraction, or set nullable = true to allow missing values"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(
                f"{where}: max_null_fraction must be a number from 0 to 1, got "
                f"{type(value).__name__} {value!r}"
            )
        if not 0.0 <= value <= 1.0:  # also refuses NaN
            raise InvalidInput(
                f"{where}: max_null_fraction is {value!r}; expected a share from 0 to 1 "
                "(0.05 allows 5% missing values)"
            )
        return float(value)

    def _checked_categories(self, where: str) -> tuple[str, ...] | None:
        values: object = self.categories  # callers without type checking may pass anything
        if self.family is not TypeFamily.CATEGORY:
            if values is not None:
                raise InvalidInput(
                    f"{where}: categories are only allowed for type 'category', but the type "
                    f"is {self.family.value!r}; set type = 'category' or remove categories"
                )
            return None
        if values is None or isinstance(values, str) or not isinstance(values, Sequence):
            raise InvalidInput(
                f"{where}: type 'category' needs categories, a list of allowed values, got "
                f"{values!r}; e.g. categories = ['red', 'green'], or use type 'string'"
            )
        bad = [v for v in values if not isinstance(v, str)]
        if bad:
            raise InvalidInput(
                f"{where}: categories must be text, got {bad[0]!r}; quote every value "
                "(e.g. '1' rather than 1)"
            )
        if not values:
            raise InvalidInput(
                f"{where}: categories is empty, so no value could pass; list the allowed "
                "values, or use type 'string' for free text"
            )
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise InvalidInput(f"{where}: categories repeat {repeated!r}; list each value once")
        return tuple(values)


@dataclass(frozen=True, slots=True)
class DataSchema:
    """The expected shape of a dataset: column rules, label, key and environments.

    Args:
        columns: one rule per expected column, in order.
        label: the column a model learns to predict, or ``None``.
        key: columns whose values together identify a row; duplicates are errors. Empty
            means no key.
        environments: the environments data is validated in.
        format_version: the version of the file format this schema follows.
    """

    columns: tuple[ColumnRule, ...]
    label: str | None = None
    key: tuple[str, ...] = ()
    environments: tuple[str, ...] = DEFAULT_ENVIRONMENTS
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.format_version, bool) or not isinstance(self.format_version, int):
            raise InvalidInput(
                f"format_version must be an integer, got {self.format_version!r}; "
                f"this loopml writes format_version = {FORMAT_VERSION}"
            )
        if self.format_version > FORMAT_VERSION:
            raise InvalidInput(
                f"format_version {self.format_version} is newer than this loopml understands "
                f"({FORMAT_VERSION}); upgrade loopml to read this schema"
            )
        if self.format_version < 1:
            raise InvalidInput(
                f"format_version {self.format_version} is not valid; expected {FORMAT_VERSION}"
            )
        columns = tuple(self.columns)
        if not columns or not all(isinstance(c, ColumnRule) for c in columns):
            raise InvalidInput(
                "a schema needs at least one column rule (ColumnRule values); infer one "
                f"from data with `{INFER_COMMAND}`"
            )
        object.__setattr__(self, "columns", columns)
        names = [c.name for c in columns]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InvalidInput(f"columns repeat the names {repeated!r}; keep one rule per column")
        envs = _names(self.environments, "environments", "the schema")
        object.__setattr__(self, "environments", envs)
        for rule in columns:
            unknown = [e for e in rule.environments or () if e not in envs]
            if unknown:
                raise InvalidInput(
                    f"column {rule.name!r}: environments {unknown!r} are not among the "
                    f"schema's environments {list(envs)!r}; add them to the schema's "
                    "environments or fix the spelling"
                )
        self._check_label(names)
        self._check_key(names)

    def _check_label(self, names: list[str]) -> None:
        if self.label is None:
            return
        if not isinstance(self.label, str) or self.label not in names:
            raise InvalidInput(
                f"label {self.label!r} is not one of the columns {_preview(names)}; add a "
                "rule for it or fix the name"
            )

    def _check_key(self, names: list[str]) -> None:
        key: object = self.key  # callers without type checking may pass anything
        if isinstance(key, str) or not isinstance(key, Sequence):
            raise InvalidInput(
                f"key must be a list of column names, got {key!r}; e.g. key = ['id']"
            )
        key = tuple(key)
        object.__setattr__(self, "key", key)
        for name in key:
            rule = self.find_column(name) if isinstance(name, str) else None
            if rule is None:
                raise InvalidInput(
                    f"key column {name!r} is not one of the columns {_preview(names)}; add a "
                    "rule for it or fix the name"
                )
            if rule.family is TypeFamily.OTHER:
                raise InvalidInput(
                    f"key column {name!r} has type 'other', whose values cannot be compared; "
                    "choose key columns of type int, string, category, date or datetime"
                )
        if len(set(key)) != len(key):
            raise InvalidInput(f"key {list(key)!r} repeats a column; list each column once")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def find_column(self, name: str) -> ColumnRule | None:
        """The rule of column ``name``, or ``None`` when the schema has none."""
        return next((c for c in self.columns if c.name == name), None)

    def check_environment(self, environment: str) -> str:
        """Return ``environment`` if the schema knows it, else raise :class:`InvalidInput`."""
        if environment not in self.environments:
            raise InvalidInput(
                f"environment {environment!r} is not one of the schema's environments "
                f"{list(self.environments)!r}; use one of them or add it to the schema"
            )
        return environment

    def expects(self, rule: ColumnRule, environment: str) -> bool:
        """Whether ``rule``'s column must be present in ``environment`` (else absent).

        A rule's own ``environments`` decide. Without them a column belongs everywhere,
        except the label, which is absent when serving: a served request has no answer yet.
        """
        if rule.environments is not None:
            return environment in rule.environments
        return not (rule.name == self.label and environment == SERVING)


class Severity(StrEnum):
    """How much a finding matters: an error fails validation, the others inform."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for the most severe; findings sort by it."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


class Check(StrEnum):
    """The name of the check that produced a finding; stable, for filtering and reports."""

    EMPTY_DATA = "empty_data"
    MISSING_COLUMN = "missing_column"
    EXTRA_COLUMN = "extra_column"
    LABEL_MISSING = "label_missing"
    LABEL_PRESENT = "label_present"
    COLUMN_NOT_IN_ENVIRONMENT = "column_not_in_environment"
    TYPE_MISMATCH = "type_mismatch"
    TYPE_CHANGED = "type_changed"
    NULLS_NOT_ALLOWED = "nulls_not_allowed"
    NULL_FRACTION = "null_fraction"
    OUT_OF_RANGE = "out_of_range"
    UNSEEN_CATEGORY = "unseen_category"
    DUPLICATE_KEY = "duplicate_key"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing validation noticed.

    ``expected`` and ``seen`` are short phrases for people; ``count`` (offending rows or
    values), ``examples`` (a few offending values) and ``details`` (named figures such as
    ``min_seen``) carry the same facts for programs. ``hint`` says what to do next.
    """

    severity: Severity
    check: Check
    column: str | None
    expected: str
    seen: str
    hint: str
    count: int = 0
    examples: tuple[Scalar, ...] = ()
    details: tuple[tuple[str, Scalar], ...] = ()

    @property
    def message(self) -> str:
        """One line: where, expected, seen, what to do."""
        where = f"column {self.column!r}" if self.column is not None else "data"
        hint = self.hint[:1].upper() + self.hint[1:]
        return f"{where}: expected {self.expected}; seen {self.seen}. {hint}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.value,
            "check": self.check.value,
            "column": self.column,
            "expected": self.expected,
            "seen": self.seen,
            "hint": self.hint,
            "count": self.count,
            "examples": [_json_scalar(v) for v in self.examples],
            "details": {k: _json_scalar(v) for k, v in self.details},
        }


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The findings of validating some data against a schema in one environment."""

    findings: tuple[Finding, ...]
    rows: int
    environment: str
    columns: tuple[str, ...] = ()
    batches: int = 0

    @property
    def ok(self) -> bool:
        """True when no finding is an error (warnings and infos do not fail validation)."""
        return not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (non-finite floats become text such as ``"inf"``)."""
        return {
            "ok": self.ok,
            "environment": self.environment,
            "rows": self.rows,
            "batches": self.batches,
            "columns": list(self.columns),
            "counts": {s.value: self.count(s) for s in Severity},
            "findings": [f.to_dict() for f in self.findings],
        }


def _json_scalar(value: Scalar) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf": strict JSON has no such numbers
    return value


# --- checks shared by the constructors and the file reader ---------------------------------


def _family(value: object, where: str) -> TypeFamily:
    if isinstance(value, str) and value in _FAMILIES:
        return TypeFamily(value)
    choices = ", ".join(f.value for f in TypeFamily)
    raise InvalidInput(f"{where}: type {value!r} is not known; expected one of {choices}")


def _bound(family: TypeFamily, value: object, key: str, where: str) -> Bound | None:
    if value is None:
        return None
    if family not in RANGED:
        raise InvalidInput(
            f"{where}: {key} is set ({value!r}) but type {family.value!r} has no range; "
            f"remove {key}, or use a type among int, float, date, datetime"
        )
    wrong = f"{where}: {key} must be {_BOUND_EXAMPLES[family]} for type {family.value!r}"
    if family is TypeFamily.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{wrong}, got {type(value).__name__} {value!r}")
        return value
    if family is TypeFamily.FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"{wrong}, got {type(value).__name__} {value!r}")
        if math.isnan(value):
            raise InvalidInput(f"{wrong}, got nan; remove {key} to leave that side unbounded")
        return float(value)
    if family is TypeFamily.DATE:
        if isinstance(value, datetime) or not isinstance(value, date):
            raise InvalidInput(f"{wrong}, got {type(value).__name__} {value!r}")
        return value
    if not isinstance(value, datetime):
        raise InvalidInput(f"{wrong}, got {type(value).__name__} {value!r}")
    # One representation per instant keeps equality and the file round trip exact.
    return value.astimezone(UTC) if value.tzinfo is not None else value


def _greater(low: Bound, high: Bound, where: str) -> bool:
    if (
        isinstance(low, datetime)
        and isinstance(high, datetime)
        and (low.tzinfo is None) != (high.tzinfo is None)
    ):
        raise InvalidInput(
            f"{where}: one of min and max has a time zone and the other has none; write "
            "both with an offset (e.g. 2024-01-31T08:00:00Z) or both without"
        )
    return low > high  # type: ignore[operator]  # same family, checked by _bound


def _names(values: object, key: str, where: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidInput(
            f"{where}: {key} must be a list of names, got {values!r}; e.g. {key} = ['training']"
        )
    items = tuple(values)
    if not items or not all(isinstance(v, str) and v for v in items):
        raise InvalidInput(
            f"{where}: {key} must list at least one non-empty name, got {list(items)!r}"
        )
    if len(set(items)) != len(items):
        raise InvalidInput(f"{where}: {key} {list(items)!r} repeats a name; list each once")
    return items


def _show(value: Bound) -> str:
    return value.isoformat() if isinstance(value, date) else repr(value)


def _preview(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}]"


# --- the TOML file format ------------------------------------------------------------------

_TOP_KEYS = ("format_version", "label", "key", "environments", "columns")
_COLUMN_KEYS = (
    "name",
    "type",
    "nullable",
    "max_null_fraction",
    "min",
    "max",
    "categories",
    "environments",
)
_HEADER = f"""\
# loopml data schema: what a dataset must look like. `loopml data validate` checks data
# against it; `{INFER_COMMAND}` writes a first version from data. Edit freely: the
# fields are explained below, and loopml names the key of any mistake.
#
# format_version  the version of this file format; leave it as it is.
# label           the column a model learns to predict. It must be present when training and
#                 absent when serving, unless its [[columns]] entry lists other environments.
# key             columns whose values together identify a row; repeated keys are errors.
# environments    where data is validated (e.g. "training", "serving").
"""
_COLUMNS_HEADER = """\
# One [[columns]] entry per expected column, in order:
#   name               the column name, exactly as in the data
#   type               int, float, bool, string, category, date, datetime or other
#                      (other: lists, structs, binary... only presence and nulls are checked)
#   nullable           false: any missing value (null, or NaN in a float column) is an error
#   max_null_fraction  warn when more than this share of the rows is missing (0 to 1)
#   min, max           the allowed range, inclusive, tolerance included (int, float, date and
#                      datetime only); remove one to leave that side unbounded
#   categories         the allowed values of a category column; new values are errors
#   environments       where the column must be present; it must be absent elsewhere
#                      (default: every environment)
"""
_WRAP = 96


def schema_to_toml(schema: DataSchema) -> str:
    """Write ``schema`` as commented TOML that :func:`schema_from_toml` reads back equal."""
    lines = [_HEADER, f"format_version = {schema.format_version}"]
    if schema.label is not None:
        lines.append(f"label = {_toml_string(schema.label)}")
    else:
        lines.append('# label = "target"    (no label yet: uncomment and name the column)')
    if schema.key:
        lines.append(_toml_assign("key", schema.key))
    else:
        lines.append('# key = ["id"]        (no key: rows are not checked for duplicates)')
    lines.append(_toml_assign("environments", schema.environments))
    lines.append("")
    lines.append(_COLUMNS_HEADER)
    for rule in schema.columns:
        lines.append("[[columns]]")
        lines.append(f"name = {_toml_string(rule.name)}")
        lines.append(f"type = {_toml_string(rule.family.value)}")
        lines.append(f"nullable = {_toml_value(rule.nullable)}")
        if rule.max_null_fraction is not None:
            lines.append(f"max_null_fraction = {_toml_value(rule.max_null_fraction)}")
        if rule.minimum is not None:
            lines.append(f"min = {_toml_value(rule.minimum)}")
        if rule.maximum is not None:
            lines.append(f"max = {_toml_value(rule.maximum)}")
        if rule.categories is not None:
            lines.append(_toml_assign("categories", rule.categories))
        if rule.environments is not None:
            lines.append(_toml_assign("environments", rule.environments))
        lines.append("")
    return "\n".join(lines)


def _toml_assign(key: str, values: Sequence[str]) -> str:
    items = [_toml_string(v) for v in values]
    inline = f"{key} = [{', '.join(items)}]"
    if len(inline) <= _WRAP:
        return inline
    return "\n".join([f"{key} = [", *(f"  {item}," for item in items), "]"])


def _toml_value(value: Bound | bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, float):
        # repr is the shortest text that reads back as the same float; TOML spells the
        # infinities inf and -inf, as repr does (NaN never reaches here: rules refuse it).
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return value.isoformat()  # TOML dates, local and offset datetimes are RFC 3339


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_ESCAPES["\r"] = "\\r"


def _toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def schema_from_toml(text: str, source_name: str) -> DataSchema:
    """Read a schema written by :func:`schema_to_toml` (or by hand).

    Args:
        text: the TOML text.
        source_name: where the text came from (usually the file path), named in errors.

    Raises:
        InvalidInput: the text is not TOML, or a key is unknown, missing, of the wrong type
            or inconsistent (``min`` above ``max``, a label that is not a column...). The
            message names ``source_name``, the key and what was expected.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(
            f"{source_name}: not valid TOML: {exc}; fix the syntax there, or write the file "
            f"again with `{INFER_COMMAND}`"
        ) from exc
    reader = _Reader(source_name)
    reader.check_keys(data, _TOP_KEYS, "the top level")
    version = reader.require(data, "format_version", "the top level")
    if isinstance(version, bool) or not isinstance(version, int):
        reader.fail(
            "the top level", "format_version", f"an integer such as {FORMAT_VERSION}", version
        )
    label = data.get("label")
    if label is not None and not isinstance(label, str):
        reader.fail("the top level", "label", 'a column name in quotes, e.g. label = "y"', label)
    key = reader.string_list(data, "key", "the top level") or ()
    environments = reader.string_list(data, "environments", "the top level")
    raw_columns = reader.require(data, "columns", "the top level")
    if not isinstance(raw_columns, list) or not all(isinstance(c, dict) for c in raw_columns):
        reader.fail("the top level", "columns", "one or more [[columns]] tables", raw_columns)
    rules = tuple(reader.column(i, raw) for i, raw in enumerate(raw_columns, start=1))
    try:
        return DataSchema(
            columns=rules,
            label=label,
            key=tuple(key),
            environments=DEFAULT_ENVIRONMENTS if environments is None else tuple(environments),
            format_version=version,
        )
    except InvalidInput as exc:
        raise InvalidInput(f"{source_name}: {exc}") from exc


class _Reader:
    """Type checks of the parsed TOML, with messages naming the file and the key."""

    def __init__(self, source_name: str) -> None:
        self.source = source_name

    def fail(self, where: str, key: str, expected: str, value: object) -> NoReturn:
        raise InvalidInput(
            f"{self.source}: {where}: key {key!r} must be {expected}, got "
            f"{_toml_type(value)} {value!r}; fix it in the file"
        )

    def check_keys(self, table: Mapping[str, object], allowed: Sequence[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                guess = f" (did you mean {close[0]!r}?)" if close else ""
                raise InvalidInput(
                    f"{self.source}: {where}: unknown key {key!r}{guess}; expected only "
                    f"{', '.join(allowed)}. Remove or rename it"
                )

    def require(self, table: Mapping[str, object], key: str, where: str) -> Any:
        if key not in table:
            raise InvalidInput(
                f"{self.source}: {where}: key {key!r} is missing; add it (see the comments "
                f"at the top of a file written by `{INFER_COMMAND}`)"
            )
        return table[key]

    def string_list(self, table: Mapping[str, object], key: str, where: str) -> list[str] | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(where, key, f'a list of names in quotes, e.g. {key} = ["a", "b"]', value)
        return value

    def column(self, index: int, raw: dict[str, Any]) -> ColumnRule:
        name = raw.get("name")
        where = f"[[columns]] #{index}" + (f" ({name!r})" if isinstance(name, str) else "")
        self.check_keys(raw, _COLUMN_KEYS, where)
        name = self.require(raw, "name", where)
        if not isinstance(name, str):
            self.fail(where, "name", "the column name in quotes", name)
        family = self.require(raw, "type", where)
        if not isinstance(family, str):
            self.fail(where, "type", 'a type name in quotes, e.g. type = "int"', family)
        nullable = raw.get("nullable", True)
        if not isinstance(nullable, bool):
            self.fail(where, "nullable", "true or false", nullable)
        fraction = raw.get("max_null_fraction")
        if fraction is not None and (
            isinstance(fraction, bool) or not isinstance(fraction, int | float)
        ):
            self.fail(where, "max_null_fraction", "a number from 0 to 1", fraction)
        for bound in ("min", "max"):
            if isinstance(raw.get(bound), list | dict | str):
                self.fail(
                    where, bound, "a number, a date or a date and time (no quotes)", raw[bound]
                )
        categories = self.string_list(raw, "categories", where)
        environments = self.string_list(raw, "environments", where)
        try:
            return ColumnRule(
                name=name,
                family=family,  # type: ignore[arg-type]  # ColumnRule converts and checks it
                nullable=nullable,
                max_null_fraction=fraction,
                minimum=raw.get("min"),
                maximum=raw.get("max"),
                categories=None if categories is None else tuple(categories),
                environments=None if environments is None else tuple(environments),
            )
        except InvalidInput as exc:
            # The rule's message starts with "column 'name'", so only the position is added.
            raise InvalidInput(f"{self.source}: [[columns]] #{index}: {exc}") from exc


def _toml_type(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, dict):
        return "table"
    return names.get(type(value), type(value).__name__)
