"""Approval requests through the real CLI (in-process), two people taking turns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import cli
from sklearn.linear_model import LinearRegression

from loopml.client import Client


@pytest.fixture
def gated(ws: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Production needs approval by a second person; m v1 (rmse 30) is in staging."""
    with (ws / "loopml.toml").open("a") as toml:
        toml.write(
            "\n[gates.default.production]\nrequire_approval = true\n"
            "\n[gates.default.production.thresholds]\nrmse = 40.0\n"
        )
    monkeypatch.setenv("LOOPML_ACTOR", "ana")
    with Client(ws) as client:
        client.register_model(
            LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), "m", metrics={"rmse": 30.0}
        )
        client.promote("m", 1, "staging")
    return ws


def as_person(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("LOOPML_ACTOR", name)


def request(ws: Path) -> str:
    code, output = cli(ws, "approvals", "request", "m", "1", "--stage", "production", "--json")
    assert code == 0, output
    return str(json.loads(output)["id"])


def test_a_second_person_approves_and_the_promotion_goes_through(
    gated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = gated
    as_person(monkeypatch, "alice")
    code, output = cli(ws, "models", "promote", "m", "1", "production")
    assert code == 9 and "needs approval" in output
    code, output = cli(ws, "approvals", "request", "m", "1")  # production by default
    assert code == 0, output
    assert "m v1 -> production" in output and "loopml approvals approve apr-" in output
    [asked] = json.loads(cli(ws, "approvals", "list", "--json")[1])
    request_id = asked["id"]
    assert (asked["status"], asked["requested_by"]) == ("pending", "alice")

    code, output = cli(ws, "approvals", "approve", request_id)
    assert code == 9
    assert f"alice cannot approve their own request {request_id}" in output

    as_person(monkeypatch, "bob")
    code, output = cli(ws, "approvals", "approve", request_id, "--comment", "checked the eval")
    assert code == 0, output
    assert "loopml models promote m 1 production" in output
    code, output = cli(ws, "models", "promote", "m", "1", "production")
    assert (code, output.strip()) == (0, "models:/m/1 is now in production")

    code, output = cli(ws, "audit", "log", "--object", "models:/m/1", "--json")
    actions = [e["action"] for e in json.loads(output)]
    assert actions[:4] == [
        "model_version.stage",
        "model_version.gates",
        "approval.approve",
        "approval.request",
    ]
    code, output = cli(ws, "approvals", "list", "--status", "approved")
    assert code == 0 and request_id in output and "bob" in output and "checked the eval" in output


def test_reject_needs_a_comment_and_cancel_withdraws(
    gated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = gated
    as_person(monkeypatch, "alice")
    first = request(ws)
    code, output = cli(ws, "approvals", "request", "m", "1")
    assert code == 4 and f"already has an open approval request, {first}" in output
    as_person(monkeypatch, "bob")
    code, _ = cli(ws, "approvals", "reject", first)
    assert code == 2  # --comment is required
    code, output = cli(ws, "approvals", "reject", first, "--comment", "   ")
    assert code == 2 and "needs a comment saying why" in output
    code, output = cli(ws, "approvals", "reject", first, "--comment", "wait for May data")
    assert (code, output.strip()) == (0, f"rejected {first} (m v1 -> production)")
    code, output = cli(ws, "approvals", "approve", first)
    assert code == 5 and "already rejected by bob" in output

    as_person(monkeypatch, "alice")
    second = request(ws)
    code, output = cli(ws, "approvals", "cancel", second)
    assert (code, output.strip()) == (0, f"cancelled {second} (m v1 -> production)")
    listed = json.loads(cli(ws, "approvals", "list", "--model", "m", "--json")[1])
    assert [(r["id"], r["status"]) for r in listed] == [
        (second, "cancelled"),
        (first, "rejected"),
    ]
    assert json.loads(cli(ws, "approvals", "list", "--status", "pending", "--json")[1]) == []


def test_mistakes_get_their_exit_codes_and_say_what_to_do(gated: Path) -> None:
    ws = gated
    code, output = cli(ws, "approvals", "approve", "apr-0000000000")
    assert code == 3 and "loopml approvals list" in output
    code, output = cli(ws, "approvals", "request", "m", "1", "--stage", "staging")
    assert code == 2 and "does not require approval" in output
    code, output = cli(ws, "approvals", "list", "--status", "done")
    assert code == 2 and "unknown approval status 'done'" in output
    code, output = cli(ws, "approvals", "list")
    assert code == 0 and "No approval requests" in output
