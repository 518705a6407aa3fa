"""Per-column accumulators behind :class:`~loopml.stats.profile.ProfileBuilder`.

One accumulator per column, chosen from the Arrow type by :func:`accumulator_for`. Each one
takes Arrow arrays (``update``), absorbs another accumulator of the same column (``merge``)
and returns the fields of a :class:`~loopml.stats.profile.ColumnProfile` (``finish``),
without ever holding more than a bounded state: exact value counts while a column has at most
``exact_limit`` distinct values, then the sketches of :mod:`loopml.stats.sketches`.

Numbers take one of three shapes, chosen so that nothing is rounded: int64 (every integer
type but uint64, and dates, times, durations, timestamps as integers in their unit), uint64,
or float64 (floats and decimals). Each batch is sorted once (a batch that arrives sorted is
only checked); the sorted run gives the min, the max, the exact counts and, past the limit,
the sketch's input without another sort, and the distinct-count sketch hashes each value of
the run once. Integers spanning a short range are tallied with bincount instead of sorted,
before and after the column becomes a sketch: the sketch takes the values with their counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.errors import InvalidInput
from loopml.stats.sketches import (
    DistinctSketch,
    HeavyHitters,
    QuantileSketch,
    hash_strings,
    sum_counts_by_key,
)

PERCENTILES = 100  # quantiles are stored at 0, 1, ..., 100 percent

Kind = Literal["numeric", "datetime", "categorical", "boolean", "other"]
Number = int | float
Array = npt.NDArray[Any]
# Shared empty states: every update replaces them with new arrays, never writes into them.
# An empty array built without pa.array(), which imports pandas (0.3 s) on first use.
_NO_KEYS = pa.nulls(0, pa.large_string())
_NO_COUNTS: Array = np.zeros(0, dtype=np.int64)
_NO_COUNTS.flags.writeable = False
_PROBE = 1024  # values looked at to judge whether a float column repeats


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    """How precise a profile is; builders merge only with builders of the same config."""

    exact_limit: int = 10_000  # distinct values counted exactly per column before sketching
    quantile_k: int = 4096  # KLL size: rank error ~ 1/k; memory ~ 8k bytes per column
    distinct_precision: int = 14  # HyperLogLog registers 2**p: error 1.04/sqrt(2**p)
    max_categories: int = 1000  # categories listed in a profile (heavy hitters keep twice)
    histogram_bins: int = 20  # bins cut at the 1/bins quantiles, before deduplication
    seed: int = 0  # the sketches' compaction coin: same data, same order -> same profile

    def __post_init__(self) -> None:
        bounds = {
            "exact_limit": (1, 10_000_000),
            "quantile_k": (8, 1 << 20),
            "distinct_precision": (4, 18),
            "max_categories": (1, 1_000_000),
            "histogram_bins": (2, PERCENTILES),
            "seed": (0, 2**63 - 1),
        }
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidInput(
                    f"ProfileConfig.{name} must be an integer from {low} to {high}, got "
                    f"{value!r}; leave it out to use the default"
                )


def accumulator_for(dtype: pa.DataType, config: ProfileConfig) -> ColumnAccumulator:
    """The accumulator for a column of this Arrow type; its ``kind`` names the profile kind."""
    types = pa.types
    if types.is_boolean(dtype):
        return BooleanAccumulator()
    if (
        types.is_integer(dtype)
        or types.is_floating(dtype)
        or types.is_decimal(dtype)
        or _is_clock(dtype)
    ):
        return NumericAccumulator(dtype, config)
    if _is_text(dtype) or (
        types.is_dictionary(dtype)
        and (_is_text(dtype.value_type) or types.is_integer(dtype.value_type))
    ):
        return CategoricalAccumulator(config)
    return ColumnAccumulator()


def _is_text(dtype: pa.DataType) -> bool:
    types = pa.types
    return bool(
        types.is_string(dtype) or types.is_large_string(dtype) or types.is_string_view(dtype)
    )


class ColumnAccumulator:
    """Count and nulls: all that is kept for kind ``other``, and the base of the others."""

    kind: Kind = "other"

    def __init__(self) -> None:
        self.count = 0
        self.nulls = 0

    def update(self, array: pa.Array) -> None:
        self.nulls += array.null_count
        self.count += len(array) - array.null_count

    def merge(self, other: ColumnAccumulator) -> None:
        self.count += other.count
        self.nulls += other.nulls

    def finish(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count, "nulls": self.nulls}


class BooleanAccumulator(ColumnAccumulator):
    """Counts of true and false: exact and mergeable by addition."""

    kind: Kind = "boolean"

    def __init__(self) -> None:
        super().__init__()
        self.trues = 0

    def update(self, array: pa.Array) -> None:
        super().update(array)
        self.trues += pc.sum(array).as_py() or 0

    def merge(self, other: ColumnAccumulator) -> None:
        other = cast(BooleanAccumulator, other)  # the builder pairs columns of equal types
        super().merge(other)
        self.trues += other.trues

    def finish(self) -> dict[str, Any]:
        pairs = [("true", self.trues), ("false", self.count - self.trues)]
        top = tuple(sorted((p for p in pairs if p[1]), key=lambda p: (-p[1], p[0])))
        return {
            **super().finish(),
            "distinct": len(top),
            "mean": self.trues / self.count if self.count else None,
            "top": top,
        }


@dataclass(slots=True)
class _CategorySketch:
    heavy: HeavyHitters
    distinct: DistinctSketch


class CategoricalAccumulator(ColumnAccumulator):
    """Exact category counts up to ``exact_limit`` categories, then heavy hitters + HLL."""

    kind: Kind = "categorical"

    def __init__(self, config: ProfileConfig) -> None:
        super().__init__()
        self.config = config
        self.keys: pa.Array = _NO_KEYS  # all categories with their counts, while exact
        self.counts: Array = _NO_COUNTS
        self.sketch: _CategorySketch | None = None

    def update(self, array: pa.Array) -> None:
        keys, counts = _category_counts(array)
        n = int(counts.sum())
        self.count += n
        self.nulls += len(array) - n  # also nulls among a dictionary's values
        self._add(keys, counts)

    def merge(self, other: ColumnAccumulator) -> None:
        other = cast(CategoricalAccumulator, other)
        super().merge(other)
        if other.sketch is None:
            self._add(other.keys, other.counts)
            return
        sketch = self.sketch or self._to_sketch()
        sketch.heavy.merge(other.sketch.heavy)
        sketch.distinct.merge(other.sketch.distinct)

    def finish(self) -> dict[str, Any]:
        limit = self.config.max_categories
        if self.sketch is None:
            keys, counts, error = self.keys, self.counts, 0
            distinct, complete = len(keys), len(keys) <= limit
        else:
            keys, counts = self.sketch.heavy.keys, self.sketch.heavy.counts
            error, complete = self.sketch.heavy.error, False
            distinct = _estimate(self.sketch.distinct, self.config.exact_limit, self.count)
        order = pc.sort_indices(
            pa.table({"n": counts, "key": keys}),
            sort_keys=[("n", "descending"), ("key", "ascending")],
        )[:limit]
        top = tuple(
            zip(keys.take(order).to_pylist(), counts[order.to_numpy()].tolist(), strict=True)
        )
        return {
            **super().finish(),
            "distinct": distinct,
            "distinct_exact": self.sketch is None,
            "top": top,
            "top_exact": self.sketch is None,
            "top_complete": complete,
            "top_error": error,
            "other_count": self.count - sum(n for _, n in top),
        }

    def _add(self, keys: pa.Array, counts: Array) -> None:
        if self.sketch is None:
            self.keys, self.counts = sum_counts_by_key(
                pa.concat_arrays([self.keys, keys]), np.concatenate([self.counts, counts])
            )
            if len(self.keys) > self.config.exact_limit:
                self._to_sketch()
            return
        self.sketch.distinct.add(hash_strings(keys))
        self.sketch.heavy.add(keys, counts)

    def _to_sketch(self) -> _CategorySketch:
        sketch = _CategorySketch(
            HeavyHitters(2 * self.config.max_categories),
            DistinctSketch(self.config.distinct_precision),
        )
        sketch.distinct.add(hash_strings(self.keys))
        sketch.heavy.add(self.keys, self.counts)
        self.keys, self.counts, self.sketch = _NO_KEYS, _NO_COUNTS, sketch
        return sketch


def _category_counts(array: pa.Array) -> tuple[pa.Array, Array]:
    """The batch's distinct non-null categories as large strings, with their counts."""
    encoded = pa.types.is_dictionary(array.type)
    if encoded:
        # Counting indices avoids hashing strings: the dictionary already did that.
        indices = array.indices.drop_null() if array.indices.null_count else array.indices
        per_entry = np.bincount(indices.to_numpy(), minlength=len(array.dictionary))
        present = np.flatnonzero(per_entry)
        keys, counts = array.dictionary.take(pa.array(present)), per_entry[present]
    else:
        tallies = pc.value_counts(array)
        keys, counts = tallies.field("values"), tallies.field("counts").to_numpy()
    if keys.null_count:
        valid = keys.is_valid()
        keys, counts = keys.filter(valid), counts[valid.to_numpy(zero_copy_only=False)]
    if encoded:  # Arrow allows a value twice in a dictionary; summaries need distinct keys
        keys, counts = sum_counts_by_key(keys, counts)
    if keys.type != pa.large_string():
        keys = keys.cast(pa.large_string())
    return keys, counts.astype(np.int64, copy=False)


def _estimate(sketch: DistinctSketch, exact_limit: int, count: int) -> int:
    # The column left exact mode with more than exact_limit values and has at most `count`:
    # clamping keeps the estimate's noise from ever contradicting either fact.
    return min(max(round(sketch.estimate()), exact_limit + 1), count)


@dataclass(slots=True)
class _NumberSketch:
    quantiles: QuantileSketch
    distinct: DistinctSketch


class NumericAccumulator(ColumnAccumulator):
    """Numbers and datetimes as int64/uint64/float64: moments, then exact counts or sketches."""

    def __init__(self, dtype: pa.DataType, config: ProfileConfig) -> None:
        super().__init__()
        self.config = config
        self.kind = (
            "datetime" if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype) else "numeric"
        )
        self.dtype = dtype
        self.unit = _unit(dtype)
        self.target = _number_type(dtype)
        self.nans = 0
        self.infinite = 0
        self.finite = 0  # finite values behind mean and m2
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations from the mean (Chan et al.)
        self.low: Number | None = None
        self.high: Number | None = None
        self.values: Array = np.zeros(0, dtype=_NUMPY_TYPES[self.target])  # while exact
        self.counts: Array = np.zeros(0, dtype=np.int64)
        self.sketch: _NumberSketch | None = None

    def update(self, array: pa.Array) -> None:
        self.nulls += array.null_count
        if array.null_count:
            array = array.drop_null()
        values = _as_numbers(array, self.target).to_numpy(zero_copy_only=False)
        finite = values
        # Overflow to inf and inf - inf are expected here and handled; numpy must not warn.
        with np.errstate(over="ignore", invalid="ignore"):
            total = float(np.sum(values, dtype=np.float64))
            if not math.isfinite(total) and values.dtype.kind == "f":
                nan = np.isnan(values)
                if nan.any():
                    self.nans += int(nan.sum())
                    values = values[~nan]
                inf = np.isinf(values)
                self.infinite += int(inf.sum())
                finite = values[~inf]
                total = float(np.sum(finite))
            self._add_moments(finite.size, total, finite)
        if values.size and not self._add_small_range(values) and not self._add_repeated(values):
            self._add_sorted(_sorted(values))

    def merge(self, other: ColumnAccumulator) -> None:
        other = cast(NumericAccumulator, other)
        super().merge(other)
        self.nans += other.nans
        self.infinite += other.infinite
        with np.errstate(over="ignore", invalid="ignore"):
            self._combine(other.finite, other.mean, other.m2)
        if other.low is not None and other.high is not None:
            self._extend_range(other.low, other.high)
        if other.sketch is None:
            if self.sketch is None:
                self._add_counts(other.values, other.counts)
            else:
                self.sketch.quantiles.add_weighted(other.values, other.counts)
                self.sketch.distinct.add_numbers(other.values)
            return
        sketch = self.sketch or self._to_sketch()
        sketch.quantiles.merge(other.sketch.quantiles)
        sketch.distinct.merge(other.sketch.distinct)

    def finish(self) -> dict[str, Any]:
        common = {
            "kind": self.kind,
            "count": self.count,
            "nulls": self.nulls + self.nans,
            "nans": self.nans,
            "infinite": self.infinite,
            "unit": self.unit,
        }
        if not self.count or self.low is None or self.high is None:
            return {**common, "distinct": 0}
        if self.sketch is None:
            values, cumulative = self.values, np.cumsum(self.counts)
            distinct, exact = int(values.size), True
        else:
            values, cumulative = self.sketch.quantiles.sorted_view()
            distinct = _estimate(self.sketch.distinct, self.config.exact_limit, self.count)
            exact = not self.sketch.quantiles.compacted
        quantiles = _ranked(values, cumulative, self.count, PERCENTILES).tolist()
        quantiles[0], quantiles[-1] = self.low, self.high  # exact even when sketched
        steps = self.config.histogram_bins
        edges = np.unique(_ranked(values, cumulative, self.count, steps)[1:-1])
        below = np.concatenate(([0], _count_below(values, cumulative, edges), [self.count]))
        std = math.sqrt(self.m2 / self.finite) if self.finite else None
        dated = self.kind == "datetime"
        return {
            **common,
            "distinct": distinct,
            "distinct_exact": self.sketch is None,
            "min": _iso(self.low, self.dtype) if dated else self.low,
            "max": _iso(self.high, self.dtype) if dated else self.high,
            "mean": self.mean if self.finite and math.isfinite(self.mean) else None,
            "std": std if std is not None and math.isfinite(std) else None,
            "quantiles": tuple(quantiles),
            "quantiles_exact": exact,
            "bin_edges": tuple(edges.tolist()),
            "bin_counts": tuple(np.diff(below).tolist()),
        }

    def _add_moments(self, n: int, total: float, finite: Array) -> None:
        if n:
            mean = total / n
            deviations = finite - mean
            # Squares summed by numpy (pairwise), not np.dot: OpenBLAS wakes its threads for
            # a dot product and costs 30x the CPU time on batches of this size.
            self._combine(n, mean, float(np.square(deviations, out=deviations).sum()))

    def _combine(self, n: int, mean: float, m2: float) -> None:
        self.finite, self.mean, self.m2 = combine_moments(
            (self.finite, self.mean, self.m2), (n, mean, m2)
        )

    def _extend_range(self, low: Number, high: Number) -> None:
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def _add_small_range(self, values: Array) -> bool:
        """Count integers spanning a short range with bincount, which is 5x cheaper than a
        sort and gives the sketch its values with their counts, each hashed once.

        Returns False, having done nothing, when the shortcut does not apply.
        """
        if values.dtype.kind not in "iu":
            return False
        low, high = values.min(), values.max()
        if int(high) - int(low) >= 4 * values.size:
            return False
        tally = np.bincount((values - low).astype(np.intp))
        present = np.flatnonzero(tally)
        self._add_tally(present.astype(values.dtype) + low, tally[present])
        return True

    def _add_repeated(self, values: Array) -> bool:
        """Count floats that take few distinct values (measurements rounded to a grid,
        scores, prices) by hashing them, about 4x cheaper than a sort. Whether they do is
        judged on the first :data:`_PROBE` values, then on the tally: a column that turns
        out varied after all is sorted instead (weighted adds of many distinct values
        would give the quantile sketch levels that cost it accuracy), at about 3.5x the
        cost of the sort alone.

        Returns False, having done nothing, when the shortcut does not apply.
        """
        if values.dtype.kind != "f" or values.size < 4 * _PROBE:
            return False
        if len(pc.unique(pa.array(values[:_PROBE]))) > _PROBE // 16:
            return False
        # + 0.0 turns -0.0 into 0.0: one value, as for the sort, where they compare equal
        tally = pc.value_counts(pa.array(values + 0.0))
        if len(tally) > values.size // 16:
            return False
        distinct = tally.field("values").to_numpy()
        order = np.argsort(distinct)
        self._add_tally(distinct[order], tally.field("counts").to_numpy()[order])
        return True

    def _add_tally(self, distinct: Array, counts: Array) -> None:
        """Add values given as their distinct values, in ascending order, and counts."""
        self.count += int(counts.sum())
        self._extend_range(distinct[0].item(), distinct[-1].item())
        if self.sketch is None:
            self._add_counts(distinct, counts)  # becomes a sketch past the exact limit
        else:
            self.sketch.quantiles.add_weighted(distinct, counts)
            self.sketch.distinct.add_numbers(distinct)

    def _add_sorted(self, ordered: Array) -> None:
        self.count += int(ordered.size)
        self._extend_range(ordered[0].item(), ordered[-1].item())
        first = np.empty(ordered.size, dtype=bool)  # first of a run of equal values
        first[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        if self.sketch is None and np.count_nonzero(first) <= self.config.exact_limit:
            starts = np.flatnonzero(first)
            self._add_counts(ordered[starts], np.diff(np.append(starts, ordered.size)))
            return
        sketch = self.sketch or self._to_sketch()
        sketch.quantiles.update_sorted(ordered)
        sketch.distinct.add_numbers(ordered[first])  # each value once: registers keep maxima

    def _add_counts(self, values: Array, counts: Array) -> None:
        if self.values.size:
            values = np.concatenate((self.values, values))
            counts = np.concatenate((self.counts, counts))
            order = np.argsort(values, kind="stable")
            values, counts = values[order], counts[order]
            starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
            values, counts = values[starts], np.add.reduceat(counts, starts)
        self.values, self.counts = values, counts
        if values.size > self.config.exact_limit:
            self._to_sketch()

    def _to_sketch(self) -> _NumberSketch:
        config = self.config
        sketch = _NumberSketch(
            QuantileSketch(config.quantile_k, self.values.dtype, config.seed),
            DistinctSketch(config.distinct_precision),
        )
        sketch.quantiles.add_weighted(self.values, self.counts)
        sketch.distinct.add_numbers(self.values)
        # Fresh empty arrays, not slices: a slice would keep the old buffer alive (and pickled).
        self.values = np.zeros(0, dtype=self.values.dtype)
        self.counts, self.sketch = _NO_COUNTS, sketch
        return sketch


def _sorted(values: Array) -> Array:
    """``values`` in ascending order (without NaN): a column that arrives sorted (an id, a
    time) costs one comparison pass instead of a sort."""
    if values.size > 1 and np.all(values[1:] >= values[:-1]):
        return values
    return np.sort(values)


def _ranked(values: Array, cumulative: Array, n: int, steps: int) -> Array:
    """The values at ranks ceil(i * n / steps), i = 0..steps, in integer arithmetic."""
    targets = (np.arange(steps + 1, dtype=np.int64) * n + steps - 1) // steps
    found = np.searchsorted(cumulative, targets, side="left")
    return values[np.minimum(found, values.size - 1)]


def _count_below(values: Array, cumulative: Array, edges: Array) -> Array:
    at = np.searchsorted(values, edges, side="left")
    return np.where(at > 0, cumulative[np.maximum(at - 1, 0)], 0)


def _is_clock(dtype: pa.DataType) -> bool:
    types = pa.types
    return bool(
        types.is_timestamp(dtype)
        or types.is_date(dtype)
        or types.is_time(dtype)
        or types.is_duration(dtype)
    )


_NUMPY_TYPES = {pa.float64(): np.float64, pa.int64(): np.int64, pa.uint64(): np.uint64}


def _number_type(dtype: pa.DataType) -> pa.DataType:
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return pa.float64()
    if pa.types.is_uint64(dtype):
        return pa.uint64()  # int64 would overflow and float64 would round
    return pa.int64()


def _as_numbers(array: pa.Array, target: pa.DataType) -> pa.Array:
    if _is_clock(array.type):
        array = array.view(pa.int64() if array.type.bit_width == 64 else pa.int32())
    return array if array.type == target else array.cast(target)


def _unit(dtype: pa.DataType) -> str | None:
    if pa.types.is_date32(dtype):
        return "D"
    if pa.types.is_date64(dtype):
        return "ms"
    return str(dtype.unit) if _is_clock(dtype) else None


def _iso(value: Number, dtype: pa.DataType) -> str:
    if pa.types.is_date32(dtype):
        return str(np.datetime64(int(value), "D"))
    if pa.types.is_date64(dtype):
        return str(np.datetime_as_string(np.datetime64(int(value), "ms"), unit="D"))
    stamp = np.datetime64(int(value), dtype.unit)
    return str(np.datetime_as_string(stamp, timezone="UTC" if dtype.tz else "naive"))


def combine_moments(
    a: tuple[int, float, float], b: tuple[int, float, float]
) -> tuple[int, float, float]:
    """Two (count, mean, sum of squared deviations) summaries as one: Chan et al.'s
    parallel formula, equal to one pass over both parts up to float rounding."""
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    if not n_b:
        return a
    if not n_a:
        return b
    total = n_a + n_b
    delta = mean_b - mean_a
    return total, mean_a + delta * n_b / total, m2_a + m2_b + delta * delta * n_a * n_b / total
