"""MonitoringService on a real workspace: windows cut from a real Parquet prediction log,
judged against the stored profile of the training data version, once each."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopml.domain.drift import DriftMethod, FeatureDrift
from loopml.domain.errors import InvalidInput, NotFound
from loopml.domain.monitoring import MonitorSpec, WindowReport
from loopml.domain.predictions import Route
from monitoring_support import T0, Workspace, bikes, classifier, open_workspace

MINUTE = 60_000
GRID = T0 - T0 % MINUTE  # the start of the clock's current minute-window


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    workspace = open_workspace(tmp_path, monkeypatch)
    workspace.deploy(workspace.train(bikes(600, seed=0)))
    return workspace


def rows_spec(**kwargs: Any) -> MonitorSpec:
    values: dict[str, Any] = {"window_rows": 100, "min_rows": 30, **kwargs}
    return MonitorSpec("demand", **values)


def by_column(columns: tuple[FeatureDrift, ...]) -> dict[str, FeatureDrift]:
    return {c.column: c for c in columns}


# windows -----------------------------------------------------------------------------------


def test_row_windows_are_judged_once_and_an_incomplete_one_waits(ws: Workspace) -> None:
    ws.serve("demand", bikes(250, seed=1), at_ms=T0 - 100_000)
    first = ws.app.monitoring.run(rows_spec())
    assert [w.rows for w in first] == [100, 100]  # the last 50 rows wait for 50 more
    assert first[0].window_key == f"rows:{T0 - 100_000}-{T0 - 100_000 + 99}"
    assert first[1].start_ms == first[0].end_ms + 1
    assert all(w.model == "demand" and w.version == 1 for w in first)
    assert all(w.reference == "bikes@1" and w.note == "" for w in first)

    assert ws.app.monitoring.run(rows_spec()) == []  # nothing new: nothing judged twice

    ws.serve("demand", bikes(60, seed=2), at_ms=T0 - 50_000)
    third = ws.app.monitoring.run(rows_spec())
    assert [w.rows for w in third] == [100]  # the 50 that waited and 50 of the new ones
    assert third[0].start_ms == T0 - 100_000 + 200
    stored = ws.app.monitoring.windows("demand")
    assert [w.window_key for w in stored] == [w.window_key for w in (*first, *third)]


def test_a_row_window_never_splits_a_millisecond(ws: Workspace) -> None:
    ws.serve("demand", bikes(95, seed=1), at_ms=T0 - 100_000)
    ws.serve("demand", bikes(10, seed=2), at_ms=T0 - 90_000, step_ms=0)  # one millisecond
    ws.serve("demand", bikes(5, seed=3), at_ms=T0 - 80_000)
    [window] = ws.app.monitoring.run(rows_spec())
    assert window.rows == 105
    assert window.end_ms == T0 - 90_000


def test_rows_of_the_current_millisecond_wait(ws: Workspace) -> None:
    now = ws.clock.ms
    ws.serve("demand", bikes(100, seed=1), at_ms=now - 99)  # the last row is logged "now"
    assert ws.app.monitoring.run(rows_spec(), until_ms=now + 1) == []
    assert [w.rows for w in ws.app.monitoring.run(rows_spec(), until_ms=now + 2)] == [100]


def test_time_windows_empty_small_and_incomplete(ws: Workspace) -> None:
    start = GRID - 3 * MINUTE
    ws.serve("demand", bikes(50, seed=1), at_ms=start + 1_000, step_ms=100)
    # the second minute has no traffic
    ws.serve("demand", bikes(40, seed=2), at_ms=start + 2 * MINUTE, step_ms=100)
    ws.serve("demand", bikes(20, seed=3), at_ms=GRID, step_ms=100)  # the current minute
    spec = MonitorSpec("demand", window_s=60, min_rows=30)

    first = ws.app.monitoring.run(spec)
    assert [w.window_key for w in first] == [
        f"time:{start + k * MINUTE}-{start + (k + 1) * MINUTE}" for k in range(3)
    ]
    assert [w.rows for w in first] == [50, 0, 40]
    assert (first[0].start_ms, first[0].end_ms) == (start, start + MINUTE - 1)
    assert first[1].note.startswith("no production rows")
    assert first[1].features == () and first[1].reference == ""
    assert first[0].features and first[2].features
    assert ws.app.monitoring.run(spec) == []

    ws.clock.advance(60)  # the current minute is complete now
    [small] = ws.app.monitoring.run(spec)
    assert small.rows == 20
    assert "fewer than min_rows=30" in small.note
    assert small.features == () and small.outputs == ()
    assert small.latency_p99_ms == pytest.approx(2.0)  # service figures still count
    assert "drift_score" not in small.observations()
    assert ws.app.monitoring.run(spec) == []


def test_a_monitor_without_traffic_judges_nothing(ws: Workspace) -> None:
    assert ws.app.monitoring.run(rows_spec()) == []
    assert ws.app.monitoring.run(MonitorSpec("demand", window_s=60)) == []


def test_only_production_rows_are_judged(ws: Workspace) -> None:
    challenger = ws.train(bikes(600, seed=5, noise=3.0))
    ws.app.deployments.canary("demand", challenger.uri, 50.0, "tester")
    ws.serve("demand", bikes(100, seed=1), at_ms=T0 - 100_000, step_ms=2)
    ws.serve("demand", bikes(100, seed=2), at_ms=T0 - 99_999, step_ms=2, route=Route.CANARY)
    [window] = ws.app.monitoring.run(rows_spec())
    assert window.rows == 100
    assert window.version == 1  # the canary (v2) answered half the traffic, unjudged
    assert window.end_ms == T0 - 100_000 + 198


# references --------------------------------------------------------------------------------


def test_reference_is_the_training_version_found_through_lineage(ws: Workspace) -> None:
    ws.client.add_dataset("bikes", bikes(300, seed=9))  # a newer version: not the reference
    ws.serve("demand", bikes(100, seed=1), at_ms=T0 - 100_000)
    [window] = ws.app.monitoring.run(rows_spec())
    assert window.reference == "bikes@1"
    # the features compared are the model's inputs, not the label it was trained on
    assert [c.column for c in window.features] == ["temp", "hour", "city"]
    assert [c.column for c in window.outputs] == ["prediction"]


def test_reference_named_in_the_spec(ws: Workspace) -> None:
    shifted = bikes(600, seed=3)
    shifted["temp"] += 5.0
    ws.client.add_dataset("hot-summer", shifted)
    ws.serve("demand", bikes(100, seed=1), at_ms=T0 - 100_000)
    [window] = ws.app.monitoring.run(rows_spec(reference="hot-summer@1"))
    assert window.reference == "hot-summer@1"
    assert by_column(window.features)["temp"].drifted  # against *that* data, temp moved


def test_no_reference_is_a_clear_error(ws: Workspace) -> None:
    frame = bikes(200, seed=0)
    bare = ws.client.register_model(
        classifier(frame), "bare", sample=frame[["temp", "hour"]]
    )  # not from a run: no lineage
    ws.deploy(bare, "bare")
    ws.serve("bare", frame.head(100), at_ms=T0 - 100_000)
    spec = MonitorSpec("bare", window_rows=100, min_rows=30)
    with pytest.raises(NotFound, match=r"models:/bare/1 has no dataset version.*reference ="):
        ws.app.monitoring.run(spec)
    assert ws.app.monitoring.windows("bare") == []  # nothing stored: judged when fixed
    with pytest.raises(NotFound, match="nope"):
        ws.app.monitoring.run(MonitorSpec("bare", window_rows=100, reference="nope@1"))


def test_unknown_deployment_is_not_found(ws: Workspace) -> None:
    with pytest.raises(NotFound, match="ghost"):
        ws.app.monitoring.run(MonitorSpec("ghost", window_rows=100))


# drift ---------------------------------------------------------------------------------------


def test_injected_drift_is_flagged_on_that_feature_only(ws: Workspace) -> None:
    ws.serve("demand", bikes(200, seed=1), at_ms=T0 - 100_000)
    moved = bikes(200, seed=2)
    moved["temp"] += 3.0  # far outside anything the model was trained on
    ws.serve("demand", moved, at_ms=T0 - 50_000)
    windows = ws.app.monitoring.run(rows_spec())
    assert len(windows) == 4
    calm, drifted = windows[:2], windows[2:]
    for window in calm:
        assert window.drifted == ()
        assert window.score < 1.0  # below the line when nothing drifted
    for window in drifted:
        features = by_column(window.features)
        assert features["temp"].drifted
        assert features["temp"].method is DriftMethod.WASSERSTEIN
        assert not features["hour"].drifted and not features["city"].drifted
        assert window.drifted == ("temp", "prediction")  # the predictions moved with it
        assert window.score >= 1.0
        assert window.observations()["feature_drift:temp"] >= 1.0


def test_prediction_drift_is_computed_from_the_models_own_reference_predictions(
    ws: Workspace,
) -> None:
    ws.serve("demand", bikes(100, seed=1), at_ms=T0 - 100_000)
    [window] = ws.app.monitoring.run(rows_spec())
    [prediction] = window.outputs
    assert prediction.column == "prediction" and prediction.kind == "numeric"
    assert prediction.rows == 100 and not prediction.drifted
    assert prediction.method is not DriftMethod.NONE
    # scored once, stored and reused: the key names the version and the data's digest
    dataset = ws.client.get_dataset("bikes@1")
    key = f"outputs:demand/1:bikes@1:{dataset.digest}"
    stored = ws.app.stores.monitors.find_reference(key)
    assert stored is not None and [c["name"] for c in stored["columns"]] == ["prediction"]


def test_classifier_outputs_are_compared_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = open_workspace(tmp_path, monkeypatch)
    frame = bikes(600, seed=0)
    ws.deploy(
        ws.train(frame, name="hot", model=classifier(frame), features=["temp", "hour"]), "hot"
    )
    ws.serve("hot", bikes(100, seed=1), at_ms=T0 - 100_000, columns=["temp", "hour"])
    [window] = ws.app.monitoring.run(MonitorSpec("hot", window_rows=100, min_rows=30))
    assert [c.column for c in window.outputs] == ["prediction", "confidence"]
    assert [c.column for c in window.features] == ["temp", "hour"]
    assert window.drifted == ()


def test_segment_drift_per_value(ws: Workspace) -> None:
    live = bikes(450, seed=1)
    live.loc[live["city"] == "c", "temp"] += 2.0  # only city c moved
    ws.serve("demand", live, at_ms=T0 - 100_000)
    [window] = ws.app.monitoring.run(rows_spec(window_rows=450, segment_by="city"))
    assert window.segment_by == "city"
    assert set(window.segments) == {"a", "b", "c"}
    assert by_column(window.segments["c"])["temp"].drifted
    assert not by_column(window.segments["a"])["temp"].drifted
    assert not by_column(window.segments["b"])["temp"].drifted
    assert not by_column(window.segments["c"])["hour"].drifted
    stored = ws.app.monitoring.windows("demand")[-1]
    assert stored.segments.keys() == window.segments.keys()  # stored as judged


def test_segment_by_a_column_that_is_not_an_input(ws: Workspace) -> None:
    ws.serve("demand", bikes(100, seed=1), at_ms=T0 - 100_000)
    with pytest.raises(InvalidInput, match=r"segment_by='region'.*temp, hour, city"):
        ws.app.monitoring.run(rows_spec(segment_by="region"))


def test_a_feature_that_is_all_null(ws: Workspace) -> None:
    live = bikes(100, seed=1)
    live["city"] = None  # clients stopped sending it; the model still answers
    ws.serve("demand", live, at_ms=T0 - 100_000)
    [window] = ws.app.monitoring.run(rows_spec())
    city = by_column(window.features)["city"]
    assert city.drifted
    assert city.method is DriftMethod.MISSING
    assert city.score == pytest.approx(1.0)  # from no missing values to all missing
    assert not by_column(window.features)["hour"].drifted


def test_a_category_never_seen(ws: Workspace) -> None:
    live = bikes(100, seed=1)
    live.loc[:39, "city"] = "z"  # 40% of the rows from a city the model never saw
    ws.serve("demand", live, at_ms=T0 - 100_000)
    [window] = ws.app.monitoring.run(rows_spec())
    city = by_column(window.features)["city"]
    assert city.drifted
    assert city.method in (DriftMethod.UNSEEN, DriftMethod.JENSEN_SHANNON)
    assert city.measures["unseen_share"] == pytest.approx(0.4)
    assert not by_column(window.features)["temp"].drifted


# performance ---------------------------------------------------------------------------------


def test_regression_performance_from_feedback_labels(ws: Workspace) -> None:
    live = bikes(100, seed=1)
    ids = ws.serve("demand", live, at_ms=T0 - 100_000)
    ws.label(ids[:60], live["demand"].head(60).tolist())
    [window] = ws.app.monitoring.run(rows_spec(label="demand"))
    assert window.labelled_rows == 60
    model: Any = ws.app.registry.load("models:/demand/1")
    errors = model.predict(live[["temp", "hour", "city"]].head(60)) - live["demand"].head(60)
    assert window.performance["rmse"] == pytest.approx(math.sqrt(np.mean(errors**2)))
    assert window.performance["mae"] == pytest.approx(np.mean(np.abs(errors)))
    assert window.performance["r2"] > 0.9
    assert window.observations()["performance:rmse"] == window.performance["rmse"]


def test_a_multi_row_request_labelled_with_a_list(ws: Workspace) -> None:
    live = bikes(100, seed=1)
    ids = ws.serve("demand", live, at_ms=T0 - 100_000, rows_per_request=4)
    truth = live["demand"].tolist()
    ws.label(ids[:5], [truth[4 * i : 4 * i + 4] for i in range(5)])
    [window] = ws.app.monitoring.run(rows_spec(label="demand"))
    assert window.labelled_rows == 20
    assert window.performance["rmse"] < 3.0  # the right label on the right row


def test_labels_for_request_ids_the_log_never_saw_join_nothing(ws: Workspace) -> None:
    live = bikes(100, seed=1)
    ids = ws.serve("demand", live, at_ms=T0 - 100_000)
    ws.label(ids[:30], live["demand"].head(30).tolist())
    ws.label([f"ghost-{i}" for i in range(50)], [1e6] * 50)  # wild labels, unknown ids
    [window] = ws.app.monitoring.run(rows_spec(label="demand"))
    assert window.labelled_rows == 30
    assert window.performance["rmse"] < 3.0  # the ghosts' labels touched nothing


def test_no_labels_no_performance(ws: Workspace) -> None:
    ws.serve("demand", bikes(100, seed=1), at_ms=T0 - 100_000)
    [window] = ws.app.monitoring.run(rows_spec(label="demand"))
    assert window.performance == {} and window.labelled_rows == 0


def test_classification_accuracy_from_feedback_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = open_workspace(tmp_path, monkeypatch)
    frame = bikes(600, seed=0)
    model = classifier(frame)
    ws.deploy(ws.train(frame, name="hot", model=model, features=["temp", "hour"]), "hot")
    live = bikes(100, seed=1)
    ids = ws.serve("hot", live, at_ms=T0 - 100_000, columns=["temp", "hour"])
    predicted = model.predict(live[["temp", "hour"]]).tolist()
    labels = [1 - p if i < 10 else p for i, p in enumerate(predicted[:40])]  # 10 wrong
    ws.label(ids[:40], labels)
    spec = MonitorSpec("hot", window_rows=100, min_rows=30, label="hot")
    [window] = ws.app.monitoring.run(spec)
    assert window.labelled_rows == 40
    assert window.performance == {"accuracy": pytest.approx(30 / 40)}


# storage -------------------------------------------------------------------------------------


def test_reports_survive_a_round_trip_through_the_store(ws: Workspace) -> None:
    ws.serve("demand", bikes(100, seed=1), at_ms=T0 - 100_000)
    [window] = ws.app.monitoring.run(rows_spec(segment_by="city"))
    [stored] = ws.reopen().app.monitoring.windows("demand")
    assert stored == WindowReport.from_dict(window.to_dict())
    assert stored.latency_p99_ms == pytest.approx(2.0)


def test_a_tree_model_needs_trusted_for_its_prediction_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.ensemble import GradientBoostingRegressor

    from loopml.domain.errors import LoopmlError

    ws = open_workspace(tmp_path, monkeypatch)
    frame = bikes(400, seed=0)
    trees = GradientBoostingRegressor(n_estimators=10).fit(frame[["temp", "hour"]], frame["demand"])
    mv = ws.train(frame, model=trees, features=["temp", "hour"])
    ws.deploy(mv)
    ws._models[mv.uri] = trees  # the test "server" answers with the model in hand
    ws.serve("demand", bikes(100, seed=1), at_ms=T0 - 100_000, columns=["temp", "hour"])
    with pytest.raises(LoopmlError, match="trusted"):
        ws.app.monitoring.run(rows_spec())  # refused, clearly, not a crash
    [window] = ws.app.monitoring.run(rows_spec(trusted=True))
    assert {c.column for c in window.outputs} == {"prediction"}
    assert not window.drifted


def test_labels_arriving_after_the_window_was_judged_update_its_performance(
    ws: Workspace,
) -> None:
    live = bikes(100, seed=1)
    ids = ws.serve("demand", live, at_ms=T0 - 100_000)
    spec = rows_spec(label="demand")
    [judged] = ws.app.monitoring.run(spec)
    assert judged.performance == {} and judged.labelled_rows == 0  # no ground truth yet
    ws.label(ids[:40], live["demand"].head(40).tolist())  # days later, say
    assert ws.app.monitoring.run(spec) == []  # no new window...
    [stored] = ws.app.monitoring.windows("demand")
    assert stored.window_key == judged.window_key
    assert stored.labelled_rows == 40  # ...but the stored one now knows its performance
    assert stored.performance["rmse"] < 3.0
    assert stored.observations()["performance:rmse"] == stored.performance["rmse"]
    ws.label(ids[40:], live["demand"].iloc[40:].tolist())
    ws.app.monitoring.run(spec)
    assert ws.app.monitoring.windows("demand")[0].labelled_rows == 100


def test_a_long_backlog_is_read_slice_by_slice_into_the_same_windows(ws: Workspace) -> None:
    """A week of traffic, one request every ten minutes, judged in one run: read a slice
    of log time at a time (never the week at once), cut into whole windows in order."""
    week = 7 * 24 * 6  # 1,008 requests of 3 rows
    ws.serve(
        "demand",
        bikes(3 * week, seed=4),
        at_ms=T0 - 8 * 86_400_000,
        step_ms=600_000,
        rows_per_request=3,
    )
    reads: list[tuple[int | None, int | None]] = []
    reader = ws.app.predictions
    original = reader.read

    def counted(deployment: Any, since_ms: Any = None, until_ms: Any = None) -> Any:
        reads.append((since_ms, until_ms))
        return original(deployment, since_ms, until_ms)

    reader.read = counted  # type: ignore[method-assign]
    windows = ws.app.monitoring.run(rows_spec(window_rows=300))
    assert [w.rows for w in windows] == [300] * 10  # 3,024 rows: 10 whole windows, 24 wait
    assert all(a.end_ms < b.start_ms for a, b in itertools.pairwise(windows))
    spans = [(b or 0) - (a or 0) for a, b in reads if a is not None and b is not None]
    assert len(reads) > 3 and max(spans) < 7 * 86_400_000  # slices, not the week at once
    assert ws.app.monitoring.run(rows_spec(window_rows=300)) == []  # judged once
