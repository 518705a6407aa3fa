"""One expected column's tally in a validation run, and the findings it gives.

:mod:`loopml.stats.validate` runs the check; a :class:`ColumnTally` holds the counters of
one column of the schema, updated batch by batch (types, missing values, ranges,
categories), and turns them into findings at the end.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.data_schema import INFER_COMMAND, RANGED, ColumnRule, Scalar
from loopml.domain.validation_report import Check, Finding, Severity
from loopml.stats.columns import (
    EXAMPLES,
    Converted,
    Fit,
    comparable_bound,
    convert,
    display,
    numeric_summary,
)

MAX_UNSEEN_TRACKED = 1000  # distinct unseen categories counted one by one; beyond, in bulk


@dataclass
class Presence:
    batches: int = 0
    rows: int = 0
    types: set[str] = field(default_factory=set)


class ColumnTally:
    """Counters for one expected column, updated batch by batch."""

    def __init__(self, rule: ColumnRule) -> None:
        self.rule = rule
        self.family = rule.family
        self.low = None if rule.minimum is None else comparable_bound(rule.family, rule.minimum)
        self.high = None if rule.maximum is None else comparable_bound(rule.family, rule.maximum)
        self.allowed = None if rule.categories is None else pa.array(rule.categories, pa.string())
        self.present = Presence()
        self.absent = Presence()
        self.missing = 0
        self.changed: Counter[str] = Counter()  # conversion detail -> rows
        self.mismatch: Counter[str] = Counter()
        self.bad = 0
        self.bad_examples: list[Scalar] = []
        self.seen_min: int | float | None = None
        self.seen_max: int | float | None = None
        self.below = 0
        self.above = 0
        self.range_examples: list[Scalar] = []
        self.unseen = 0
        self.unseen_counts: Counter[str] = Counter()

    def add(self, array: pa.Array) -> pa.Array | None:
        """Count one batch's column; return its comparable values (for the key check)."""
        self.present.batches += 1
        self.present.rows += len(array)
        self.present.types.add(str(array.type))
        converted = convert(array, self.family)
        self._count_type(converted, len(array))
        self.missing += array.null_count
        values = converted.values
        if values is None:
            return None
        if pa.types.is_floating(values.type) or (
            self.family in RANGED and (self.low is not None or self.high is not None)
        ):
            self._count_range(values)
        if self.allowed is not None:
            self._count_categories(values, self.allowed)
        return values

    def _count_type(self, converted: Converted, rows: int) -> None:
        if converted.fit is Fit.CHANGED:
            self.changed[converted.detail] += rows
        elif converted.fit is Fit.MISMATCH:
            self.mismatch[converted.detail] += rows
            self.bad += converted.bad
            room = EXAMPLES - len(self.bad_examples)
            self.bad_examples.extend(converted.examples[:room])

    def _count_range(self, values: pa.Array) -> None:
        if values.null_count and pa.types.is_floating(values.type):
            # Nulls would become NaN in numpy and send the summary down its slow path (and
            # they never count as out of range): the present values alone, in their order.
            values = values.drop_null()
        nan, low, high = numeric_summary(values)
        self.missing += nan
        if low is None or high is None:
            return
        self.seen_min = low if self.seen_min is None else min(self.seen_min, low)
        self.seen_max = high if self.seen_max is None else max(self.seen_max, high)
        masks = []
        if self.low is not None and low < self.low:
            mask = _compare(values, "less", self.low)
            self.below += _count(mask)
            masks.append(mask)
        if self.high is not None and high > self.high:
            mask = _compare(values, "greater", self.high)
            self.above += _count(mask)
            masks.append(mask)
        if not masks:
            return  # the common case: no per-value pass at all
        room = EXAMPLES - len(self.range_examples)
        if room > 0:
            outside = masks[0] if len(masks) == 1 else pc.or_(masks[0], masks[1])
            offending = pc.filter(values, outside).slice(0, room).to_pylist()
            self.range_examples.extend(display(self.family, v) for v in offending)

    def _count_categories(self, values: pa.Array, allowed: pa.Array) -> None:
        if pa.types.is_dictionary(values.type):
            if pc.all(pc.is_in(values.dictionary, value_set=allowed)).as_py() is not False:
                return  # every dictionary entry is allowed: no per-row pass
            values = values.dictionary_decode()
        hits = pc.is_in(values, value_set=allowed)
        unseen = len(values) - values.null_count - (pc.sum(hits).as_py() or 0)
        if not unseen:
            return
        self.unseen += unseen
        outside = pc.filter(values, pc.and_(pc.invert(hits), pc.is_valid(values)))
        for item in pc.value_counts(outside).to_pylist():
            value, count = str(item["values"]), int(item["counts"])
            if value in self.unseen_counts or len(self.unseen_counts) < MAX_UNSEEN_TRACKED:
                self.unseen_counts[value] += count


def _compare(values: pa.Array, op: str, bound: int | float) -> pa.Array:
    """``values < bound`` (op ``less``) or ``values > bound``, for any numeric width."""
    if pa.types.is_integer(values.type) and isinstance(bound, int):
        info = np.iinfo(values.type.to_pandas_dtype())
        if op == "less" and bound > info.max:
            return pc.is_valid(values)
        if op == "greater" and bound < info.min:
            return pc.is_valid(values)
        bound = min(max(bound, int(info.min)), int(info.max))
        scalar = pa.scalar(bound, values.type)
    else:
        scalar = pa.scalar(_as_float(bound))
    result: pa.Array = pc.less(values, scalar) if op == "less" else pc.greater(values, scalar)
    return pc.fill_null(result, False)


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # a bound beyond float's range: no float is past it
        return math.inf if value > 0 else -math.inf


def _count(mask: pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)


def missing_findings(tally: ColumnTally) -> list[Finding]:
    rows = tally.present.rows
    if not rows or not tally.missing:
        return []
    rule = tally.rule
    share = tally.missing / rows
    seen = f"{tally.missing:,} of {rows:,} rows missing ({_percent(share)})"
    details: tuple[tuple[str, Scalar], ...] = (("missing_fraction", share), ("rows", rows))
    if not rule.nullable:
        return [
            Finding(
                Severity.ERROR,
                Check.NULLS_NOT_ALLOWED,
                rule.name,
                expected="no missing values (nullable = false)",
                seen=seen,
                hint="fill or drop those rows, or set nullable = true (and max_null_fraction) "
                f"for {rule.name!r} in the schema if missing values are now expected",
                count=tally.missing,
                details=details,
            )
        ]
    if rule.max_null_fraction is not None and share > rule.max_null_fraction:
        return [
            Finding(
                Severity.WARNING,
                Check.NULL_FRACTION,
                rule.name,
                expected=f"at most {_percent(rule.max_null_fraction)} missing",
                seen=seen,
                hint="find out why more values are missing upstream; if the new rate is "
                f"expected, raise max_null_fraction of {rule.name!r} in the schema",
                count=tally.missing,
                details=details,
            )
        ]
    return []


def range_finding(tally: ColumnTally) -> Finding:
    rule, family = tally.rule, tally.family
    low, high = display(family, tally.low), display(family, tally.high)
    if tally.low is not None and tally.high is not None:
        expected = f"values from {show(low)} to {show(high)}"
    elif tally.low is not None:
        expected = f"values of at least {show(low)}"
    else:
        expected = f"values of at most {show(high)}"
    seen_min, seen_max = display(family, tally.seen_min), display(family, tally.seen_max)
    count = tally.below + tally.above
    return Finding(
        Severity.ERROR,
        Check.OUT_OF_RANGE,
        rule.name,
        expected=expected,
        seen=f"{count:,} values outside ({tally.below:,} below, {tally.above:,} above); "
        f"min seen {show(seen_min)}, max seen {show(seen_max)}",
        hint=f"if the new range is legitimate, widen min/max of {rule.name!r} in the schema "
        f"(or re-infer it with `{INFER_COMMAND}`); otherwise fix or filter those rows",
        count=count,
        examples=tuple(tally.range_examples),
        details=(
            ("below", tally.below),
            ("above", tally.above),
            ("min_seen", seen_min),
            ("max_seen", seen_max),
        ),
    )


def category_finding(tally: ColumnTally) -> Finding:
    rule = tally.rule
    allowed = rule.categories or ()
    top = sorted(tally.unseen_counts.items(), key=lambda item: (-item[1], item[0]))
    distinct = len(tally.unseen_counts)
    more = "+" if distinct >= MAX_UNSEEN_TRACKED else ""
    preview = ", ".join(f"{value!r} ({count:,})" for value, count in top[:EXAMPLES])
    return Finding(
        Severity.ERROR,
        Check.UNSEEN_CATEGORY,
        rule.name,
        expected=f"one of {len(allowed)} categories ({_preview(allowed)})",
        seen=f"{tally.unseen:,} values outside them, {distinct:,}{more} distinct: {preview}",
        hint=f"if these values are legitimate, add them to the categories of {rule.name!r} "
        f"in the schema (or re-infer it with `{INFER_COMMAND}`); otherwise map them to known "
        "categories upstream",
        count=tally.unseen,
        examples=tuple(value for value, _ in top[:EXAMPLES]),
        details=(("distinct_unseen", distinct),),
    )


def _percent(share: float) -> str:
    return f"{share:.2%}" if share >= 0.0001 or share == 0 else f"{share:.2e}"


def _preview(values: tuple[str, ...], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "")


def show(value: Scalar) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return repr(value)
    return str(value)
