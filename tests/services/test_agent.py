"""The agent's scheduler on a real workspace: each due slot of each job runs once, across
restarts; a job that raises is recorded and the others still run; an alert with
``action = "retrain"`` starts a loop that the loop job then drives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loopml.domain.loop import JobState, LoopState
from loopml.domain.monitoring import LoopSpec, MonitorSpec
from loopml.domain.schedule import Schedule
from loopml.services.agent import Agent
from monitoring_support import GATES, T0, Workspace, bikes, classifier, open_workspace

MINUTE = 60_000
DEMAND = MonitorSpec("demand", window_rows=100, min_rows=30, schedule="@every 1m")
BARE = MonitorSpec("bare", window_rows=100, min_rows=30, schedule="@every 1m")


class NoTraining:
    def train(self, reason: str) -> str:
        raise AssertionError("no loop should train here")


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    workspace = open_workspace(tmp_path, monkeypatch)
    workspace.deploy(workspace.train(bikes(600, seed=0)))
    frame = bikes(200, seed=0)
    bare = workspace.client.register_model(
        classifier(frame), "bare", sample=frame[["temp", "hour"]]
    )  # no lineage, no reference: its monitor job fails
    workspace.deploy(bare, "bare")
    workspace.serve("demand", bikes(200, seed=1), at_ms=T0 - 100_000)
    workspace.serve("bare", bikes(100, seed=1), at_ms=T0 - 100_000, columns=["temp", "hour"])
    return workspace


def agent(ws: Workspace, specs: dict[str, MonitorSpec], trainer: Any = None) -> Agent:
    app = ws.app
    return Agent(
        app.stores.loops,
        app.clock,
        app.monitoring,
        app.reviews,
        app.alerting,
        app.loops,
        specs,
        trainer or NoTraining(),
    )


def slot(ms: int) -> int:
    return Schedule.parse("@every 1m").last_at_or_before(ms)


def test_each_due_job_runs_once_per_slot(ws: Workspace) -> None:
    runner = agent(ws, {"demand": DEMAND})
    [first] = runner.tick()  # the slot the agent started in
    assert (first.job, first.ok, first.due_ms, first.missed) == (
        "monitor:demand",
        True,
        slot(ws.clock.ms),
        0,
    )
    assert first.detail.startswith("2 new window(s); latest score")
    assert runner.tick() == []  # the same slot: never twice
    assert len(ws.app.monitoring.windows("demand")) == 2

    ws.clock.advance(60)
    [second] = runner.tick()
    assert second.due_ms == first.due_ms + MINUTE and second.detail == "0 new window(s)"

    ws.clock.advance(5 * 60)
    [late] = runner.tick()  # five slots passed: one run, four skipped and counted
    assert late.missed == 4 and late.due_ms == slot(ws.clock.ms)
    stored = ws.app.stores.loops.last_job("monitor:demand")
    assert stored is not None and stored.due_ms == late.due_ms
    assert stored.state is JobState.DONE and stored.detail == late.detail


def test_a_restarted_agent_does_not_rerun_a_claimed_slot(ws: Workspace) -> None:
    [ran] = agent(ws, {"demand": DEMAND}).tick()
    ws = ws.reopen()  # the agent process restarts within the same minute
    restarted = agent(ws, {"demand": DEMAND})
    assert restarted.tick() == []
    ws.clock.advance(60)
    [next_slot] = restarted.tick()
    assert next_slot.due_ms == ran.due_ms + MINUTE


def test_a_slot_cut_off_by_a_crash_is_not_run_again(ws: Workspace) -> None:
    now = ws.clock.now_ms()
    assert ws.app.stores.loops.claim_job("monitor:demand", slot(now), now)  # then killed
    assert agent(ws, {"demand": DEMAND}).tick() == []
    cut = ws.app.stores.loops.last_job("monitor:demand")
    assert cut is not None and cut.state is JobState.RUNNING  # reported, never re-run
    assert ws.app.monitoring.windows("demand") == []


def test_a_job_that_raises_is_recorded_and_the_others_run(ws: Workspace) -> None:
    runner = agent(ws, {"bare": BARE, "demand": DEMAND})
    outcomes = {o.job: o for o in runner.tick()}
    assert set(outcomes) == {"monitor:bare", "monitor:demand"}
    failed = outcomes["monitor:bare"]
    assert not failed.ok
    assert "models:/bare/1 has no dataset version in its lineage" in failed.detail
    assert outcomes["monitor:demand"].ok
    stored = ws.app.stores.loops.last_job("monitor:bare")
    assert stored is not None and stored.state is JobState.FAILED
    assert stored.detail == failed.detail
    assert len(ws.app.monitoring.windows("demand")) == 2

    class Boom:
        def run(self, spec: MonitorSpec) -> list[object]:
            raise RuntimeError("disk on fire")

        def __getattr__(self, name: str) -> Any:
            return getattr(ws.app.monitoring, name)

    ws.clock.advance(60)
    runner.monitoring = Boom()  # type: ignore[assignment]  # not even a LoopmlError
    outcomes = {o.job: o for o in runner.tick()}
    assert outcomes["monitor:demand"].detail == "RuntimeError: disk on fire"
    assert not outcomes["monitor:demand"].ok and not outcomes["monitor:bare"].ok


def test_a_retrain_alert_starts_a_loop_that_the_loop_job_drives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule = """
[[alerts.rules]]
name = "drift"
metric = "drift_score"
comparison = "above"
threshold = 1.0
action = "retrain"
"""
    ws = open_workspace(tmp_path, monkeypatch, GATES + rule)
    ws.deploy(ws.train(bikes(600, seed=0)))
    moved = bikes(200, seed=1, temp_shift=3.0)  # a hot summer: the same law, new inputs
    ids = ws.serve("demand", moved, at_ms=T0 - 100_000)
    ws.label(ids, moved["demand"].tolist())
    loop = LoopSpec(canary_share=30.0, watch_s=600, min_canary_rows=10)
    spec = MonitorSpec("demand", window_rows=100, label="demand", schedule="@every 1m", loop=loop)

    class Trainer:
        def __init__(self) -> None:
            self.calls = 0

        def train(self, reason: str) -> str:
            self.calls += 1
            newest = ws.client.get_dataset("bikes")
            frame = ws.client.read_dataset(newest.ref).to_pandas()
            from monitoring_support import FEATURES, regressor

            return ws.client.register_model(regressor(frame), "demand", sample=frame[FEATURES]).uri

    trainer = Trainer()
    runner = agent(ws, {"demand": spec}, trainer)
    assert [j.name for j in runner.jobs] == ["monitor:demand", "loop:demand"]
    outcomes = {o.job: o for o in runner.tick()}
    assert "retrain loop" in outcomes["monitor:demand"].detail
    # the loop job ran after the monitor job in the same tick: up to the canary watch
    assert outcomes["loop:demand"].ok
    [run] = ws.app.loops.history("demand")
    assert run.state is LoopState.CANARY, run.steps[-1].detail
    assert trainer.calls == 1
    assert ws.app.deployments.get("demand").canary is not None

    ws.clock.advance(10)
    outcomes = {o.job: o for o in runner.tick()}
    assert outcomes["loop:demand"].detail.startswith(f"loop {run.id}: canary")
    assert trainer.calls == 1  # watching trains nothing


def test_a_broken_review_set_up_never_holds_back_the_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule = '[[alerts.rules]]\nname = "drift"\nmetric = "drift_score"\n'
    rule += 'comparison = "above"\nthreshold = 1.0\n'
    ws = open_workspace(tmp_path, monkeypatch, rule)
    ws.deploy(ws.train(bikes(600, seed=0)))
    ws.serve("demand", bikes(100, seed=1, temp_shift=3.0), at_ms=T0 - 100_000)
    # a regressor logs no confidence: review_below without review_function cannot work
    spec = MonitorSpec("demand", window_rows=100, review_below=0.5, schedule="@every 1m")
    [outcome] = agent(ws, {"demand": spec}).tick()
    assert not outcome.ok and "logs no confidence" in outcome.detail
    [(alert, _)] = ws.app.alerting.list("demand")  # the drift was still told
    assert alert.rule == "drift"


ERROR_RULE = """
[[alerts.rules]]
name = "errors"
deployment = "demand"
metric = "error_rate"
comparison = "above"
threshold = 0.2
"""


def test_an_error_rate_rule_fires_on_a_real_servers_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import http.client
    import json

    from loopml.adapters.server_metrics import ServerMetricsReader
    from loopml.server.build import serving_in_thread

    ws = open_workspace(tmp_path, monkeypatch, ERROR_RULE)
    ws.deploy(ws.train(bikes(600, seed=0)))
    app = ws.app

    def post(rows: list[dict[str, Any]], port: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        body, headers = json.dumps({"rows": rows}), {"content-type": "application/json"}
        conn.request("POST", "/deployments/demand/predict", body, headers)
        status = conn.getresponse().status
        conn.close()
        return status

    good = json.loads(bikes(1, seed=3)[["temp", "hour", "city"]].to_json(orient="records"))
    bad = [{**good[0], "temp": "warm"}]
    with serving_in_thread(app) as (_, port):
        service = ServerMetricsReader(f"http://127.0.0.1:{port}/metrics")
        runner = Agent(
            app.stores.loops,
            app.clock,
            app.monitoring,
            app.reviews,
            app.alerting,
            app.loops,
            {"demand": DEMAND},
            NoTraining(),
            service=service,
        )
        assert post(good, port) == 200
        runner.monitor_once(DEMAND)  # the baseline reading: nothing to judge yet
        assert app.alerting.list("demand") == []
        for _ in range(6):
            assert post(good, port) == 200
        for _ in range(4):
            assert post(bad, port) == 422
        summary = runner.monitor_once(DEMAND)
    [(alert, _)] = app.alerting.list("demand")
    assert alert.metric == "error_rate" and alert.value == pytest.approx(0.4)
    assert "alert errors" in summary
