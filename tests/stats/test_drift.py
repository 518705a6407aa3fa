"""Drift statistics: agreement with scipy, edge cases, merging, and the verdict's rules.

The calibration against the issue's acceptance criteria (false alarms, detection, window
sizes) is in ``test_drift_calibration.py``.
"""

from __future__ import annotations

import itertools
import math
import pickle
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from loopml.domain.drift import DriftMethod, FeatureDrift, dataset_score
from loopml.domain.errors import InvalidInput, NotFound
from loopml.stats.drift import DriftThresholds, DriftWindow, Reference
from loopml.stats.drift_measures import (
    chi_square,
    fisher_exact,
    jensen_shannon,
    pooled_table,
    population_stability,
    two_proportions,
    unseen_p_value,
)
from loopml.stats.drift_numeric import CellFinder
from loopml.stats.profile import ProfileConfig, profile_table


def verdicts(
    reference_table: pa.Table, window: pa.Table, **kwargs: float
) -> dict[str, FeatureDrift]:
    reference = Reference.from_profile(profile_table(reference_table))
    thresholds = DriftThresholds(**kwargs)
    return {v.column: v for v in reference.drift(window, thresholds)}


def raw_wasserstein(verdict: FeatureDrift, reference_table: pa.Table) -> float:
    """Our Wasserstein-1 in the column's units (the score times the reference std)."""
    values = reference_table[verdict.column].to_numpy(zero_copy_only=False).astype(float)
    values = values[np.isfinite(values)]
    return verdict.measures["wasserstein"] * float(values.std())


# agreement with scipy ------------------------------------------------------------------------
def test_wasserstein_is_exact_for_a_discrete_reference() -> None:
    # Every value of the reference is a quantile and a histogram edge: the model is exact,
    # so only float rounding separates us from scipy, even for values beyond its range.
    rng = np.random.default_rng(3)
    reference = np.repeat(np.arange(6), [1200, 2000, 3000, 2000, 1000, 800])
    window = rng.choice(
        [-2, 0, 1, 2, 3, 4, 5, 9], 5000, p=[0.02, 0.1, 0.1, 0.2, 0.3, 0.2, 0.05, 0.03]
    )
    ref_table = pa.table({"x": rng.permutation(reference)})
    verdict = verdicts(ref_table, pa.table({"x": window}))["x"]
    expected = scipy.stats.wasserstein_distance(reference, window)
    assert raw_wasserstein(verdict, ref_table) == pytest.approx(expected, rel=1e-9)


def test_wasserstein_of_an_unchanged_discrete_column_is_zero() -> None:
    reference = np.repeat(np.arange(6), [1200, 2000, 3000, 2000, 1000, 800])
    verdict = verdicts(pa.table({"x": reference}), pa.table({"x": reference[::-1].copy()}))["x"]
    assert verdict.measures["wasserstein"] == pytest.approx(0.0, abs=1e-12)
    assert verdict.measures["psi"] == pytest.approx(0.0, abs=1e-12)
    assert verdict.p_value == pytest.approx(1.0)
    assert not verdict.drifted


@pytest.mark.parametrize(
    ("shape", "tolerance"),
    [
        ("normal", 0.006),
        ("uniform", 0.006),
        ("exponential", 0.01),
        ("lognormal", 0.015),
        ("student_t3", 0.015),
        ("poisson", 0.015),
    ],
)
@pytest.mark.parametrize("change", ["none", "shift_0.1", "shift_0.5", "scale_1.3"])
def test_wasserstein_matches_scipy_on_fine_grained_references(
    shape: str, tolerance: float, change: str
) -> None:
    # 200,000 reference rows: a sketched profile (101 quantiles) against scipy's exact
    # distance between the two samples. Stated tolerance, in reference standard deviations:
    # 0.006 for light tails, 0.01-0.015 for long tails and integers (the 1% beyond the
    # outermost quantiles is modelled, not known).
    rng = np.random.default_rng(5)
    draw = {
        "normal": lambda n: rng.normal(3, 2, n),
        "uniform": lambda n: rng.uniform(-1, 1, n),
        "exponential": lambda n: rng.exponential(2, n),
        "lognormal": lambda n: rng.lognormal(0, 1, n),
        "student_t3": lambda n: rng.standard_t(3, n),
        "poisson": lambda n: rng.poisson(4, n),
    }[shape]
    reference = draw(200_000)
    window = draw(50_000).astype(float)
    std = float(reference.std())
    if change.startswith("shift"):
        window += float(change.split("_")[1]) * std
    elif change == "scale_1.3":
        window = (window - window.mean()) * 1.3 + window.mean()
    ref_table = pa.table({"x": reference})
    verdict = verdicts(ref_table, pa.table({"x": window}))["x"]
    expected = scipy.stats.wasserstein_distance(reference, window) / std
    assert verdict.measures["wasserstein"] == pytest.approx(expected, abs=tolerance)


def test_jensen_shannon_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.integers(0, 50, 7).astype(float)
        q = rng.integers(0, 50, 7).astype(float)
        p[0] += 1
        q[0] += 1
        assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert jensen_shannon([3, 1], [6, 2]) == pytest.approx(0.0, abs=1e-12)


def test_categorical_verdict_measures_scipy_jensen_shannon_and_chi_square() -> None:
    names = ["sun", "rain", "snow"]
    reference = pa.table({"w": np.repeat(names, [5000, 4000, 1000])})
    window = pa.table({"w": np.repeat(names, [700, 500, 300])})
    verdict = verdicts(reference, window)["w"]
    counts = np.array([[5000, 4000, 1000], [700, 500, 300]])
    assert verdict.measures["jensen_shannon"] == pytest.approx(
        jensenshannon(counts[0], counts[1], base=2), abs=1e-12
    )
    chi2 = scipy.stats.chi2_contingency(counts, correction=False)
    assert verdict.measures["p_categories"] == pytest.approx(chi2.pvalue, rel=1e-9)
    assert verdict.detail == "'snow' 10.0% -> 20.0%"


def test_chi_square_matches_scipy_and_pools_cells_with_few_expected() -> None:
    ref = np.array([500, 400, 300, 200, 100, 50])
    win = np.array([60, 40, 35, 30, 10, 9])
    expected = scipy.stats.chi2_contingency(np.vstack((ref, win)), correction=False)
    assert chi_square(ref, win) == pytest.approx(expected.pvalue, rel=1e-9)
    # A 12-row window: each pooled cell must expect at least 5 rows in the window.
    small = np.array([3, 2, 2, 2, 2, 1])
    table = pooled_table(ref, small)
    grand = table.sum()
    assert (np.outer(table.sum(axis=1), table.sum(axis=0)) / grand).min() >= 5
    assert table.sum() == ref.sum() + small.sum()
    pooled = scipy.stats.chi2_contingency(table, correction=False)
    assert chi_square(ref, small) == pytest.approx(pooled.pvalue, rel=1e-9)
    assert chi_square(ref, [1, 0, 0, 0, 0, 0]) == 1.0  # one row: nothing left to test


@pytest.mark.parametrize(
    "table",
    [(3, 47, 0, 10_000), (0, 50, 12, 988), (5, 5, 1, 9), (1, 0, 0, 1), (30, 70, 45, 55)],
)
def test_fisher_exact_matches_scipy(table: tuple[int, int, int, int]) -> None:
    a, b, c, d = table
    expected = scipy.stats.fisher_exact([[a, b], [c, d]]).pvalue
    assert fisher_exact(a, b, c, d) == pytest.approx(expected, rel=1e-9)


def test_two_proportions_uses_chi_square_when_counts_allow() -> None:
    expected = scipy.stats.chi2_contingency([[300, 700], [150, 250]], correction=False).pvalue
    assert two_proportions(300, 1000, 150, 400) == pytest.approx(expected, rel=1e-9)
    small = scipy.stats.fisher_exact([[0, 10_000], [4, 46]]).pvalue
    assert two_proportions(0, 10_000, 4, 50) == pytest.approx(small, rel=1e-9)
    assert two_proportions(0, 100, 0, 50) == 1.0


def test_unseen_p_value_is_the_binomial_tail_at_the_good_turing_rate() -> None:
    expected = scipy.stats.binom.sf(2, 1000, 4 / 20_000)  # P(X >= 3), 4 singletons
    assert unseen_p_value(3, 1000, 4, 20_000) == pytest.approx(expected, rel=1e-9)
    # No singleton in the reference still leaves a rate of one in its size.
    assert unseen_p_value(1, 50, 0, 20_000) == pytest.approx(
        scipy.stats.binom.sf(0, 50, 1 / 20_000), rel=1e-9
    )
    assert unseen_p_value(0, 50, 0, 20_000) == 1.0


def test_psi_matches_the_formula_on_the_profile_bins() -> None:
    rng = np.random.default_rng(2)
    reference = rng.normal(0, 1, 100_000)
    window = rng.normal(0.4, 1.2, 20_000)
    profile = profile_table(pa.table({"x": reference}))
    verdict = Reference.from_profile(profile).drift(pa.table({"x": window}))[0]
    column = profile.columns[0]
    edges = np.asarray(column.bin_edges)
    r = np.asarray(column.bin_counts) / column.count
    w = np.bincount(np.searchsorted(edges, window, side="right"), minlength=r.size) / window.size
    r, w = np.maximum(r, 1e-4), np.maximum(w, 1e-4)
    assert verdict.measures["psi"] == pytest.approx(float(np.sum((w - r) * np.log(w / r))))
    assert population_stability([10, 0], [5, 5]) == pytest.approx(
        (0.5 - 1) * math.log(0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    )


# verdicts --------------------------------------------------------------------------------------
def test_a_numeric_shift_is_reported_with_means_and_stds() -> None:
    rng = np.random.default_rng(1)
    reference = pa.table({"t": rng.normal(12, 2, 50_000)})
    window = pa.table({"t": rng.normal(15, 2, 5_000)})
    verdict = verdicts(reference, window)["t"]
    assert verdict.drifted
    assert verdict.method is DriftMethod.WASSERSTEIN
    assert verdict.score == pytest.approx(1.5, abs=0.05)
    assert verdict.threshold == 0.1
    assert verdict.kind == "numeric"
    assert verdict.rows == 5_000
    assert verdict.p_value is not None and verdict.p_value < 1e-100
    assert verdict.detail == "mean 12 -> 15, std 1.99 -> 1.99"
    assert isinstance(verdict.score, float) and type(verdict.score) is float
    assert set(verdict.measures) >= {"wasserstein", "psi", "missing_delta", "p_distribution"}


def test_a_missing_rate_jump_is_drift_and_says_so() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, 20_000)
    window = rng.normal(0, 1, 2_000)
    window[:700] = np.nan  # NaN is missing, as in the profile
    verdict = verdicts(pa.table({"x": values}), pa.table({"x": window}))["x"]
    assert verdict.drifted
    assert verdict.method is DriftMethod.MISSING
    assert verdict.score == pytest.approx(0.35)
    assert verdict.detail == "missing 0.0% -> 35.0%"
    assert verdict.measures["wasserstein"] < 0.1  # the values left did not move


def test_a_category_share_shift_names_the_category() -> None:
    rng = np.random.default_rng(4)
    names = np.array(["sun", "rain", "cloud", "snow"])
    reference = pa.table({"w": names[rng.choice(4, 50_000, p=[0.5, 0.3, 0.18, 0.02])]})
    window = pa.table({"w": names[rng.choice(4, 5_000, p=[0.4, 0.24, 0.15, 0.21])]})
    verdict = verdicts(reference, window)["w"]
    assert verdict.drifted
    assert verdict.method is DriftMethod.JENSEN_SHANNON
    assert verdict.detail.startswith("'snow' 2.0% -> 2")


def test_unseen_categories_are_reported_with_an_example() -> None:
    names = np.array(["sun", "rain", "snow", "hail", "sleet"])
    reference = pa.table({"w": np.repeat(names[:3], [5000, 4000, 1000])})
    window = pa.table({"w": np.repeat(names, [450, 380, 100, 50, 20])})
    verdict = verdicts(reference, window)["w"]
    assert verdict.drifted
    assert verdict.method is DriftMethod.UNSEEN  # severity 7, above the shares' distance
    assert verdict.measures["unseen_share"] == pytest.approx(0.07)
    assert verdict.detail == "7.0% unseen, e.g. 'hail'"


def test_categories_outside_an_incomplete_top_are_pooled_not_unseen() -> None:
    names = np.array([f"c{i}" for i in range(10)])
    rng = np.random.default_rng(8)
    reference = pa.table({"w": names[rng.integers(0, 10, 20_000)]})
    profile = profile_table(reference, ProfileConfig(max_categories=3))
    assert not profile.columns[0].top_complete
    window = pa.table({"w": np.append(names[rng.integers(0, 10, 5_000)], ["brand-new"] * 5)})
    verdict = Reference.from_profile(profile).drift(window)[0]
    assert "unseen_share" not in verdict.measures  # the profile cannot tell what is new
    assert not verdict.drifted
    assert verdict.measures["jensen_shannon"] < 0.05


def test_booleans_compare_true_shares() -> None:
    rng = np.random.default_rng(9)
    reference = pa.table({"b": rng.random(20_000) < 0.3})
    window = pa.table({"b": rng.random(4_000) < 0.6})
    verdict = verdicts(reference, window)["b"]
    assert verdict.kind == "boolean"
    assert verdict.drifted
    assert verdict.method is DriftMethod.JENSEN_SHANNON
    assert verdict.detail == "'true' 30.4% -> 61.3%"  # both shares moved alike: true first
    assert "unseen_share" not in verdict.measures


def test_datetimes_drift_in_their_unit_and_read_as_dates() -> None:
    rng = np.random.default_rng(6)
    start = np.datetime64("2024-03-01T00:00:00", "us")
    days = (rng.normal(0, 5, 20_000) * 86_400e6).astype("timedelta64[us]")
    reference = pa.table({"at": pa.array(start + days)})
    same_in_ns = pa.table({"at": pa.array((start + days[:5_000]).astype("datetime64[ns]"))})
    moved = pa.table({"at": pa.array(start + days[:5_000] + np.timedelta64(10, "D"))})
    ref = Reference.from_profile(profile_table(reference))
    unchanged = ref.drift(same_in_ns)[0]
    assert unchanged.kind == "datetime"
    assert not unchanged.drifted
    assert unchanged.measures["wasserstein"] < 0.05
    verdict = ref.drift(moved)[0]
    assert verdict.drifted
    assert verdict.measures["wasserstein"] == pytest.approx(2.0, abs=0.1)  # 10 days / 5 days
    assert verdict.detail.startswith("mean 2024-0")
    assert "std 5" in verdict.detail and " d" in verdict.detail


def test_infinite_values_count_in_bins_but_not_in_the_distance() -> None:
    rng = np.random.default_rng(7)
    reference = pa.table({"x": rng.normal(0, 1, 20_000)})
    window = rng.normal(0, 1, 5_000)
    window[:1_000] = np.inf
    window[1_000:1_200] = np.nan
    verdict = verdicts(reference, pa.table({"x": window}))["x"]
    assert math.isfinite(verdict.measures["wasserstein"])
    assert verdict.measures["wasserstein"] < 0.1
    assert verdict.measures["infinite_delta"] == pytest.approx(1_000 / 4_800)
    assert verdict.measures["missing_delta"] == pytest.approx(0.04)
    assert verdict.measures["psi"] > 0.2  # a fifth of the values went to the top bin
    assert verdict.drifted
    assert verdict.method is DriftMethod.PSI
    assert verdict.detail.startswith("values at or above ")
    assert verdict.detail.endswith(": 5.0% -> 24.7%")  # 5% of 4,800, plus the 1,000 inf


def test_a_reference_with_infinite_values_models_its_finite_ones() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(0, 1, 20_000)
    values[:300] = -np.inf
    values[300:2_000] = np.inf
    ref = Reference.from_profile(profile_table(pa.table({"x": values})))
    same = ref.drift(pa.table({"x": values[::-1].copy()}))[0]
    assert not same.drifted
    assert same.measures["wasserstein"] < 0.05
    assert same.detail.endswith("infinite 10.0% -> 10.0%")
    moved = ref.drift(pa.table({"x": rng.normal(0.5, 1, 5_000)}))[0]
    assert moved.drifted
    assert moved.measures["wasserstein"] == pytest.approx(0.5, abs=0.05)
    assert moved.detail.endswith("infinite 10.0% -> 0.0%")


def test_an_empty_window_says_so_for_every_column() -> None:
    reference = pa.table({"x": np.arange(100.0), "c": ["a", "b"] * 50})
    ref = Reference.from_profile(profile_table(reference))
    window = reference.slice(0, 0)
    for verdict in ref.drift(window):
        assert verdict.method is DriftMethod.NONE
        assert not verdict.drifted
        assert verdict.rows == 0
        assert verdict.detail == "no rows in the window"
        assert verdict.severity == 0.0
    assert dataset_score(ref.drift(window)) == 0.0


def test_a_column_missing_from_the_window_is_not_drift() -> None:
    reference = pa.table({"x": np.arange(100.0), "label": np.arange(100) % 2 == 0})
    ref = Reference.from_profile(profile_table(reference))
    found = {v.column: v for v in ref.drift(pa.table({"x": np.arange(50.0)}))}
    assert found["label"].method is DriftMethod.NONE
    assert not found["label"].drifted
    assert "not in the window" in found["label"].detail
    assert found["x"].method is not DriftMethod.NONE


def test_an_all_null_window_column_is_a_missing_rate_change() -> None:
    reference = pa.table({"x": np.arange(1_000.0), "c": ["a", "b"] * 500})
    ref = Reference.from_profile(profile_table(reference))
    window = pa.table({"x": pa.nulls(200, pa.float64()), "c": pa.nulls(200)})
    for verdict in ref.drift(window):
        assert verdict.method is DriftMethod.MISSING
        assert verdict.drifted
        assert verdict.detail == "missing 0.0% -> 100.0%"
        assert "wasserstein" not in verdict.measures and "jensen_shannon" not in verdict.measures


def test_an_all_null_reference_column_compares_missing_shares_only() -> None:
    reference = pa.table({"x": pa.nulls(1_000, pa.float64()), "s": pa.nulls(1_000, pa.string())})
    ref = Reference.from_profile(profile_table(reference))
    same = ref.drift(pa.table({"x": pa.nulls(10, pa.float64()), "s": pa.nulls(10, pa.string())}))
    assert all(v.method is DriftMethod.MISSING and not v.drifted for v in same)
    filled = ref.drift(pa.table({"x": np.ones(500), "s": ["a"] * 500}))
    assert all(v.drifted and v.detail == "missing 100.0% -> 0.0%" for v in filled)


def test_a_constant_reference_moves_infinitely_or_not_at_all() -> None:
    ref = Reference.from_profile(profile_table(pa.table({"x": np.full(1_000, 3.0)})))
    assert ref.drift(pa.table({"x": np.full(100, 3.0)}))[0].measures["wasserstein"] == 0.0
    moved = ref.drift(pa.table({"x": np.full(500, 4.0)}))[0]
    assert moved.measures["wasserstein"] == math.inf
    assert moved.drifted
    assert FeatureDrift.from_dict(moved.to_dict()).measures["wasserstein"] == math.inf


def test_window_columns_of_other_arrow_types_are_converted() -> None:
    rng = np.random.default_rng(2)
    reference = pa.table({"x": rng.normal(100, 10, 10_000), "c": rng.choice(["a", "b"], 10_000)})
    ref = Reference.from_profile(profile_table(reference))
    window = pa.table(
        {
            "x": pa.array(rng.normal(100, 10, 2_000).round().astype(np.int32)),
            "c": pa.array(rng.choice(["a", "b"], 2_000)).dictionary_encode(),
        }
    )
    assert not any(v.drifted for v in ref.drift(window))
    with pytest.raises(InvalidInput, match=r"'x' is numeric in the reference profile but string"):
        ref.drift(pa.table({"x": ["ten", "eleven"]}))


def test_a_small_window_with_a_large_effect_is_not_called_drift() -> None:
    rng = np.random.default_rng(12)
    reference = pa.table({"x": rng.normal(0, 1, 50_000)})
    window = pa.table({"x": rng.normal(0.3, 1, 8)})
    verdict = verdicts(reference, window)["x"]
    assert verdict.measures["wasserstein"] > 0.1  # noise at 8 rows is larger than the line
    assert not verdict.drifted
    assert verdict.p_value is not None and verdict.p_value >= 1e-4


def test_the_verdict_reports_the_drifted_measure_of_largest_severity() -> None:
    rng = np.random.default_rng(3)
    reference = pa.table({"x": rng.normal(0, 1, 20_000)})
    window = rng.normal(0.2, 1, 10_000)  # Wasserstein 0.2: severity 2
    window[:5_000] = np.nan  # missing 50%: severity 10
    verdict = verdicts(reference, pa.table({"x": window}))["x"]
    assert verdict.method is DriftMethod.MISSING
    assert verdict.severity == pytest.approx(10.0)
    custom = verdicts(reference, pa.table({"x": window}), missing=0.9)["x"]
    assert custom.method is DriftMethod.WASSERSTEIN
    assert custom.drifted


def test_per_segment_windows_find_drift_in_their_segment_only() -> None:
    rng = np.random.default_rng(10)
    ref = Reference.from_profile(
        profile_table(pa.table({"x": rng.normal(0, 1, 20_000)})), columns=["x"]
    )
    segment = np.repeat(["eu", "us"], 5_000)
    x = np.concatenate((rng.normal(0, 1, 5_000), rng.normal(1, 1, 5_000)))
    window = pa.table({"x": x, "region": segment})
    found = {}
    for value in ("eu", "us"):
        part = window.filter(pc.equal(window["region"], value))
        found[value] = ref.drift(part)[0].drifted
    assert found == {"eu": False, "us": True}


# merging and pickling --------------------------------------------------------------------------
def mixed_table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, rows)
    x[rng.random(rows) < 0.1] = np.nan
    return pa.table(
        {
            "x": x,
            "n": rng.poisson(3, rows),
            "c": rng.choice(["a", "b", "c", "zz"], rows),
            "b": rng.random(rows) < 0.4,
        }
    )


def test_merged_windows_equal_one_pass_and_survive_pickling() -> None:
    reference = Reference.from_profile(profile_table(mixed_table(20_000, 0).slice(0, 19_000)))
    reference = pickle.loads(pickle.dumps(reference))
    window = mixed_table(9_000, 1)
    whole = reference.window()
    for batch in window.to_batches(max_chunksize=1_000):
        whole.update(batch)
    parts = []
    for start in (0, 2_500, 7_000):
        part = reference.window()
        part.update(window.slice(start, {0: 2_500, 2_500: 4_500, 7_000: 2_000}[start]))
        parts.append(pickle.loads(pickle.dumps(part)))
    merged = parts[0]
    merged.merge(parts[1])
    merged.merge(parts[2])
    assert merged.rows == whole.rows == 9_000
    for one, other in zip(whole.finish(), merged.finish(), strict=True):
        assert one.column == other.column and one.method is other.method
        assert one.detail == other.detail
        for key, value in one.measures.items():
            assert other.measures[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_merge_refuses_other_references_itself_and_other_types() -> None:
    first = Reference.from_profile(profile_table(mixed_table(1_000, 0)))
    second = Reference.from_profile(profile_table(mixed_table(1_000, 1)))
    window = first.window()
    with pytest.raises(InvalidInput, match="different references"):
        window.merge(second.window())
    with pytest.raises(InvalidInput, match="cannot merge itself"):
        window.merge(window)
    with pytest.raises(InvalidInput, match="takes a DriftWindow"):
        window.merge("window")  # type: ignore[arg-type]
    same = Reference.from_profile(profile_table(mixed_table(1_000, 0)))
    window.merge(same.window())  # equal profiles make equal references


@settings(max_examples=40)
@given(
    st.lists(st.integers(-3, 12), min_size=1, max_size=300),
    st.lists(st.integers(0, 300), max_size=4),
)
def test_any_split_of_a_window_merges_to_the_same_verdict(
    values: list[int], cuts: list[int]
) -> None:
    reference = Reference.from_profile(profile_table(pa.table({"k": np.arange(10) % 7})))
    table = pa.table({"k": np.asarray(values, dtype=np.int64)})
    whole = reference.drift(table)[0]
    bounds = sorted({0, len(values), *(min(c, len(values)) for c in cuts)})
    windows: list[DriftWindow] = []
    for start, stop in itertools.pairwise(bounds):
        window = reference.window()
        window.update(table.slice(start, stop - start))
        windows.append(window)
    for other in windows[1:]:
        windows[0].merge(other)
    merged = windows[0].finish()[0]
    assert merged.score == pytest.approx(whole.score, rel=1e-9, abs=1e-12)
    assert merged.drifted == whole.drifted


@settings(max_examples=60)
@given(st.lists(st.integers(0, 9), min_size=20, max_size=200), st.data())
def test_wasserstein_brackets_scipys_for_an_integer_reference(
    reference: list[int], data: st.DataObject
) -> None:
    # Between two quantiles the model can misplace at most the 1% (plus one row's share)
    # that a quantile leaves unknown, so the one-pass sum is never more than that share of
    # the span above scipy's distance. Inside an interval where the window's CDF crosses
    # the reference's the sum is only a lower bound (a window value between two quantiles:
    # see docs/drift.md); for windows on the quantiles or beyond the range it is within the
    # same margin below. (4,000 random cases stayed within 0.3 of the margin.)
    ref_table = pa.table({"k": np.asarray(reference, dtype=np.int64)})
    profile = profile_table(ref_table)
    knots = sorted(set(profile.columns[0].quantiles))
    on_knots = data.draw(st.booleans())
    values = st.sampled_from([*knots, -5, -1, 12, 15]) if on_knots else st.integers(-5, 15)
    window = data.draw(st.lists(values, min_size=1, max_size=200))
    verdict = Reference.from_profile(profile).drift(
        pa.table({"k": np.asarray(window, dtype=np.int64)})
    )[0]
    if not np.std(reference):
        return
    ours = raw_wasserstein(verdict, ref_table)
    theirs = scipy.stats.wasserstein_distance(reference, window)
    margin = (0.01 + 1 / len(reference)) * (max(reference) - min(reference)) + 1e-9
    assert ours <= theirs + margin
    if on_knots:
        assert ours >= theirs - margin


# inputs ------------------------------------------------------------------------------------------
def test_from_profile_selects_columns_in_order_and_names_unknown_ones() -> None:
    profile = profile_table(mixed_table(1_000, 0))
    assert Reference.from_profile(profile, columns=["c", "x"]).columns == ("c", "x")
    assert Reference.from_profile(profile.columns[:2]).columns == ("x", "n")
    with pytest.raises(NotFound, match="no column 'nope'"):
        Reference.from_profile(profile, columns=["nope"])
    with pytest.raises(InvalidInput, match=r"write columns=\['x'\]"):
        Reference.from_profile(profile, columns="x")
    with pytest.raises(InvalidInput, match="takes a TableProfile"):
        Reference.from_profile({"columns": []})  # type: ignore[arg-type]


def test_update_refuses_what_is_not_arrow_and_duplicate_columns() -> None:
    window = Reference.from_profile(profile_table(mixed_table(100, 0))).window()
    with pytest.raises(InvalidInput, match=r"RecordBatch or Table, got dict"):
        window.update({"x": [1.0]})  # type: ignore[arg-type]
    twice = pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0])], names=["x", "x"])
    with pytest.raises(InvalidInput, match="2 columns named 'x'"):
        window.update(twice)


@pytest.mark.parametrize(
    ("field", "value"),
    [("wasserstein", 0.0), ("psi", -1.0), ("missing", math.nan), ("alpha", 1.0), ("unseen", True)],
)
def test_thresholds_must_be_positive_numbers(field: str, value: float) -> None:
    with pytest.raises(InvalidInput, match=f"DriftThresholds.{field}"):
        DriftThresholds(**{field: value})


def test_default_thresholds_are_the_calibrated_ones() -> None:
    # docs/drift.md explains each number; change both together.
    assert DriftThresholds() == DriftThresholds(
        wasserstein=0.1, psi=0.2, jensen_shannon=0.1, missing=0.05, unseen=0.01, alpha=1e-4
    )


def test_verdicts_round_trip_through_json() -> None:
    reference = Reference.from_profile(profile_table(mixed_table(5_000, 0)))
    for verdict in reference.drift(mixed_table(2_000, 1)):
        assert FeatureDrift.from_dict(verdict.to_dict()) == verdict


def test_window_rows_count_missing_values() -> None:
    start = datetime(2024, 1, 1)
    reference = pa.table({"at": [start + timedelta(hours=i) for i in range(500)]})
    ref = Reference.from_profile(profile_table(reference))
    window = pa.table(
        {"at": pa.array([start, None, start + timedelta(days=3)], pa.timestamp("us"))}
    )
    verdict = ref.drift(window)[0]
    assert verdict.rows == 3
    assert verdict.measures["missing_delta"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("shape", ["normal", "lognormal", "cauchy", "integers", "bunched"])
def test_the_cell_finder_is_searchsorted_exactly(shape: str) -> None:
    rng = np.random.default_rng(11)
    sample = {
        "normal": lambda: rng.normal(size=5_000),
        "lognormal": lambda: rng.lognormal(0, 1, 5_000),
        "cauchy": lambda: rng.standard_cauchy(5_000),
        "integers": lambda: rng.integers(0, 20, 5_000).astype(float),
        "bunched": lambda: rng.normal(size=5_000) ** 7,  # falls back to searchsorted
    }[shape]()
    knots = np.unique(np.quantile(sample, np.linspace(0, 1, 101), method="inverted_cdf"))
    knots = np.append(knots, np.nextafter(knots[-1], np.inf))
    finder = CellFinder(knots)
    near = np.concatenate((knots, np.nextafter(knots, -np.inf), np.nextafter(knots, np.inf)))
    extremes = np.array([-1e308, 1e308, np.finfo(float).min, np.finfo(float).max])
    values = np.concatenate((sample, near, extremes))
    if finder.scale:  # values on the grid's own lines, where rounding picks the cell
        grid = finder.low + np.arange(-1, finder.GRID + 2) / finder.scale
        values = np.concatenate((values, grid, np.nextafter(grid, np.inf)))
    expected = np.searchsorted(knots, values, side="right")
    assert np.array_equal(finder.cells(values), expected)
    assert (finder.steps > finder.MAX_STEPS) == (shape == "bunched")
