"""Gates from loopml.toml, enforced through the real CLI (in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

from loopml.cli.main import app
from loopml.client import Client

runner = CliRunner()


def cli(ws: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--workspace", str(ws), *args])
    return result.exit_code, result.output


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    assert runner.invoke(app, ["init", str(tmp_path / "ws")]).exit_code == 0
    ws = tmp_path / "ws"
    with (ws / "loopml.toml").open("a") as toml:
        toml.write("\n[gates.default.production.thresholds]\nrmse = 40.0\n")
    with Client(ws) as client:
        client.register_model(
            LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), "m", metrics={"rmse": 41.2}
        )
        client.promote("m", 1, "staging")
    return ws


def test_a_refused_promotion_names_the_check_and_force_is_audited(ws: Path) -> None:
    code, output = cli(ws, "models", "promote", "m", "1", "production")
    assert code == 5
    assert "rmse 41.2 is above the maximum 40.0" in output
    code, output = cli(ws, "models", "promote", "m", "1", "production", "--force", "hotfix")
    assert (code, output.strip()) == (0, "models:/m/1 is now in production")
    code, output = cli(ws, "audit", "log", "--object", "models:/m/1")
    assert "model_version.gates_forced" in output


def test_a_malformed_gate_policy_is_named_at_open(ws: Path) -> None:
    with (ws / "loopml.toml").open("a") as toml:
        toml.write('\n[gates.default.production.champion]\nrmse = "five"\n')
    code, output = cli(ws, "models", "list")
    assert code == 2
    assert "loopml.toml" in output and "gates.default.production.champion" in output
