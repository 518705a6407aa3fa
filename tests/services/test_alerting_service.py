"""AlertService over real monitoring windows: rules from loopml.toml, consecutive windows,
de-duplication, cooldown, and sinks that fail (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopml.domain.alerts import Alert, Delivery, RuleAction
from loopml.domain.errors import ConfigError
from loopml.domain.loop import LoopState
from loopml.domain.monitoring import LoopSpec, MonitorSpec
from loopml.services.agent import Agent
from monitoring_support import T0, Workspace, bikes, open_workspace

SPEC = MonitorSpec("demand", window_rows=100, min_rows=30)

RULE = """
[[alerts.rules]]
name = "drift"
deployment = "demand"
metric = "drift_score"
comparison = "above"
threshold = 1.0
for_windows = {windows}
sinks = {sinks}
{extra}
"""

WEBHOOK = """
[alerts.sinks.ops]
type = "webhook"
url = "http://127.0.0.1:{port}/hook"
timeout_s = {timeout}
retries = 1
backoff_s = 0
allow_private = true
"""


class Hook(http.server.ThreadingHTTPServer):
    """A webhook receiver that answers ``status`` after ``delay_s``, counting requests."""

    daemon_threads = True

    def __init__(self, status: int, delay_s: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.status = status
        self.delay_s = delay_s
        self.bodies: list[dict[str, Any]] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _HookHandler(http.server.BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(json.loads(body))
        time.sleep(self.server.delay_s)
        try:
            self.send_response(self.server.status)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:  # the client gave up waiting
            pass

    def log_message(self, *args: object) -> None:
        pass


def serving(hook: Hook) -> Iterator[Hook]:
    thread = threading.Thread(target=hook.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield hook
    finally:
        hook.shutdown()
        hook.server_close()
        thread.join()


@pytest.fixture
def failing_hook() -> Iterator[Hook]:
    yield from serving(Hook(500))


@pytest.fixture
def slow_hook() -> Iterator[Hook]:
    yield from serving(Hook(200, delay_s=1.0))


def workspace(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    sinks: str = '["log"]',
    windows: int = 3,
    extra: str = "",
    more: str = "",
) -> Workspace:
    rule = RULE.format(sinks=sinks, windows=windows, extra=extra)
    ws = open_workspace(tmp_path, monkeypatch, rule + more)
    ws.deploy(ws.train(bikes(600, seed=0)))
    return ws


class Traffic:
    """Windows of 100 rows, one at a time, each judged and checked like the agent does."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.at = T0 - 3_600_000
        self.seed = 10

    def window(self, *, drifted: bool) -> list[tuple[Alert, list[Delivery]]]:
        rows = bikes(100, seed=self.seed)
        if drifted:
            rows["temp"] += 3.0
        self.ws.serve("demand", rows, at_ms=self.at)
        self.at += 1_000
        self.seed += 1
        assert len(self.ws.app.monitoring.run(SPEC)) == 1
        return self.check()

    def check(self) -> list[tuple[Alert, list[Delivery]]]:
        app = self.ws.app
        return app.alerting.check("demand", app.monitoring.windows("demand"))


def test_consecutive_drifted_windows_fire_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch)
    traffic = Traffic(ws)
    assert traffic.window(drifted=False) == []
    assert traffic.window(drifted=False) == []
    assert traffic.window(drifted=True) == []  # 1 of 3
    assert traffic.window(drifted=True) == []  # 2 of 3
    [(alert, deliveries)] = traffic.window(drifted=True)
    assert alert.rule == "drift" and alert.metric == "drift_score"
    assert alert.windows == 3 and alert.value >= 1.0
    assert alert.window == ws.app.monitoring.windows("demand")[-1].window_key
    assert [(d.sink, d.ok) for d in deliveries] == [("log", True)]

    assert traffic.check() == []  # the same windows again: nothing new
    assert traffic.window(drifted=True) == []  # still the same episode
    assert len(ws.app.alerting.list("demand")) == 1

    # the log sink wrote one JSON line per alert in the workspace
    lines = (ws.root / ".loopml" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [alert.id]
    assert any(e.action == "alert.fire" for e in ws.client.audit_events())
    assert ws.client.verify_audit().ok


def test_a_new_episode_waits_for_the_cooldown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch, extra="cooldown_s = 600")
    traffic = Traffic(ws)
    for _ in range(2):
        traffic.window(drifted=True)
    assert len(traffic.window(drifted=True)) == 1
    assert traffic.window(drifted=False) == []  # cleared
    for _ in range(3):  # back for three windows: a new episode, inside the cooldown
        assert traffic.window(drifted=True) == []
    ws.clock.advance(601)
    [(again, _)] = traffic.check()
    assert again.windows == 3
    assert len(ws.app.alerting.list("demand")) == 2


def test_windows_too_small_to_judge_never_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch, windows=1)
    small = MonitorSpec("demand", window_rows=100, min_rows=500)
    rows = bikes(300, seed=1)
    rows["temp"] += 3.0
    ws.serve("demand", rows, at_ms=T0 - 100_000)
    assert len(ws.app.monitoring.run(small)) == 3
    assert ws.app.alerting.check("demand", ws.app.monitoring.windows("demand")) == []


def test_a_webhook_answering_500_is_a_failed_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_hook: Hook
) -> None:
    more = WEBHOOK.format(port=failing_hook.port, timeout=2)
    ws = workspace(tmp_path, monkeypatch, sinks='["ops", "log"]', more=more)
    traffic = Traffic(ws)
    traffic.window(drifted=True)
    traffic.window(drifted=True)
    [(alert, deliveries)] = traffic.window(drifted=True)
    ops, logged = deliveries
    assert (ops.sink, ops.ok, ops.attempts, ops.status) == ("ops", False, 2, 500)
    assert "answered 500" in ops.error
    assert logged.ok  # one sink failing does not stop the others
    assert len(failing_hook.bodies) == 2  # retried once
    assert failing_hook.bodies[0]["alert"]["id"] == alert.id
    [(stored, stored_deliveries)] = ws.app.alerting.list("demand")
    assert stored == alert
    assert [(d.sink, d.ok, d.status) for d in stored_deliveries] == [
        ("ops", False, 500),
        ("log", True, None),
    ]
    assert traffic.check() == []  # stored: not sent again


def test_a_webhook_that_times_out_is_a_failed_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow_hook: Hook
) -> None:
    more = WEBHOOK.format(port=slow_hook.port, timeout=0.2)
    ws = workspace(tmp_path, monkeypatch, sinks='["ops"]', windows=1, more=more)
    started = time.monotonic()
    [(alert, [delivery])] = Traffic(ws).window(drifted=True)
    assert time.monotonic() - started < 5
    assert (delivery.ok, delivery.attempts) == (False, 2)
    assert "no answer within timeout_s = 0.2 s" in delivery.error
    [(stored, [stored_delivery])] = ws.app.alerting.list("demand")
    assert stored.id == alert.id and stored_delivery == delivery


def test_a_rule_naming_an_undefined_sink_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch, sinks='["pager"]')
    with pytest.raises(
        ConfigError,
        match=r"loopml.toml: alerts: alert rule 'drift' sends to sink 'pager'.*not defined",
    ):
        _ = ws.app.alerting


class NeverTrains:
    def train(self, reason: str) -> str:
        raise AssertionError("the monitor job only starts the loop; the loop job trains")


def test_a_retrain_rule_makes_the_agent_start_a_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch, extra='action = "retrain"')
    spec = MonitorSpec("demand", window_rows=100, min_rows=30, label="demand", loop=LoopSpec())
    app = ws.app
    agent = Agent(
        app.stores.loops,
        app.clock,
        app.monitoring,
        app.reviews,
        app.alerting,
        app.loops,
        {"demand": spec},
        NeverTrains(),
    )
    rows = bikes(300, seed=1)
    rows["temp"] += 3.0
    ws.serve("demand", rows, at_ms=T0 - 100_000)
    summary = agent.monitor_once(spec)
    assert "3 new window(s)" in summary and "alert drift" in summary
    [alert] = [a for a, _ in app.alerting.list("demand")]
    assert alert.action is RuleAction.RETRAIN
    [run] = app.loops.history("demand")
    assert run.state is LoopState.STARTED
    assert run.trigger == f"alert {alert.id} (drift)"
    assert (run.model, run.champion) == ("demand", 1)
    assert f"retrain loop {run.id} started" in summary

    more = bikes(100, seed=2)
    more["temp"] += 3.0
    ws.serve("demand", more, at_ms=T0 - 50_000)
    agent.monitor_once(spec)  # same episode: no alert, and never a second loop
    assert len(app.loops.history("demand")) == 1


QUEUE_RULE = """
[[alerts.rules]]
name = "stale-reviews"
deployment = "demand"
metric = "review_queue_age_s"
comparison = "above"
threshold = 3600
"""


def test_live_figures_such_as_the_review_queue_age_fire_rules_once_per_episode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch, more=QUEUE_RULE)
    app = ws.app
    assert app.alerting.check("demand", [], {"review_queue_age_s": 120.0}) == []
    [(alert, [delivery])] = app.alerting.check("demand", [], {"review_queue_age_s": 7200.0})
    assert alert.rule == "stale-reviews" and alert.value == 7200.0 and delivery.ok
    ws.clock.advance(60)
    # still stale a minute later: the same episode, no second alert
    assert app.alerting.check("demand", [], {"review_queue_age_s": 7260.0}) == []
