"""`loopml monitor`, `alerts`, `review`, `loop` and `agent` in-process, on a real workspace
whose prediction log the real sink wrote: exit codes, text and JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli

from monitoring_support import GATES, T0, Workspace, bikes, classifier, open_workspace

MONITORS = """
[monitor.demand]
window_rows = 100
min_rows = 30
label = "demand"
schedule = "@every 1m"

[monitor.demand.loop]
canary_share = 25
watch_s = 600
min_canary_rows = 10

[monitor.hot]
window_rows = 100
review_below = 0.75
schedule = "@every 1m"

[pipeline]
source = "retrain_pipeline.py:pipeline"

[[alerts.rules]]
name = "drift"
deployment = "demand"
metric = "drift_score"
comparison = "above"
threshold = 1.0
"""

PIPELINE = """
import loopml

FEATURES = ["temp", "hour", "city"]


@loopml.step(outputs="registered", libraries=["scikit-learn"])
def train(bikes):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = ColumnTransformer(
        [("city", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
    )
    model = make_pipeline(encode, LinearRegression()).fit(bikes[FEATURES], bikes["demand"])
    return loopml.register_model(model, "demand", sample=bikes[FEATURES].head(50)).uri


pipeline = loopml.Pipeline("retrain", [train], datasets={"bikes": "bikes"})
"""


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    workspace = open_workspace(tmp_path, monkeypatch, GATES + MONITORS)
    (workspace.root / "retrain_pipeline.py").write_text(PIPELINE, encoding="utf-8")
    workspace.deploy(workspace.train(bikes(600, seed=0)))
    frame = bikes(600, seed=0)
    hot = workspace.train(frame, name="hot", model=classifier(frame), features=["temp", "hour"])
    workspace.deploy(hot, "hot")
    moved = bikes(200, seed=1, temp_shift=3.0)
    ids = workspace.serve("demand", moved, at_ms=T0 - 100_000)
    workspace.label(ids, moved["demand"].tolist())
    workspace.serve("hot", bikes(200, seed=2), at_ms=T0 - 100_000, columns=["temp", "hour"])
    return workspace


def flat(text: str) -> str:
    return " ".join(text.split())


def run_json(ws: Workspace, *args: str) -> Any:
    code, output = cli(ws.root, *args, "--json")
    assert code == 0, output
    return json.loads(output)


def test_monitor_run_status_and_report(ws: Workspace, tmp_path: Path) -> None:
    first = run_json(ws, "monitor", "run", "demand")
    assert isinstance(first, dict)
    assert [w["rows"] for w in first["windows"]] == [100, 100]
    assert all(w["drifted"] == ["temp", "prediction"] for w in first["windows"])
    assert "2 new window(s)" in first["summary"] and "alert drift" in first["summary"]
    again = run_json(ws, "monitor", "run", "demand")
    assert again == {"summary": "0 new window(s)", "windows": []}

    code, output = cli(ws.root, "monitor", "status", "demand")
    assert code == 0, output
    assert output.count("rows:") == 2 and "temp, prediction" in output
    status = run_json(ws, "monitor", "status", "demand", "--last", "1")
    assert [w["window_key"] for w in status] == [first["windows"][1]["window_key"]]

    page = tmp_path / "out" / "report.html"
    report = run_json(ws, "monitor", "report", "demand", "--html", str(page))
    assert isinstance(report, dict) and report["deployment"] == "demand"
    assert len(report["windows"]) == 2 and len(report["alerts"]) == 1
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!") and "demand" in html and "temp" in html
    code, output = cli(ws.root, "monitor", "report", "demand")
    assert code == 2 and "--html" in output


def test_monitor_text_output_and_no_windows(ws: Workspace) -> None:
    code, output = cli(ws.root, "monitor", "status", "demand")
    assert code == 0 and "no windows yet: run `loopml monitor run demand`" in output
    empty = run_json(ws, "monitor", "report", "demand")
    assert isinstance(empty, dict) and empty["windows"] == [] and empty["alerts"] == []
    code, output = cli(ws.root, "monitor", "run", "demand")
    assert code == 0, output
    assert "2 new window(s)" in output and "v1" in output


def test_alerts_list(ws: Workspace) -> None:
    assert run_json(ws, "alerts", "list") == []
    cli(ws.root, "monitor", "run", "demand")
    [alert] = run_json(ws, "alerts", "list", "--deployment", "demand")
    assert alert["rule"] == "drift" and alert["metric"] == "drift_score"
    assert alert["deliveries"] == [
        {"sink": "log", "ok": True, "attempts": 1, "error": "", "status": None}
    ]
    code, output = cli(ws.root, "alerts", "list")
    assert code == 0 and "drift" in output and "log ok" in output


def test_review_next_label_and_stats(ws: Workspace) -> None:
    item = run_json(ws, "review", "next", "hot")
    assert isinstance(item, dict) and item["status"] == "open"
    assert item["model"] == "models:/hot/1" and item["confidence"] < 0.75
    answered = run_json(ws, "review", "label", str(item["id"]), str(item["output"]))
    assert answered["status"] == "labelled" and answered["label"] == item["output"]
    stats = run_json(ws, "review", "stats", "hot")
    assert stats["answered"] == 1 and stats["agreement"] == 1.0
    assert stats["by_version"] == {"1": {"answered": 1, "agreed": 1}}
    assert stats["open"] > 0

    code, output = cli(ws.root, "review", "label", str(item["id"]), "0")
    assert code == 5 and "answered already" in flat(output)
    code, output = cli(ws.root, "review", "label", "99999", "0")
    assert code == 3 and "review item 99999 does not exist" in flat(output)
    code, output = cli(ws.root, "review", "next", "hot")
    assert code == 0 and "answer with: loopml review label" in output
    code, output = cli(ws.root, "review", "stats")
    assert code == 0 and "answered 1, agreement 100.0%" in output


def test_loop_start_and_status(ws: Workspace) -> None:
    code, output = cli(ws.root, "loop", "status", "demand")
    assert code == 0 and "no retrain loop has run on 'demand'" in output
    run = run_json(ws, "loop", "start", "demand")
    assert isinstance(run, dict)
    assert run["state"] == "canary", run["steps"][-1]["detail"]
    assert run["candidate"] == 2 and run["champion"] == 1
    assert [s["state"] for s in run["steps"]] == [
        "started",
        "trained",
        "evaluated",
        "gated",
        "canary",
    ]
    deployment = ws.app.deployments.get("demand")
    assert deployment.canary is not None and deployment.canary.version == 2
    assert deployment.canary_share == 25.0

    [listed] = run_json(ws, "loop", "status", "demand")
    assert listed["id"] == run["id"] and listed["state"] == "canary"
    code, output = cli(ws.root, "loop", "status", "demand")
    assert code == 0 and f"loop {run['id']}" in output and "trained" in output
    code, output = cli(ws.root, "loop", "start", "demand", "--no-wait")
    assert code == 0 and f"loop {run['id']}: canary" in output  # the running one


def test_unknown_deployment_is_exit_3(ws: Workspace) -> None:
    for args in (
        ("monitor", "run", "ghost"),
        ("monitor", "status", "ghost"),
        ("monitor", "report", "ghost", "--json"),
        ("review", "next", "ghost"),
        ("loop", "status", "ghost"),
        ("loop", "start", "ghost"),
    ):
        code, output = cli(ws.root, *args)
        assert code == 3, (args, output)
        assert "'ghost'" in output, args


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("windw_rows = 100", "windw_rows"),
        ("window_rows = 100\nwindow_s = 60", "window_s"),
        ("window_rows = 0", "window_rows"),
        ('window_rows = 100\nschedule = "every day"', "schedule"),
        ("window_rows = 100\nreview_function = 5", "review_function"),
        ('window_rows = 100\ntask = "ranking"', "task"),
        ('window_rows = 100\ntrusted = "yes"', "trusted"),
        ('window_rows = 100\n[monitor.demand.loop]\ncanary_share = "lots"', "canary_share"),
        ("window_rows = 100\n[monitor.demand.loop]\ncanary_share = 120", "canary_share"),
        ("window_rows = 100\n[monitor.demand.loop]\nwatch = 5", "watch"),
    ],
)
def test_a_bad_monitor_table_is_a_config_error_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, key: str
) -> None:
    ws = open_workspace(tmp_path, monkeypatch, f"[monitor.demand]\n{table}\n")
    for args in (("monitor", "status", "demand"), ("loop", "status", "demand"), ("agent",)):
        code, output = cli(ws.root, *args)
        assert code == 8, (args, output)
        assert "loopml.toml" in output and "[monitor.demand]" in flat(output)
        assert key in flat(output), (args, output)


def test_agent_once(ws: Workspace) -> None:
    code, output = cli(ws.root, "agent", "--once")
    assert code == 0, output
    assert "agent: 3 job(s): monitor:demand, loop:demand, monitor:hot" in output
    assert "monitor:demand ok: 2 new window(s)" in flat(output)
    assert "loop:demand ok: no loop running" in flat(output)
    assert "monitor:hot ok" in flat(output) and "queued for review" in output
    assert len(ws.app.monitoring.windows("demand")) == 2

    code, output = cli(ws.root, "agent", "--once")  # the same minute: nothing is due
    assert code == 0 and output.strip().splitlines()[-1].startswith("agent: 3 job(s)")


def test_agent_without_monitors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = open_workspace(tmp_path, monkeypatch)
    code, output = cli(ws.root, "agent", "--once")
    assert code == 2 and "no deployment is monitored" in flat(output)
