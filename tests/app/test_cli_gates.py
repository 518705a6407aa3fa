"""Gates from loopml.toml, enforced through the real CLI (in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import cli
from sklearn.linear_model import LinearRegression

from loopml.client import Client


@pytest.fixture
def gated(ws: Path) -> Path:
    """A workspace whose policy gates production on rmse, with v1 (rmse 41.2) in staging."""
    with (ws / "loopml.toml").open("a") as toml:
        toml.write("\n[gates.default.production.thresholds]\nrmse = 40.0\n")
    with Client(ws) as client:
        client.register_model(
            LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), "m", metrics={"rmse": 41.2}
        )
        client.promote("m", 1, "staging")
    return ws


def test_a_refused_promotion_names_the_check_and_force_is_audited(gated: Path) -> None:
    ws = gated
    code, output = cli(ws, "models", "promote", "m", "1", "production")
    assert code == 5
    assert "rmse 41.2 is above the maximum 40.0" in output
    code, output = cli(ws, "models", "promote", "m", "1", "production", "--force", "hotfix")
    assert (code, output.strip()) == (0, "models:/m/1 is now in production")
    code, output = cli(ws, "audit", "log", "--object", "models:/m/1")
    assert "model_version.gates_forced" in output


def test_a_malformed_gate_policy_is_named_at_open(gated: Path) -> None:
    ws = gated
    with (ws / "loopml.toml").open("a") as toml:
        toml.write('\n[gates.default.production.champion]\nrmse = "five"\n')
    code, output = cli(ws, "models", "list")
    assert code == 2
    assert "loopml.toml" in output and "gates.default.production.champion" in output


def _stage(ws: Path) -> str:
    with Client(ws) as client:
        return client.get_model_version("models:/m/1").stage.value


def test_a_gate_on_an_unknown_metric_is_refused_and_nothing_moves(gated: Path) -> None:
    ws = gated
    with (ws / "loopml.toml").open("a") as toml:
        toml.write("\n[gates.default.staging.thresholds]\nrevenue_uplfit = 0.0\n")
    code, output = cli(ws, "models", "promote", "m", "1", "production")
    assert code == 2
    flat = " ".join(output.split())
    assert "gates.default.staging.thresholds" in flat and "revenue_uplfit" in flat
    (ws / "loopml.toml").write_text(
        (ws / "loopml.toml").read_text().replace("revenue_uplfit = 0.0\n", "")
    )
    assert _stage(ws) == "staging"


def test_promoting_an_archived_version_is_refused_and_nothing_moves(gated: Path) -> None:
    ws = gated
    assert cli(ws, "models", "archive", "m", "1")[0] == 0
    code, output = cli(ws, "models", "promote", "m", "1", "production", "--force", "urgent")
    assert code == 5 and "archived" in output
    assert _stage(ws) == "archived"
    code, output = cli(ws, "audit", "log", "--object", "models:/m/1", "--json")
    assert "gates_forced" not in output  # a refused move leaves no trace
