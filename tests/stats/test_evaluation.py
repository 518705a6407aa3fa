"""Evaluation metrics agree with scikit-learn; slices, fairness, importance and bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance as sk_permutation_importance
from sklearn.linear_model import LinearRegression

from loopml.domain.errors import InvalidInput
from loopml.domain.evaluation import Evaluation
from loopml.stats.evaluation import evaluate_classification, evaluate_regression
from loopml.stats.importance import permutation_importance

REL = 1e-9


def close(ours: float, theirs: float, rel: float = REL, abs_: float = 1e-12) -> bool:
    return ours == pytest.approx(theirs, rel=rel, abs=abs_)


def sklearn_binary(y: np.ndarray, pred: np.ndarray, score: np.ndarray | None) -> dict[str, float]:
    """What scikit-learn says about a 0/1 task with positive class 1 (where defined)."""
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, zero_division=0.0),
        "recall": skm.recall_score(y, pred, zero_division=0.0),
        "f1": skm.f1_score(y, pred, zero_division=0.0),
        "precision_macro": skm.precision_score(y, pred, average="macro", zero_division=0.0),
        "recall_macro": skm.recall_score(y, pred, average="macro", zero_division=0.0),
        "f1_macro": skm.f1_score(y, pred, average="macro", zero_division=0.0),
        "positive_rate": float(np.mean(pred == 1)),
    }
    # scikit-learn warns about predicted classes not in the truth, and about a single class
    if set(pred) <= set(y) and len(set(y)) > 1:
        out["balanced_accuracy"] = skm.balanced_accuracy_score(y, pred)
    if score is not None:
        out["log_loss"] = skm.log_loss(y, score, labels=[0, 1])
        out["brier"] = skm.brier_score_loss(y, score, pos_label=1, labels=[0, 1])
        if 0 < y.sum() < y.size:
            out["roc_auc"] = skm.roc_auc_score(y, score)
        if y.sum() > 0:
            out["pr_auc"] = skm.average_precision_score(y, score)
    return out


def binary_case() -> st.SearchStrategy[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Labels, predictions and scores; scores on a coarse grid, so ties are common."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = draw(st.integers(1, 60))
        y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
        grid = draw(st.sampled_from([0.1, 0.25, 0.01, 0.0]))
        raw = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
        score = np.array(raw) if grid == 0.0 else np.round(np.array(raw) / grid) * grid
        score = np.clip(score, 0.0, 1.0)
        how = draw(st.sampled_from(["threshold", "truth", "random"]))
        if how == "threshold":
            pred = (score >= 0.5).astype(int)
        elif how == "truth":
            pred = y.copy()
        else:
            pred = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
        return y, pred, score

    return build()


@settings(max_examples=100)
@given(case=binary_case())
def test_binary_metrics_agree_with_sklearn(case: tuple[np.ndarray, ...]) -> None:
    y, pred, score = case
    evaluation = evaluate_classification(y, pred, score)
    assert evaluation.labels == ("0", "1")
    assert evaluation.positive_label == "1"
    expected = sklearn_binary(y, pred, score)
    for name, value in expected.items():
        assert close(evaluation.metrics[name], value), (name, evaluation.metrics[name], value)
    if not 0 < y.sum() < y.size:
        assert math.isnan(evaluation.metrics["roc_auc"])
        assert evaluation.roc is None
    if y.sum() == 0:
        assert math.isnan(evaluation.metrics["pr_auc"])
    assert evaluation.confusion is not None
    matrix = skm.confusion_matrix(y, pred, labels=[0, 1])
    assert evaluation.confusion.counts == tuple(map(tuple, matrix.tolist()))


@settings(max_examples=100)
@given(case=binary_case())
def test_reliability_bins_and_ece_agree_with_calibration_curve(
    case: tuple[np.ndarray, ...],
) -> None:
    y, pred, score = case
    calibration = evaluate_classification(y, pred, score).calibration
    assert calibration is not None
    assert len(calibration.bins) == 10
    assert sum(b.count for b in calibration.bins) == y.size
    filled = [b for b in calibration.bins if b.count]
    if y.sum() > 0:  # calibration_curve needs a positive label to find
        observed, predicted = calibration_curve(y, score, n_bins=10)
        assert [b.observed for b in filled] == pytest.approx(observed.tolist(), rel=REL)
        assert [b.mean_predicted for b in filled] == pytest.approx(predicted.tolist(), rel=REL)
    # ECE written out the long way: share of rows times the gap, per filled bin.
    ece = sum(b.count / y.size * abs(b.observed - b.mean_predicted) for b in filled)
    assert close(calibration.ece, ece, abs_=1e-12)
    assert all(math.isnan(b.observed) for b in calibration.bins if not b.count)


def test_a_score_on_a_bin_edge_goes_to_the_lower_bin_as_in_sklearn() -> None:
    score = np.array([0.0, 0.1, 0.30000000000000004, 0.3, 1.0])
    calibration = evaluate_classification([0, 1, 0, 1, 1], [0, 0, 0, 0, 1], score).calibration
    assert calibration is not None
    # linspace puts the 0.3 edge at 0.30000000000000004: both scores land below it.
    assert [b.count for b in calibration.bins] == [2, 0, 2, 0, 0, 0, 0, 0, 0, 1]
    observed, _ = calibration_curve([0, 1, 0, 1, 1], score, n_bins=10)
    assert [b.observed for b in calibration.bins if b.count] == observed.tolist()


def multiclass_case() -> st.SearchStrategy[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    @st.composite
    def build(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = draw(st.integers(3, 5))
        n = draw(st.integers(k, 60))
        y = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
        weights = np.array(draw(st.lists(st.integers(0, 4), min_size=n * k, max_size=n * k)))
        weights = weights.reshape(n, k).astype(float) + 0.5
        proba = weights / weights.sum(axis=1, keepdims=True)
        pred = proba.argmax(axis=1) if draw(st.booleans()) else y.copy()
        return y, pred, proba

    return build()


@settings(max_examples=100)
@given(case=multiclass_case())
def test_multiclass_metrics_agree_with_sklearn(case: tuple[np.ndarray, ...]) -> None:
    y, pred, proba = case
    k = proba.shape[1]
    evaluation = evaluate_classification(y, pred, proba, labels=list(range(k)))
    m = evaluation.metrics
    assert evaluation.positive_label is None
    assert "f1" not in m and "brier" not in m and evaluation.calibration is None
    assert close(m["accuracy"], skm.accuracy_score(y, pred))
    assert evaluation.confusion is not None
    expected = skm.confusion_matrix(y, pred, labels=list(range(k)))
    assert evaluation.confusion.counts == tuple(map(tuple, expected.tolist()))
    if len(set(y) | set(pred)) < 2:  # scikit-learn warns about a single label
        return
    for average in ("precision", "recall", "f1"):
        scorer = getattr(skm, f"{average}_score")
        assert close(m[f"{average}_macro"], scorer(y, pred, average="macro", zero_division=0.0))
    assert close(m["log_loss"], skm.log_loss(y, proba, labels=list(range(k))))
    if len(np.unique(y)) == k:  # scikit-learn needs every class in the truth
        assert close(m["roc_auc"], skm.roc_auc_score(y, proba, multi_class="ovr"))
        assert close(m["pr_auc"], skm.average_precision_score(y, proba))
    if set(pred) <= set(y):
        assert close(m["balanced_accuracy"], skm.balanced_accuracy_score(y, pred))


def test_text_labels_sort_and_the_positive_label_can_be_chosen() -> None:
    y = np.array(["spam", "ham", "spam", "ham", "ham"])
    pred = np.array(["spam", "spam", "ham", "ham", "ham"])
    default = evaluate_classification(y, pred)
    assert default.labels == ("ham", "spam") and default.positive_label == "spam"
    assert close(default.metrics["recall"], skm.recall_score(y, pred, pos_label="spam"))
    chosen = evaluate_classification(y, pred, positive_label="ham", labels=["spam", "ham"])
    assert chosen.labels == ("spam", "ham") and chosen.positive_label == "ham"
    assert close(chosen.metrics["recall"], skm.recall_score(y, pred, pos_label="ham"))
    assert chosen.confusion is not None
    assert chosen.confusion.counts == ((1, 1), (1, 2))


def test_booleans_pandas_and_arrow_inputs_are_read_alike() -> None:
    y = [True, False, True, True]
    pred = [True, True, False, True]
    score = [0.9, 0.6, 0.4, 0.8]
    results = [
        evaluate_classification(y, pred, score),
        evaluate_classification(pd.Series(y), pd.Series(pred), pd.Series(score)),
        evaluate_classification(pa.array(y), pa.chunked_array([pred[:2], pred[2:]]), score),
    ]
    assert results[0].labels == ("false", "true") and results[0].positive_label == "true"
    assert results[0] == results[1] == results[2]


def test_one_class_seen_still_makes_a_binary_task() -> None:
    for value in (0, 1):
        evaluation = evaluate_classification([value] * 4, [value] * 4, [0.5] * 4)
        assert evaluation.labels == ("0", "1")
        assert evaluation.metrics["accuracy"] == 1.0
        assert math.isnan(evaluation.metrics["roc_auc"])
        assert any("both classes" in note for note in evaluation.notes)
    assert evaluate_classification([1, 1], [1, 1], [0.2, 0.3]).metrics["pr_auc"] == 1.0
    assert evaluate_classification([0, 0], [0, 0], [0.2, 0.3]).metrics["f1"] == 0.0


def test_all_correct_and_all_tied() -> None:
    y = np.array([0, 1, 1, 0, 1])
    perfect = evaluate_classification(y, y, y.astype(float))
    assert perfect.metrics["accuracy"] == perfect.metrics["f1"] == 1.0
    assert perfect.metrics["roc_auc"] == perfect.metrics["pr_auc"] == 1.0
    assert close(perfect.metrics["log_loss"], skm.log_loss(y, y.astype(float)))
    tied = evaluate_classification(y, y, np.full(5, 0.5))
    assert tied.metrics["roc_auc"] == 0.5 == skm.roc_auc_score(y, np.full(5, 0.5))
    assert close(tied.metrics["pr_auc"], skm.average_precision_score(y, np.full(5, 0.5)))


def test_predict_proba_columns_and_scores_only_metrics() -> None:
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.5, 0.5]])
    both = evaluate_classification(y, proba.argmax(axis=1), proba)
    single = evaluate_classification(y, proba.argmax(axis=1), proba[:, 1])
    assert both == single
    bare = evaluate_classification(y, proba.argmax(axis=1))
    assert "roc_auc" not in bare.metrics and "log_loss" not in bare.metrics
    assert bare.calibration is None and bare.roc is None
    assert any("no y_score" in note for note in bare.notes)


def test_roc_curve_is_bounded_monotone_and_keeps_its_area() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 50_000)
    score = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    evaluation = evaluate_classification(y, (score > 0.5).astype(int), score)
    roc = evaluation.roc
    assert roc is not None
    assert len(roc.x) <= 200
    assert (roc.x[0], roc.y[0], roc.x[-1], roc.y[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(roc.x) >= 0) and np.all(np.diff(roc.y) >= 0)
    assert close(roc.area, skm.roc_auc_score(y, score))
    assert float(np.trapezoid(roc.y, roc.x)) == pytest.approx(roc.area, abs=2e-3)
    small = evaluate_classification([0, 1, 1], [0, 1, 0], [0.1, 0.9, 0.4]).roc
    assert small is not None
    fpr, tpr, _ = skm.roc_curve([0, 1, 1], [0.1, 0.9, 0.4], drop_intermediate=False)
    assert (small.x, small.y) == (tuple(fpr.tolist()), tuple(tpr.tolist()))
    assert (small.x, small.y) == ((0.0, 0.0, 0.0, 1.0), (0.0, 0.5, 1.0, 1.0))


def frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "region": rng.choice(["north", "south", "east"], n),
            "age": rng.integers(0, 4, n),
            "flag": rng.integers(0, 2, n).astype(bool),
            "size": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 3, n).astype(float)),
        }
    )
    y = rng.integers(0, 2, n)
    score = np.round(rng.random(n), 2)
    pred = (score > 0.5).astype(int)
    return data, y, pred, score


def test_each_slice_has_the_metrics_of_its_rows_evaluated_alone() -> None:
    data, y, pred, score = frame()
    weekend = np.asarray(data["age"] >= 2)
    evaluation = evaluate_classification(
        y, pred, score, data=data, slices=["region", "age", "flag", "size"],
        masks={"older": weekend},
    )  # fmt: skip
    names = [s.name for s in evaluation.slices]
    assert names[:3] == ["region=east", "region=north", "region=south"]
    assert "flag=false" in names and "flag=true" in names
    assert "size=<null>" in names and names.index("size=<null>") == names.index("size=2.0") + 1
    assert names[-1] == "older"
    for result in evaluation.slices:
        if result.column is None:
            rows = weekend
        elif result.value == "<null>":
            rows = np.isnan(data[result.column].to_numpy())
        else:
            column = data[result.column].to_numpy()
            rows = np.array([_text(v) == result.value for v in column])
        assert result.rows == rows.sum()
        alone = evaluate_classification(y[rows], pred[rows], score[rows], labels=[0, 1])
        assert result.metrics.keys() == alone.metrics.keys()
        for key, value in alone.metrics.items():
            assert close(result.metrics[key], value, abs_=1e-12) or (
                math.isnan(value) and math.isnan(result.metrics[key])
            ), (result.name, key)
        assert evaluation.metric(f"slice:{result.name}/accuracy") == result.metrics["accuracy"]


def _text(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def test_slices_read_arrow_tables_and_dicts_alike() -> None:
    data, y, pred, score = frame()
    by_frame = evaluate_classification(y, pred, score, data=data, slices="region")
    by_table = evaluate_classification(
        y, pred, score, data=pa.Table.from_pandas(data), slices="region"
    )
    by_dict = evaluate_classification(
        y, pred, score, data={"region": list(data["region"])}, slices=["region"]
    )
    assert by_frame == by_table == by_dict


def test_a_column_with_many_values_keeps_the_most_frequent_with_a_note() -> None:
    n = 1_000
    values = np.concatenate([np.repeat(["a", "b"], 300), np.arange(400).astype(str)])
    y = np.arange(n) % 2
    evaluation = evaluate_classification(
        y, y, data={"id": values}, slices=["id"], max_slice_values=3
    )
    assert [s.name for s in evaluation.slices] == ["id=0", "id=a", "id=b"]
    assert [s.rows for s in evaluation.slices] == [1, 300, 300]
    assert any("402 distinct values; only the 3 most frequent" in n for n in evaluation.notes)


def test_an_empty_mask_gives_nan_metrics_and_a_note() -> None:
    y = np.array([0, 1, 1])
    evaluation = evaluate_classification(y, y, [0.2, 0.8, 0.6], masks={"none": [False] * 3})
    (result,) = evaluation.slices
    assert result.rows == 0
    assert all(math.isnan(value) for value in result.metrics.values())
    assert any("'none' selects no rows" in note for note in evaluation.notes)


def test_fairness_gaps_agree_with_a_groupby() -> None:
    data, y, pred, score = frame(2_000, seed=3)
    evaluation = evaluate_classification(y, pred, score, data=data, sensitive=["region", "flag"])
    df = pd.DataFrame({"g": data["region"], "y": y, "p": pred})
    rates = df.groupby("g").apply(
        lambda d: pd.Series(
            {
                "positive_rate": d.p.mean(),
                "tpr": d.p[d.y == 1].mean(),
                "fpr": d.p[d.y == 0].mean(),
                "accuracy": (d.p == d.y).mean(),
            }
        ),
        include_groups=False,
    )
    result = evaluation.fairness[0]
    assert result.column == "region"
    gap = {c: rates[c].max() - rates[c].min() for c in rates.columns}
    assert close(result.metrics["demographic_parity_difference"], gap["positive_rate"])
    assert close(result.metrics["equalized_odds_difference"], max(gap["tpr"], gap["fpr"]))
    assert close(result.metrics["accuracy_difference"], gap["accuracy"])
    for group in result.groups:
        value = group.value
        assert close(group.metrics["tpr"], rates.loc[value, "tpr"])
    assert evaluation.metric("fairness:flag/demographic_parity_difference") >= 0


def test_fairness_over_one_group_is_nan_with_a_note() -> None:
    y = np.array([0, 1, 1, 0])
    evaluation = evaluate_classification(y, y, data={"sex": ["f"] * 4}, sensitive="sex")
    assert math.isnan(evaluation.metric("demographic_parity_difference", fairness="sex"))
    assert any("'sex' has 1 group(s)" in note for note in evaluation.notes)


# --- regression ---------------------------------------------------------------------------

numbers = st.floats(-1e4, 1e4, allow_nan=False).map(lambda v: round(v, 3))


@settings(max_examples=150)
@given(
    pairs=st.lists(st.tuples(numbers, numbers), min_size=1, max_size=60),
    zero_share=st.sampled_from([0.0, 0.3]),
)
def test_regression_metrics_agree_with_sklearn(
    pairs: list[tuple[float, float]], zero_share: float
) -> None:
    y = np.array([p[0] for p in pairs])
    y[: int(len(y) * zero_share)] = 0.0
    pred = np.array([p[1] for p in pairs])
    m = evaluate_regression(y, pred).metrics
    assert close(m["mae"], skm.mean_absolute_error(y, pred), rel=1e-9, abs_=1e-9)
    assert close(m["mse"], skm.mean_squared_error(y, pred), rel=1e-9, abs_=1e-9)
    assert close(m["rmse"], skm.root_mean_squared_error(y, pred), rel=1e-9, abs_=1e-9)
    assert close(m["bias"], float(np.mean(y - pred)), rel=1e-9, abs_=1e-9)
    if y.size >= 2 and np.ptp(y) > 1e-3:
        assert close(m["r2"], skm.r2_score(y, pred), rel=1e-7, abs_=1e-9)
    nonzero = y != 0
    if nonzero.any():
        expected = skm.mean_absolute_percentage_error(y[nonzero], pred[nonzero])
        assert close(m["mape"], expected, rel=1e-9)
    else:
        assert math.isnan(m["mape"])


def test_mape_leaves_out_zero_targets_and_says_how_many() -> None:
    evaluation = evaluate_regression([0.0, 2.0, 0.0, 4.0], [1.0, 1.0, 1.0, 5.0])
    assert evaluation.metrics["mape"] == pytest.approx((0.5 + 0.25) / 2)
    assert evaluation.residuals is not None and evaluation.residuals.zero_targets == 2
    assert any("leaves out the 2 rows whose target is 0" in note for note in evaluation.notes)


def test_r2_conventions_match_sklearn() -> None:
    one = evaluate_regression([1.0], [2.0]).metrics
    assert math.isnan(one["r2"])
    for pred in ([0.5, 0.5, 0.5], [0.5, 1.0, 0.5]):  # constant target: 1.0 if exact, else 0.0
        ours = evaluate_regression([0.5, 0.5, 0.5], pred).metrics["r2"]
        assert ours == skm.r2_score([0.5, 0.5, 0.5], pred)
    # A constant target whose mean does not round-trip is still constant.
    assert evaluate_regression([0.1] * 3, [0.1] * 3).metrics["r2"] == 1.0
    assert evaluate_regression([0.1] * 3, [0.2] * 3).metrics["r2"] == 0.0


def test_residual_summary() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=10_000)
    pred = y + rng.standard_t(3, size=y.size)
    summary = evaluate_regression(y, pred).residuals
    assert summary is not None
    residual = y - pred
    assert close(summary.mean, residual.mean(), abs_=1e-12)
    assert close(summary.std, residual.std())
    levels = [q for q, _ in summary.quantiles]
    assert [v for _, v in summary.quantiles] == pytest.approx(np.quantile(residual, levels))
    assert sum(summary.bin_counts) == y.size
    assert len(summary.bin_edges) == len(summary.bin_counts) + 1 == 31
    assert summary.bin_edges[0] == pytest.approx(np.quantile(residual, 0.01))
    inside = (residual >= summary.bin_edges[1]) & (residual < summary.bin_edges[2])
    assert summary.bin_counts[1] == inside.sum()
    flat = evaluate_regression([1.0, 2.0], [1.0, 2.0]).residuals
    assert flat is not None and flat.bin_counts == (2,)


def test_regression_slices_and_fairness() -> None:
    rng = np.random.default_rng(5)
    n = 3_000
    group = rng.choice(["a", "b", "c"], n)
    y = rng.normal(size=n)
    pred = y + np.where(group == "a", 0.5, 0.0) + rng.normal(scale=0.1, size=n)
    evaluation = evaluate_regression(
        y, pred, data={"g": group}, slices="g", sensitive="g", label_name="demand"
    )
    assert evaluation.label == "demand"
    for result in evaluation.slices:
        rows = group == result.value
        assert close(result.metrics["rmse"], skm.root_mean_squared_error(y[rows], pred[rows]))
        assert close(result.metrics["r2"], skm.r2_score(y[rows], pred[rows]), rel=1e-7)
    fairness = evaluation.fairness[0]
    means = [pred[group == g].mean() for g in "abc"]
    maes = [skm.mean_absolute_error(y[group == g], pred[group == g]) for g in "abc"]
    assert close(fairness.metrics["mean_prediction_difference"], max(means) - min(means))
    assert close(fairness.metrics["mae_difference"], max(maes) - min(maes))


def test_evaluations_survive_json() -> None:
    data, y, pred, score = frame()
    evaluation = evaluate_classification(
        y, pred, score, data=data, slices=["region", "size"], sensitive="flag"
    )
    assert Evaluation.from_dict(evaluation.to_dict()) == evaluation


# --- bad input ----------------------------------------------------------------------------

GOOD_Y = [0, 1, 1, 0]


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: evaluate_classification(GOOD_Y, [0, 1, 1]), "y_pred has 3 rows but y_true has 4"),
        (lambda: evaluate_classification([], []), "y_true is empty"),
        (
            lambda: evaluate_classification([0.0, math.nan, 1.0, 1.0], GOOD_Y),
            r"y_true has 1 missing values \(null or NaN\), the first at row 1",
        ),
        (lambda: evaluate_classification(GOOD_Y, [0, None, 1, 0]), "y_pred has 1 missing"),
        (
            lambda: evaluate_classification(GOOD_Y, GOOD_Y, [0.1, 1.2, 0.5, 0.5]),
            r"values from 0.1 to 1.2; log loss and calibration need probabilities",
        ),
        (
            lambda: evaluate_classification(GOOD_Y, GOOD_Y, [0.1, math.nan, 0.5, 0.5]),
            "1 NaN or infinite values",
        ),
        (lambda: evaluate_classification(GOOD_Y, GOOD_Y, [0.1, 0.2]), r"shape \(2,\), expected"),
        (
            lambda: evaluate_classification([0, 1, 2], [0, 1, 2], [[0.5, 0.3, 0.3]] * 3),
            "row 0 sums to 1.1",
        ),
        (lambda: evaluate_classification(GOOD_Y, ["0", "1", "1", "0"]), "one kind"),
        (
            lambda: evaluate_classification(GOOD_Y, [0, 1, 2, 0], labels=[0, 1]),
            r"labels not in labels=\['0', '1'\], e.g. \[2\]",
        ),
        (lambda: evaluate_classification(GOOD_Y, GOOD_Y, positive_label=3), "not one of"),
        (
            lambda: evaluate_classification([0, 1, 2], [0, 1, 2], positive_label=1),
            "for binary tasks",
        ),
        (lambda: evaluate_classification(GOOD_Y, GOOD_Y, labels=[0, 1, 0]), "repeat a value"),
        (
            lambda: evaluate_classification(
                GOOD_Y, GOOD_Y, data={"region": ["a"] * 4}, slices=["regoin"]
            ),
            r"slice column 'regoin' is not a column of data; did you mean \['region'\]",
        ),
        (
            lambda: evaluate_classification(GOOD_Y, GOOD_Y, slices=["region"]),
            "needs data=",
        ),
        (
            lambda: evaluate_classification(GOOD_Y, GOOD_Y, data={"r": ["a"] * 3}, slices="r"),
            "column 'r' of data has 3 rows but y_true has 4",
        ),
        (
            lambda: evaluate_classification(GOOD_Y, GOOD_Y, sensitive="sex", data={"r": [1] * 4}),
            "sensitive column 'sex' is not a column",
        ),
        (
            lambda: evaluate_classification(GOOD_Y, GOOD_Y, masks={"m": [1, 0, 1, 0]}),
            "mask 'm' must be true/false",
        ),
        (
            lambda: evaluate_classification(GOOD_Y, GOOD_Y, masks={"m": [True, None, True, True]}),
            "with 1 missing",
        ),
        (lambda: evaluate_classification(GOOD_Y, GOOD_Y, masks={"m": [True]}), "mask 'm' has 1"),
        (
            lambda: evaluate_classification(
                GOOD_Y, GOOD_Y, data={"r": ["a"] * 4}, slices="r", masks={"r=a": [True] * 4}
            ),
            "occur twice",
        ),
        (
            lambda: evaluate_classification(GOOD_Y, GOOD_Y, max_slice_values=0),
            "max_slice_values must be a positive integer",
        ),
        (lambda: evaluate_regression([1.0, math.nan], [1.0, 2.0]), "y_true has 1 missing"),
        (lambda: evaluate_regression([1.0, 2.0], [1.0, math.inf]), "y_pred has 1 infinite"),
        (lambda: evaluate_regression(["a", "b"], [1.0, 2.0]), "must hold numbers"),
        (lambda: evaluate_regression([1.0, 2.0], [1.0]), "y_pred has 1 rows but y_true has 2"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call: Any, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        call()


# --- permutation importance ---------------------------------------------------------------


def test_permutation_importance_finds_the_feature_the_model_uses() -> None:
    rng = np.random.default_rng(1)
    features = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    y = (features["a"] > 0).astype(int).to_numpy()

    def predict(table: pd.DataFrame) -> np.ndarray:
        return (table["a"] > 0).astype(int).to_numpy()

    result = permutation_importance(predict, features, y, metric="accuracy", n_repeats=4)
    assert result.baseline == 1.0 and result.rows == 500 and result.n_repeats == 4
    assert [f.feature for f in result.features] == ["a", "b"]
    assert result.features[0].mean > 0.3
    assert result.features[1].mean == 0.0 and result.features[1].std == 0.0
    again = permutation_importance(predict, features, y, metric="accuracy", n_repeats=4)
    assert again == result
    other_seed = permutation_importance(predict, features, y, metric="accuracy", seed=9)
    assert other_seed.features[0].mean != result.features[0].mean


def test_permutation_importance_follows_its_documented_draws() -> None:
    rng = np.random.default_rng(3)
    n, rows, repeats, seed = 300, 120, 3, 11
    table = pa.table({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = 2 * table["a"].to_numpy() + rng.normal(size=n)

    def predict(t: pa.Table) -> np.ndarray:
        return 2 * t["a"].to_numpy() + 0.5 * t["b"].to_numpy()

    result = permutation_importance(
        predict, table, y, metric="rmse", n_repeats=repeats, sample_size=rows, seed=seed
    )
    draws = np.random.default_rng(seed)
    picked = np.sort(draws.choice(n, size=rows, replace=False))
    x = {c: table[c].to_numpy()[picked] for c in ("a", "b")}
    truth = y[picked]
    baseline = skm.root_mean_squared_error(truth, 2 * x["a"] + 0.5 * x["b"])
    assert close(result.baseline, baseline)
    expected = {}
    for column in ("a", "b"):
        orders = draws.permuted(np.tile(np.arange(rows), (repeats, 1)), axis=1)
        drops = []
        for order in orders:
            shuffled = dict(x, **{column: x[column][order]})
            score = skm.root_mean_squared_error(truth, 2 * shuffled["a"] + 0.5 * shuffled["b"])
            drops.append(score - baseline)  # an error: worse is larger
        expected[column] = (np.mean(drops), np.std(drops))
    for feature in result.features:
        mean, std = expected[feature.feature]
        assert close(feature.mean, mean, rel=1e-9, abs_=1e-12)
        assert close(feature.std, std, rel=1e-7, abs_=1e-12)


def test_permutation_importance_is_close_to_sklearn() -> None:
    rng = np.random.default_rng(0)
    n = 4_000
    features = pd.DataFrame({c: rng.normal(size=n) for c in "abc"})
    y = 3 * features["a"] + features["b"] + rng.normal(scale=0.1, size=n)
    model = LinearRegression().fit(features, y)
    ours = permutation_importance(
        model.predict, features, y, metric="r2", n_repeats=30, sample_size=None
    )
    theirs = sk_permutation_importance(model, features, y, n_repeats=30, random_state=0)
    by_name = {f.feature: f.mean for f in ours.features}
    for i, column in enumerate("abc"):
        assert by_name[column] == pytest.approx(theirs.importances_mean[i], rel=0.05, abs=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"metric": "auc"}, "metric 'auc' is unknown"),
        ({"metric": "accuracy", "columns": ["z"]}, r"columns \['z'\] are not features"),
        ({"metric": "accuracy", "n_repeats": 0}, "n_repeats must be a positive integer"),
        ({"metric": "accuracy", "sample_size": -1}, "sample_size must be a positive integer"),
        ({"metric": "f1"}, "'f1' is for two classes"),
    ],
)
def test_permutation_importance_refuses_bad_arguments(
    kwargs: dict[str, Any], fragment: str
) -> None:
    features = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 0.0]})
    with pytest.raises(InvalidInput, match=fragment):
        permutation_importance(
            lambda t: np.array([0, 1, 2] * (len(t) // 3)), features, [0, 1, 2], **kwargs
        )


def test_permutation_importance_refuses_odd_predictions_and_tables() -> None:
    features = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(InvalidInput, match=r"predict returned shape \(2,\) for 3 rows"):
        permutation_importance(lambda t: np.zeros(2), features, [0, 1, 0], metric="accuracy")
    with pytest.raises(InvalidInput, match="pyarrow Table or a pandas DataFrame"):
        permutation_importance(len, {"a": [1]}, [0], metric="accuracy")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="y has 2 rows but the features table has 3"):
        permutation_importance(len, features, [0, 1], metric="accuracy")
