"""The monitoring report in the domain: windows, alerts and loops summarised, and its JSON."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from loopml.domain.drift import DriftMethod, FeatureDrift
from loopml.domain.errors import InvalidInput
from loopml.domain.loop import LoopRun, LoopState
from loopml.domain.monitor_report import Verdict, build_report, plain
from loopml.domain.monitoring import WindowReport

T = 1_714_572_000_000
STEP = 300_000


def drift(
    column: str, score: float, *, drifted: bool | None = None, detail: str = ""
) -> FeatureDrift:
    return FeatureDrift(
        column=column,
        kind="numeric",
        rows=500,
        method=DriftMethod.WASSERSTEIN,
        score=score,
        threshold=0.1,
        drifted=score >= 0.1 if drifted is None else drifted,
        detail=detail,
    )


def window(i: int, *features: FeatureDrift, **changes: Any) -> WindowReport:
    values: dict[str, Any] = {
        "deployment": "bikes",
        "window_key": f"time:{T + i * STEP}-{T + (i + 1) * STEP}",
        "start_ms": T + i * STEP,
        "end_ms": T + (i + 1) * STEP - 1,
        "rows": 500,
        "model": "bike-demand",
        "version": 3,
        "features": features,
        "latency_p99_ms": 12.0,
    }
    values.update(changes)
    return WindowReport(**values)


def alert(metric: str, threshold: float, window_index: int, **changes: Any) -> dict[str, Any]:
    fired = T + (window_index + 1) * STEP - 1
    values: dict[str, Any] = {
        "id": f"{metric}-{window_index}",
        "rule": f"rule-{metric}",
        "deployment": "bikes",
        "metric": metric,
        "value": threshold * 2,
        "threshold": threshold,
        "comparison": "above",
        "severity": "warning",
        "time_ms": fired + 10,
        "observed_ms": fired,
        "message": f"{metric} too high",
        "dedup_key": f"rule-{metric}|bikes|{metric}",
    }
    values.update(changes)
    return values


def test_features_are_ranked_drifted_first_then_by_newest_then_by_largest_severity() -> None:
    windows = [
        window(
            0,
            drift("a", 0.05),
            drift("b", 0.9),
            drift("c", 0.02),
            drift("gone", 0.5, drifted=False),
        ),
        window(1, drift("a", 0.05), drift("b", 0.02), drift("c", 0.08)),
        # "d": a severity above 1 that is not drifted (noise at this window size)
        window(
            2, drift("a", 0.15), drift("b", 0.02), drift("c", 0.08), drift("d", 0.3, drifted=False)
        ),
    ]
    report = build_report("bikes", windows, [], [], T + 10 * STEP)
    ranked = [t.column for t in report.features]
    # a drifted now; "d" (severity 3) and "gone" (5, last measured in window 0) did not
    # drift, so both are held just under the line and tie, by name; c (0.8 now) before
    # b (0.2 now, 9 once)
    assert ranked == ["a", "d", "gone", "c", "b"]
    assert next(t for t in report.features if t.column == "d").latest_severity < 1.0
    b = next(t for t in report.features if t.column == "b")
    assert b.max_severity == pytest.approx(9.0)
    assert b.latest_severity == pytest.approx(0.2)
    assert b.drifted_windows == 1
    assert b.severities == pytest.approx((9.0, 0.2, 0.2))
    d = next(t for t in report.features if t.column == "d")
    assert [math.isnan(s) for s in d.severities] == [True, True, False]
    assert d.latest_window == windows[2].window_key


def test_an_infinite_severity_ranks_first_and_a_nan_one_last() -> None:
    windows = [
        window(0, drift("flat", math.inf), drift("odd", math.nan, drifted=False), drift("x", 0.05))
    ]
    report = build_report("bikes", windows, [], [], T)
    assert [t.column for t in report.features] == ["flat", "x", "odd"]
    assert report.features[0].max_severity == math.inf
    assert math.isnan(report.features[-1].max_severity)


def test_the_summary_reads_the_newest_window_and_the_newest_judged_one() -> None:
    windows = [
        window(0, drift("temperature", 0.03)),
        window(
            1, drift("temperature", 0.25, detail="mean 14.1 -> 19.0"), outputs=(drift("y", 0.2),)
        ),
        window(2, rows=4, features=(), latency_p99_ms=None, note="4 rows, fewer than min_rows"),
    ]
    report = build_report("bikes", reversed(windows), [], [], T + 3 * STEP)
    assert [w.window_key for w in report.windows] == [w.window_key for w in windows]
    assert report.verdict is Verdict.NOT_JUDGED
    # a window too small to judge does not hide the drift the one before it showed
    assert report.drifted == ("temperature", "y")
    assert report.latest_judged is windows[1]
    assert report.features[0].latest_window == windows[1].window_key
    assert report.rows == 1004
    assert report.latency_p99_ms[:2] == (12.0, 12.0)
    assert math.isnan(report.latency_p99_ms[2])

    judged = build_report("bikes", windows[:2], [], [], T)
    assert judged.verdict is Verdict.DRIFT
    calm = build_report("bikes", windows[:1], [], [], T)
    assert calm.verdict is Verdict.NO_DRIFT
    assert calm.drifted == ()


def test_a_window_given_twice_counts_once_and_performance_is_padded_with_nan() -> None:
    first = window(0, drift("a", 0.01))
    again = window(0, drift("a", 0.5))
    later = window(1, drift("a", 0.01), performance={"rmse": 3.5, "mae": 2.0})
    report = build_report("bikes", [first, later, again], [], [], T)
    assert len(report.windows) == 2
    assert report.features[0].severities == pytest.approx((5.0, 0.1))
    assert list(report.performance) == ["rmse", "mae"]
    rmse = report.performance["rmse"]
    assert math.isnan(rmse[0]) and rmse[1] == 3.5


def test_an_alert_is_open_while_its_figure_is_still_bad_and_cleared_after() -> None:
    windows = [
        window(0, drift("a", 0.3), latency_p99_ms=400.0, performance={"r2": 0.4}),
        window(1, drift("a", 0.3), latency_p99_ms=20.0, performance={"r2": 0.9}),
    ]
    alerts = [
        alert("drift_score", 1.0, 0),  # still 3.0 in window 1: open
        alert("latency_p99_ms", 100.0, 0),  # 20 ms in window 1: cleared
        alert("performance:r2", 0.5, 0, comparison="below"),  # 0.9: cleared
        alert("error_rate", 0.1, 0),  # not measured by windows: nothing says it cleared
    ]
    report = build_report("bikes", windows, alerts, [], T)
    assert [a["metric"] for a in report.open_alerts] == ["drift_score", "error_rate"]

    bad_again = [*windows, window(2, drift("a", 0.01), performance={"r2": 0.2})]
    report = build_report("bikes", bad_again, alerts, [], T)
    assert {a["metric"] for a in report.open_alerts} == {"performance:r2", "error_rate"}


def test_only_the_newest_alert_of_a_key_counts_and_unjudged_windows_do_not_clear_drift() -> None:
    windows = [
        window(0, drift("a", 0.3)),
        window(1, rows=3, features=(), note="too few rows"),  # drift_score 0, not judged
    ]
    older = alert("drift_score", 1.0, 0, id="old", time_ms=T)
    newer = alert("drift_score", 1.0, 0, id="new")
    report = build_report("bikes", windows, [newer, older], [], T)
    assert [a["id"] for a in report.alerts] == ["old", "new"]  # oldest first
    assert [a["id"] for a in report.open_alerts] == ["new"]


def test_alerts_with_missing_or_odd_keys_are_tolerated() -> None:
    windows = [window(0, drift("a", 0.01))]
    odd: list[dict[str, Any]] = [
        {"message": "only a message"},
        {"rule": "r", "metric": "drift_score", "threshold": "not a number", "time_ms": "soon"},
        {"rule": "r2", "metric": "drift_score", "threshold": 1.0, "value": "inf", "extra": [1]},
    ]
    report = build_report("bikes", windows, odd, [], T)
    assert len(report.alerts) == 3
    # the third is within its threshold in the newest window; the others cannot be judged
    assert [a.get("rule") for a in report.open_alerts] == [None, "r"]
    json.dumps(report.to_dict(), allow_nan=False)


def test_values_of_another_deployment_are_refused() -> None:
    other = window(0, drift("a", 0.01), deployment="trains")
    with pytest.raises(InvalidInput, match=r"belongs to deployment 'trains', not 'bikes'"):
        build_report("bikes", [other], [], [], T)
    with pytest.raises(InvalidInput, match="alert"):
        build_report("bikes", [], [alert("drift_score", 1.0, 0, deployment="trains")], [], T)
    with pytest.raises(InvalidInput, match="loop"):
        build_report("bikes", [], [], [LoopRun("l1", "trains", "manual", T)], T)


def test_loops_are_ordered_and_the_newest_gives_the_state() -> None:
    first = LoopRun("l1", "bikes", "manual", T).advance(LoopState.FAILED, T + 5, "pipeline failed")
    second = LoopRun("l2", "bikes", "a1", T + 100).advance(LoopState.TRAINED, T + 200, "v4")
    report = build_report("bikes", [], [], [second, first], T)
    assert [r.id for r in report.loops] == ["l1", "l2"]
    assert report.loop_state == "trained"
    assert build_report("bikes", [], [], [], T).loop_state is None


def test_the_json_is_plain_and_survives_non_finite_numbers() -> None:
    loop = LoopRun("l1", "bikes", "a1", T, facts={"ratio": math.inf, "when": object()})
    windows = [
        window(
            0,
            drift("flat", math.inf, detail="reference has no spread"),
            drift("b", math.nan, drifted=False),
            performance={"roc_auc": math.nan, "accuracy": 0.9},
            latency_p99_ms=math.nan,
            outputs=(drift("y", 0.05),),
        )
    ]
    alerts = [alert("drift_score", 1.0, 0, value=math.inf)]
    report = build_report("bikes", windows, alerts, [loop], T + STEP)
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)  # raises on NaN or infinity
    assert json.loads(text) == data
    assert data["summary"]["verdict"] == "drift"
    assert data["summary"]["score"] == "inf"
    assert data["summary"]["drifted"] == ["flat"]
    assert data["summary"]["open_alerts"] == 1
    assert data["features"][0]["column"] == "flat"
    assert data["features"][0]["latest_severity"] == "inf"
    assert data["features"][1]["severities"] == ["nan"]
    assert data["performance"]["roc_auc"] == ["nan"]
    assert data["latency_p99_ms"] == ["nan"]
    assert data["alerts"][0]["value"] == "inf"
    assert data["loops"][0]["facts"]["ratio"] == "inf"
    assert isinstance(data["loops"][0]["facts"]["when"], str)
    assert data["outputs"][0]["column"] == "y"
    assert data["window_keys"] == [windows[0].window_key]


def test_an_empty_report_says_there_are_no_windows() -> None:
    report = build_report("bikes", [], [], [], T)
    assert report.verdict is Verdict.NO_WINDOWS
    assert report.latest is None and report.latest_judged is None
    assert report.features == () and report.performance == {}
    data = report.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["summary"]["windows"] == 0
    assert data["summary"]["verdict"] == "no windows"
    assert data["summary"]["latest_window"] is None


def test_plain_turns_anything_into_json_types() -> None:
    value = plain({1: (LoopState.CANARY, {math.nan}), "x": [True, None, -math.inf, 2]})
    assert value == {"1": ["canary", ["nan"]], "x": [True, None, "-inf", 2]}
    assert type(value["1"][0]) is str
