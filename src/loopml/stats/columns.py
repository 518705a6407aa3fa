"""Arrow columns in the terms of a data schema: type families and comparable values.

Schema inference and validation both need the same three things from an Arrow array: its
:class:`~loopml.domain.data_schema.TypeFamily`, its values in a form that compares with a
rule's bounds, and, when the data arrived with another type (a CSV column read as text, an
integer column that became float), a conversion that counts the values that do not fit.

Comparable forms: int and float columns stay as they are; dates become int32 days since
1970-01-01 and datetimes int64 microseconds since 1970-01-01 UTC (a timestamp without a
time zone is read as UTC, as Arrow stores it); text stays text (dictionary-encoded text
stays encoded, so a category check can look at the small dictionary only).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.data_schema import Bound, Scalar, TypeFamily
from loopml.domain.errors import InvalidInput

EXAMPLES = 5  # offending values kept per finding: enough to recognise a pattern
_EPOCH = datetime(1970, 1, 1)
_EPOCH_DATE = date(1970, 1, 1)
_TEXT = frozenset({TypeFamily.STRING, TypeFamily.CATEGORY})
_PARSE_TARGET = {
    TypeFamily.INT: pa.int64(),
    TypeFamily.FLOAT: pa.float64(),
    TypeFamily.BOOL: pa.bool_(),
    TypeFamily.DATE: pa.date32(),
    TypeFamily.DATETIME: pa.timestamp("us"),
}
# What Arrow's casts accept, so the values that fail can be counted instead of the whole
# cast failing on the first one.
_PARSE_PATTERN = {
    TypeFamily.INT: r"^[+-]?[0-9]+$",
    TypeFamily.FLOAT: r"^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?|inf|infinity|nan)$",
    TypeFamily.BOOL: r"^(true|false|1|0)$",
    TypeFamily.DATE: r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    TypeFamily.DATETIME: (
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?"
        r"(z|[+-][0-9]{2}:?[0-9]{2})?$"
    ),
}


def iter_batches(data: object) -> Iterator[pa.RecordBatch]:
    """Yield the record batches of a Table, a RecordBatch or an iterable of either."""
    if isinstance(data, pa.Table):
        batches = data.to_batches()
        # An empty table has no batches, but its columns still say what the data holds.
        yield from batches or [_empty_batch(data.schema)]
        return
    if isinstance(data, pa.RecordBatch):
        yield data
        return
    if not isinstance(data, Iterable) or isinstance(data, str | bytes | Mapping):
        raise InvalidInput(
            f"expected a pyarrow Table or an iterable of RecordBatches, got "
            f"{type(data).__name__}; convert a pandas DataFrame with pyarrow.Table.from_pandas"
        )
    for item in data:
        if isinstance(item, pa.RecordBatch):
            yield item
        elif isinstance(item, pa.Table):
            yield from item.to_batches() or [_empty_batch(item.schema)]
        else:
            raise InvalidInput(
                f"expected pyarrow RecordBatches, got an item of type {type(item).__name__}; "
                "read files with pyarrow (e.g. pyarrow.csv.open_csv) and pass its batches"
            )


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.record_batch([pa.array([], field.type) for field in schema], schema=schema)


def family_of(data_type: pa.DataType) -> TypeFamily | None:
    """The family of an Arrow type; ``None`` for the null type (a column of nulls only)."""
    types = pa.types
    if types.is_null(data_type):
        return None
    if types.is_boolean(data_type):
        return TypeFamily.BOOL
    if types.is_integer(data_type):
        return TypeFamily.INT
    if types.is_floating(data_type) or types.is_decimal(data_type):
        return TypeFamily.FLOAT
    if _is_text(data_type):
        return TypeFamily.STRING
    if types.is_dictionary(data_type):
        value = family_of(data_type.value_type)
        return TypeFamily.CATEGORY if value is TypeFamily.STRING else value
    if types.is_timestamp(data_type):
        return TypeFamily.DATETIME
    if types.is_date(data_type):
        return TypeFamily.DATE
    return TypeFamily.OTHER


def _is_text(data_type: pa.DataType) -> bool:
    types = pa.types
    return bool(
        types.is_string(data_type)
        or types.is_large_string(data_type)
        or types.is_string_view(data_type)
    )


def comparable_bound(family: TypeFamily, bound: Bound) -> int | float:
    """A rule's bound in the units of :func:`convert`'s values."""
    if isinstance(bound, datetime):
        return datetime_to_micros(bound)
    if isinstance(bound, date):
        return (bound - _EPOCH_DATE).days
    return float(bound) if family is TypeFamily.FLOAT else bound


def datetime_to_micros(value: datetime) -> int:
    naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return (naive - _EPOCH) // timedelta(microseconds=1)


def micros_to_datetime(micros: int, aware: bool) -> datetime:
    value = _EPOCH + timedelta(microseconds=micros)
    return value.replace(tzinfo=UTC) if aware else value


def days_to_date(days: int) -> date:
    return _EPOCH_DATE + timedelta(days=days)


def display(family: TypeFamily, value: object) -> Scalar:
    """A comparable value as a JSON-friendly scalar (dates and datetimes as ISO text)."""
    if value is None or isinstance(value, bool | str):
        return value
    if family in (TypeFamily.DATE, TypeFamily.DATETIME) and isinstance(value, int):
        try:
            if family is TypeFamily.DATE:
                return days_to_date(value).isoformat()
            return micros_to_datetime(value, aware=False).isoformat()
        except OverflowError:  # beyond year 9999: Arrow allows it, datetime does not
            return value
    if isinstance(value, int | float):
        return value
    return str(value)


class Fit(StrEnum):
    """How an array's type relates to the family a rule expects."""

    SAME = "same"  # the expected family, or one that holds the same values (int in float)
    CHANGED = "changed"  # another type whose values all convert (text that parses as int)
    MISMATCH = "mismatch"  # some or all values do not convert


@dataclass(frozen=True, slots=True)
class Converted:
    """An array converted to the comparable form of a family.

    ``values`` is ``None`` when nothing converts; otherwise values that do not convert are
    null in it and counted in ``bad`` (with a few ``examples``), and ``detail`` says what
    conversion happened.
    """

    values: pa.Array | None
    fit: Fit
    bad: int = 0
    examples: tuple[Scalar, ...] = ()
    detail: str = ""


def convert(array: pa.Array, family: TypeFamily) -> Converted:
    """Bring ``array`` to the comparable form of ``family``, counting values that do not fit."""
    if pa.types.is_string_view(array.type):
        array = array.cast(pa.large_string())  # is_in and the string kernels want offsets
    seen = family_of(array.type)
    type_text = str(array.type)
    if seen is None:
        return Converted(None, Fit.SAME)  # only nulls: nothing to compare
    if family is TypeFamily.OTHER:
        fit = Fit.SAME if seen is TypeFamily.OTHER else Fit.CHANGED
        return Converted(array, fit, detail=f"{type_text} values")
    if (
        seen is family
        or (seen in _TEXT and family in _TEXT)
        or (seen is TypeFamily.INT and family is TypeFamily.FLOAT)
    ):
        return Converted(_comparable(array, seen), Fit.SAME)
    if family in _TEXT and seen is not TypeFamily.OTHER:
        text = pc.cast(_decoded(array), pa.string())
        return Converted(text, Fit.CHANGED, detail=f"{type_text} values, read as text")
    if family is TypeFamily.INT and seen is TypeFamily.FLOAT:
        return _whole_numbers(array, type_text)
    if seen in _TEXT:
        return _parsed(_decoded(array), family, type_text)
    if family is TypeFamily.DATETIME and seen is TypeFamily.DATE:
        stamps = pc.cast(_decoded(array), pa.timestamp("us"))
        return Converted(_comparable(stamps, seen=family), Fit.CHANGED, detail="dates")
    if family is TypeFamily.DATE and seen is TypeFamily.DATETIME:
        days = pc.cast(_decoded(array), pa.date32(), safe=False)  # drops the time of day
        return Converted(_comparable(days, seen=family), Fit.CHANGED, detail="datetimes")
    bad = len(array) - array.null_count
    examples = tuple(display(TypeFamily.OTHER, v) for v in _first_values(array))
    return Converted(None, Fit.MISMATCH, bad=bad, examples=examples, detail=type_text)


def _decoded(array: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_string_view(array.type):
        array = array.cast(pa.large_string())
    return array


def _comparable(array: pa.Array, seen: TypeFamily) -> pa.Array:
    if seen is TypeFamily.DATE:
        return pc.cast(pc.cast(_decoded(array), pa.date32()), pa.int32())
    if seen is TypeFamily.DATETIME:
        decoded = _decoded(array)
        micros = pa.timestamp("us", decoded.type.tz)
        return pc.cast(pc.cast(decoded, micros, safe=False), pa.int64())
    if pa.types.is_decimal(array.type):
        return pc.cast(array, pa.float64())  # exact enough to compare with a float bound
    if pa.types.is_dictionary(array.type) and seen is not TypeFamily.CATEGORY:
        return _decoded(array)
    return array


def _first_values(array: pa.Array, limit: int = EXAMPLES) -> list[object]:
    valid = array.drop_null() if array.null_count else array
    return [v.as_py() for v in valid.slice(0, limit)]


def _whole_numbers(array: pa.Array, type_text: str) -> Converted:
    values = array.to_numpy(zero_copy_only=False)  # nulls become NaN
    with np.errstate(invalid="ignore"):
        fractional = ~np.isnan(values) & (np.isinf(values) | (values != np.floor(values)))
    bad = int(np.count_nonzero(fractional))
    if not bad:
        return Converted(array, Fit.CHANGED, detail=f"{type_text} values, all whole numbers")
    examples = tuple(float(v) for v in values[fractional][:EXAMPLES])
    return Converted(
        pc.if_else(pa.array(fractional), None, array),
        Fit.MISMATCH,
        bad=bad,
        examples=examples,
        detail=f"{type_text} values with a fractional part",
    )


def _parsed(text: pa.Array, family: TypeFamily, type_text: str) -> Converted:
    target = _PARSE_TARGET.get(family)
    if target is None:  # e.g. other: text cannot become a list or a struct
        return Converted(
            None,
            Fit.MISMATCH,
            bad=len(text) - text.null_count,
            examples=tuple(display(TypeFamily.STRING, v) for v in _first_values(text)),
            detail=type_text,
        )
    detail = f"{type_text} values that parse as {family.value}"
    parsed = _cast_or_none(text, target, family)
    if parsed is not None:
        return Converted(_comparable(parsed, family), Fit.CHANGED, detail=detail)
    trimmed = pc.utf8_trim_whitespace(text)
    fits = pc.fill_null(
        pc.match_substring_regex(trimmed, _PARSE_PATTERN[family], ignore_case=True), False
    )
    candidates = pc.if_else(fits, trimmed, None)
    if family in (TypeFamily.INT, TypeFamily.FLOAT):
        candidates = pc.replace_substring_regex(candidates, r"^\+", "")
    parsed = _cast_or_none(candidates, target, family)
    bad_mask = pc.and_(pc.is_valid(text), pc.invert(fits))
    if parsed is None:  # the pattern let through values the cast refuses: count them all
        bad_mask = pc.is_valid(text)
    bad = pc.sum(bad_mask).as_py() or 0
    examples = tuple(str(v) for v in pc.filter(text, bad_mask).slice(0, EXAMPLES).to_pylist())
    values = None if parsed is None else _comparable(parsed, family)
    if not bad:
        return Converted(values, Fit.CHANGED, detail=detail)
    return Converted(values, Fit.MISMATCH, bad=bad, examples=examples, detail=f"{type_text} values")


def _cast_or_none(text: pa.Array, target: pa.DataType, family: TypeFamily) -> pa.Array | None:
    attempts = [target]
    if family is TypeFamily.DATETIME:
        attempts.append(pa.timestamp("us", "UTC"))  # text with a zone offset needs a zone
    elif family is TypeFamily.INT:
        attempts.append(pa.float64())  # digits beyond int64: kept, and out of any int range
    for attempt in attempts:
        try:
            return pc.cast(text, attempt)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return None


def numeric_summary(values: pa.Array) -> tuple[int, int | float | None, int | float | None]:
    """``(nan_count, min, max)`` of comparable numeric values, nulls and NaN left out.

    Floats go through numpy: its min and max are several times faster than Arrow's, which
    pays for NaN handling on every value; NaN is looked for only when the minimum is NaN.
    """
    if not pa.types.is_floating(values.type):
        low_high = pc.min_max(values)
        return 0, low_high["min"].as_py(), low_high["max"].as_py()
    if len(values) == values.null_count:
        return 0, None, None
    array = values.to_numpy(zero_copy_only=values.null_count == 0)  # nulls become NaN
    low, high = array.min(), array.max()
    if not (np.isnan(low) or np.isnan(high)):
        return 0, float(low), float(high)
    nan = np.isnan(array)
    nan_count = int(np.count_nonzero(nan)) - values.null_count
    finite_or_inf = array[~nan]
    if not finite_or_inf.size:
        return nan_count, None, None
    return nan_count, float(finite_or_inf.min()), float(finite_or_inf.max())
