"""Drift of a numeric or datetime column: Wasserstein-1, PSI and the share of missing values.

**The reference distribution** is rebuilt from the profile's 101 quantiles as a piecewise
model of its CDF: between two consecutive distinct quantiles ``u_k < u_k+1`` lies the
reference mass ``M_k`` (1% for a continuous column), spread evenly, except that

- the two outermost intervals (1% of the mass between the minimum and the 1% quantile, and
  between 99% and the maximum) are often much wider than the rest: their mass follows a
  generalised Pareto tail fitted to the next quantile spacings, which keeps a long tail
  (incomes, latencies) from looking like drift;
- where no reference value can lie inside an interval (integers one apart, or a profile
  whose every distinct value is a quantile), the CDF is flat there, at the share below the
  interval's right end, which is exact when that end is a histogram edge (``bin_counts``).

A value repeated in the quantiles is a point mass; the 1% next to it is part point mass,
part spread in unknown shares, and spreading it evenly integrates like half and half: the
unbiased guess.

**One pass over the window.** Each value ``x`` is placed among the distinct quantiles
(:class:`CellFinder`: ``searchsorted``, three times faster); per cell the tally keeps the
count and the sum of ``x - left knot`` (``bincount`` with weights), plus the count and sum
beyond the reference min and max. These sums give ``integral(F_window)`` over every
interval exactly, and the model gives ``integral(F_reference)``, so::

    W1 = sum_k |integral_k(F_w - F_r)| + sum(min - x; x < min) / n + sum(x - max; x > max) / n

which is the Wasserstein-1 distance ``integral |F_w - F_r|`` up to sign changes of
``F_w - F_r`` inside one interval (the sum is a lower bound; a shift has no such sign
change). Divided by the reference's standard deviation (its interquartile range when the
std is 0 or unknown), 0.1 reads "the distribution moved by a tenth of a standard
deviation". The sums also give the window's mean; one more pass gives its variance.

**PSI and the test** use the profile's histogram (bins at the 5% quantiles, exact reference
counts): the profile's edges are among its quantiles, so each cell falls in one bin and the
bins cost nothing more. The chi-square test also sees the counts below the reference
minimum and above its maximum (the reference has none there). A reference with infinite
values at an end models its finite values between its finite quantiles, without tail fit.

Values: NaN and null are missing, as in the profile. +-inf are values at the extremes: they
count in the PSI bins and the test, but the Wasserstein distance, the mean and the std are
over finite values (``infinite_delta`` reports the change of their share). Datetimes,
dates, times and durations are compared as integers in the reference's unit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.drift import DriftMethod
from loopml.domain.errors import InvalidInput
from loopml.stats.accumulators import combine_moments
from loopml.stats.drift_measures import (
    Finding,
    Floats,
    Ints,
    chi_square,
    missing_finding,
    population_stability,
)
from loopml.stats.profile import ColumnProfile


class NumericReference:
    """What a numeric or datetime column's drift is measured against (see module doc)."""

    def __init__(self, profile: ColumnProfile) -> None:
        self.name = profile.name
        self.kind: str = profile.kind
        self.unit = profile.unit
        self.rows = profile.rows
        self.missing = profile.nulls
        self.count = profile.count  # non-missing values, infinite ones included
        self.infinite = profile.infinite
        self.mean = profile.mean
        self.std = profile.std
        quantiles = np.asarray(profile.quantiles, dtype=np.float64)
        self.neg_inf = bool(quantiles.size and quantiles[0] == -math.inf)
        self.pos_inf = bool(quantiles.size and quantiles[-1] == math.inf)
        self.spread = _spread(profile.std, quantiles)
        self.edges = np.asarray(profile.bin_edges, dtype=np.float64)
        self.bins = np.asarray(profile.bin_counts, dtype=np.int64)
        self.knots, self.integrals = _model(profile, quantiles, self.edges, self.bins)
        k = self.knots.size
        # Window cells: 0 below the min, j in 1..k-1 in [u_j-1, u_j), k at the max, k+1 above.
        self.search = np.append(self.knots, np.nextafter(self.knots[-1], math.inf)) if k else None
        self.base = np.concatenate((self.knots[:1], self.knots, self.knots[-1:])) if k else None
        self.finder = CellFinder(self.search) if self.search is not None else None
        self.cell_bin = self._cell_bins()

    def _cell_bins(self) -> Ints | None:
        """The PSI bin of each window cell, or None when the bins need a pass of their own."""
        if self.search is None or not self.bins.size:
            return None
        if not np.isin(self.edges, self.knots).all():
            return None  # e.g. an infinite edge: bin the values directly
        lefts = np.concatenate(([-math.inf], self.search))
        return np.searchsorted(self.edges, lefts, side="right").astype(np.int64)

    def tally(self) -> NumericTally:
        return NumericTally(self)

    def __getstate__(self) -> dict[str, Any]:
        # The finder's table (16 KB) is rebuilt in a millisecond: windows travel light.
        return {k: v for k, v in self.__dict__.items() if k != "finder"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.finder = CellFinder(self.search) if self.search is not None else None

    def fingerprint(self) -> bytes:
        parts = [self.knots, self.integrals, self.edges, self.bins.astype(np.float64)]
        return b"".join(np.ascontiguousarray(p).tobytes() for p in parts)


class NumericTally:
    """The window's side of one numeric column: mergeable sums, one pass per batch."""

    def __init__(self, reference: NumericReference) -> None:
        self.reference = reference
        cells = reference.knots.size + 2
        self.rows = 0
        self.missing = 0
        self.neg_inf = 0
        self.pos_inf = 0
        self.finite = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations (Chan et al.'s merge)
        self.counts = np.zeros(cells, dtype=np.int64)
        self.offsets = np.zeros(cells, dtype=np.float64)
        self.bins = np.zeros(reference.bins.size, dtype=np.int64)  # without cell_bin only
        self._own_bins = reference.cell_bin is None and reference.bins.size > 0

    def update(self, array: pa.Array) -> None:
        self.rows += len(array)
        values = _numbers(array, self.reference)
        with np.errstate(over="ignore", invalid="ignore"):
            total = float(values.sum())
        if not math.isfinite(total):  # NaN (missing), inf, or a sum that overflowed
            nan = np.isnan(values)
            self.missing += int(nan.sum())
            if self._own_bins:
                self._bin(values[~nan])
            infinite = np.isinf(values)
            if infinite.any():
                self.neg_inf += int(np.count_nonzero(values[infinite] < 0))
                self.pos_inf += int(np.count_nonzero(values[infinite] > 0))
            values = values[~(nan | infinite)]
        elif self._own_bins:
            self._bin(values)
        if values.size:
            self._add(values)

    def _bin(self, values: Floats) -> None:
        found = np.searchsorted(self.reference.edges, values, side="right")
        self.bins += np.bincount(found, minlength=self.bins.size)

    def _add(self, values: Floats) -> None:
        finder, base = self.reference.finder, self.reference.base
        if finder is None or base is None:  # no finite reference value: moments only
            self._add_moments(values)
            return
        cells = finder.cells(values)
        offsets = values - base.take(cells)
        counts = np.bincount(cells, minlength=self.counts.size)
        sums = np.bincount(cells, weights=offsets, minlength=self.counts.size)
        self.counts += counts
        self.offsets += sums
        n = int(values.size)
        mean = float(counts @ base + sums.sum()) / n
        np.subtract(values, mean, out=offsets)
        self._combine(n, mean, float(np.square(offsets, out=offsets).sum()))

    def _add_moments(self, values: Floats) -> None:
        mean = float(values.mean())
        self._combine(int(values.size), mean, float(np.square(values - mean).sum()))

    def _combine(self, n: int, mean: float, m2: float) -> None:
        self.finite, self.mean, self.m2 = combine_moments(
            (self.finite, self.mean, self.m2), (n, mean, m2)
        )

    def merge(self, other: NumericTally) -> None:
        self.rows += other.rows
        self.missing += other.missing
        self.neg_inf += other.neg_inf
        self.pos_inf += other.pos_inf
        self.counts += other.counts
        self.offsets += other.offsets
        self.bins += other.bins
        self._combine(other.finite, other.mean, other.m2)

    # the measures ----------------------------------------------------------------------
    def wasserstein(self) -> float | None:
        """Wasserstein-1 between the window's finite values and the reference model, raw."""
        reference = self.reference
        if not self.finite or reference.search is None:
            return None
        n = self.finite
        counts, offsets = self.counts, self.offsets
        widths = np.diff(reference.knots)
        before = np.cumsum(counts)[: widths.size]  # values below each inner interval's start
        inside = counts[1 : widths.size + 1]
        window = (before * widths + inside * widths - offsets[1 : widths.size + 1]) / n
        inner = float(np.abs(window - reference.integrals).sum())
        return inner + float(offsets[-1] - offsets[0]) / n  # beyond the max, below the min

    def histogram(self) -> tuple[Ints, Ints] | None:
        """``(reference, window)`` counts per PSI bin; None without reference bins."""
        reference = self.reference
        if not reference.bins.size:
            return None
        if reference.cell_bin is None:
            return reference.bins, self.bins
        window = np.bincount(reference.cell_bin, weights=self.counts, minlength=self.bins.size)
        window = window.astype(np.int64)
        window[0] += self.neg_inf
        window[-1] += self.pos_inf
        return reference.bins, window

    def test_cells(self) -> tuple[Ints, Ints] | None:
        """The chi-square table: the PSI bins plus the cells beyond the reference range."""
        histogram = self.histogram()
        if histogram is None or self.reference.cell_bin is None:
            return histogram
        reference, window = histogram
        # With infinite reference values at an end, its first (last) finite quantile need not
        # be its smallest (largest) finite value: no empty reference cell on that side.
        below = 0 if self.reference.neg_inf else int(self.counts[0]) + self.neg_inf
        above = 0 if self.reference.pos_inf else int(self.counts[-1]) + self.pos_inf
        window = window.copy()
        window[0] -= below
        window[-1] -= above
        return (
            np.concatenate(([0], reference, [0])),
            np.concatenate(([below], window, [above])),
        )

    def findings(self) -> tuple[list[Finding], dict[str, float]]:
        reference = self.reference
        found: list[Finding] = []
        measures: dict[str, float] = {}
        values = self.rows - self.missing
        cells = self.test_cells()
        p_value = chi_square(*cells) if cells is not None and values else 1.0
        moved = self._moved()
        distance = self.wasserstein()
        if distance is not None:
            score = _normalised(distance, reference.spread)
            measures["wasserstein"] = score
            found.append(Finding(DriftMethod.WASSERSTEIN, score, p_value, moved))
        histogram = self.histogram()
        if histogram is not None and values and reference.count:
            psi = population_stability(*histogram)
            measures["psi"] = psi
            found.append(Finding(DriftMethod.PSI, psi, p_value, self._biggest_bin(*histogram)))
        if found:
            measures["p_distribution"] = p_value
        found.append(
            missing_finding(reference.rows, reference.missing, self.rows, self.missing, measures)
        )
        infinite = self.neg_inf + self.pos_inf
        if reference.infinite or infinite:
            measures["infinite_delta"] = infinite / max(values, 1) - reference.infinite / max(
                reference.count, 1
            )
        return found, measures

    def _moved(self) -> str:
        reference = self.reference
        std = math.sqrt(self.m2 / self.finite) if self.finite else None
        mean = self.mean if self.finite else None
        text = (
            f"mean {self._value(reference.mean)} -> {self._value(mean)}, "
            f"std {self._spread(reference.std)} -> {self._spread(std)}"
        )
        values = self.rows - self.missing
        infinite = self.neg_inf + self.pos_inf
        if reference.infinite or infinite:
            text += (
                f", infinite {reference.infinite / max(reference.count, 1):.1%} -> "
                f"{infinite / max(values, 1):.1%}"
            )
        return text

    def _biggest_bin(self, reference: Ints, window: Ints) -> str:
        r = reference / max(int(reference.sum()), 1)
        w = window / max(int(window.sum()), 1)
        b = int(np.argmax(np.abs(w - r)))
        edges = self.reference.edges
        if b == 0:
            where = f"below {self._value(float(edges[0]))}"
        elif b == edges.size:
            where = f"at or above {self._value(float(edges[-1]))}"
        else:
            where = f"in [{self._value(float(edges[b - 1]))}, {self._value(float(edges[b]))})"
        return f"values {where}: {r[b]:.1%} -> {w[b]:.1%}"

    def _value(self, value: float | None) -> str:
        return _format_value(value, self.reference.kind, self.reference.unit)

    def _spread(self, value: float | None) -> str:
        return _format_spread(value, self.reference.kind, self.reference.unit)


class CellFinder:
    """``searchsorted(knots, x, side="right")`` for many values, about 3x faster.

    Binary search costs ~40 ms per million values (a mispredicted branch per step). Here a
    table over a uniform grid between the 1% and 99% knots gives, for each value, a count
    of knots surely at or below it; a few vectorised steps ``i += knots[i] <= x`` then
    finish the count exactly. The steps needed are the most knots near one grid cell, known
    in advance; past ``MAX_STEPS`` (knots bunched far tighter than the grid) the finder
    falls back to ``searchsorted``. Exact for every finite value: float rounding of the
    grid cell only changes the starting count, never the result.
    """

    GRID = 4096
    MAX_STEPS = 8  # each step costs about 3 ms per million values, binary search 40

    def __init__(self, knots: Floats) -> None:
        self.knots = knots
        self.padded = np.append(knots, math.inf)  # knots[i] for i == len(knots) stops
        low = knots[1] if knots.size > 3 else knots[0]
        high = knots[-3] if knots.size > 3 else knots[-1]
        self.low = float(low)
        self.scale = self.GRID / float(high - low) if high > low else 0.0
        self.steps = self.MAX_STEPS + 1
        if self.scale > 0 and math.isfinite(self.scale):
            grid = self.low + np.arange(-1, self.GRID + 3) / self.scale  # cells -1 .. GRID+2
            at_or_below = np.searchsorted(knots, grid, side="right")
            # A value in cell g (0..GRID) lies in [grid[g], grid[g + 1]) up to rounding, so
            # above grid[g - 1]: start from the knots at or below that, and step over at
            # most those up to grid[g + 2]. The outer cells also hold all beyond the grid.
            self.start = at_or_below[: self.GRID + 1].astype(np.int32)
            self.start[0] = 0
            reach = at_or_below[3:]
            reach[-1] = knots.size
            self.steps = int((reach - self.start).max())

    def cells(self, values: Floats) -> Any:
        """The count of knots at or below each (finite) value."""
        if self.steps > self.MAX_STEPS:
            return np.searchsorted(self.knots, values, side="right")
        with np.errstate(over="ignore"):  # beyond +-1e308: clipped to the outer cells
            scaled = (values - self.low) * self.scale
        np.clip(scaled, 0, self.GRID, out=scaled)
        found = self.start.take(scaled.astype(np.int32))
        for _ in range(self.steps):
            found += self.padded.take(found) <= values
        return found


def _normalised(distance: float, spread: float) -> float:
    if spread > 0:
        return distance / spread
    return 0.0 if distance == 0 else math.inf  # a constant reference: any move is infinite


def _spread(std: float | None, quantiles: Floats) -> float:
    if std is not None and std > 0 and math.isfinite(std):
        return std
    if quantiles.size == 101:
        iqr = float(quantiles[75] - quantiles[25])
        if iqr > 0 and math.isfinite(iqr):
            return iqr
    return 0.0


def _model(
    profile: ColumnProfile, quantiles: Floats, edges: Floats, bins: Ints
) -> tuple[Floats, Floats]:
    """Distinct finite quantiles ``u`` and the reference's ``integral F`` between each pair."""
    finite = np.flatnonzero(np.isfinite(quantiles))
    if not finite.size:
        return np.zeros(0), np.zeros(0)
    values = quantiles[finite]
    levels = finite / (quantiles.size - 1)
    if levels[-1] > levels[0]:  # infinite values at an end: finite values share the model
        levels = (levels - levels[0]) / (levels[-1] - levels[0])
    knots, first, repeats = np.unique(values, return_index=True, return_counts=True)
    if knots.size < 2:
        return knots, np.zeros(0)
    low = levels[first]  # cumulative share just below each knot...
    high = levels[first + repeats - 1]  # ...and at it (atoms hold the difference)
    widths = np.diff(knots)
    mass = low[1:] - high[:-1]
    # Distance from each interval's right knot back to the centre of its mass: the middle.
    # Next to an atom the mass is part atom, part spread, in unknown shares: half and half
    # is the unbiased guess, and it integrates like an even spread.
    back = widths / 2
    exact = not profile.infinite and np.array_equal(finite, np.arange(quantiles.size))
    if exact:
        _fit_tails(back, widths, quantiles, knots)
    integrals = widths * high[:-1] + mass * back
    if exact and bins.sum() > 0:
        # Where no reference value can lie inside an interval, F is flat on it at the
        # share below its right end, which the histogram gives exactly if that is an edge.
        empty = (widths <= 1) if _integer_valued(profile) else np.zeros(widths.size, bool)
        empty |= _is_discrete(profile, knots)
        below = _share_below(knots, edges, bins)[1:]
        known = empty & ~np.isnan(below)
        integrals[known] = widths[known] * below[known]
    return knots, integrals


def _fit_tails(back: Floats, widths: Floats, q: Floats, knots: Floats) -> None:
    """Centre the outermost 1% on a generalised Pareto tail fitted to the next quantiles.

    The interval from the 99% quantile to the maximum (and from the minimum to 1%) is often
    far wider than its neighbours, and where its mass sits decides its integral. The tail's
    shape ``xi`` comes from how quantile spacings grow towards it (``2**xi`` per halving of
    the tail share: 0 for exponential tails, about 1/3 for Student's t with 3 degrees of
    freedom, negative for bounded ones), its scale from the last spacing.
    """
    if q.size != 101 or knots.size < 4:
        return
    top = _tail_excess(q[99] - q[98], q[98] - q[96], q[100] - q[99])
    if top is not None and q[96] < q[98] < q[99] < q[100] and q[99] == knots[-2]:
        back[-1] = widths[-1] - top
    low = _tail_excess(q[2] - q[1], q[4] - q[2], q[1] - q[0])
    if low is not None and q[0] < q[1] < q[2] < q[4] and q[1] == knots[1]:
        back[0] = low


def _tail_excess(last: float, before: float, width: float) -> float | None:
    """Mean distance beyond the 1% quantile of a generalised Pareto tail cut at ``width``.

    ``last`` is the spacing between the 1% and 2% quantiles of the tail, ``before`` the
    one between 2% and 4%; None when they do not determine a tail.
    """
    if not (last > 0 and before > 0 and width > 0):
        return None
    xi = min(max(math.log2(last / before), -2.0), 2.0)
    # q(1%) - q(2%) = scale / xi * (1 - 2**-xi): solve for the scale at the 1% quantile.
    scale = last * xi / (1 - 2.0**-xi) if abs(xi) > 1e-9 else last / math.log(2)
    z = 1 + xi * width / scale
    if z <= 0:  # a bounded tail ending before the maximum: the whole tail fits
        return min(scale / (1 - xi), width)
    # Survival G(t) = z(t) ** (-1/xi); mean of t given t < width, from its integral.
    if abs(xi) < 1e-9:
        tail_left = math.exp(-width / scale)
        area = scale * (1 - tail_left)
    else:
        tail_left = z ** (-1 / xi)
        if abs(xi - 1) < 1e-9:
            area = scale * math.log(z)
        else:
            area = scale / (1 - xi) * (1 - z ** (1 - 1 / xi))
    if tail_left >= 1:
        return width / 2
    excess = (area - width * tail_left) / (1 - tail_left)
    return min(max(excess, 0.0), width)


def _is_discrete(profile: ColumnProfile, knots: Floats) -> bool:
    return bool(
        profile.quantiles_exact
        and profile.distinct_exact
        and profile.distinct == knots.size
        and not profile.infinite
    )


def _integer_valued(profile: ColumnProfile) -> bool:
    """Whole numbers only: integer columns, and dates (whole days)."""
    return profile.dtype.startswith(("int", "uint", "date32"))


def _share_below(knots: Floats, edges: Floats, bins: Ints) -> Floats:
    """The exact share of values below each knot that is a histogram edge (NaN elsewhere)."""
    below = np.full(knots.size, np.nan)
    if not edges.size:
        return below
    shares = np.cumsum(bins)[: edges.size] / bins.sum()  # below each edge
    at = np.searchsorted(knots, edges)
    ok = at < knots.size
    ok[ok] &= knots[at[ok]] == edges[ok]
    below[at[ok]] = shares[ok]
    return below


def _numbers(array: pa.Array, reference: NumericReference) -> Floats:
    """The window's values as float64 in the reference's unit, missing as NaN."""
    dtype = array.type
    if pa.types.is_null(dtype):
        return np.full(len(array), np.nan)
    if pa.types.is_dictionary(dtype):
        array = array.dictionary_decode()
        dtype = array.type
    if _is_clock(dtype):
        array = _in_unit(array, reference.unit)
        array = array.view(pa.int64() if array.type.bit_width == 64 else pa.int32())
    elif not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype)):
        try:
            array = pc.cast(array, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInput(
                f"column {reference.name!r} is {reference.kind} in the reference profile but "
                f"{dtype} in the window, and its values do not convert to numbers ({exc}); "
                "cast the column to a numeric type, or leave it out of the reference"
            ) from exc
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


def _is_clock(dtype: pa.DataType) -> bool:
    t = pa.types
    return bool(
        t.is_timestamp(dtype) or t.is_date(dtype) or t.is_time(dtype) or t.is_duration(dtype)
    )


def _in_unit(array: pa.Array, unit: str | None) -> pa.Array:
    """Cast a clock array to the reference's epoch unit so integers mean the same time."""
    dtype = array.type
    t = pa.types
    if unit is None:
        return array
    if unit == "D":
        target = pa.date32()
    elif t.is_date64(dtype) and unit == "ms":
        target = dtype
    elif t.is_timestamp(dtype) or t.is_date(dtype):
        target = pa.timestamp(unit, getattr(dtype, "tz", None))
    elif t.is_duration(dtype):
        target = pa.duration(unit)
    else:  # time of day
        target = pa.time32(unit) if unit in ("s", "ms") else pa.time64(unit)
    if dtype == target:
        return array
    try:
        return pc.cast(array, target, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(
            f"a {dtype} column cannot be compared with a reference in unit {unit!r} ({exc}); "
            f"cast it to {target} first"
        ) from exc


_SECONDS = {"D": 86_400.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def _format_value(value: float | None, kind: str, unit: str | None) -> str:
    if value is None or not math.isfinite(value):
        return "-" if value is None else str(value)
    if kind == "datetime" and unit in _SECONDS:
        stamp = np.int64(round(value)).astype(f"datetime64[{unit}]")
        text = str(np.datetime_as_string(stamp, unit="s" if unit != "D" else "D"))
        return text.replace("T00:00:00", "")
    return _number(value)


def _format_spread(value: float | None, kind: str, unit: str | None) -> str:
    if value is None or not math.isfinite(value):
        return "-" if value is None else str(value)
    if kind == "datetime" and unit in _SECONDS:
        seconds = value * _SECONDS[unit]
        for name, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
            if seconds >= size:
                return f"{seconds / size:.3g} {name}"
        return f"{seconds:.3g} s"
    return _number(value)


def _number(value: float) -> str:
    """Three significant digits, whole numbers with thousands separators from 1,000."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def integral_check(reference: NumericReference) -> float | None:
    """The model's mean (max minus the integral of F): should be close to the profile's."""
    if reference.knots.size < 2:
        return None
    return float(reference.knots[-1] - reference.integrals.sum())
