"""The registry enforces the gate policy on promotions (see docs/gates.md)."""

from __future__ import annotations

import pytest
from sklearn.linear_model import LinearRegression

from loopml.bootstrap import Loopml
from loopml.client import Client
from loopml.domain.approvals import GatesFailed
from loopml.domain.errors import InvalidInput
from loopml.domain.gate_file import policy_from_toml
from loopml.domain.lifecycle import Stage

POLICY = """
[gates.default.production.thresholds]
rmse = 40.0

[gates.default.production.champion]
rmse = { max_worse_pct = 5 }
"""


def _model() -> LinearRegression:
    return LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])


@pytest.fixture
def gated(app: Loopml, client: Client) -> Client:
    app.registry.gates = policy_from_toml(POLICY, "loopml.toml")
    return client


def _stage_events(client: Client, name: str) -> list[str]:
    return [e.action for e in client.app.audit.list_events(f"models:/{name}", 100, None)]


def test_a_failing_version_is_refused_with_each_check_value_and_bound(gated: Client) -> None:
    gated.register_model(_model(), "m", metrics={"rmse": 41.2})
    gated.promote("m", 1, "staging")  # staging has no gate here
    before = _stage_events(gated, "m")
    with pytest.raises(GatesFailed, match=r"rmse 41\.2 is above the maximum 40\.0"):
        gated.promote("m", 1, "production")
    assert gated.get_model_version("models:/m/1").stage is Stage.STAGING  # unchanged
    assert _stage_events(gated, "m") == before  # nothing written


def test_force_needs_a_written_reason_and_is_audited_with_the_move(gated: Client) -> None:
    gated.register_model(_model(), "m", metrics={"rmse": 41.2})
    gated.promote("m", 1, "staging")
    with pytest.raises(InvalidInput):
        gated.promote("m", 1, "production", force_reason="   ")
    mv = gated.promote("m", 1, "production", force_reason="hotfix: old model is broken")
    assert mv.stage is Stage.PRODUCTION
    [forced] = [
        e
        for e in gated.app.audit.list_events("models:/m/1", 100, None)
        if e.action == "model_version.gates_forced"
    ]
    assert forced.reason == "hotfix: old model is broken"
    assert gated.verify_audit().ok


def test_a_challenger_is_judged_against_the_champion(gated: Client) -> None:
    gated.register_model(_model(), "m", metrics={"rmse": 30.0})
    gated.promote("m", 1, "staging")
    gated.promote("m", 1, "production")  # no champion yet: relative check skipped
    gated.set_alias("m", "champion", 1)
    gated.register_model(_model(), "m", metrics={"rmse": 32.0})  # within 40, but 6.7% worse
    gated.promote("m", 2, "staging")
    report = gated.app.registry.gate_report("m", 2, "production")
    assert [c.name for c in report.failures] == ["champion:rmse"]
    with pytest.raises(GatesFailed, match=r"champion 30"):
        gated.promote("m", 2, "production", archive_existing=True)
    gated.register_model(_model(), "m", metrics={"rmse": 31.0})  # 3.3% worse: allowed
    gated.promote("m", 3, "staging")
    assert gated.promote("m", 3, "production", archive_existing=True).stage is Stage.PRODUCTION


def test_force_without_a_gate_is_refused_as_a_mistake(client: Client) -> None:
    client.register_model(_model(), "m", metrics={"rmse": 1.0})
    with pytest.raises(InvalidInput, match="no gate guards staging"):
        client.promote("m", 1, "staging", force_reason="because")
