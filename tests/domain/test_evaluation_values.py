"""The evaluation value: metric names, lookups, JSON round trips and bad input."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.errors import InvalidInput, NotFound
from loopml.domain.evaluation import (
    Calibration,
    ConfusionMatrix,
    Curve,
    Evaluation,
    FairnessResult,
    FeatureImportance,
    MetricName,
    PermutationImportance,
    ReliabilityBin,
    ResidualSummary,
    SliceResult,
    metric_name,
    parse_metric_name,
)

NAN, INF = math.nan, math.inf
THE_NAN = math.nan  # the one NaN object every evaluation stores (so equality holds)


def full_classification() -> Evaluation:
    return Evaluation(
        task="classification",
        label="churned",
        rows=10,
        metrics={"accuracy": 0.8, "roc_auc": float("nan"), "log_loss": INF, "f1": 0.5},
        labels=("no", "yes"),
        positive_label="yes",
        slices=(
            SliceResult("region=north/east", 4, {"accuracy": 0.75}, "region", "north/east"),
            SliceResult("weird = <b>&", 6, {"accuracy": float("nan")}, "weird ", " <b>&"),
            SliceResult("weekend", 3, {"accuracy": 1.0}),
        ),
        fairness=(
            FairnessResult(
                "sex",
                {"demographic_parity_difference": 0.1, "equalized_odds_difference": NAN},
                (
                    SliceResult("sex=f", 5, {"tpr": 0.5, "fpr": NAN}, "sex", "f"),
                    SliceResult("sex=<null>", 5, {"tpr": 0.25, "fpr": 0.0}, "sex", "<null>"),
                ),
            ),
        ),
        calibration=Calibration(
            tuple(
                ReliabilityBin(i / 10, (i + 1) / 10, i, NAN if i == 0 else i / 10, 0.1 * i)
                for i in range(10)
            ),
            0.0312,
        ),
        confusion=ConfusionMatrix(("no", "yes"), ((4, 1), (1, 4))),
        roc=Curve((0.0, 0.2, 1.0), (0.0, 0.7, 1.0), 0.81),
        importance=PermutationImportance(
            "accuracy", 0.8, 5, 10, 7, (FeatureImportance("x", 0.2, 0.01),)
        ),
        notes=("a note", "another <note>"),
    )


def full_regression() -> Evaluation:
    return Evaluation(
        task="regression",
        label="demand",
        rows=3,
        metrics={"rmse": 1.5, "r2": -INF, "mape": NAN},
        residuals=ResidualSummary(
            mean=0.1,
            std=1.0,
            quantiles=((0.0, -2.0), (0.5, 0.0), (1.0, 3.0)),
            bin_edges=(-2.0, 0.0, 3.0),
            bin_counts=(1, 2),
            zero_targets=1,
        ),
    )


@pytest.mark.parametrize("make", [full_classification, full_regression])
def test_round_trip_through_json_is_exact(make: Any) -> None:
    evaluation = make()
    text = json.dumps(evaluation.to_dict(), allow_nan=False)  # strictly JSON: no NaN literal
    again = Evaluation.from_dict(json.loads(text))
    assert again == evaluation
    assert again.to_dict() == evaluation.to_dict()


def test_non_finite_numbers_are_strings_in_json() -> None:
    data = full_classification().to_dict()
    assert data["metrics"] == {"accuracy": 0.8, "roc_auc": "nan", "log_loss": "inf", "f1": 0.5}
    assert full_regression().to_dict()["metrics"]["r2"] == "-inf"
    assert data["calibration"]["bins"][0][3] == "nan"


def test_every_nan_is_the_one_nan_object() -> None:
    evaluation = full_classification()
    assert evaluation.metrics["roc_auc"] is THE_NAN
    assert evaluation.fairness[0].metrics["equalized_odds_difference"] is THE_NAN


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=80)
@given(
    metrics=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True), finite_or_not),
    slice_value=st.text(max_size=20),
    points=st.lists(st.tuples(finite_or_not, finite_or_not), max_size=20),
)
def test_round_trip_of_any_numbers_and_slice_values(
    metrics: dict[str, float], slice_value: str, points: list[tuple[float, float]]
) -> None:
    evaluation = Evaluation(
        task="classification",
        label="y",
        rows=1,
        metrics=metrics,
        slices=(SliceResult(f"c={slice_value}", 1, metrics, "c", slice_value),),
        roc=Curve(tuple(p[0] for p in points), tuple(p[1] for p in points), NAN),
    )
    again = Evaluation.from_dict(json.loads(json.dumps(evaluation.to_dict(), allow_nan=False)))
    assert again == evaluation


def test_metric_names_build_and_parse() -> None:
    assert metric_name("accuracy") == "accuracy"
    assert metric_name("recall", slice="region=north") == "slice:region=north/recall"
    assert metric_name("demographic_parity_difference", fairness="sex") == (
        "fairness:sex/demographic_parity_difference"
    )
    # The metric is after the last '/': slice values may hold '/' and '='.
    assert parse_metric_name("slice:path=a/b=c/f1_macro") == MetricName(
        "slice", "path=a/b=c", "f1_macro"
    )
    assert parse_metric_name("fairness:sex/accuracy_difference") == MetricName(
        "fairness", "sex", "accuracy_difference"
    )
    assert parse_metric_name("rmse") == MetricName("overall", None, "rmse")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("slice:/accuracy", "has no group"),
        ("slice:region=north", "has no group"),
        ("fairness:sex/", "is not a metric name"),
        ("Accuracy", "is not a metric name"),
        ("slice:a=b/F1", "is not a metric name"),
        ("", "is not a metric name"),
    ],
)
def test_bad_metric_names_are_refused(name: str, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        parse_metric_name(name)


def test_metric_name_takes_a_slice_or_a_fairness_column_not_both() -> None:
    with pytest.raises(InvalidInput, match="not both"):
        metric_name("accuracy", slice="a=b", fairness="sex")


def test_metric_lookup_by_full_name_and_by_parts() -> None:
    e = full_classification()
    assert e.metric("accuracy") == 0.8
    assert e.metric("slice:region=north/east/accuracy") == 0.75
    assert e.metric("accuracy", slice="region=north/east") == 0.75
    assert e.metric("accuracy", slice="weekend") == 1.0
    assert e.metric("demographic_parity_difference", fairness="sex") == 0.1
    assert math.isnan(e.metric("fairness:sex/equalized_odds_difference"))


def test_an_unknown_metric_is_not_found_with_close_names() -> None:
    e = full_classification()
    with pytest.raises(NotFound, match=r"no metric 'acuracy'.*'accuracy'"):
        e.metric("acuracy")
    with pytest.raises(NotFound, match="slice:region=south/accuracy"):
        e.metric("accuracy", slice="region=south")
    with pytest.raises(NotFound):
        e.metric("accuracy", fairness="age")


def test_flat_metrics_list_every_name() -> None:
    flat = full_classification().flat_metrics()
    assert list(flat)[:4] == ["accuracy", "roc_auc", "log_loss", "f1"]
    assert flat["slice:weird = <b>&/accuracy"] is THE_NAN
    assert flat["fairness:sex/demographic_parity_difference"] == 0.1
    assert len(flat) == 4 + 3 + 2


def test_with_importance_returns_a_copy() -> None:
    e = full_regression()
    importance = PermutationImportance("rmse", 1.0, 3, 3, 0, (FeatureImportance("a", 0.5, 0.1),))
    attached = e.with_importance(importance)
    assert attached.importance == importance
    assert e.importance is None


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"task": "ranking"}, "task 'ranking' is unknown"),
        ({"metrics": {"F1": 0.5}}, "is not a metric name"),
        ({"metrics": {"f1": "0.5"}}, "expected a number"),
        ({"rows": 1.5}, "rows must be an integer"),
        ({"positive_label": "maybe"}, "positive_label 'maybe' is not one of the labels"),
        (
            {"slices": (SliceResult("a", 1, {}), SliceResult("a", 2, {}))},
            r"slice names must be unique, got \['a'\]",
        ),
    ],
)
def test_bad_fields_are_refused(change: dict[str, Any], fragment: str) -> None:
    fields: dict[str, Any] = {
        "task": "classification",
        "label": "y",
        "rows": 2,
        "metrics": {},
        "labels": ("0", "1"),
        "positive_label": "1",
    }
    with pytest.raises(InvalidInput, match=fragment):
        Evaluation(**{**fields, **change})


def test_parts_check_their_shapes() -> None:
    with pytest.raises(InvalidInput, match="2 labels needs 2 rows of 2 counts"):
        ConfusionMatrix(("a", "b"), ((1, 2), (3,)))
    with pytest.raises(InvalidInput, match="as many x as y"):
        Curve((0.0, 1.0), (0.0,), 0.5)
    with pytest.raises(InvalidInput, match="2 bins needs 3 edges"):
        ResidualSummary(0.0, 1.0, (), (0.0, 1.0), (1, 1))


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda d: d.update(format=2), "must have format 1, got 2"),
        (lambda d: d.pop("metrics"), "malformed .*KeyError"),
        (lambda d: d["metrics"].update(accuracy="NaN"), "only 'nan', 'inf' and '-inf'"),
        (lambda d: d["confusion"].update(counts=[[1, 2]]), "needs 2 rows of 2 counts"),
        (lambda d: d["roc"].update(x=None), "malformed .*TypeError"),
    ],
)
def test_damaged_dicts_are_refused(damage: Any, fragment: str) -> None:
    data = full_classification().to_dict()
    damage(data)
    with pytest.raises(InvalidInput, match=fragment):
        Evaluation.from_dict(data)


def test_a_dict_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidInput, match="got 'list'"):
        Evaluation.from_dict([])  # type: ignore[arg-type]
