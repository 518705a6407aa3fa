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
    assert "✓ 9. Verify the audit trail" in done.stdout and "intact: True" in done.stdout
    assert "out_of_range in hum" in done.stdout  # the faulty serving batch was caught
    with Client(ws) as client:
        champion = client.get_model_version("models:/bike-demand@champion")
        assert champion.stage is Stage.PRODUCTION and champion.run_id is not None
        run = client.get_run(champion.run_id)
        assert run.metrics["rmse"] > 0 and run.params["model"] == "ridge"
        assert len(client.get_metric_history(run.id, "learning_curve/test_rmse")) == 4
        assert run.environment is not None and client.verify_audit().ok
        [data] = run.inputs  # the run read the dataset version the quickstart added
        version = client.get_dataset(f"{data.name}@{data.version}")
        assert (version.rows, version.digest) == (17_379, data.digest)
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
