"""Infer a :class:`~loopml.domain.data_schema.DataSchema` from data.

One streaming pass over a Table or record batches gathers, per column, its type family,
missing values, minimum and maximum, and the distinct values of text columns while there
are few. The rules are then written from those facts, loosened by ``tolerance`` so that the
next batch of the same data does not fail on noise:

* **ranges** (int, float): ``pad = tolerance * (max - min)``, or ``tolerance * max(|max|, 1)``
  when every value is the same; the bounds are ``min - pad`` and ``max + pad``. A column
  with no negative value keeps ``min >= 0`` (and one with no positive value ``max <= 0``):
  a count does not become negative because of a tolerance. Ints round outwards to whole
  numbers, floats outwards to the power of ten just below ``pad`` (readable bounds such as
  ``-2.3``, not ``-2.2999999``).
* **dates and datetimes** get only a lower bound, ``min - pad`` (rounded down to the
  day when ``pad`` is a day or more, else to the second): new data is later than the data
  it is compared with, so an upper bound would fail every new batch. Add ``max`` by hand
  for columns where it makes sense (a birth date).
* **missing values**: a column with none is ``nullable = false``; otherwise
  ``max_null_fraction = share * (1 + tolerance) + 0.01`` (capped at 1, rounded up to 4
  decimals), so a small sample's rate does not fail the next batch.
* **categories**: a text column becomes ``category`` when it has at most
  :data:`MAX_CATEGORIES` distinct values and each appears twice on average (distinct values
  at most half of the non-missing rows); dictionary-encoded text needs only the first.
  Other text stays ``string``.
* **key**: without ``key=``, the first int or text column whose name says it is an id (``id``,
  ``user_id``, ``userId``, ``key``, ``uuid``...) and that is complete and unique is chosen;
  failing that, the first int column that is complete and strictly increasing (a row
  number such as ``instant``). Shuffled ids under another name are not guessed: pass
  ``key=``. A key column keeps its lower bound but gets no upper bound (new rows bring
  new ids). Only id-named columns are checked for uniqueness, so memory stays at 8 bytes
  per row for each of them (see :mod:`loopml.stats.keys`).
* **label**: kept; its rule lists only the ``"training"`` environment, so serving data
  must not carry it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.data_schema import (
    DEFAULT_ENVIRONMENTS,
    RANGED,
    TRAINING,
    Bound,
    ColumnRule,
    DataSchema,
    TypeFamily,
)
from loopml.domain.errors import InvalidInput
from loopml.stats.columns import (
    convert,
    days_to_date,
    display,
    family_of,
    iter_batches,
    micros_to_datetime,
    numeric_summary,
)
from loopml.stats.keys import DuplicateKeyFinder, key_form

DEFAULT_TOLERANCE = 0.1
MAX_CATEGORIES = 100
NULL_SLACK = 0.01  # added to the observed share of missing values (see the module docstring)
_DAY_MICROS = 86_400_000_000
_SECOND_MICROS = 1_000_000
_TEXT = frozenset({TypeFamily.STRING, TypeFamily.CATEGORY})
_ID_WORD = re.compile(r"(?:^|[_\W])(?:id|key|uuid|guid)$", re.IGNORECASE)
_ID_CAMEL = re.compile(r"[a-z0-9](?:Id|ID|Key|Uuid|UUID|Guid|GUID)$")


def infer_schema(
    table_or_batches: pa.Table | Iterable[pa.RecordBatch],
    *,
    label: str | None = None,
    key: list[str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> DataSchema:
    """Write a schema that the given data passes, loosened by ``tolerance``.

    Args:
        table_or_batches: a pyarrow Table or record batches (read once).
        label: the column a model learns to predict; it is expected in training data only.
        key: columns that identify a row. They must be complete and unique in the data.
            Without it, a key column is guessed (see the module docstring) or none is set.
        tolerance: how far ranges and missing-value shares are loosened, as a share of the
            observed range (0.1 widens a range of 0 to 100 into -10 to 110, or 0 to 110
            for a column without negative values).

    Raises:
        InvalidInput: no rows, an unknown ``label`` or ``key`` column, a key that is not
            complete and unique, a column whose type changes between batches, or a
            negative or non-finite ``tolerance``.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
        raise InvalidInput(f"tolerance must be a number such as 0.1, got {tolerance!r}")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise InvalidInput(
            f"tolerance must be a finite number of at least 0, got {tolerance!r}; 0.1 widens "
            "each range by a tenth of its width"
        )
    given: object = key  # callers without type checking may pass a bare string
    if given is not None and (
        isinstance(given, str)
        or not isinstance(given, list | tuple)
        or not all(isinstance(k, str) for k in given)
    ):
        raise InvalidInput(f"key must be a list of column names, got {key!r}; e.g. key=['id']")
    inference = _Inference(tuple(key) if key else ())
    for batch in iter_batches(table_or_batches):
        inference.add(batch)
    return inference.schema(label, float(tolerance))


class _ColumnFacts:
    """What one column's values showed, batch by batch."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.family: TypeFamily | None = None
        self.aware = False  # datetimes with a time zone
        self.dictionary = False
        self.rows = 0
        self.missing = 0
        self.low: int | float | None = None
        self.high: int | float | None = None
        self.distinct: set[str] | None = set()  # None once past MAX_CATEGORIES
        self.increasing = True
        self.last: int | None = None
        id_like = bool(_ID_WORD.search(name) or _ID_CAMEL.search(name))
        self.unique: DuplicateKeyFinder | None = None
        self.unique_candidate = id_like

    def add(self, array: pa.Array, batch_number: int) -> pa.Array | None:
        self.rows += len(array)
        self.missing += array.null_count
        family = family_of(array.type)
        if family is None:
            self.increasing = self.unique_candidate = False
            return None
        self._unify(family, array.type, batch_number)
        values = convert(array, family).values
        if values is None:  # an other-typed column: presence and nulls only
            return None
        if family in RANGED or pa.types.is_floating(values.type):
            nan, low, high = numeric_summary(values)
            self.missing += nan
            if low is not None and high is not None:
                self.low = low if self.low is None else min(self.low, low)
                self.high = high if self.high is None else max(self.high, high)
        if family in _TEXT:
            self._count_distinct(values)
        self._follow_key_candidates(values, family)
        return values

    def _unify(self, family: TypeFamily, data_type: pa.DataType, batch_number: int) -> None:
        if pa.types.is_timestamp(data_type) and data_type.tz is not None:
            self.aware = True
        if pa.types.is_dictionary(data_type):
            self.dictionary = True
        if self.family is None or self.family is family:
            self.family = family
        elif {self.family, family} == {TypeFamily.INT, TypeFamily.FLOAT}:
            self.family = TypeFamily.FLOAT
        elif {self.family, family} <= _TEXT:
            self.family = TypeFamily.STRING
        else:
            raise InvalidInput(
                f"column {self.name!r} holds {self.family.value} values in earlier batches but "
                f"{family.value} ({data_type}) in batch {batch_number}; read every batch with "
                "the same column types (e.g. pyarrow.csv.ConvertOptions(column_types=...))"
            )

    def _count_distinct(self, values: pa.Array) -> None:
        if self.distinct is None:
            return
        if pa.types.is_dictionary(values.type):
            used = pc.unique(values.indices).drop_null()
            found = values.dictionary.take(used).to_pylist()
        else:
            found = pc.unique(values).drop_null().to_pylist()
        self.distinct.update(str(v) for v in found)
        if len(self.distinct) > MAX_CATEGORIES:
            self.distinct = None

    def _follow_key_candidates(self, values: pa.Array, family: TypeFamily) -> None:
        if values.null_count:
            self.increasing = self.unique_candidate = False
            self.unique = None
            return
        if self.increasing and family is TypeFamily.INT and len(values):
            numbers = np.asarray(values.to_numpy(zero_copy_only=False))
            rising = bool(np.all(numbers[1:] > numbers[:-1]))
            after_last = self.last is None or int(numbers[0]) > self.last
            self.increasing = rising and after_last
            self.last = int(numbers[-1])
        elif family is not TypeFamily.INT:
            self.increasing = False
        if not self.unique_candidate or family not in (TypeFamily.INT, *_TEXT):
            self.unique_candidate = False
            return
        if self.unique is None:
            self.unique = DuplicateKeyFinder([family], max_examples=0)
        self.unique.add([key_form(values, family)])

    def is_unique(self) -> bool:
        if not self.unique_candidate or self.unique is None or self.missing:
            return False
        return self.unique.result().duplicates == 0

    def rule(self, tolerance: float, environments: tuple[str, ...] | None) -> ColumnRule:
        family = self.family or TypeFamily.OTHER  # a column of nulls only
        categories = None
        if family in _TEXT:
            family, categories = self._text_family()
        nullable = self.missing > 0
        fraction = _null_allowance(self.missing / self.rows, tolerance) if nullable else None
        low: Bound | None = None
        high: Bound | None = None
        if family in RANGED and self.low is not None and self.high is not None:
            low, high = widen(family, self.low, self.high, tolerance, aware=self.aware)
        return ColumnRule(
            name=self.name,
            family=family,
            nullable=nullable,
            max_null_fraction=fraction,
            minimum=low,
            maximum=high,
            categories=categories,
            environments=environments,
        )

    def _text_family(self) -> tuple[TypeFamily, tuple[str, ...] | None]:
        distinct = self.distinct
        if not distinct or len(distinct) > MAX_CATEGORIES:
            return TypeFamily.STRING, None
        if self.dictionary or 2 * len(distinct) <= self.rows - self.missing:
            return TypeFamily.CATEGORY, tuple(sorted(distinct))
        return TypeFamily.STRING, None


class _Inference:
    def __init__(self, key: tuple[str, ...]) -> None:
        self.key = key
        self.columns: dict[str, _ColumnFacts] = {}
        self.key_finder: DuplicateKeyFinder | None = None
        self.key_families: list[TypeFamily] = []
        self.key_missing = 0
        self.rows = 0
        self.batches = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self.batches += 1
        self.rows += batch.num_rows
        if self.columns and batch.schema.names != list(self.columns):
            raise InvalidInput(
                f"batch {self.batches} has the columns {batch.schema.names[:10]!r} but earlier "
                f"batches had {list(self.columns)[:10]!r}; infer a schema from batches with "
                "the same columns in the same order"
            )
        values: dict[str, pa.Array | None] = {}
        for i, name in enumerate(batch.schema.names):
            if name in values:
                raise InvalidInput(
                    f"column name {name!r} appears twice in the data; rename one of them"
                )
            facts = self.columns.setdefault(name, _ColumnFacts(name))
            values[name] = facts.add(batch.column(i), self.batches)
        self._add_key(batch, values)

    def _add_key(self, batch: pa.RecordBatch, values: dict[str, pa.Array | None]) -> None:
        if not self.key or not batch.num_rows:
            return
        unknown = [k for k in self.key if k not in values]
        if unknown:
            raise InvalidInput(
                f"key column {unknown[0]!r} is not in the data; choose among {list(values)[:10]!r}"
            )
        if self.key_finder is None:
            self.key_families = [self.columns[k].family or TypeFamily.OTHER for k in self.key]
            self.key_finder = DuplicateKeyFinder(self.key_families)
        columns = []
        for name, family in zip(self.key, self.key_families, strict=True):
            column = values[name]
            if column is None and pa.types.is_null(batch.schema.field(name).type):
                self.key_missing += batch.num_rows  # only nulls in this batch
                return
            if column is None or family is TypeFamily.OTHER:
                raise InvalidInput(
                    f"key column {name!r} holds values that cannot be compared "
                    f"({batch.schema.field(name).type}); choose int, text or date columns"
                )
            self.key_missing += column.null_count
            columns.append(key_form(column, family))
        self.key_finder.add(columns)

    def schema(self, label: str | None, tolerance: float) -> DataSchema:
        if not self.rows:
            raise InvalidInput(
                f"cannot infer a schema from 0 rows ({self.batches} batches); pass data "
                "with at least one row"
            )
        if label is not None and label not in self.columns:
            raise InvalidInput(
                f"label {label!r} is not a column of the data; choose among "
                f"{list(self.columns)[:10]!r}"
            )
        key = self.key or self._guess_key()
        if self.key:
            self._check_given_key()
        rules = []
        for name, facts in self.columns.items():
            environments = (TRAINING,) if name == label else None
            rule = facts.rule(tolerance, environments)
            if name in key and rule.maximum is not None:
                # New rows bring new ids: an upper bound on a key would fail them all.
                rule = replace(rule, maximum=None)
            rules.append(rule)
        return DataSchema(
            columns=tuple(rules), label=label, key=key, environments=DEFAULT_ENVIRONMENTS
        )

    def _guess_key(self) -> tuple[str, ...]:
        for facts in self.columns.values():
            if facts.is_unique():
                return (facts.name,)
        for facts in self.columns.values():
            if facts.family is TypeFamily.INT and facts.increasing and not facts.missing:
                return (facts.name,)
        return ()

    def _check_given_key(self) -> None:
        key_text = ", ".join(self.key)
        if self.key_missing:
            raise InvalidInput(
                f"key ({key_text}) has {self.key_missing:,} missing values; a key must identify "
                "every row: choose complete columns, or fill the gaps first"
            )
        if self.key_finder is None:
            return
        result = self.key_finder.result()
        if result.duplicates:
            shown = ", ".join(
                repr(tuple(display(f, v) for f, v in zip(self.key_families, ex, strict=True)))
                for ex in result.examples
            )
            raise InvalidInput(
                f"key ({key_text}) is not unique: {result.duplicates:,} of {result.rows:,} rows "
                f"repeat an earlier key, e.g. {shown}; choose columns that identify a row, or "
                "leave key unset"
            )


def _null_allowance(share: float, tolerance: float) -> float:
    allowed = share * (1 + tolerance) + NULL_SLACK
    return min(1.0, math.ceil(allowed * 10_000) / 10_000)


def widen(
    family: TypeFamily,
    low: int | float,
    high: int | float,
    tolerance: float,
    *,
    aware: bool = False,
) -> tuple[Bound | None, Bound | None]:
    """The bounds of a rule from an observed ``[low, high]`` (see the module docstring).

    ``low`` and ``high`` are comparable values (days for dates, microseconds for
    datetimes); the result is in the schema's terms (``date``, ``datetime``...).
    """
    span = high - low
    if family is TypeFamily.FLOAT:
        if not (math.isfinite(low) and math.isfinite(high)):
            return float(low), float(high)
        pad = tolerance * (span if span else max(abs(high), 1.0))
        if not math.isfinite(pad) or not pad:  # no tolerance, or a span beyond float range
            return float(low), float(high)
        new_low = _round_out(low - pad, pad, down=True)
        new_high = _round_out(high + pad, pad, down=False)
        if not math.isfinite(new_low):  # padding ran past the largest float: keep the data's
            new_low = float(low)
        if not math.isfinite(new_high):
            new_high = float(high)
        if low >= 0:
            new_low = max(new_low, 0.0)
        if high <= 0:
            new_high = min(new_high, 0.0)
        return min(new_low, float(low)), max(new_high, float(high))
    int_low, int_high = int(low), int(high)
    pad_int = math.ceil(tolerance * (span if span else max(abs(int_high), 1)))
    if family is TypeFamily.INT:
        new_low_int, new_high_int = int_low - pad_int, int_high + pad_int
        if int_low >= 0:
            new_low_int = max(new_low_int, 0)
        if int_high <= 0:
            new_high_int = min(new_high_int, 0)
        return new_low_int, new_high_int
    if family is TypeFamily.DATE:
        return days_to_date(int_low - math.ceil(tolerance * span)), None
    pad = math.ceil(tolerance * span)
    step = _DAY_MICROS if pad >= _DAY_MICROS else _SECOND_MICROS
    start = (int_low - pad) // step * step
    try:
        return micros_to_datetime(start, aware=aware), None
    except OverflowError:  # before year 1: keep the observed minimum
        return micros_to_datetime(int_low, aware=aware), None


def _round_out(value: float, pad: float, *, down: bool) -> float:
    """``value`` rounded away from the data to one significant digit of ``pad``."""
    digits = -math.floor(math.log10(pad))
    step = 10.0**-digits
    try:
        steps = math.floor(value / step) if down else math.ceil(value / step)
    except OverflowError:  # a step too small for the value: it is precise enough as it is
        return value
    rounded = round(steps * step, digits) if digits > 0 else float(steps * step)
    if (down and rounded > value) or (not down and rounded < value):
        return value  # float rounding went the wrong way: keep the exact bound
    return rounded
