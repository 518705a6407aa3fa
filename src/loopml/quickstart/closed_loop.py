"""The quickstart's second half: production watches itself and improves itself.

The champion, trained on January to April 2011, is served by a real server on 127.0.0.1.
May and June stream through it one day per request, each day's true counts following as
feedback. The monitor compares the traffic with the training data's stored profile and
finds the seasonal drift; the drift rule fires and starts the retrain loop: the pipeline
runs again on the training data plus the labelled production rows, the candidate and the
champion are scored on the same held-out days, the production gates judge the candidate
against the champion, and the winner takes half of July's traffic as a canary. After its
watch period the canary is promoted if it held, or removed if it did worse. Meanwhile the
predictions the model was unsure of wait in the review queue, and a person answers some.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.client import Client
from loopml.domain.loop import LoopState
from loopml.fluent import PipelineTrainer, build_agent
from loopml.quickstart.steps import Steps

DEPLOYMENT = "bikes"

MONITOR = """
# Added by `loopml quickstart`: watch the bikes deployment (see docs/monitoring.md).
[monitor.bikes]
window_rows = 720                 # a window is about a month of hourly rows
label = "cnt"                     # feedback labels give performance
segment_by = "season"
review_function = "review.py:confidence"
review_below = 0.5                # less sure than this: a person looks
schedule = "@every 1m"

[monitor.bikes.loop]              # retrain when the drift rule fires
canary_share = 50                 # the retrained model takes half the traffic...
watch_s = 4                       # ...for this long (a demo; hours in production)
min_canary_rows = 120
schema = "schemas/bike-model.toml"

[[alerts.rules]]
name = "seasonal-drift"
deployment = "bikes"
metric = "drift_score"            # the largest drift severity of a window
comparison = "above"
threshold = 1.0
for_windows = 1
severity = "warning"
sinks = ["log"]                   # .loopml/alerts.jsonl; webhooks, Slack, email: docs/alerts.md
action = "retrain"
"""

REVIEW_FUNCTION = '''"""How sure the bike-demand model is of each prediction (a quickstart rule).

Ridge regression gives no interval, so confidence here is whether the model has grounds
for its answer: a negative count of bikes is impossible, and a temperature outside the
months it learned from is a guess. Rows under `review_below` go to the review queue.
"""

import numpy as np

TRAINED_TEMP = ({low!r}, {high!r})  # normalised temperatures of the training months


def confidence(inputs, outputs):
    temp = inputs["temp"].to_numpy(dtype=float)
    low, high = TRAINED_TEMP
    outside = np.maximum(0.0, temp - high) + np.maximum(0.0, low - temp)
    sure = np.clip(1.0 - 10.0 * outside, 0.0, 1.0)
    sure[outputs["prediction"].to_numpy(dtype=float) < 0] = 0.0
    return sure
'''


@dataclass
class Streamed:
    requests: int = 0
    rows: int = 0
    by_route: dict[str, int] = field(default_factory=dict)  # rows per "route vN"


class Traffic:
    """Days of rows sent to the server, one request per day, with their true counts as
    feedback right after; remembers the counts to play the reviewer later."""

    def __init__(self, port: int, features: list[str], target: str) -> None:
        self.port = port
        self.features = features
        self.target = target
        self.truth: dict[tuple[str, int], float] = {}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            payload = None if body is None else json.dumps(body)
            conn.request(method, path, payload, {"content-type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def wait_for_route(self, route: str, version: int | None, timeout_s: float = 20.0) -> None:
        """Until the server answers with ``version`` on ``route``: it picks deployment
        changes up on its next poll of the audit trail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            _, listed = self.call("GET", "/deployments")
            for deployment in listed["deployments"]:
                uri = deployment.get("routes", {}).get(route, "")
                if deployment.get("name") == DEPLOYMENT and uri.endswith(f"/{version}"):
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the server did not serve v{version} as {route} within {timeout_s} s")

    def stream(self, frame: Any) -> Streamed:
        seen = Streamed()
        for _, day in frame.groupby(frame["dteday"].astype(str), sort=True):
            rows = json.loads(day[self.features].to_json(orient="records"))
            status, answer = self.call("POST", f"/deployments/{DEPLOYMENT}/predict", {"rows": rows})
            if status != 200:
                raise RuntimeError(f"the server answered {status}: {answer}")
            labels = [float(v) for v in day[self.target]]
            request_id = answer["request_id"]
            for row, value in enumerate(labels):
                self.truth[(request_id, row)] = value
            self.call("POST", "/feedback", {"request_id": request_id, "label": labels})
            seen.requests += 1
            seen.rows += len(rows)
            route = f"{answer['route']} v{answer['version']}"
            seen.by_route[route] = seen.by_route.get(route, 0) + len(rows)
        return seen


def review_function_source(train: Any) -> str:
    low, high = float(train["temp"].min()), float(train["temp"].max())
    return REVIEW_FUNCTION.replace("{low!r}", repr(round(low, 4))).replace(
        "{high!r}", repr(round(high, 4))
    )


def run_closed_loop(
    client: Client, port: int, bikes: Any, features: list[str], target: str, step: Steps
) -> dict[str, Any]:
    """Steps of the closed loop on a running server; returns figures for the summary."""
    tour = _ClosedLoop(client, Traffic(port, features, target), bikes, step)
    tour.stream_spring()
    tour.monitor()
    tour.review()
    tour.retrain()
    return tour.summary


class _ClosedLoop:
    def __init__(self, client: Client, traffic: Traffic, bikes: Any, step: Steps) -> None:
        self.client = client
        self.app = client.app
        self.spec = self.app.monitor_specs[DEPLOYMENT]
        self.traffic = traffic
        self.bikes = bikes
        self.dates = bikes["dteday"].astype(str)
        self.step = step
        self.summary: dict[str, Any] = {}

    def month(self, first: str, end: str) -> Any:
        return self.bikes[(self.dates >= first) & (self.dates < end)]

    def stream_spring(self) -> None:
        step = self.step
        with step("Stream May-June 2011 through the server, true counts following as feedback"):
            sent = self.traffic.stream(self.month("2011-05-01", "2011-07-01"))
            self.app.prediction_sink.flush()
            step.note(f"{sent.requests} requests ({sent.rows:,} rows), each with its feedback")
            for route, rows in sorted(sent.by_route.items()):
                step.note(f"{rows:,} rows answered by {route}")

    def monitor(self) -> None:
        step, app = self.step, self.app
        with step("Monitor: compare the traffic with the training data"):
            started = time.perf_counter()
            outcome = build_agent(self.client).monitor_once(self.spec)
            elapsed = time.perf_counter() - started
            windows = app.monitoring.windows(DEPLOYMENT)
            for number, window in enumerate(windows, 1):
                drifted = sorted(
                    (c for c in (*window.features, *window.outputs) if c.drifted),
                    key=lambda c: -c.severity,
                )
                named = ", ".join(f"{c.column} ({c.method.value} {c.score:.2f})" for c in drifted)
                rmse = window.performance.get("rmse")
                step.note(
                    f"window {number}: {window.rows} rows, score {window.score:.1f}"
                    + ("" if rmse is None else f", rmse {rmse:.1f}")
                    + f"; drifted: {named or 'nothing'}"
                )
            step.note(f"{outcome} (in {elapsed:.2f} s)")
            alerts = app.alerting.list(DEPLOYMENT, 10)
            for alert, deliveries in alerts:
                sinks = ", ".join(f"{d.sink} {'ok' if d.ok else 'failed'}" for d in deliveries)
                step.note(f"ALERT {alert.rule} -> {sinks}: {alert.message}")
            self.summary["windows"] = len(windows)
            self.summary["drifted"] = sorted({c for w in windows for c in w.drifted})
            self.summary["alerts"] = len(alerts)

    def review(self) -> None:
        step, traffic = self.step, self.traffic
        with step("Human review: unsure predictions wait for a person"):
            _, queue = traffic.call("GET", f"/review?deployment={DEPLOYMENT}")
            step.note(f"{queue['open']} rows in the review queue (GET /review)")
            for _ in range(3):
                item = queue["item"]
                if item is None:
                    break
                truth = traffic.truth[(item["request_id"], item["row"])]
                answer = {"id": item["id"], "label": truth, "reviewer": "quickstart"}
                traffic.call("POST", "/review", answer)
                step.note(
                    f"item {item['id']}: the model said {item['output']:.0f} bikes (confidence "
                    f"{item['confidence']:.2f}); the person answers {truth:.0f} (POST /review)"
                )
                _, queue = traffic.call("GET", f"/review?deployment={DEPLOYMENT}")
            agreement = self.app.reviews.agreement(DEPLOYMENT)
            rate = "-" if agreement.rate is None else f"{agreement.rate:.0%}"
            step.note(f"{agreement.answered} answered; the model agreed with the person on {rate}")

    def retrain(self) -> None:
        step, app = self.step, self.app
        run = app.loops.active(DEPLOYMENT)
        if run is None:
            return
        trainer = PipelineTrainer(self.client)
        with step("The loop: retrain on the labelled rows, evaluate, gate, canary"):
            run = app.loops.run_to_end(run, self.spec, trainer)
            for done in run.steps:
                step.note(f"{done.state.value:<9} {done.detail}")
        if run.state is LoopState.CANARY:
            self.traffic.wait_for_route("canary", run.candidate)
            with step("Watch the canary on July's traffic, then promote it or roll it back"):
                sent = self.traffic.stream(self.month("2011-07-01", "2011-08-01"))
                app.prediction_sink.flush()
                for route, rows in sorted(sent.by_route.items()):
                    step.note(f"{rows:,} rows answered by {route}")
                while not run.finished:
                    wait = ((run.watch_until_ms or 0) - app.clock.now_ms()) / 1000
                    time.sleep(max(0.1, min(wait, 1.0)))
                    run = app.loops.step(run, self.spec, trainer)
                step.note(f"{run.state.value}: {run.steps[-1].detail}")
                serving = app.deployments.get(DEPLOYMENT).production
                self.traffic.wait_for_route("production", serving.version)
                step.note(f"the server now answers with {serving.uri} in production")
        self.summary["loop"] = run


def write_report(client: Client, root: Path) -> Path:
    from loopml.adapters.monitor_html import render_monitor_html

    path = root / "monitor-report.html"
    path.write_text(render_monitor_html(client.monitor_report(DEPLOYMENT)), encoding="utf-8")
    return path
