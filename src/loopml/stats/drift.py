"""Drift of live data against a dataset version's profile, in one mergeable pass per window.

The reference is summarised once from the training version's stored profile; each window
of live traffic (Arrow batches, columns named like the features) is tallied in one pass;
the tally is judged against thresholds::

    reference = Reference.from_profile(profile, columns=features)  # cheap, picklable
    window = reference.window()
    for batch in batches:                 # pyarrow RecordBatch or Table
        window.update(batch)
    window.merge(other_window)            # tallied elsewhere (a Dask partition), same reference
    verdicts = window.finish(DriftThresholds())  # list[FeatureDrift], the reference's order
    dataset_score(verdicts)               # the largest severity (loopml.domain.drift)

``reference.drift(table)`` does the loop for a table in memory. Per-segment drift is the
same call on a window filtered to one segment value.

**Measures** (details in :mod:`~loopml.stats.drift_numeric`,
:mod:`~loopml.stats.drift_categorical` and :mod:`~loopml.stats.drift_measures`):

- numbers and datetimes: Wasserstein-1 distance divided by the reference's standard
  deviation, and PSI on the profile's 5% bins, both tested with a chi-square test on the
  bins;
- categories and booleans: Jensen-Shannon distance (base 2) of the category shares, tested
  with a chi-square test; the share of unseen categories when the profile lists them all;
- every column: the change in the share of missing values (null, and NaN in floats).

**The verdict.** Every measure is an *effect size* with its own threshold
(:class:`DriftThresholds`) and a p-value. A measure drifts when it is at or above its
threshold *and* its p-value is below ``alpha``: at a million rows any difference is
"significant", so the effect size decides; at fifty rows sampling noise alone moves the
effect sizes past their thresholds, and the test holds them back. The column's
:class:`~loopml.domain.drift.FeatureDrift` reports the drifted measure of largest severity
(``score / threshold``), or, when none drifted, the measure closest to its line; every
measure and p-value is in ``measures``. A window without rows, and a column absent from
the window, get method ``none``. See ``docs/drift.md`` for how the defaults were chosen.

**Mergeable.** A :class:`DriftWindow` holds counts and sums only (a few KB per column), so
windows tallied on different workers pickle, travel and merge; a merge equals one pass up
to float rounding.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import pyarrow as pa

from loopml.domain.drift import DriftMethod, FeatureDrift
from loopml.domain.errors import InvalidInput
from loopml.stats.drift_categorical import CategoryReference, CategoryTally
from loopml.stats.drift_measures import Finding, missing_finding
from loopml.stats.drift_numeric import NumericReference, NumericTally
from loopml.stats.profile import ColumnProfile, TableProfile

__all__ = ["DriftThresholds", "DriftWindow", "Reference"]


@dataclass(frozen=True, slots=True)
class DriftThresholds:
    """Where each effect size starts to count as drift, and the test's significance level.

    The defaults come from the calibration in ``docs/drift.md``: no false alarm in 100
    windows of 100,000 rows, a 0.3-std shift found at 10,000 rows, a 0.04-std shift not
    called drift at 1,000,000 rows, no alarm on 50-row windows of unchanged data.
    """

    wasserstein: float = 0.1  # Wasserstein-1 / reference std: a tenth of a std
    psi: float = 0.2  # population stability index on the 5% bins
    jensen_shannon: float = 0.1  # Jensen-Shannon distance, base 2, of category shares
    missing: float = 0.05  # absolute change in the share of missing values (5 points)
    unseen: float = 0.01  # share of window values in categories the reference never had
    alpha: float = 1e-4  # a measure drifts only if its test's p-value is below this

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(
                    f"DriftThresholds.{spec.name} must be a number, got {value!r}; leave it "
                    "out to use the default"
                )
            if not (value > 0 and math.isfinite(value)):
                raise InvalidInput(
                    f"DriftThresholds.{spec.name} must be a positive finite number, got "
                    f"{value!r}; leave it out to use the default"
                )
        if self.alpha >= 1:
            raise InvalidInput(
                f"DriftThresholds.alpha is a significance level below 1, got {self.alpha!r} "
                "(e.g. 0.001)"
            )

    def threshold(self, method: DriftMethod) -> float:
        """The threshold of ``method`` (``none`` takes the Wasserstein one: it is unused)."""
        return {
            DriftMethod.WASSERSTEIN: self.wasserstein,
            DriftMethod.PSI: self.psi,
            DriftMethod.JENSEN_SHANNON: self.jensen_shannon,
            DriftMethod.MISSING: self.missing,
            DriftMethod.UNSEEN: self.unseen,
        }.get(method, self.wasserstein)


class _OtherReference:
    """A column of kind ``other`` (binary, nested...): only its missing share is compared."""

    def __init__(self, profile: ColumnProfile) -> None:
        self.name = profile.name
        self.kind: str = profile.kind
        self.rows = profile.rows
        self.missing = profile.nulls

    def tally(self) -> _OtherTally:
        return _OtherTally(self)

    def fingerprint(self) -> bytes:
        return b"other"


class _OtherTally:
    def __init__(self, reference: _OtherReference) -> None:
        self.reference = reference
        self.rows = 0
        self.missing = 0

    def update(self, array: pa.Array) -> None:
        self.rows += len(array)
        self.missing += array.null_count

    def merge(self, other: _OtherTally) -> None:
        self.rows += other.rows
        self.missing += other.missing

    def findings(self) -> tuple[list[Finding], dict[str, float]]:
        measures: dict[str, float] = {}
        ref = self.reference
        return [missing_finding(ref.rows, ref.missing, self.rows, self.missing, measures)], measures


_ColumnReference = NumericReference | CategoryReference | _OtherReference
_Tally = NumericTally | CategoryTally | _OtherTally
_PRIMARY = {
    "numeric": DriftMethod.WASSERSTEIN,
    "datetime": DriftMethod.WASSERSTEIN,
    "categorical": DriftMethod.JENSEN_SHANNON,
    "boolean": DriftMethod.JENSEN_SHANNON,
}


class Reference:
    """The reference side of drift: one summary per column, built once from a profile."""

    def __init__(self, columns: Sequence[ColumnProfile]) -> None:
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise InvalidInput(
                f"a drift reference needs unique column names, got {twice} more than once; "
                "pass each column once"
            )
        self._columns: tuple[_ColumnReference, ...] = tuple(_reference_for(c) for c in columns)
        digest = hashlib.blake2b(digest_size=16)
        for column in self._columns:
            digest.update(f"{column.name}\x00{column.kind}\x00".encode())
            digest.update(column.fingerprint())
        self.fingerprint = digest.hexdigest()

    @classmethod
    def from_profile(
        cls,
        profile: TableProfile | Iterable[ColumnProfile],
        columns: Sequence[str] | None = None,
    ) -> Reference:
        """Summarise a stored profile (or some of its columns, in the order given).

        Raises ``NotFound`` for a name in ``columns`` that the profile does not have.
        """
        if isinstance(profile, TableProfile):
            table = profile
        elif isinstance(profile, Iterable):
            items = list(profile)
            bad = [type(c).__name__ for c in items if not isinstance(c, ColumnProfile)]
            if bad:
                raise InvalidInput(
                    f"Reference.from_profile takes a TableProfile or ColumnProfiles, got "
                    f"items of type {sorted(set(bad))}; load the version's profile first "
                    "(DatasetService.profile)"
                )
            table = TableProfile(rows=max((c.rows for c in items), default=0), columns=tuple(items))
        else:
            raise InvalidInput(
                f"Reference.from_profile takes a TableProfile, got {type(profile).__name__}; "
                "load the version's profile first (DatasetService.profile)"
            )
        if isinstance(columns, str):
            raise InvalidInput(
                f"columns must be a list of column names, got the string {columns!r}; "
                f"write columns=[{columns!r}]"
            )
        chosen = table.columns if columns is None else [table.get_column(n) for n in columns]
        return cls(chosen)

    @property
    def columns(self) -> tuple[str, ...]:
        """The reference's column names, in order."""
        return tuple(c.name for c in self._columns)

    def window(self) -> DriftWindow:
        """An empty window to tally live batches into."""
        return DriftWindow(self)

    def drift(
        self,
        data: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch],
        thresholds: DriftThresholds | None = None,
    ) -> list[FeatureDrift]:
        """Tally ``data`` (a table, a batch or batches) in a new window and judge it."""
        window = self.window()
        if isinstance(data, pa.Table | pa.RecordBatch):
            window.update(data)
        else:
            for batch in data:
                window.update(batch)
        return window.finish(thresholds)


def _reference_for(profile: ColumnProfile) -> _ColumnReference:
    if not isinstance(profile, ColumnProfile):
        raise InvalidInput(
            f"a drift reference is built from ColumnProfiles, got {type(profile).__name__}"
        )
    if profile.kind in ("numeric", "datetime"):
        return NumericReference(profile)
    if profile.kind in ("categorical", "boolean"):
        return CategoryReference(profile)
    return _OtherReference(profile)


class DriftWindow:
    """One window's tally of every reference column: ``update``, ``merge``, ``finish``."""

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self.rows = 0
        self._tallies: list[_Tally] = [c.tally() for c in reference._columns]
        self._seen = [False] * len(self._tallies)  # the column was in some batch

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add a batch of live rows; columns the reference does not know are ignored."""
        if not isinstance(batch, pa.RecordBatch | pa.Table):
            raise InvalidInput(
                f"update() takes a pyarrow.RecordBatch or Table, got {type(batch).__name__}; "
                "convert a pandas DataFrame with pyarrow.Table.from_pandas()"
            )
        names = batch.schema.names
        for i, tally in enumerate(self._tallies):
            name = tally.reference.name
            found = names.count(name)
            if not found:
                continue
            if found > 1:
                raise InvalidInput(
                    f"the batch has {found} columns named {name!r}; a window needs each "
                    "column once: rename or drop the duplicates"
                )
            column = batch.column(name)
            for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
                if len(chunk):
                    tally.update(chunk)
            self._seen[i] = True
        self.rows += batch.num_rows

    def merge(self, other: DriftWindow) -> None:
        """Absorb a window tallied elsewhere against the same reference."""
        if not isinstance(other, DriftWindow):
            raise InvalidInput(f"merge() takes a DriftWindow, got {type(other).__name__}")
        if other is self:
            raise InvalidInput("a window cannot merge itself: that would count every row twice")
        if other.reference.fingerprint != self.reference.fingerprint:
            raise InvalidInput(
                "cannot merge windows tallied against different references "
                f"({self.reference.columns} here, {other.reference.columns} in the other); "
                "build every partial window from one Reference"
            )
        for i, (mine, theirs) in enumerate(zip(self._tallies, other._tallies, strict=True)):
            mine.merge(theirs)  # type: ignore[arg-type]
            self._seen[i] = self._seen[i] or other._seen[i]
        self.rows += other.rows

    def finish(self, thresholds: DriftThresholds | None = None) -> list[FeatureDrift]:
        """One verdict per reference column, in the reference's order; the window stays usable."""
        thresholds = thresholds if thresholds is not None else DriftThresholds()
        if not isinstance(thresholds, DriftThresholds):
            raise InvalidInput(f"finish() takes DriftThresholds, got {type(thresholds).__name__}")
        return [
            self._verdict(tally, seen, thresholds)
            for tally, seen in zip(self._tallies, self._seen, strict=True)
        ]

    def _verdict(self, tally: _Tally, seen: bool, thresholds: DriftThresholds) -> FeatureDrift:
        reference = tally.reference
        primary = _PRIMARY.get(reference.kind, DriftMethod.MISSING)
        if not self.rows or not seen:
            detail = (
                "no rows in the window"
                if not self.rows
                else f"not in the window: none of its {self.rows:,} rows has this column"
            )
            return FeatureDrift(
                column=reference.name,
                kind=reference.kind,
                rows=tally.rows,
                method=DriftMethod.NONE,
                score=0.0,
                threshold=thresholds.threshold(primary),
                drifted=False,
                detail=detail,
            )
        findings, measures = tally.findings()
        judged = [(f, thresholds.threshold(f.method)) for f in findings]
        drifted = [
            (f, limit) for f, limit in judged if f.value >= limit and f.p_value < thresholds.alpha
        ]
        finding, limit = max(drifted or judged, key=lambda pair: pair[0].value / pair[1])
        return FeatureDrift(
            column=reference.name,
            kind=reference.kind,
            rows=tally.rows,
            method=finding.method,
            score=float(finding.value),
            threshold=limit,
            drifted=bool(drifted),
            p_value=float(finding.p_value),
            measures={key: float(value) for key, value in measures.items()},
            detail=finding.detail,
        )
