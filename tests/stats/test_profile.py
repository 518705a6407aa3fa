"""Column profiles: exact statistics, sketch error bounds, merging, JSON and bad input."""

from __future__ import annotations

import itertools
import json
import math
import pickle
from collections import Counter
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.domain.errors import InvalidInput, NotFound
from loopml.stats.profile import (
    ColumnProfile,
    ProfileBuilder,
    ProfileConfig,
    TableProfile,
    profile_table,
)
from loopml.stats.sketches import DistinctSketch, QuantileSketch, hash_numbers, hash_strings

BATCH = 65_536


def build(table: pa.Table, parts: int = 1, config: ProfileConfig | None = None) -> TableProfile:
    """Profile `table` split into `parts` builders (each fed 64k batches), then merged."""
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    builders = []
    for start, stop in itertools.pairwise(bounds):
        builder = ProfileBuilder(table.schema, config)
        for batch in table.slice(start, stop - start).to_batches(BATCH):
            builder.update(batch)
        builders.append(builder)
    for other in builders[1:]:
        builders[0].merge(other)
    return builders[0].finish()


def rank_error(quantiles: Any, data: np.ndarray) -> float:
    """Largest distance between each stored percentile's true rank range and its target."""
    ordered = np.sort(data)
    values = np.asarray(quantiles, dtype=ordered.dtype)
    below = np.searchsorted(ordered, values, side="left") / ordered.size
    at_or_below = np.searchsorted(ordered, values, side="right") / ordered.size
    targets = np.arange(101) / 100
    return float(np.max(np.maximum(0.0, np.maximum(below - targets, targets - at_or_below))))


def percentiles(data: np.ndarray) -> tuple[Any, ...]:
    """numpy's ``inverted_cdf`` percentiles in integer arithmetic: the value at rank
    ceil(i * n / 100). (numpy computes i / 100 * n in floats, which can land one rank up.)"""
    ordered = np.sort(data)
    ranks = -(-np.arange(101) * ordered.size // 100)
    return tuple(ordered[np.maximum(ranks - 1, 0)].tolist())


def json_round_trip(profile: TableProfile) -> TableProfile:
    return TableProfile.from_dict(json.loads(json.dumps(profile.to_dict(), allow_nan=False)))


# --- exact statistics ---------------------------------------------------------------------


def test_moments_and_counts_match_numpy_over_many_batches() -> None:
    rng = np.random.default_rng(1)
    n = 300_000
    floats = rng.normal(50.0, 7.0, n)
    float_nulls = rng.random(n) < 0.1
    floats[rng.random(n) < 0.05] = np.nan
    ints = rng.integers(-(10**12), 10**12, n)
    int_nulls = rng.random(n) < 0.2
    table = pa.table(
        {
            "f": pa.array(floats, mask=float_nulls),
            "i": pa.array(ints, mask=int_nulls),
        }
    )
    profile = build(table)

    f = profile.get_column("f")
    values = floats[~float_nulls]
    nan = np.isnan(values)
    values = values[~nan]
    assert (f.kind, f.count, f.nulls, f.nans) == (
        "numeric",
        values.size,
        n - values.size,
        nan.sum(),
    )
    assert (f.min, f.max) == (values.min(), values.max())
    assert f.mean == pytest.approx(values.mean(), rel=1e-12)
    assert f.std == pytest.approx(values.std(), rel=1e-12)

    i = profile.get_column("i")
    kept = ints[~int_nulls]
    assert (i.count, i.nulls, i.min, i.max) == (kept.size, int_nulls.sum(), kept.min(), kept.max())
    assert isinstance(i.min, int) and isinstance(i.quantiles[50], int)
    assert i.mean == pytest.approx(kept.mean(), rel=1e-12)
    assert i.std == pytest.approx(kept.std(), rel=1e-12)
    assert all(c.count + c.nulls == profile.rows == n for c in profile.columns)


def test_small_columns_are_exact_like_numpy_inverted_cdf() -> None:
    rng = np.random.default_rng(2)
    values = np.round(rng.normal(size=5_001), 2)  # ~700 distinct values with ties
    column = profile_table(pa.table({"x": values})).get_column("x")
    assert column.quantiles == percentiles(values)
    numpy_says = np.quantile(values, np.arange(101) / 100, method="inverted_cdf")
    assert np.array_equal(column.quantiles, numpy_says)  # n = 5001: no float rounding tie
    assert column.quantiles_exact and column.distinct_exact
    assert column.distinct == np.unique(values).size
    # The stored edges bin fresh data exactly as the reference counts say.
    bins = np.searchsorted(column.bin_edges, values, side="right")
    assert column.bin_counts == tuple(np.bincount(bins, minlength=len(column.bin_edges) + 1))
    assert math.isclose(sum(column.bin_fractions) + column.null_fraction, 1.0)


def test_low_cardinality_integers_stay_exact_however_many_rows() -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(1_000, 1_040, 500_000)
    column = build(pa.table({"k": values}), parts=3).get_column("k")
    assert column.distinct == 40 and column.distinct_exact and column.quantiles_exact
    assert column.quantiles == percentiles(values)
    bins = np.searchsorted(column.bin_edges, values, side="right")
    assert column.bin_counts == tuple(np.bincount(bins, minlength=len(column.bin_edges) + 1))


def test_floats_taking_few_values_are_exact_like_numpy_whichever_way_they_are_counted() -> None:
    # Rounded measurements: a batch whose first values repeat is tallied by hashing, one
    # whose first values differ is sorted; both must give numpy's exact answers, with -0.0
    # and 0.0 one value and infinities values.
    rng = np.random.default_rng(21)
    grid = np.round(rng.normal(20, 8, 300_000), 0)
    grid[rng.choice(grid.size, 500, replace=False)] = -0.0
    grid[rng.choice(grid.size, 7, replace=False)] = np.inf
    varied_start = np.concatenate([rng.normal(size=1_024), grid[:20_000]])
    for values in (grid, varied_start):
        column = build(pa.table({"t": values}), parts=2).get_column("t")
        assert column.quantiles_exact and column.distinct_exact
        assert column.distinct == np.unique(values).size  # np.unique also merges the zeros
        assert column.quantiles == percentiles(values)
        assert (column.count, column.min, column.max) == (values.size, values.min(), values.max())
        bins = np.searchsorted(column.bin_edges, values, side="right")
        assert column.bin_counts == tuple(np.bincount(bins, minlength=len(column.bin_edges) + 1))


def test_floats_that_repeat_at_first_and_vary_later_are_still_summarised_right() -> None:
    # The first values of a window look repeated, so it is hashed first; the tally shows
    # it varied, so it is sorted after all, and its sketch must stay within bounds (the
    # weighted adds a tally would make of 130,000 distinct values cost it accuracy).
    rng = np.random.default_rng(22)
    values = np.concatenate([np.full(2_000, 1.5), rng.normal(size=200_000)])
    column = build(pa.table({"x": values})).get_column("x")
    assert not column.distinct_exact
    assert column.distinct == pytest.approx(np.unique(values).size, rel=0.025)
    assert rank_error(column.quantiles, values) <= 0.001
    assert (column.count, column.min, column.max) == (values.size, values.min(), values.max())


# --- merging ------------------------------------------------------------------------------

# Magnitudes whose squares overflow float64 (beyond ~1e154) make mean/std None, at a point
# that depends on how the rows were split; test_values_too_large_for_float_sums covers them.
cells = st.one_of(
    st.none(),
    st.floats(-1e100, 1e100),
    st.sampled_from([math.inf, -math.inf, math.nan, -0.0]),
    st.integers(-5, 5).map(float),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    numbers=st.lists(cells, max_size=60),
    words=st.lists(st.sampled_from(["a", "b", "c", None]), min_size=60, max_size=60),
    flags=st.lists(st.sampled_from([True, False, None]), min_size=60, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=4),
)
def test_merged_partial_builders_equal_one_builder(
    numbers: list[float | None], words: list[str | None], flags: list[bool | None], cuts: list[int]
) -> None:
    n = len(numbers)
    table = pa.table(
        {
            "x": pa.array(numbers, type=pa.float64()),
            "s": pa.array(words[:n], type=pa.string()),
            "b": pa.array(flags[:n], type=pa.bool_()),
        }
    )
    config = ProfileConfig(exact_limit=8, quantile_k=8)  # small: merges cross into sketches
    whole = ProfileBuilder(table.schema, config)
    whole.update(table)
    bounds = sorted({0, n, *(min(c, n) for c in cuts)})
    merged = ProfileBuilder(table.schema, config)
    for start, stop in itertools.pairwise(bounds):
        part = ProfileBuilder(table.schema, config)
        part.update(table.slice(start, stop - start))
        merged.merge(part)
    one, many = whole.finish(), merged.finish()
    assert one.rows == many.rows == n
    for a, b in zip(one.columns, many.columns, strict=True):
        exact_fields = ("count", "nulls", "nans", "infinite", "min", "max", "top", "other_count")
        assert [getattr(a, f) for f in exact_fields] == [getattr(b, f) for f in exact_fields]
        if a.distinct_exact and b.distinct_exact:
            assert a.distinct == b.distinct
        if a.quantiles_exact and b.quantiles_exact:
            assert (a.quantiles, a.bin_edges, a.bin_counts) == (
                b.quantiles,
                b.bin_edges,
                b.bin_counts,
            )
        # Sums round differently when split differently: compare at the data's own scale.
        scale = max((abs(v) for v in numbers if v is not None and math.isfinite(v)), default=0)
        for field in ("mean", "std"):
            left, right = getattr(a, field), getattr(b, field)
            assert (left is None) == (right is None)
            if left is not None:
                assert right == pytest.approx(left, rel=1e-9, abs=1e-12 * (1 + scale))


def test_builders_survive_pickling_for_distributed_engines() -> None:
    rng = np.random.default_rng(4)
    table = pa.table(
        {"x": rng.normal(size=40_000), "s": rng.integers(0, 30_000, 40_000).astype(str)}
    )
    left, right = ProfileBuilder(table.schema), ProfileBuilder(table.schema)
    left.update(table.slice(0, 20_000))
    right.update(table.slice(20_000))
    shipped: ProfileBuilder = pickle.loads(pickle.dumps(right))
    left.merge(shipped)
    assert left.finish() == build(table, parts=2)


def test_same_data_in_the_same_batches_gives_the_same_profile() -> None:
    rng = np.random.default_rng(5)
    table = pa.table({"x": rng.normal(size=200_000)})
    assert build(table, parts=2) == build(table, parts=2)


def _in_pieces(table: pa.Table, seed: int) -> pa.Table:
    """The same rows as ``table``, held in record batches cut at random rows."""
    rng = np.random.default_rng(seed)
    cuts = sorted({0, table.num_rows, *rng.integers(1, table.num_rows, 12).tolist()})
    return pa.Table.from_batches(
        [
            b
            for start, stop in itertools.pairwise(cuts)
            for b in table.slice(start, stop - start).to_batches()
        ]
    )


def test_a_profile_depends_on_the_rows_not_on_the_batches_that_brought_them() -> None:
    # A dataset's chunks are the same rows whether a CSV or a Parquet file brought them in
    # batches of other sizes; sketches must not see where those batches were cut.
    rng = np.random.default_rng(13)
    n = 40_000
    table = pa.table(
        {
            "f": rng.normal(size=n),
            "i": rng.integers(0, 10**9, n),
            "s": rng.integers(0, 9_000, n).astype(str),
            "b": rng.random(n) < 0.3,
        }
    )
    config = ProfileConfig(exact_limit=100, quantile_k=64, max_categories=20)
    expected = profile_table(table, config)
    for seed in range(3):
        pieces = _in_pieces(table, seed)
        assert pieces.column("f").num_chunks > 5
        assert profile_table(pieces, config) == expected
    assert not expected.get_column("f").quantiles_exact  # the sketches were used


def test_integers_over_a_short_range_past_the_exact_limit_are_sketched_from_counts() -> None:
    # 0..59,999, small ones seen far more often: too many values to count exactly, few
    # enough to tally (bincount) in every batch, before and after the column became a sketch.
    rng = np.random.default_rng(14)
    values = (rng.random(500_000) ** 3 * 60_000).astype(np.int64)
    column = build(pa.table({"k": values}), parts=2).get_column("k")
    assert not column.distinct_exact and not column.quantiles_exact
    assert (column.count, column.min, column.max) == (values.size, values.min(), values.max())
    assert column.distinct == pytest.approx(np.unique(values).size, rel=0.025)
    assert rank_error(column.quantiles, values) <= 0.001  # each value with its weight
    everything = DistinctSketch(14)  # the sketch saw exactly the set of values
    everything.add(hash_numbers(np.unique(values)))
    assert column.distinct == round(everything.estimate())
    # The same values as floats take the sort; both summarise the same distribution.
    floats = build(pa.table({"k": values.astype(np.float64)}), parts=2).get_column("k")
    assert rank_error(floats.quantiles, values) <= 0.001


def test_a_column_that_arrives_sorted_profiles_like_the_same_values_shuffled() -> None:
    rng = np.random.default_rng(15)
    ordered = np.sort(np.round(rng.normal(size=300_000), 3))  # with runs of equal values
    shuffled = rng.permutation(ordered)
    first = build(pa.table({"x": ordered})).get_column("x")
    second = build(pa.table({"x": shuffled})).get_column("x")
    assert (first.min, first.max, first.count) == (second.min, second.max, second.count)
    assert first.mean == pytest.approx(second.mean, rel=1e-12)
    assert first.distinct == second.distinct  # a register holds a maximum: order is moot
    assert rank_error(first.quantiles, ordered) <= 0.001
    assert rank_error(second.quantiles, ordered) <= 0.001


# --- sketches: error bounds ---------------------------------------------------------------


def test_quantiles_of_a_million_values_merged_from_partitions_are_within_0_1_percent() -> None:
    rng = np.random.default_rng(6)
    values = rng.lognormal(0.0, 1.5, 1_000_000)
    column = build(pa.table({"x": values}), parts=4).get_column("x")
    assert not column.quantiles_exact
    assert rank_error(column.quantiles, values) <= 0.001
    assert (column.quantiles[0], column.quantiles[100]) == (values.min(), values.max())
    # Live data binned on the stored edges lands where the reference fractions say (PSI).
    bins = np.searchsorted(column.bin_edges, values, side="right")
    truth = np.bincount(bins, minlength=len(column.bin_edges) + 1) / values.size
    assert np.max(np.abs(np.asarray(column.bin_fractions) - truth)) <= 0.002
    assert len(column.bin_edges) == 19


def test_quantile_sketch_memory_stays_bounded() -> None:
    sketch = QuantileSketch(1024, np.dtype(np.float64), seed=0)
    rng = np.random.default_rng(7)
    for _ in range(40):
        sketch.update_sorted(np.sort(rng.random(BATCH)))
    assert sketch.n == 40 * BATCH
    assert sketch.size <= 3 * 1024
    _, cumulative = sketch.sorted_view()
    assert cumulative[-1] == sketch.n  # compaction never loses weight


def test_quantile_sketch_compaction_is_unbiased() -> None:
    # A small sketch makes the error large enough to see its sign: over 30 seeds the rank of
    # the median is off by about 1% either way, and on average by far less (random offsets).
    # Always keeping the same item of each pair would bias it by about 2%.
    errors = []
    for seed in range(30):
        values = np.random.default_rng(seed).random(100_000)
        sketch = QuantileSketch(64, np.dtype(np.float64), seed)
        for start in range(0, values.size, 10_000):
            sketch.update_sorted(np.sort(values[start : start + 10_000]))
        items, cumulative = sketch.sorted_view()
        estimate = cumulative[np.searchsorted(items, 0.5, side="right") - 1] / values.size
        errors.append(estimate - np.mean(values <= 0.5))
    assert np.max(np.abs(errors)) < 0.05
    assert abs(np.mean(errors)) < 0.01


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(np.random.default_rng(8).normal(size=1_000_000), id="floats"),
        pytest.param(np.arange(1_000_000, dtype=np.int64) * 7, id="sequential-ints"),
    ],
)
def test_distinct_estimate_on_a_million_values_is_within_2_5_percent(values: np.ndarray) -> None:
    column = build(pa.table({"x": values}), parts=2).get_column("x")
    assert not column.distinct_exact
    assert column.distinct == pytest.approx(1_000_000, rel=0.025)


def test_distinct_strings_estimate_and_hash_independence_from_batches() -> None:
    keys = pa.array(np.arange(300_000)).cast(pa.string())
    column = build(pa.table({"s": keys}), parts=3).get_column("s")
    assert not column.distinct_exact
    assert column.distinct == pytest.approx(300_000, rel=0.025)
    # A string hashes the same alone, in a slice, as large_string, and when over 64 bytes.
    words = pa.array(["", "a", "abcdefgh", "abcdefghi", "é" * 40, "x" * 100, "x" * 99])
    whole = hash_strings(words)
    assert list(hash_strings(words.slice(3))) == list(whole[3:])
    assert list(hash_strings(words.cast(pa.large_string()))) == list(whole)
    assert len(set(whole.tolist())) == len(words)


def test_hyperloglog_is_exact_enough_when_small_and_merges_like_a_union() -> None:
    left, right = DistinctSketch(14), DistinctSketch(14)
    left.add(hash_numbers(np.arange(0, 60_000, dtype=np.int64)))
    right.add(hash_numbers(np.arange(40_000, 100_000, dtype=np.int64)))
    left.merge(right)
    assert left.estimate() == pytest.approx(100_000, rel=0.025)
    empty = DistinctSketch(14)
    assert empty.estimate() == 0.0
    empty.add(hash_numbers(np.array([1.0, -0.0, 0.0, 1.0])))
    assert round(empty.estimate()) == 2


def test_distinct_is_exact_up_to_the_limit_then_flagged_approximate() -> None:
    at_limit = profile_table(pa.table({"x": np.arange(10_000) * 0.5}))
    past_limit = profile_table(pa.table({"x": np.arange(10_001) * 0.5}))
    assert (at_limit.columns[0].distinct, at_limit.columns[0].distinct_exact) == (10_000, True)
    column = past_limit.columns[0]
    # Approximate, yet clamped to what is known for sure: more than the limit, at most count.
    assert not column.distinct_exact and column.distinct == 10_001
    assert not column.quantiles_exact  # 10,001 values do not fit a sketch of k = 4096
    # Each flag stands for itself: a sketch that never compacted still gives exact quantiles.
    values = np.arange(3_000) * 0.25
    small = profile_table(pa.table({"x": values}), ProfileConfig(exact_limit=100)).columns[0]
    assert not small.distinct_exact and small.quantiles_exact
    assert small.quantiles == percentiles(values)


# --- categories ---------------------------------------------------------------------------


def test_top_categories_are_exact_on_small_cardinality() -> None:
    rng = np.random.default_rng(9)
    words = np.array([f"cat_{i:02d}" for i in range(50)])[rng.zipf(1.5, 200_000) % 50]
    mask = rng.random(words.size) < 0.01
    table = pa.table({"s": pa.array(words, mask=mask)})
    column = build(table, parts=3).get_column("s")
    expected = Counter(words[~mask].tolist())
    assert column.kind == "categorical"
    assert dict(column.top) == expected
    assert [n for _, n in column.top] == sorted(expected.values(), reverse=True)
    assert (column.nulls, column.distinct, column.other_count) == (mask.sum(), 50, 0)
    assert column.top_exact and column.top_complete and column.distinct_exact

    capped = build(table, config=ProfileConfig(max_categories=3)).get_column("s")
    assert capped.top == tuple(sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
    assert capped.top_exact and not capped.top_complete
    assert capped.other_count == capped.count - sum(n for _, n in capped.top)


def test_dictionary_encoded_strings_profile_like_plain_strings() -> None:
    rng = np.random.default_rng(10)
    words = pa.array(np.array(["red", "green", "blue"])[rng.integers(0, 3, 10_000)])
    plain = profile_table(pa.table({"c": words})).columns[0]
    encoded = profile_table(pa.table({"c": pc.dictionary_encode(words)})).columns[0]
    assert (encoded.kind, encoded.top, encoded.count) == ("categorical", plain.top, plain.count)
    # A null among the dictionary's values is missing too, not a category.
    odd = pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 1, 2]), pa.array(["a", None, "c"]))
    column = profile_table(pa.table({"c": odd})).columns[0]
    assert (column.count, column.nulls, column.top) == (2, 3, (("a", 1), ("c", 1)))
    # Arrow allows a value twice in a dictionary: it is still one category.
    twice = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 1]), pa.array(["a", "a", "b"]))
    column = profile_table(pa.table({"c": twice})).columns[0]
    assert (column.top, column.distinct) == ((("a", 3), ("b", 1)), 2)


def test_heavy_hitters_past_the_exact_limit_are_approximate_with_a_bound() -> None:
    rng = np.random.default_rng(11)
    rare = rng.integers(0, 60_000, 300_000).astype(str)
    heavy = np.array(["alpha", "beta", "gamma"])[rng.integers(0, 3, 100_000)]
    words = np.concatenate([rare, heavy])
    rng.shuffle(words)
    config = ProfileConfig(max_categories=50)
    column = build(pa.table({"s": words}), parts=2, config=config).get_column("s")
    truth = Counter(words.tolist())
    assert not column.top_exact and not column.top_complete and not column.distinct_exact
    assert 0 < column.top_error <= words.size / (2 * 50 + 1)
    assert {key for key, _ in column.top[:3]} == {"alpha", "beta", "gamma"}
    for key, count in column.top:
        assert truth[key] - column.top_error <= count <= truth[key]
    assert column.distinct == pytest.approx(len(truth), rel=0.025)


def test_booleans() -> None:
    column = profile_table(pa.table({"b": [True, False, True, None, True]})).columns[0]
    assert (column.kind, column.count, column.nulls, column.distinct) == ("boolean", 4, 1, 2)
    assert column.top == (("true", 3), ("false", 1)) and column.mean == 0.75


# --- kinds and edge cases -----------------------------------------------------------------


def test_datetimes_report_iso_bounds_and_epoch_statistics() -> None:
    stamps = np.array(["2024-01-01T00:00:00", "2024-03-01T12:30:00", "2023-12-31T23:59:59.5"])
    micros = stamps.astype("datetime64[us]").astype(np.int64)
    table = pa.table(
        {
            "zoned": pa.array(micros, type=pa.timestamp("us", tz="Europe/Paris")),
            "naive": pa.array(micros // 1000, type=pa.timestamp("ms")),
            "day": pa.array([19_723, None, 19_000], type=pa.date32()),
            "wait": pa.array([5, 7, None], type=pa.duration("s")),
        }
    )
    profile = json_round_trip(profile_table(table))
    zoned, naive, day, wait = profile.columns
    assert (zoned.kind, zoned.unit) == ("datetime", "us")
    assert (zoned.min, zoned.max) == ("2023-12-31T23:59:59.500000Z", "2024-03-01T12:30:00.000000Z")
    assert (naive.min, naive.max) == ("2023-12-31T23:59:59.500", "2024-03-01T12:30:00.000")
    assert zoned.mean == pytest.approx(micros.mean()) and zoned.quantiles[50] == micros[0]
    assert (day.min, day.max, day.unit, day.nulls) == ("2022-01-08", "2024-01-01", "D", 1)
    assert (wait.kind, wait.unit, wait.min, wait.max) == ("numeric", "s", 5, 7)


def test_infinities_are_values_and_nan_is_missing() -> None:
    values = [1.0, math.inf, 3.0, -math.inf, math.nan, None, 2.0]
    column = profile_table(pa.table({"x": pa.array(values, type=pa.float64())})).columns[0]
    assert (column.count, column.nulls, column.nans, column.infinite) == (5, 2, 1, 2)
    assert (column.min, column.max) == (-math.inf, math.inf)
    assert column.mean == 2.0 and column.std == pytest.approx(np.std([1.0, 3.0, 2.0]))
    assert column.quantiles[0] == -math.inf and column.quantiles[-1] == math.inf
    encoded = column.to_dict()
    assert (encoded["min"], encoded["max"], encoded["quantiles"][-1]) == ("-inf", "inf", "inf")
    assert ColumnProfile.from_dict(json.loads(json.dumps(encoded, allow_nan=False))) == column
    only_inf = profile_table(pa.table({"x": [math.inf, math.inf]})).columns[0]
    assert (only_inf.mean, only_inf.std, only_inf.count) == (None, None, 2)


def test_values_too_large_for_float_sums_do_not_crash() -> None:
    column = profile_table(pa.table({"x": [1.5e308, 1.6e308, -1.7e308]})).columns[0]
    assert column.min == -1.7e308 and column.max == 1.6e308
    assert column.mean is None or math.isfinite(column.mean)
    json.dumps(column.to_dict(), allow_nan=False)


def test_all_null_empty_and_unsupported_columns() -> None:
    table = pa.table(
        {
            "f": pa.array([None, None], type=pa.float64()),
            "s": pa.array([None, None], type=pa.string()),
            "n": pa.array([None, None], type=pa.null()),
            "blob": pa.array([b"x", None], type=pa.binary()),
            "nested": pa.array([[1], None], type=pa.list_(pa.int64())),
        }
    )
    f, s, n, blob, nested = json_round_trip(profile_table(table)).columns
    assert (f.kind, f.count, f.nulls, f.quantiles, f.mean, f.null_fraction) == (
        "numeric",
        0,
        2,
        (),
        None,
        1.0,
    )
    assert (s.kind, s.count, s.top, s.distinct) == ("categorical", 0, (), 0)
    assert (n.kind, n.nulls) == ("other", 2)
    assert (blob.kind, blob.count, blob.nulls) == ("other", 1, 1)
    assert (nested.kind, nested.count) == ("other", 1)

    empty = profile_table(table.slice(0, 0))
    assert empty.rows == 0 and all(c.count == c.nulls == 0 for c in empty.columns)
    assert empty.columns[0].bin_fractions == () and empty.columns[0].null_fraction == 0.0
    assert ProfileBuilder(table.schema).finish() == empty


def test_other_numeric_types_widen_without_losing_exactness() -> None:
    big = 2**63 + 11
    table = pa.table(
        {
            "u": pa.array([big, 3, None], type=pa.uint64()),
            "small": pa.array([-3, 4, 100], type=pa.int8()),
            "half": pa.array([0.5, 1.5, None], type=pa.float16()),
            "money": pa.array([Decimal("1.25"), Decimal("2.50"), None]),
            "clock": pa.array([3_600, 7_200, 60], type=pa.time32("s")),
        }
    )
    u, small, half, money, clock = json_round_trip(profile_table(table)).columns
    assert (u.min, u.max, u.quantiles[-1]) == (3, big, big)
    assert (small.min, small.max, small.distinct) == (-3, 100, 3)
    assert (half.min, half.max, half.mean) == (0.5, 1.5, 1.0)
    assert (money.kind, money.min, money.max) == ("numeric", 1.25, 2.5)
    assert (clock.kind, clock.unit, clock.min) == ("numeric", "s", 60)


def test_tables_with_chunks_and_reordered_columns_are_accepted() -> None:
    table = pa.concat_tables([pa.table({"a": [1, 2], "b": ["x", "y"]})] * 3)
    builder = ProfileBuilder(table.schema)
    builder.update(table)
    builder.update(table.select(["b", "a"]).to_batches()[0])
    profile = builder.finish()
    assert profile.rows == 8 and profile.get_column("a").count == 8
    assert profile.get_column("b").top == (("x", 4), ("y", 4))


# --- JSON ---------------------------------------------------------------------------------


def test_profiles_round_trip_through_json_exactly() -> None:
    rng = np.random.default_rng(12)
    n = 50_000
    floats = rng.normal(size=n)
    floats[:3] = [math.inf, -math.inf, math.nan]
    table = pa.table(
        {
            "f": floats,
            "i": rng.integers(0, 100, n),
            "big": rng.integers(0, 10**15, n),
            "s": rng.integers(0, 20_000, n).astype(str),
            "b": rng.random(n) < 0.5,
            "t": pa.array(rng.integers(0, 10**12, n), type=pa.timestamp("ms", tz="UTC")),
            "raw": pa.array([b"?"] * n),
        }
    )
    profile = build(table, parts=2)
    encoded = json.dumps(profile.to_dict(), allow_nan=False)
    assert TableProfile.from_dict(json.loads(encoded)) == profile
    assert TableProfile.from_dict(profile.to_dict()) == profile


def test_malformed_profile_dicts_are_refused_with_the_reason() -> None:
    good = profile_table(pa.table({"x": [1.0, 2.0]})).to_dict()
    with pytest.raises(InvalidInput, match="format 1, got 7"):
        TableProfile.from_dict({**good, "format": 7})
    with pytest.raises(InvalidInput, match="rows is '2', expected an int"):
        TableProfile.from_dict({**good, "rows": "2"})
    with pytest.raises(InvalidInput, match=r"column profile 'x': field 'quantiles' is None"):
        TableProfile.from_dict({**good, "columns": [{**good["columns"][0], "quantiles": None}]})
    with pytest.raises(InvalidInput, match=r"field 'count' is '2' \(str\), expected int"):
        TableProfile.from_dict({**good, "columns": [{**good["columns"][0], "count": "2"}]})
    with pytest.raises(InvalidInput, match="'top' must hold"):
        TableProfile.from_dict({**good, "columns": [{**good["columns"][0], "top": [1]}]})
    del good["columns"][0]["count"]
    with pytest.raises(InvalidInput, match=r"field 'count' is missing, expected int"):
        TableProfile.from_dict(good)
    bad_kind = {**profile_table(pa.table({"x": [1]})).to_dict()["columns"][0], "kind": "blob"}
    with pytest.raises(InvalidInput, match="has kind 'blob'"):
        ColumnProfile.from_dict(bad_kind)
    with pytest.raises(InvalidInput, match="only 'inf' and '-inf'"):
        ColumnProfile.from_dict({**bad_kind, "kind": "numeric", "mean": "nan"})
    with pytest.raises(NotFound, match=r"no column 'y'; its columns are \['x'\]"):
        profile_table(pa.table({"x": [1]})).get_column("y")


# --- bad input ----------------------------------------------------------------------------


def test_batches_with_another_schema_are_refused_naming_column_and_types() -> None:
    builder = ProfileBuilder(pa.schema({"a": pa.int64(), "b": pa.string()}))
    with pytest.raises(InvalidInput, match=r"column 'a' is int64 in this profile but double"):
        builder.update(pa.table({"a": [1.5], "b": ["x"]}))
    with pytest.raises(InvalidInput, match=r"missing \['b'\], unexpected \['c'\]"):
        builder.update(pa.table({"a": [1], "c": ["x"]}))
    with pytest.raises(InvalidInput, match=r"takes a pyarrow\.RecordBatch or Table, got list"):
        builder.update([1, 2])
    assert builder.rows == 0


def test_merging_incompatible_builders_is_refused() -> None:
    builder = ProfileBuilder(pa.schema({"a": pa.int64()}))
    with pytest.raises(InvalidInput, match=r"column 'a' is int64 in this profile but string"):
        builder.merge(ProfileBuilder(pa.schema({"a": pa.string()})))
    with pytest.raises(InvalidInput, match="different settings"):
        builder.merge(ProfileBuilder(pa.schema({"a": pa.int64()}), ProfileConfig(seed=1)))
    with pytest.raises(InvalidInput, match="cannot merge itself"):
        builder.merge(builder)
    with pytest.raises(InvalidInput, match="takes a ProfileBuilder, got dict"):
        builder.merge({})  # type: ignore[arg-type]


def test_bad_schemas_and_settings_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"got \['a'\] more than once"):
        ProfileBuilder(pa.schema([("a", pa.int64()), ("a", pa.string())]))
    with pytest.raises(InvalidInput, match=r"needs a pyarrow\.Schema, got dict"):
        ProfileBuilder({"a": "int"})
    with pytest.raises(InvalidInput, match=r"quantile_k must be an integer from 8 to .*, got 2"):
        ProfileConfig(quantile_k=2)
    with pytest.raises(InvalidInput, match="histogram_bins"):
        ProfileConfig(histogram_bins=True)
