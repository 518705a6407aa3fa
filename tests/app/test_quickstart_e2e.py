from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loopml.client import Client
from loopml.domain.lifecycle import Stage


@pytest.mark.slow
def test_quickstart_runs_the_loop_with_the_real_cli(tmp_path: Path) -> None:
    exe = shutil.which("loopml") or str(Path(sys.executable).with_name("loopml"))
    ws = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    done = subprocess.run(
        [exe, "quickstart", str(ws)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "✓ 12. Verify the audit trail" in done.stdout and "intact: True" in done.stdout
    assert "all 5 steps were cache hits" in done.stdout  # the second pipeline run
    assert "param alpha 1.0 -> 3000.0" in done.stdout  # the worse model's cache miss...
    assert "r2" in done.stdout and "below the minimum 0.4" in done.stdout  # ...and its gate
    assert "out_of_range in hum" in done.stdout  # the faulty serving batch was caught
    assert done.stdout.count("200 v1 production") == 3 and "422: invalid input" in done.stdout
    assert "3 answers in the prediction log" in done.stdout
    with Client(ws) as client:
        champion = client.get_model_version("models:/bike-demand@champion")
        assert champion.stage is Stage.PRODUCTION and champion.version == 1
        assert client.get_model("bike-demand").latest_version == 1  # the gate kept v2 out
        assert champion.metrics["rmse"] > 0 and champion.run_id is not None
        run = client.get_run(champion.run_id)
        assert run.tags["loopml.step"] == "register" and run.environment is not None
        [data] = run.inputs  # the pipeline's dataset, recorded on the registering step
        version = client.get_dataset(f"{data.name}@{data.version}")
        assert (version.rows, version.digest) == (17_379, data.digest)
        evaluation = client.app.evaluations.latest(champion.uri)
        assert evaluation.dataset == "bike-sharing-eval@1" and evaluation.latency_p99_ms
        assert dict(evaluation.data_validation) == {"evaluation": True, "training": True}
        assert client.verify_audit().ok
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
