"""Data schemas: what a dataset is expected to look like (the rules of the *data linter*).

A :class:`DataSchema` holds one :class:`ColumnRule` per column (type family, missing
values, range, allowed categories, the environments the column belongs to), an optional
label column and an optional unique key. ``loopml.stats`` infers a schema from a table and
validates batches against it; the findings are in :mod:`loopml.domain.validation_report`.

Environments say which columns a batch must carry where: the label is needed to train but
is absent when a model is served. A rule lists the environments of its column; the label,
when its rule lists none, belongs to every environment except ``"serving"``.

The editable TOML form of a schema is in :mod:`loopml.domain.schema_file`. Standard
library only, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

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
