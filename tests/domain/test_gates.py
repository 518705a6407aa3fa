"""The gate policy as values: metric directions and names, rules, stage and model policies."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.errors import InvalidInput
from loopml.domain.gates import (
    GATED_STAGES,
    GatePolicy,
    Limit,
    Margin,
    RelativeRule,
    StagePolicy,
    gated_stage,
    toml_key,
)
from loopml.domain.lifecycle import Stage
from loopml.domain.metric_directions import (
    KNOWN_DIRECTIONS,
    Direction,
    MetricDirections,
    slice_metric_name,
    split_name,
)

H, L, N = Direction.HIGHER, Direction.LOWER, Direction.NONE


# --- directions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "direction"),
    [
        *[(m, H) for m in ("accuracy", "f1", "roc_auc", "r2", "precision", "recall")],
        *[(m, L) for m in ("rmse", "mae", "log_loss", "mape", "ece", "mse", "brier")],
        ("demographic_parity_difference", L),
        ("equalized_odds_difference", L),
        ("group_mean_prediction_difference", L),
        ("group_mae_difference", L),
        ("demographic_parity_ratio", H),
        ("bias", N),
    ],
)
def test_built_in_directions(metric: str, direction: Direction) -> None:
    assert KNOWN_DIRECTIONS[metric] is direction
    assert MetricDirections().of(metric) is direction


# Every metric loopml.domain.evaluation computes (its module docstring lists them).
EVALUATION_METRICS = {
    H: "accuracy balanced_accuracy precision_macro recall_macro f1_macro roc_auc pr_auc "
    "precision recall f1 r2",
    L: "log_loss brier ece mae mse rmse mape demographic_parity_difference "
    "equalized_odds_difference accuracy_difference mean_prediction_difference mae_difference",
    N: "positive_rate bias",
}


def test_every_metric_the_evaluation_computes_has_a_built_in_direction() -> None:
    for direction, names in EVALUATION_METRICS.items():
        for name in names.split():
            assert KNOWN_DIRECTIONS[name] is direction, name


def test_scoped_and_slashed_names_take_the_direction_of_their_metric() -> None:
    d = MetricDirections()
    assert d.of("slice:region=eu/rmse") is L
    assert d.of("slice:weekend/accuracy") is H
    assert d.of("fairness:sex/demographic_parity_difference") is L
    assert d.of("val/rmse") is L
    assert d.of("slice:path=/a/b/accuracy") is H  # the metric starts after the last '/'


def test_declared_directions_add_custom_metrics_and_win_over_segments() -> None:
    d = MetricDirections({"revenue_uplift": H, "val/rmse_like": "higher"})  # type: ignore[dict-item]
    assert d.of("revenue_uplift") is H
    assert d.of("slice:region=eu/revenue_uplift") is H
    assert d.declared["val/rmse_like"] is H  # text is accepted and converted
    agreeing = MetricDirections({"accuracy": "higher"})  # type: ignore[dict-item]
    assert agreeing.of("accuracy") is H


def test_unknown_metric_is_an_error_naming_it_and_the_closest_known_name() -> None:
    with pytest.raises(InvalidInput) as info:
        MetricDirections().of("acuracy")
    assert str(info.value) == (
        "metric 'acuracy' has no known direction (did you mean 'accuracy'?); declare it "
        'under [gates.directions], e.g. "acuracy" = "higher" (or "lower"), or fix the '
        "spelling"
    )
    assert MetricDirections().find("business_value") is None


def test_declaring_a_built_in_metric_backwards_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"rmse = 'higher' contradicts the built-in direction"):
        MetricDirections({"rmse": H})
    with pytest.raises(InvalidInput, match=r"must be 'higher' or 'lower'.*got 'up'"):
        MetricDirections({"x": "up"})  # type: ignore[dict-item]


def test_fairness_measures_are_recognised_bare_or_per_column() -> None:
    d = MetricDirections({"my_gap": L})
    assert d.is_fairness("demographic_parity_difference")
    assert d.is_fairness("fairness:sex/equalized_odds_difference")
    assert d.is_fairness("my_gap")
    assert not d.is_fairness("accuracy")
    assert not d.is_fairness("slice:sex=f/demographic_parity_difference")


# --- names ---------------------------------------------------------------------------------


def test_split_name() -> None:
    assert split_name("accuracy") == (None, None, "accuracy")
    assert split_name("val/rmse") == (None, None, "val/rmse")
    assert split_name("slice:region=eu/accuracy") == ("slice", "region=eu", "accuracy")
    assert split_name("slice:a=x/y/f1") == ("slice", "a=x/y", "f1")
    assert split_name("fairness:sex/demographic_parity_difference") == (
        "fairness",
        "sex",
        "demographic_parity_difference",
    )
    assert slice_metric_name("region=eu", "f1") == "slice:region=eu/f1"


@pytest.mark.parametrize("name", ["slice:region=eu", "slice:/accuracy", "slice:x/", "fairness:sex"])
def test_malformed_scoped_names_are_refused_with_an_example(name: str) -> None:
    with pytest.raises(InvalidInput, match=r"is not valid; expected (slice|fairness):<"):
        split_name(name)


@given(
    st.text(min_size=1).filter(lambda s: "/" not in s),
    st.from_regex(r"[a-z][a-z0-9_]*", fullmatch=True),
)
def test_slice_names_split_back_into_their_parts(slice_name: str, metric: str) -> None:
    assert split_name(slice_metric_name(slice_name, metric)) == ("slice", slice_name, metric)


# --- rules ---------------------------------------------------------------------------------


def test_limit_normalises_bounds_and_refuses_impossible_ones() -> None:
    assert Limit("accuracy", 1) == Limit("accuracy", 1.0, None)
    with pytest.raises(InvalidInput, match=r"sets neither min nor max"):
        Limit("accuracy")
    with pytest.raises(
        InvalidInput, match=r"min 0\.9 is greater than max 0\.8; expected min <= max"
    ):
        Limit("accuracy", 0.9, 0.8)
    with pytest.raises(InvalidInput, match=r"min must be a number, got str '0\.8'"):
        Limit("accuracy", "0.8")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"max must be a finite number, got nan"):
        Limit("accuracy", None, math.nan)
    with pytest.raises(InvalidInput, match=r"min must be a number, got bool True"):
        Limit("accuracy", True)


@pytest.mark.parametrize(
    ("margin", "direction", "champion", "bound", "phrase"),
    [
        (Margin.MAX_WORSE, H, 0.85, 0.84, "- 0.01"),
        (Margin.MAX_WORSE, L, 38.5, 38.51, "+ 0.01"),
        (Margin.MIN_BETTER, H, 0.85, 0.86, "+ 0.01"),
        (Margin.MIN_BETTER, L, 38.5, 38.49, "- 0.01"),
    ],
)
def test_absolute_margins(
    margin: Margin, direction: Direction, champion: float, bound: float, phrase: str
) -> None:
    rule = RelativeRule("m", margin, 0.01)
    assert rule.bound(champion, direction) == pytest.approx(bound)
    assert rule.describe(direction) == phrase


@pytest.mark.parametrize(
    ("margin", "direction", "champion", "bound", "phrase"),
    [
        (Margin.MAX_WORSE_PCT, L, 38.5, 40.425, "+ 5%"),
        (Margin.MAX_WORSE_PCT, H, 0.8, 0.76, "- 5%"),
        (Margin.MIN_BETTER_PCT, H, 0.8, 0.84, "+ 5%"),
        (Margin.MIN_BETTER_PCT, L, 38.5, 36.575, "- 5%"),
        # percentages are of the champion's absolute value, so negatives work too
        (Margin.MAX_WORSE_PCT, H, -2.0, -2.1, "- 5%"),
        (Margin.MAX_WORSE_PCT, L, 0.0, 0.0, "+ 5%"),
    ],
)
def test_percentage_margins(
    margin: Margin, direction: Direction, champion: float, bound: float, phrase: str
) -> None:
    rule = RelativeRule("m", margin, 5)
    assert rule.bound(champion, direction) == pytest.approx(bound)
    assert rule.describe(direction) == phrase


def test_relative_rule_refuses_negative_and_non_numeric_margins() -> None:
    with pytest.raises(InvalidInput) as info:
        RelativeRule("rmse", Margin.MIN_BETTER, -1)
    assert str(info.value) == (
        "min_better is -1.0; expected a number >= 0. A negative margin reads backwards: use "
        "max_worse instead"
    )
    with pytest.raises(InvalidInput, match=r"use min_better_pct instead"):
        RelativeRule("rmse", "max_worse_pct", -5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"max_worse must be a number, got str '5%'"):
        RelativeRule("rmse", Margin.MAX_WORSE, "5%")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"margin 'worse_by' is not known; expected one of"):
        RelativeRule("rmse", "worse_by", 1)  # type: ignore[arg-type]


@given(
    champion=st.floats(-1e6, 1e6, allow_nan=False),
    amount=st.floats(0, 1e3, allow_nan=False),
    margin=st.sampled_from(list(Margin)),
)
def test_worse_margins_never_demand_improvement_and_better_margins_always_do(
    champion: float, amount: float, margin: Margin
) -> None:
    rule = RelativeRule("m", margin, amount)
    up, down = rule.bound(champion, H), rule.bound(champion, L)
    if margin.better:
        assert up >= champion and down <= champion
    else:
        assert up <= champion and down >= champion
    # higher-is-better and lower-is-better are mirror images
    assert up - champion == pytest.approx(champion - down, rel=1e-12, abs=1e-9)


# --- stage policies ------------------------------------------------------------------------


def test_stage_policy_checks_its_budgets_roles_and_approval_flags() -> None:
    with pytest.raises(InvalidInput) as info:
        StagePolicy(max_latency_p99_ms=-5)
    assert str(info.value) == (
        "max_latency_p99_ms is -5.0; a budget must be greater than 0 (milliseconds, e.g. 50). "
        "Remove the key to have no budget"
    )
    with pytest.raises(InvalidInput, match=r"max_model_size_bytes is 0; a budget must be"):
        StagePolicy(max_model_size_bytes=0)
    with pytest.raises(InvalidInput, match=r"a whole number of bytes.*got float 1000\.0"):
        StagePolicy(max_model_size_bytes=1000.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"unknown data role 'train' \(did you mean 'training'"):
        StagePolicy(require_data_validation=("train",))
    with pytest.raises(InvalidInput, match=r"repeats a role"):
        StagePolicy(require_data_validation=("training", "training"))
    with pytest.raises(InvalidInput, match=r"allow_self_approval = true only matters when"):
        StagePolicy(allow_self_approval=True)
    with pytest.raises(InvalidInput, match=r"require_approval must be true or false, got 'yes'"):
        StagePolicy(require_approval="yes")  # type: ignore[arg-type]


def test_stage_policy_refuses_repeated_rules_and_improper_slice_rules() -> None:
    with pytest.raises(InvalidInput, match=r"thresholds: \['accuracy'\] appear more than once"):
        StagePolicy(thresholds=(Limit("accuracy", 0.8), Limit("accuracy", 0.9)))
    with pytest.raises(InvalidInput, match=r"slices\.accuracy: min_better is not allowed here"):
        StagePolicy(slices=(RelativeRule("accuracy", Margin.MIN_BETTER, 0.0),))
    with pytest.raises(InvalidInput, match=r"names one slice metric; name the metric alone"):
        StagePolicy(slices=(RelativeRule("slice:a=b/accuracy", Margin.MAX_WORSE, 0.0),))
    with pytest.raises(InvalidInput, match=r"thresholds must hold Limit values"):
        StagePolicy(thresholds=(RelativeRule("accuracy", Margin.MAX_WORSE, 0.0),))  # type: ignore[arg-type]
    assert StagePolicy().is_empty
    assert not StagePolicy(require_approval=True).is_empty


# --- the whole policy ----------------------------------------------------------------------


def test_a_models_own_policy_replaces_the_default_for_its_stage_only() -> None:
    default = StagePolicy(thresholds=(Limit("accuracy", 0.8),))
    own = StagePolicy(max_latency_p99_ms=20)
    policy = GatePolicy(
        default={Stage.STAGING: default, Stage.PRODUCTION: default},
        models={"bike-demand": {"production": own}},  # type: ignore[dict-item]
    )
    assert policy.for_stage("bike-demand", Stage.PRODUCTION) is own
    assert policy.for_stage("bike-demand", "staging") is default
    assert policy.for_stage("churn", "production") is default
    assert GatePolicy().for_stage("churn", "production") is None
    assert [path for path, _ in policy.stage_policies()] == [
        "gates.default.staging",
        "gates.default.production",
        "gates.models.bike-demand.production",
    ]


def test_gates_guard_promotions_only() -> None:
    assert GATED_STAGES == (Stage.STAGING, Stage.PRODUCTION)
    assert gated_stage("production") is Stage.PRODUCTION
    with pytest.raises(InvalidInput) as info:
        gated_stage("archived")
    assert str(info.value) == (
        "stage 'archived' takes no gates: gates guard promotions into staging and "
        "production; moving back or archiving is always allowed"
    )
    with pytest.raises(InvalidInput, match=r"unknown stage 'prod' \(did you mean 'production'"):
        gated_stage("prod")
    with pytest.raises(InvalidInput, match=r"gates\.default: stage 'candidate' takes no gates"):
        GatePolicy(default={Stage.CANDIDATE: StagePolicy()})


def test_policy_refuses_rules_on_names_without_a_usable_direction() -> None:
    with pytest.raises(InvalidInput) as info:
        GatePolicy(default={Stage.PRODUCTION: StagePolicy(thresholds=(Limit("acuracy", 0.8),))})
    assert str(info.value).startswith(
        "gates.default.production.thresholds.acuracy: metric 'acuracy' has no known direction "
        "(did you mean 'accuracy'?)"
    )
    bias = StagePolicy(champion=(RelativeRule("bias", Margin.MAX_WORSE, 0.1),))
    with pytest.raises(InvalidInput, match=r"champion\.bias: 'bias' has no better direction"):
        GatePolicy(models={"m": {Stage.STAGING: bias}})
    unfair = StagePolicy(fairness=(Limit("accuracy", 0.8),))
    with pytest.raises(InvalidInput, match=r"fairness\.accuracy: 'accuracy' is not a fairness"):
        GatePolicy(default={Stage.PRODUCTION: unfair})
    misplaced = StagePolicy(thresholds=(Limit("demographic_parity_difference", None, 0.1),))
    with pytest.raises(InvalidInput, match=r"is a fairness measure; bound it under fairness"):
        GatePolicy(default={Stage.PRODUCTION: misplaced})
    custom = StagePolicy(thresholds=(Limit("uplift", 0.0),), fairness=(Limit("gap", None, 1),))
    policy = GatePolicy(default={Stage.PRODUCTION: custom}, directions={"uplift": H, "gap": L})  # type: ignore[arg-type]
    assert policy.directions.of("uplift") is H


def test_policy_checks_model_names_and_format_version() -> None:
    with pytest.raises(InvalidInput, match=r"model name 'bad name' is not valid"):
        GatePolicy(models={"bad name": {}})
    with pytest.raises(InvalidInput, match=r"format_version 2 is newer than this loopml"):
        GatePolicy(format_version=2)
    with pytest.raises(InvalidInput, match=r"format_version must be a positive integer"):
        GatePolicy(format_version=0)


def test_toml_key_quotes_only_what_it_must() -> None:
    assert toml_key("bike-demand") == "bike-demand"
    assert toml_key("churn.v2") == '"churn.v2"'
    assert toml_key('slice:q="a"/f1') == '"slice:q=\\"a\\"/f1"'
    assert toml_key("a\nb") == '"a\\u000Ab"'
