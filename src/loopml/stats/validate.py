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

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from loopml.domain.data_schema import INFER_COMMAND, DataSchema, Scalar
from loopml.domain.validation_report import Check, Finding, Severity, ValidationReport
from loopml.stats.batches import cores
from loopml.stats.column_tally import (
    ColumnTally,
    Presence,
    category_finding,
    missing_findings,
    range_finding,
    show,
)
from loopml.stats.columns import (
    display,
    iter_batches,
)
from loopml.stats.keys import DuplicateKeyFinder, key_form

if TYPE_CHECKING:
    import pyarrow as pa

PARALLEL_ROWS = 1 << 18  # a batch this long has its columns counted on several threads
MAX_WORKERS = 4
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


def _add_column(work: tuple[ColumnTally, pa.Array]) -> pa.Array | None:
    tally, column = work
    return tally.add(column)


def _workers() -> int:
    return min(MAX_WORKERS, cores())


class _Validation:
    """One validation run: the tallies of every column and of the key."""

    def __init__(self, schema: DataSchema, environment: str) -> None:
        self.schema = schema
        self.environment = environment
        self.expected = [r for r in schema.columns if schema.expects(r, environment)]
        self.tallies = {r.name: ColumnTally(r) for r in self.expected}
        self.not_here = {r.name for r in schema.columns} - set(self.tallies)
        self.unexpected: dict[str, Presence] = {}  # in the schema, not in this environment
        self.extra: dict[str, Presence] = {}  # not in the schema at all
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
        work: list[tuple[ColumnTally, pa.Array]] = []
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
            presence = group.setdefault(name, Presence())
            presence.batches += 1
            presence.rows += rows
            presence.types.add(str(batch.schema.field(at).type))
        self._add_keys(key_values)

    def _count_columns(
        self, work: list[tuple[ColumnTally, pa.Array]], rows: int
    ) -> list[pa.Array | None]:
        """Each column's :meth:`ColumnTally.add`, in order; on threads for a long batch.

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

    def _not_in_environment(self, name: str, presence: Presence) -> Finding:
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

    def _column_findings(self, tally: ColumnTally) -> list[Finding]:
        found = [self._absent(tally)] if tally.absent.batches else []
        found.extend(self._type_findings(tally))
        found.extend(missing_findings(tally))
        if tally.below or tally.above:
            found.append(range_finding(tally))
        if tally.unseen:
            found.append(category_finding(tally))
        return found

    def _absent(self, tally: ColumnTally) -> Finding:
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

    def _type_findings(self, tally: ColumnTally) -> list[Finding]:
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
                f"earlier, e.g. {', '.join(show(e) for e in examples)}",
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
        return "(" + ", ".join(show(v) for v in shown) + ")"
