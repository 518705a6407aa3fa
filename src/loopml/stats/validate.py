"""Validate data against a :class:`~loopml.domain.data_schema.DataSchema` (the data linter).

Data arrives as a Table or as a stream of record batches (a 5 GB CSV read batch by batch);
each batch updates a few counters per column and is then let go, so memory does not grow
with the data, except for duplicate-key detection, which keeps 8 bytes per row (see
:mod:`loopml.stats.keys`). Every check is vectorised with pyarrow.compute or numpy, and
costs a full pass only when it must:

* ranges: one min/max per batch; offending values are counted and gathered only when the
  minimum or maximum is out of bounds;
* categories: one ``is_in`` against the allowed set (only the dictionary, for
  dictionary-encoded text); unseen values are tallied only when there are some;
* missing values: Arrow's null count, plus NaN in float columns, found by the min/max pass;
* types: a batch whose column has another type is converted, counting the values that do
  not convert (text that does not parse as a number, fractions in an int column...);
* keys: see :mod:`loopml.stats.keys` (a unique integer id costs one pass over a bitmap of
  its range, not a sort).

The columns of a long batch (``PARALLEL_ROWS`` rows or more, e.g. a Table built in memory
in one chunk) are counted on a few threads, since Arrow and numpy release the GIL while
they scan: about the same CPU time, less waiting. Each column's counters belong to one
thread at a time, so the findings do not depend on the threads.

Findings are sorted by severity, then by column order, then by check, so the report of a
stream equals the report of the same rows as one table.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.data_schema import INFER_COMMAND, RANGED, ColumnRule, DataSchema, Scalar
from loopml.domain.validation_report import Check, Finding, Severity, ValidationReport
from loopml.stats.columns import (
    EXAMPLES,
    Converted,
    Fit,
    comparable_bound,
    convert,
    display,
    iter_batches,
    numeric_summary,
)
from loopml.stats.keys import DuplicateKeyFinder, key_form

PARALLEL_ROWS = 1 << 18  # a batch this long has its columns counted on several threads
MAX_WORKERS = 4
MAX_UNSEEN_TRACKED = 1000  # distinct unseen categories counted one by one; beyond, in bulk
_CHECK_ORDER = {check: i for i, check in enumerate(Check)}


def validate(
    batches: Iterable[pa.RecordBatch] | pa.Table,
    schema: DataSchema,
    *,
    environment: str = "training",
) -> ValidationReport:
    """Check data against ``schema`` and report every finding.

    Args:
        batches: a pyarrow Table, or record batches in any number (a generator is read
            once, batch by batch).
        schema: the expected shape of the data.
        environment: where the data is used; decides whether the label must be present
            (``"training"``) or absent (``"serving"``). One of ``schema.environments``.

    Returns:
        A :class:`ValidationReport`; ``report.ok`` is false when any finding is an error.

    Raises:
        InvalidInput: ``environment`` is unknown, or ``batches`` holds something other than
            pyarrow tables or record batches.
    """
    schema.check_environment(environment)
    run = _Validation(schema, environment)
    try:
        for batch in iter_batches(batches):
            run.add(batch)
    finally:
        run.close()
    return run.report()


@dataclass
class _Presence:
    batches: int = 0
    rows: int = 0
    types: set[str] = field(default_factory=set)


class _ColumnTally:
    """Counters for one expected column, updated batch by batch."""

    def __init__(self, rule: ColumnRule) -> None:
        self.rule = rule
        self.family = rule.family
        self.low = None if rule.minimum is None else comparable_bound(rule.family, rule.minimum)
        self.high = None if rule.maximum is None else comparable_bound(rule.family, rule.maximum)
        self.allowed = None if rule.categories is None else pa.array(rule.categories, pa.string())
        self.present = _Presence()
        self.absent = _Presence()
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


def _add_column(work: tuple[_ColumnTally, pa.Array]) -> pa.Array | None:
    tally, column = work
    return tally.add(column)


def _workers() -> int:
    try:
        available = len(os.sched_getaffinity(0))  # the CPUs this process may run on
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        available = os.cpu_count() or 1
    return min(MAX_WORKERS, available)


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


class _Validation:
    """One validation run: the tallies of every column and of the key."""

    def __init__(self, schema: DataSchema, environment: str) -> None:
        self.schema = schema
        self.environment = environment
        self.expected = [r for r in schema.columns if schema.expects(r, environment)]
        self.tallies = {r.name: _ColumnTally(r) for r in self.expected}
        self.not_here = {r.name for r in schema.columns} - set(self.tallies)
        self.unexpected: dict[str, _Presence] = {}  # in the schema, not in this environment
        self.extra: dict[str, _Presence] = {}  # not in the schema at all
        self.seen_columns: dict[str, None] = {}  # first-seen order
        self.batches = 0
        self.rows = 0
        self.workers = _workers()
        self.pool: ThreadPoolExecutor | None = None  # started by the first long batch
        key_rules = [schema.find_column(name) for name in schema.key]
        self.key_families = [r.family for r in key_rules if r is not None]
        self.key_skipped: str | None = None
        self.keys: DuplicateKeyFinder | None = None
        if schema.key:
            missing = [k for k in schema.key if k not in self.tallies]
            if missing:
                self.key_skipped = f"key column {missing[0]!r} is not part of {environment} data"
            else:
                self.keys = DuplicateKeyFinder(self.key_families)

    def add(self, batch: pa.RecordBatch) -> None:
        self.batches += 1
        rows = batch.num_rows
        self.rows += rows
        positions: dict[str, int] = {}
        for i, name in enumerate(batch.schema.names):
            positions.setdefault(name, i)  # a repeated name: the first column counts
            self.seen_columns.setdefault(name, None)
        key_values: dict[str, pa.Array | None] = {}
        work: list[tuple[_ColumnTally, pa.Array]] = []
        for name, tally in self.tallies.items():
            at = positions.get(name)
            if at is None:
                tally.absent.batches += 1
                tally.absent.rows += rows
                key_values[name] = None
                continue
            work.append((tally, batch.column(at)))
        for (tally, _), values in zip(work, self._count_columns(work, rows), strict=True):
            key_values[tally.rule.name] = values
        for name, at in positions.items():
            if name in self.tallies:
                continue
            group = self.unexpected if name in self.not_here else self.extra
            presence = group.setdefault(name, _Presence())
            presence.batches += 1
            presence.rows += rows
            presence.types.add(str(batch.schema.field(at).type))
        self._add_keys(key_values)

    def _count_columns(
        self, work: list[tuple[_ColumnTally, pa.Array]], rows: int
    ) -> list[pa.Array | None]:
        """Each column's :meth:`_ColumnTally.add`, in order; on threads for a long batch.

        The tallies share nothing, and Arrow and numpy release the GIL while they scan a
        column, so the columns of a long batch are counted side by side. Short batches stay
        on this thread: there the threads hand the GIL over so often that it costs CPU
        time (about a tenth more on 65,536-row batches, measured) for little gain.
        """
        if rows < PARALLEL_ROWS or len(work) < 2 or self.workers < 2:
            return [tally.add(column) for tally, column in work]
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="loopml-validate")
        return list(self.pool.map(_add_column, work))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def _add_keys(self, key_values: dict[str, pa.Array | None]) -> None:
        if self.keys is None:
            return
        columns = [key_values[name] for name in self.schema.key]
        broken = next((n for n, c in zip(self.schema.key, columns, strict=True) if c is None), None)
        if broken is not None:
            self.keys = None
            self.key_skipped = f"key column {broken!r} is missing or does not convert"
            return
        self.keys.add(
            [
                key_form(column, family)
                for column, family in zip(columns, self.key_families, strict=True)
                if column is not None
            ]
        )

    def report(self) -> ValidationReport:
        findings = list(self._table_findings())
        for tally in self.tallies.values():
            findings.extend(self._column_findings(tally))
        findings.extend(self._key_findings())
        order = {name: i for i, name in enumerate(self.schema.column_names)}
        for name in self.seen_columns:
            order.setdefault(name, len(order))
        findings.sort(
            key=lambda f: (
                f.severity.rank,
                -1 if f.column is None else order.get(f.column, len(order)),
                _CHECK_ORDER[f.check],
            )
        )
        return ValidationReport(
            findings=tuple(findings),
            rows=self.rows,
            environment=self.environment,
            columns=tuple(self.seen_columns),
            batches=self.batches,
        )

    def _table_findings(self) -> list[Finding]:
        found = []
        if self.rows == 0:
            seen = "no batches at all" if not self.batches else f"0 rows in {self.batches} batch"
            found.append(
                Finding(
                    Severity.ERROR,
                    Check.EMPTY_DATA,
                    None,
                    expected="at least one row",
                    seen=seen + ("es" if self.batches > 1 else ""),
                    hint="check the file, query or filter that produced the data",
                )
            )
        for name, presence in self.unexpected.items():
            found.append(self._not_in_environment(name, presence))
        for name, presence in self.extra.items():
            found.append(
                Finding(
                    Severity.WARNING,
                    Check.EXTRA_COLUMN,
                    name,
                    expected="only the schema's columns",
                    seen=f"a column not in the schema ({', '.join(sorted(presence.types))})",
                    hint=f"add a rule for it (or re-infer the schema with `{INFER_COMMAND}`), "
                    "or drop it before validation",
                    count=presence.rows,
                )
            )
        return found

    def _not_in_environment(self, name: str, presence: _Presence) -> Finding:
        env = self.environment
        if name == self.schema.label:
            return Finding(
                Severity.ERROR,
                Check.LABEL_PRESENT,
                name,
                expected=f"no label column in {env} data",
                seen=f"the label column {name!r}",
                hint=f"drop the label from {env} data (a model must not see the answer), or "
                "validate with environment='training' if this is training data",
                count=presence.rows,
            )
        return Finding(
            Severity.ERROR,
            Check.COLUMN_NOT_IN_ENVIRONMENT,
            name,
            expected=f"no column {name!r} in {env} data",
            seen="the column",
            hint=f"drop it from {env} data, or add {env!r} to the column's environments in "
            "the schema",
            count=presence.rows,
        )

    def _column_findings(self, tally: _ColumnTally) -> list[Finding]:
        found = [self._absent(tally)] if tally.absent.batches else []
        found.extend(self._type_findings(tally))
        found.extend(_missing_findings(tally))
        if tally.below or tally.above:
            found.append(_range_finding(tally))
        if tally.unseen:
            found.append(_category_finding(tally))
        return found

    def _absent(self, tally: _ColumnTally) -> Finding:
        name = tally.rule.name
        everywhere = not tally.present.batches
        seen = (
            "no such column"
            if everywhere
            else f"absent from {tally.absent.batches} of {self.batches} batches "
            f"({tally.absent.rows:,} rows)"
        )
        if name == self.schema.label:
            return Finding(
                Severity.ERROR,
                Check.LABEL_MISSING,
                name,
                expected=f"the label column in {self.environment} data",
                seen=seen,
                hint="add the label to the data, or validate with environment='serving' if "
                "this data is for scoring",
                count=tally.absent.rows,
            )
        return Finding(
            Severity.ERROR,
            Check.MISSING_COLUMN,
            name,
            expected=f"a column of type {tally.family.value}",
            seen=seen,
            hint="add the column to the data (check its spelling), or remove its rule from "
            "the schema, or list the environments it belongs to, if it is not expected here",
            count=tally.absent.rows,
        )

    def _type_findings(self, tally: _ColumnTally) -> list[Finding]:
        family = tally.family.value
        if tally.mismatch:
            if tally.bad:
                non_null = max(tally.bad, tally.present.rows - tally.missing)
                seen = (
                    f"{', '.join(tally.mismatch)}: {tally.bad:,} of {non_null:,} values do "
                    f"not convert to {family}"
                )
            else:
                seen = ", ".join(tally.mismatch)
            return [
                Finding(
                    Severity.ERROR,
                    Check.TYPE_MISMATCH,
                    tally.rule.name,
                    expected=f"type {family}",
                    seen=seen,
                    hint="fix those values where the data is produced, or change the "
                    "column's type in the schema if it changed on purpose",
                    count=tally.bad,
                    examples=tuple(tally.bad_examples),
                )
            ]
        if tally.changed:
            return [
                Finding(
                    Severity.WARNING,
                    Check.TYPE_CHANGED,
                    tally.rule.name,
                    expected=f"type {family}",
                    seen=f"{', '.join(tally.changed)} ({sum(tally.changed.values()):,} rows)",
                    hint="the values were checked after conversion; read the column with its "
                    "schema type (e.g. pyarrow.csv.ConvertOptions(column_types=...)) to "
                    "avoid this",
                    count=sum(tally.changed.values()),
                )
            ]
        return []

    def _key_findings(self) -> list[Finding]:
        key = self.schema.key
        if not key:
            return []
        column = key[0] if len(key) == 1 else None
        expected = f"each key ({', '.join(key)}) at most once"
        if self.keys is None:
            return [
                Finding(
                    Severity.INFO,
                    Check.DUPLICATE_KEY,
                    column,
                    expected=expected,
                    seen=f"not checked: {self.key_skipped}",
                    hint="fix the key columns' findings, then validate again",
                )
            ]
        result = self.keys.result()
        if not result.duplicates:
            return []
        examples = tuple(self._key_example(values) for values in result.examples)
        return [
            Finding(
                Severity.ERROR,
                Check.DUPLICATE_KEY,
                column,
                expected=expected,
                seen=f"{result.duplicates:,} of {result.rows:,} rows repeat a key seen "
                f"earlier, e.g. {', '.join(_show(e) for e in examples)}",
                hint="remove the repeated rows (e.g. keep the latest row of each key), or "
                "change the schema's key if it does not identify a row",
                count=result.duplicates,
                examples=examples,
                details=(("key", ", ".join(key)), ("rows_checked", result.rows)),
            )
        ]

    def _key_example(self, values: tuple[object, ...]) -> Scalar:
        shown = [display(f, v) for f, v in zip(self.key_families, values, strict=True)]
        if len(shown) == 1:
            return shown[0]
        return "(" + ", ".join(_show(v) for v in shown) + ")"


def _missing_findings(tally: _ColumnTally) -> list[Finding]:
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


def _range_finding(tally: _ColumnTally) -> Finding:
    rule, family = tally.rule, tally.family
    low, high = display(family, tally.low), display(family, tally.high)
    if tally.low is not None and tally.high is not None:
        expected = f"values from {_show(low)} to {_show(high)}"
    elif tally.low is not None:
        expected = f"values of at least {_show(low)}"
    else:
        expected = f"values of at most {_show(high)}"
    seen_min, seen_max = display(family, tally.seen_min), display(family, tally.seen_max)
    count = tally.below + tally.above
    return Finding(
        Severity.ERROR,
        Check.OUT_OF_RANGE,
        rule.name,
        expected=expected,
        seen=f"{count:,} values outside ({tally.below:,} below, {tally.above:,} above); "
        f"min seen {_show(seen_min)}, max seen {_show(seen_max)}",
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


def _category_finding(tally: _ColumnTally) -> Finding:
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


def _show(value: Scalar) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return repr(value)
    return str(value)
