"""Evaluating gates: every check kind passing and failing, skipped vs failed, the report."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.errors import InvalidInput
from loopml.domain.gate_checks import ModelFacts, evaluate_gates
from loopml.domain.gate_file import policy_from_toml
from loopml.domain.gate_report import CheckKind, CheckResult, GateReport, Outcome, format_pair
from loopml.domain.gates import GatePolicy, Limit, Margin, RelativeRule, StagePolicy
from loopml.domain.lifecycle import Stage
from loopml.domain.metric_directions import Direction


def gate(
    rules: StagePolicy, candidate: ModelFacts, champion: ModelFacts | None = None
) -> GateReport:
    policy = GatePolicy(
        default={Stage.PRODUCTION: rules},
        directions={"uplift": Direction.HIGHER, "my_gap": Direction.LOWER},  # type: ignore[arg-type]
    )
    return evaluate_gates(policy, "churn", "production", candidate, champion)


def only(report: GateReport) -> CheckResult:
    assert len(report.checks) == 1, report.checks
    return report.checks[0]


def facts(**metrics: float) -> ModelFacts:
    return ModelFacts.from_flat_metrics(metrics)


# --- absolute thresholds -------------------------------------------------------------------


def test_minimum_threshold_passes_and_fails() -> None:
    rules = StagePolicy(thresholds=(Limit("accuracy", 0.85),))
    ok = only(gate(rules, facts(accuracy=0.91)))
    assert ok == CheckResult(
        "min:accuracy",
        CheckKind.THRESHOLD,
        "accuracy",
        Outcome.PASSED,
        "accuracy 0.91 is at or above the minimum 0.85",
        0.91,
        0.85,
        ">=",
    )
    bad = only(gate(rules, facts(accuracy=0.81)))
    assert bad.outcome is Outcome.FAILED
    assert bad.message == "accuracy 0.81 is below the minimum 0.85"


def test_maximum_threshold_passes_and_fails() -> None:
    rules = StagePolicy(thresholds=(Limit("rmse", None, 40),))
    assert only(gate(rules, facts(rmse=40))).message == "rmse 40.0 is at or below the maximum 40.0"
    bad = only(gate(rules, facts(rmse=41.2)))
    assert (bad.name, bad.outcome) == ("max:rmse", Outcome.FAILED)
    assert bad.message == "rmse 41.2 is above the maximum 40.0"


def test_both_sides_give_one_check_each() -> None:
    rules = StagePolicy(thresholds=(Limit("roc_auc", 0.8, 0.995),))
    report = gate(rules, facts(roc_auc=0.999))
    assert [(c.name, c.outcome) for c in report.checks] == [
        ("min:roc_auc", Outcome.PASSED),
        ("max:roc_auc", Outcome.FAILED),
    ]
    assert report.checks[1].message == "roc_auc 0.999 is above the maximum 0.995"


def test_slice_threshold_reads_the_slice_metric() -> None:
    rules = StagePolicy(thresholds=(Limit("slice:region=eu/recall", 0.7),))
    check = only(gate(rules, facts(**{"slice:region=eu/recall": 0.65, "recall": 0.9})))
    assert check.message == "slice:region=eu/recall 0.65 is below the minimum 0.7"


def test_a_missing_metric_fails_as_not_measured() -> None:
    check = only(gate(StagePolicy(thresholds=(Limit("accuracy", 0.85),)), facts(f1=0.9)))
    assert check.outcome is Outcome.FAILED
    assert check.value is None
    assert check.message == (
        "accuracy was not measured for the candidate; the gate needs it (the minimum is 0.85)"
    )


def test_nan_fails_whatever_the_bound() -> None:
    rules = StagePolicy(thresholds=(Limit("roc_auc", 0.5, 1.0),))
    report = gate(rules, facts(roc_auc=math.nan))
    assert [c.outcome for c in report.checks] == [Outcome.FAILED, Outcome.FAILED]
    assert report.checks[0].message == (
        "roc_auc is nan (undefined); a gate cannot pass on an undefined value (the minimum is 0.5)"
    )


def test_values_on_the_bound_pass_and_close_values_are_told_apart() -> None:
    rules = StagePolicy(thresholds=(Limit("accuracy", 0.85),))
    assert only(gate(rules, facts(accuracy=0.85))).passed
    check = only(gate(rules, facts(accuracy=0.8499999)))
    assert check.message == "accuracy 0.8499999 is below the minimum 0.85"
    assert format_pair(0.8499999, 0.85) == ("0.8499999", "0.85")


# --- the champion --------------------------------------------------------------------------


def test_champion_percentage_margin_on_a_lower_is_better_metric() -> None:
    rules = StagePolicy(champion=(RelativeRule("rmse", Margin.MAX_WORSE_PCT, 5),))
    champion = facts(rmse=38.5)
    bad = only(gate(rules, facts(rmse=41.2), champion))
    assert bad == CheckResult(
        "champion:rmse",
        CheckKind.CHAMPION,
        "rmse",
        Outcome.FAILED,
        "rmse 41.2 is above the bound 40.425 (champion 38.5 + 5%)",
        41.2,
        pytest.approx(40.425),  # type: ignore[arg-type]
        "<=",
        38.5,
    )
    on_bound = only(gate(rules, facts(rmse=40.425), champion))
    assert on_bound.passed, on_bound.message  # 38.5 * 1.05 is 40.425000000000004 in binary
    assert on_bound.message == "rmse 40.425 is at or below the bound 40.425 (champion 38.5 + 5%)"


def test_champion_absolute_margin_on_a_higher_is_better_metric() -> None:
    rules = StagePolicy(champion=(RelativeRule("accuracy", Margin.MAX_WORSE, 0.01),))
    champion = facts(accuracy=0.88)
    assert only(gate(rules, facts(accuracy=0.86), champion)).message == (
        "accuracy 0.86 is below the bound 0.87 (champion 0.88 - 0.01)"
    )
    assert only(gate(rules, facts(accuracy=0.875), champion)).message == (
        "accuracy 0.875 is at or above the bound 0.87 (champion 0.88 - 0.01)"
    )


def test_champion_must_be_beaten_by_a_margin() -> None:
    rules = StagePolicy(
        champion=(
            RelativeRule("rmse", Margin.MIN_BETTER_PCT, 1),
            RelativeRule("f1", Margin.MIN_BETTER, 0.02),
        )
    )
    report = gate(rules, facts(rmse=38.5, f1=0.81), facts(rmse=38.5, f1=0.8))
    assert [c.message for c in report.checks] == [
        "rmse 38.5 is above the bound 38.115 (champion 38.5 - 1%)",
        "f1 0.81 is below the bound 0.82 (champion 0.8 + 0.02)",
    ]
    assert not report.passed


def test_without_a_champion_relative_checks_are_skipped_not_failed() -> None:
    rules = StagePolicy(
        champion=(RelativeRule("rmse", Margin.MAX_WORSE, 1),),
        slices=(RelativeRule("rmse", Margin.MAX_WORSE, 1),),
    )
    report = gate(rules, facts(rmse=50))
    assert [(c.name, c.outcome, c.message) for c in report.checks] == [
        ("champion:rmse", Outcome.SKIPPED, "skipped: there is no champion to compare with yet"),
        (
            "slice_regression:rmse",
            Outcome.SKIPPED,
            "skipped: there is no champion to compare with yet",
        ),
    ]
    assert report.passed


def test_a_champion_without_the_metric_skips_and_a_candidate_without_it_fails() -> None:
    rules = StagePolicy(champion=(RelativeRule("rmse", Margin.MAX_WORSE, 1),))
    skipped = only(gate(rules, facts(rmse=50), facts(mae=3)))
    assert (skipped.outcome, skipped.message) == (
        Outcome.SKIPPED,
        "skipped: the champion has no value of rmse to compare with",
    )
    nan = only(gate(rules, facts(rmse=50), facts(rmse=math.nan)))
    assert nan.message == "skipped: the champion has an undefined (nan) rmse to compare with"
    failed = only(gate(rules, facts(mae=3), facts(rmse=50)))
    assert (failed.outcome, failed.message) == (
        Outcome.FAILED,
        "rmse was not measured for the candidate; the gate needs it",
    )
    assert failed.champion == 50.0


# --- slices --------------------------------------------------------------------------------


def test_no_slice_may_regress_more_than_the_margin() -> None:
    rules = StagePolicy(slices=(RelativeRule("accuracy", Margin.MAX_WORSE, 0.02),))
    candidate = facts(
        **{
            "slice:region=eu/accuracy": 0.79,
            "slice:region=us/accuracy": 0.90,
            "slice:region=apac/accuracy": 0.50,  # the champion never measured it
            "slice:region=eu/f1": 0.1,  # another metric: not this rule's business
        }
    )
    champion = facts(
        **{
            "slice:region=eu/accuracy": 0.82,
            "slice:region=us/accuracy": 0.91,
            "slice:region=latam/accuracy": 0.9,  # the candidate dropped it
        }
    )
    report = gate(rules, candidate, champion)
    assert [(c.name, c.outcome, c.message) for c in report.checks] == [
        (
            "slice_regression:slice:region=eu/accuracy",
            Outcome.FAILED,
            "slice:region=eu/accuracy 0.79 is below the bound 0.8 (champion 0.82 - 0.02)",
        ),
        (
            "slice_regression:slice:region=us/accuracy",
            Outcome.PASSED,
            "slice:region=us/accuracy 0.9 is at or above the bound 0.89 (champion 0.91 - 0.02)",
        ),
    ]
    assert {c.kind for c in report.checks} == {CheckKind.SLICE_REGRESSION}


def test_slice_rule_with_a_percentage_on_a_lower_is_better_metric() -> None:
    rules = StagePolicy(slices=(RelativeRule("rmse", Margin.MAX_WORSE_PCT, 10),))
    check = only(
        gate(rules, facts(**{"slice:weekend/rmse": 23}), facts(**{"slice:weekend/rmse": 20}))
    )
    assert check.message == "slice:weekend/rmse 23.0 is above the bound 22.0 (champion 20.0 + 10%)"


def test_no_common_slice_skips_with_the_reason() -> None:
    rules = StagePolicy(slices=(RelativeRule("accuracy", Margin.MAX_WORSE, 0.02),))
    check = only(gate(rules, facts(**{"slice:a=1/accuracy": 0.5}), facts(accuracy=0.9)))
    assert (check.outcome, check.message) == (
        Outcome.SKIPPED,
        "skipped: no slice of accuracy was measured for both the candidate and the champion",
    )


def test_a_nan_slice_fails_for_the_candidate_and_skips_for_the_champion() -> None:
    rules = StagePolicy(slices=(RelativeRule("r2", Margin.MAX_WORSE, 0.1),))
    names = {"slice:a=1/r2": 0.5, "slice:a=2/r2": math.nan}
    report = gate(rules, facts(**names), facts(**{"slice:a=1/r2": math.nan, "slice:a=2/r2": 0.5}))
    assert [c.outcome for c in report.checks] == [Outcome.SKIPPED, Outcome.FAILED]


# --- fairness ------------------------------------------------------------------------------


def test_a_bare_fairness_measure_bounds_every_sensitive_column() -> None:
    rules = StagePolicy(fairness=(Limit("demographic_parity_difference", None, 0.1),))
    candidate = facts(
        **{
            "fairness:sex/demographic_parity_difference": 0.05,
            "fairness:age/demographic_parity_difference": 0.12,
            "fairness:sex/equalized_odds_difference": 0.5,
        }
    )
    report = gate(rules, candidate)
    assert [(c.name, c.outcome, c.message) for c in report.checks] == [
        (
            "max:fairness:sex/demographic_parity_difference",
            Outcome.PASSED,
            "fairness:sex/demographic_parity_difference 0.05 is at or below the maximum 0.1",
        ),
        (
            "max:fairness:age/demographic_parity_difference",
            Outcome.FAILED,
            "fairness:age/demographic_parity_difference 0.12 is above the maximum 0.1",
        ),
    ]
    assert {c.kind for c in report.checks} == {CheckKind.FAIRNESS}


def test_fairness_by_bare_name_per_column_or_declared() -> None:
    rules = StagePolicy(
        fairness=(
            Limit("equalized_odds_difference", None, 0.1),
            Limit("fairness:sex/group_mae_difference", None, 2.0),
            Limit("demographic_parity_ratio", 0.8),
            Limit("my_gap", None, 1),
        )
    )
    candidate = ModelFacts(
        fairness={
            "equalized_odds_difference": 0.02,
            "fairness:sex/group_mae_difference": 2.5,
            "demographic_parity_ratio": 0.75,
        }
    )
    report = gate(rules, candidate)
    assert [(c.name, c.outcome) for c in report.checks] == [
        ("max:equalized_odds_difference", Outcome.PASSED),
        ("max:fairness:sex/group_mae_difference", Outcome.FAILED),
        ("min:demographic_parity_ratio", Outcome.FAILED),
        ("max:my_gap", Outcome.FAILED),
    ]
    assert report.checks[2].message == "demographic_parity_ratio 0.75 is below the minimum 0.8"
    assert report.checks[3].message == (
        "my_gap was not measured for the candidate; the gate needs it (the maximum is 1.0)"
    )


# --- data validation, latency, size --------------------------------------------------------


def test_data_validation_passed_failed_and_not_run() -> None:
    rules = StagePolicy(require_data_validation=("training", "evaluation"))
    report = gate(rules, ModelFacts(data_validation={"training": True, "evaluation": False}))
    assert [(c.name, c.outcome, c.message, c.value) for c in report.checks] == [
        ("data_validation:training", Outcome.PASSED, "training data passed validation", True),
        ("data_validation:evaluation", Outcome.FAILED, "evaluation data failed validation", False),
    ]
    report = gate(rules, ModelFacts(data_validation={"training": None}))
    assert [c.message for c in report.checks] == [
        "training data validation was not run; the gate needs it to have passed",
        "evaluation data validation was not run; the gate needs it to have passed",
    ]
    assert report.count(Outcome.FAILED) == 2


def test_latency_budget() -> None:
    rules = StagePolicy(max_latency_p99_ms=50)
    ok = only(gate(rules, ModelFacts(latency_p99_ms=12.5)))
    assert (ok.name, ok.outcome, ok.unit) == ("latency_p99", Outcome.PASSED, "ms")
    assert ok.message == "predict latency p99 12.5 ms is within the budget 50.0 ms"
    assert only(gate(rules, ModelFacts(latency_p99_ms=72.1))).message == (
        "predict latency p99 72.1 ms is over the budget 50.0 ms"
    )
    missing = only(gate(rules, ModelFacts()))
    assert (missing.outcome, missing.message) == (
        Outcome.FAILED,
        "predict latency p99 was not measured; the gate needs it (budget 50.0 ms)",
    )


def test_model_size_budget() -> None:
    rules = StagePolicy(max_model_size_bytes=50_000_000)
    assert only(gate(rules, ModelFacts(model_size_bytes=52_428_800))).message == (
        "model size 52,428,800 bytes (52.4 MB) is over the budget 50,000,000 bytes (50.0 MB)"
    )
    assert only(gate(rules, ModelFacts(model_size_bytes=900))).message == (
        "model size 900 bytes is within the budget 50,000,000 bytes (50.0 MB)"
    )
    assert only(gate(rules, ModelFacts())).message == (
        "model size was not measured; the gate needs it (budget 50,000,000 bytes (50.0 MB))"
    )


# --- facts ---------------------------------------------------------------------------------


def test_flat_metrics_are_sorted_by_scope() -> None:
    f = ModelFacts.from_flat_metrics(
        {
            "accuracy": 0.9,
            "slice:region=eu/accuracy": 0.8,
            "fairness:sex/demographic_parity_difference": 0.1,
            "equalized_odds_difference": 0.2,
        },
        version=3,
    )
    assert dict(f.metrics) == {"accuracy": 0.9}
    assert dict(f.slice_metrics) == {"slice:region=eu/accuracy": 0.8}
    assert set(f.fairness) == {
        "fairness:sex/demographic_parity_difference",
        "equalized_odds_difference",
    }
    assert f.version == 3
    assert f.value_of("equalized_odds_difference") == 0.2
    assert f.value_of("slice:region=eu/accuracy") == 0.8
    assert f.value_of("f1") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": {"slice:a=b/f1": 1.0}}, r"metrics: 'slice:a=b/f1' does not belong here"),
        ({"slice_metrics": {"f1": 1.0}}, r"expected slice:<slice>/<metric>"),
        ({"metrics": {"f1": "0.9"}}, r"metrics\['f1'\] must be a number, got '0\.9'"),
        ({"metrics": {"f1": True}}, r"must be a number, got True"),
        ({"data_validation": {"train": True}}, r"unknown data role 'train'"),
        ({"data_validation": {"training": "yes"}}, r"must be true, false or None \(not run\)"),
        ({"latency_p99_ms": -1.0}, r"latency_p99_ms must be a finite number >= 0, got -1\.0"),
        ({"latency_p99_ms": math.nan}, r"latency_p99_ms must be a finite number >= 0"),
        ({"model_size_bytes": 1.5}, r"model_size_bytes must be a whole number >= 0"),
    ],
)
def test_bad_facts_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ModelFacts(**kwargs)  # type: ignore[arg-type]


# --- the report ----------------------------------------------------------------------------

POLICY = """
[gates.default.production]
require_data_validation = ["training"]
max_latency_p99_ms = 50
require_approval = true

[gates.default.production.thresholds]
accuracy = 0.85

[gates.default.production.champion]
log_loss = { max_worse_pct = 5 }

[gates.default.production.slices]
accuracy = { max_worse = 0.02 }
"""


def report_of(candidate: ModelFacts, champion: ModelFacts | None) -> GateReport:
    return evaluate_gates(policy_from_toml(POLICY, "p"), "churn", "production", candidate, champion)


def test_report_verdict_counts_and_failures() -> None:
    candidate = ModelFacts.from_flat_metrics(
        {"accuracy": 0.9, "log_loss": 0.5, "slice:a|b=1/accuracy": 0.5},
        data_validation={"training": True},
        version=7,
    )
    champion = ModelFacts.from_flat_metrics(
        {"log_loss": 0.4, "slice:a|b=1/accuracy": 0.6}, version=5
    )
    report = report_of(candidate, champion)
    assert not report.passed
    assert [c.name for c in report.failures] == [
        "champion:log_loss",
        "slice_regression:slice:a|b=1/accuracy",
        "latency_p99",
    ]
    assert report.summary() == "failed: 3 failed, 2 passed"
    assert report.failure_text(limit=1) == (
        "log_loss 0.5 is above the bound 0.42 (champion 0.4 + 5%); and 2 more"
    )
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["model"] == "churn" and data["stage"] == "production"
    assert (data["candidate_version"], data["champion_version"]) == (7, 5)
    assert data["counts"] == {"passed": 2, "failed": 3, "skipped": 0}
    assert data["requires_approval"] is True and data["allow_self_approval"] is False
    assert data["checks"][0] == {
        "name": "min:accuracy",
        "kind": "threshold",
        "subject": "accuracy",
        "outcome": "passed",
        "value": 0.9,
        "bound": 0.85,
        "comparison": ">=",
        "champion": None,
        "unit": "",
        "message": "accuracy 0.9 is at or above the minimum 0.85",
    }


def test_markdown_for_a_pull_request_comment() -> None:
    candidate = ModelFacts.from_flat_metrics(
        {"accuracy": 0.9, "log_loss": 0.5, "slice:a|b=1/accuracy": 0.5},
        data_validation={"training": True},
        latency_p99_ms=12.5,
        version=7,
    )
    champion = ModelFacts.from_flat_metrics(
        {"log_loss": 0.4, "slice:a|b=1/accuracy": 0.6}, version=5
    )
    assert report_of(candidate, champion).to_markdown() == (
        "#### ❌ Gates for churn v7 -> production: failed: 2 failed, 3 passed\n"
        "\n"
        "Compared with the champion, v5.\n"
        "Approval: a person other than the requester must approve this promotion.\n"
        "\n"
        "| | Check | Value | Bound | Details |\n"
        "|:-:|---|--:|---|---|\n"
        "| ✅ | min:accuracy | 0.9 | ≥ 0.85 | accuracy 0.9 is at or above the minimum 0.85 |\n"
        "| ❌ | champion:log_loss | 0.5 | ≤ 0.42 | log_loss 0.5 is above the bound 0.42 "
        "(champion 0.4 + 5%) |\n"
        "| ❌ | slice_regression:slice:a\\|b=1/accuracy | 0.5 | ≥ 0.58 | "
        "slice:a\\|b=1/accuracy 0.5 is below the bound 0.58 (champion 0.6 - 0.02) |\n"
        "| ✅ | data_validation:training | passed | passed | training data passed validation |\n"
        "| ✅ | latency_p99 | 12.5 ms | ≤ 50.0 ms | predict latency p99 12.5 ms is within the "
        "budget 50.0 ms |\n"
    )


def test_markdown_without_a_champion_and_without_gates() -> None:
    candidate = ModelFacts.from_flat_metrics({"accuracy": 0.9}, latency_p99_ms=1.0)
    text = report_of(candidate, None).to_markdown()
    assert "No champion yet: checks against the champion are skipped." in text
    assert "| ⏭️ | champion:log_loss | — | — | skipped: there is no champion" in text
    assert "| ❌ | data_validation:training | not run | passed |" in text
    ungated = evaluate_gates(GatePolicy(), "churn", "staging", candidate)
    assert ungated.passed and not ungated.gated and ungated.checks == ()
    assert ungated.to_markdown() == (
        "#### ✅ Gates for churn -> staging: no gates apply to churn -> staging\n"
    )


def test_an_empty_model_policy_overrides_the_default() -> None:
    text = POLICY + "\n[gates.models.experimental.production]\n"
    policy = policy_from_toml(text, "p")
    report = evaluate_gates(policy, "experimental", Stage.PRODUCTION, ModelFacts())
    assert report.gated and report.passed and report.checks == ()
    assert not evaluate_gates(policy, "churn", Stage.PRODUCTION, ModelFacts()).passed


# --- invariants ----------------------------------------------------------------------------

_values = st.floats(-1e6, 1e6, allow_nan=False)


@given(
    champion=_values,
    candidate=_values,
    amount=st.floats(0, 100, allow_nan=False),
    margin=st.sampled_from(list(Margin)),
)
def test_mirrored_metrics_get_the_same_verdict(
    champion: float, candidate: float, amount: float, margin: Margin
) -> None:
    # accuracy-like x and rmse-like -x are the same model quality, seen from either side.
    higher = StagePolicy(champion=(RelativeRule("uplift", margin, amount),))
    lower = StagePolicy(champion=(RelativeRule("rmse", margin, amount),))
    up = only(gate(higher, facts(uplift=candidate), facts(uplift=champion)))
    down = only(gate(lower, facts(rmse=-candidate), facts(rmse=-champion)))
    assert up.outcome is down.outcome


@given(
    champion=_values,
    candidate=_values,
    better_by=st.floats(0, 1e6, allow_nan=False),
    amount=st.floats(0, 100, allow_nan=False),
    margin=st.sampled_from(list(Margin)),
)
def test_a_better_candidate_never_does_worse(
    champion: float, candidate: float, better_by: float, amount: float, margin: Margin
) -> None:
    rules = StagePolicy(champion=(RelativeRule("rmse", margin, amount),))
    before = only(gate(rules, facts(rmse=candidate), facts(rmse=champion)))
    after = only(gate(rules, facts(rmse=candidate - better_by), facts(rmse=champion)))
    if before.passed:
        assert after.passed


@given(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from(list(Margin)))
def test_the_champion_itself_passes_worse_margins_and_zero_better_margins(
    value: float, margin: Margin
) -> None:
    rules = StagePolicy(champion=(RelativeRule("accuracy", margin, 0 if margin.better else 1),))
    assert only(gate(rules, facts(accuracy=value), facts(accuracy=value))).passed
