from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopml.client import Client
from loopml.domain.lifecycle import Stage


@pytest.mark.slow
def test_quickstart_runs_the_loop_with_the_real_cli(tmp_path: Path) -> None:
    exe = shutil.which("loopml") or str(Path(sys.executable).with_name("loopml"))
    ws = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    started = time.monotonic()
    done = subprocess.run(
        [exe, "quickstart", str(ws)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 120  # the bound for the whole loop
    assert "✓ 18. Verify the audit trail" in done.stdout and "intact: True" in done.stdout
    assert "all 5 steps were cache hits" in done.stdout  # the second pipeline run
    assert "param alpha 1.0 -> 3000.0" in done.stdout  # the worse model's cache miss...
    assert "r2" in done.stdout and "below the minimum 0.4" in done.stdout  # ...and its gate
    assert "out_of_range in hum" in done.stdout  # the faulty serving batch was caught
    assert done.stdout.count("200 v1 production") == 3 and "422: invalid input" in done.stdout
    assert "3 answers in the prediction log" in done.stdout
    assert "80 rows in the review queue" in done.stdout
    with Client(ws) as client:
        champion = client.get_model_version("models:/bike-demand@champion")
        first = client.get_model_version("models:/bike-demand/1")
        assert first.metrics["rmse"] > 0 and first.run_id is not None
        run = client.get_run(first.run_id)
        assert run.tags["loopml.step"] == "register" and run.environment is not None
        inputs = {f"{d.name}@{d.version}": d for d in run.inputs}  # recorded on the step
        assert set(inputs) == {"bike-train@1", "bike-sharing-eval@1"}
        version = client.get_dataset("bike-train@1")
        assert (version.rows, version.digest) == (2_786, inputs["bike-train@1"].digest)
        # the closed loop: drift in May-June fired the rule, the retrained v2 went through
        # the gates and a canary, and was promoted (or rolled back, which the run says)
        [loop] = client.app.loops.history("bikes")
        states = [s.state.value for s in loop.steps]
        assert states[:5] == ["started", "trained", "evaluated", "gated", "canary"], states
        assert states[-1] in ("promoted", "rolled_back")
        expected = 2 if states[-1] == "promoted" else 1
        assert champion.stage is Stage.PRODUCTION and champion.version == expected
        assert client.app.deployments.get("bikes").production.version == expected
        assert client.get_model("bike-demand").latest_version == 2  # the worse one never was
        trained = client.get_dataset(str(loop.facts["data"]))
        assert trained.name == "bike-train" and trained.rows > 2_786  # labelled rows added
        evaluation = client.app.evaluations.latest("models:/bike-demand/2")
        assert evaluation.dataset == "bikes-holdout@1" and evaluation.latency_p99_ms
        assert dict(evaluation.data_validation) == {"evaluation": True, "training": True}
        windows = client.app.monitoring.windows("bikes")
        assert len(windows) == 2 and all(w.score >= 1 for w in windows)
        assert {"temp", "mnth"} <= set(windows[0].drifted)
        [(alert, [delivery])] = client.app.alerting.list("bikes")
        assert alert.rule == "seasonal-drift" and delivery.ok
        assert client.app.reviews.agreement("bikes").answered == 3
        assert client.verify_audit().ok
    report = (ws / "monitor-report.html").read_text()
    assert "bikes" in report and "temp" in report and "http" not in report
    assert "The loop, closed in" in done.stdout
    assert "passed" in (ws / "loopml-check.md").read_text().splitlines()[0]
    card = (ws / "cards" / "bike-demand-v1.md").read_text()
    assert "## Intended use" in card and "label `cnt`" in card and "season=" in card
    schema = (ws / "schemas" / "bike-sharing-hourly.toml").read_text()
    assert 'label = "cnt"' in schema and 'key = ["instant"]' in schema
    listed = subprocess.run(
        [exe, "--workspace", str(ws), "models", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert listed.returncode == 0 and "bike-demand" in listed.stdout
    rerun = subprocess.run(
        [exe, "run"], cwd=ws, capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "all 5 steps were cache hits" in rerun.stdout
