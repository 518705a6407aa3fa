"""`loopml deploy ...` through the real CLI (in-process) on a real SQLite workspace."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli
from sklearn.linear_model import LinearRegression

from loopml.client import Client

V1, V2, V3 = ({"model": "m", "version": v} for v in (1, 2, 3))


@pytest.fixture
def models(ws: Path) -> Path:
    """Model m: v1 in production (alias champion, rmse 30), v2 (alias challenger, rmse 41.2)
    and v3 (rmse 35) in staging."""
    with Client(ws) as client:
        for rmse in (30.0, 41.2, 35.0):
            mv = client.register_model(
                LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), "m", metrics={"rmse": rmse}
            )
            client.promote("m", mv.version, "staging")
        client.promote("m", 1, "production")
        client.set_alias("m", "champion", 1)
        client.set_alias("m", "challenger", 2)
    return ws


@pytest.fixture
def deployed(models: Path) -> Path:
    """Deployment api serving models:/m/1."""
    code, output = cli(models, "deploy", "create", "api", "models:/m@champion")
    assert code == 0, output
    return models


def ok_json(ws: Path, *args: str) -> Any:
    code, output = cli(ws, *args, "--json")
    assert code == 0, output
    return json.loads(output)


def flat(text: str) -> str:
    return " ".join(text.split())


def stages(ws: Path) -> dict[int, str]:
    with Client(ws) as client:
        return {v.version: v.stage.value for v in client.list_versions("m")}


def test_create_list_and_show(models: Path) -> None:
    ws = models
    code, output = cli(ws, "deploy", "list")
    assert code == 0 and "No deployments yet" in output
    created = ok_json(ws, "deploy", "create", "api", "models:/m@champion", "-m", "first")
    assert created["production"] == V1
    assert (created["revision"], created["canary"], created["retired"]) == (1, None, False)
    assert created["notes"] == []
    assert ok_json(ws, "deploy", "show", "api") == created
    [listed] = ok_json(ws, "deploy", "list")
    assert {k: listed[k] for k in ("name", "production", "revision")} == {
        "name": "api",
        "production": V1,
        "revision": 1,
    }
    code, output = cli(ws, "deploy", "list")
    assert code == 0 and "api" in output and "models:/m/1" in output
    code, output = cli(ws, "deploy", "show", "api")
    assert code == 0 and "production  models:/m/1" in output and "revision 1" in output
    code, output = cli(ws, "deploy", "create", "api", "models:/m/2")
    assert code == 4 and "already exists" in output
    code, output = cli(ws, "audit", "log", "--object", "deployments:/api", "--json")
    assert code == 0 and "deployment.create" in output


def test_canary_share_change_and_stop(deployed: Path) -> None:
    ws = deployed
    d = ok_json(ws, "deploy", "canary", "api", "models:/m/2", "--share", "10")
    assert (d["canary"], d["canary_share"], d["revision"]) == (V2, 10.0, 2)
    # the same canary again changes its share (an alias naming it counts as the same)
    d = ok_json(ws, "deploy", "canary", "api", "models:/m@challenger", "--share", "25")
    assert (d["canary_share"], d["revision"]) == (25.0, 3)
    code, output = cli(ws, "deploy", "show", "api")
    assert code == 0 and "canary      models:/m/2  25% of requests" in output
    # another version replaces the canary
    d = ok_json(ws, "deploy", "canary", "api", "models:/m/3", "--share", "5")
    assert (d["canary"], d["canary_share"]) == (V3, 5.0)
    d = ok_json(ws, "deploy", "canary", "api", "--stop")
    assert (d["canary"], d["canary_share"], d["revision"]) == (None, 0.0, 5)
    actions = [e["action"] for e in ok_json(ws, "deploy", "history", "api")]
    assert actions == ["create", "canary", "share", "canary", "canary"]


@pytest.mark.parametrize("share", ["0", "100", "150", "-5", "nan", "inf", "ten"])
def test_a_bad_share_exits_2_and_changes_nothing(deployed: Path, share: str) -> None:
    ws = deployed
    code, output = cli(ws, "deploy", "canary", "api", "models:/m/2", "--share", share)
    assert code == 2, output
    if share != "ten":  # click refuses that one before loopml sees it
        assert "canary share must be" in flat(output)
    assert ok_json(ws, "deploy", "show", "api")["revision"] == 1


def test_canary_needs_exactly_one_of_a_version_and_stop(deployed: Path) -> None:
    for args in (("api",), ("api", "models:/m/2", "--stop")):
        code, output = cli(deployed, "deploy", "canary", *args)
        assert code == 2 and "or --stop" in output
    code, output = cli(deployed, "deploy", "canary", "api", "models:/m@champion")
    assert code == 2 and "already serves production" in flat(output)


def test_shadow_and_stop(deployed: Path) -> None:
    ws = deployed
    d = ok_json(ws, "deploy", "shadow", "api", "models:/m/3")
    assert d["shadow"] == V3
    code, output = cli(ws, "deploy", "show", "api")
    assert code == 0 and "shadow      models:/m/3" in output
    assert ok_json(ws, "deploy", "shadow", "api", "--stop")["shadow"] is None
    code, output = cli(ws, "deploy", "shadow", "api")
    assert code == 2


def test_promote_rollback_and_retire(deployed: Path) -> None:
    ws = deployed
    ok_json(ws, "deploy", "canary", "api", "models:/m/3")
    d = ok_json(ws, "deploy", "promote", "api", "-m", "healthy")
    assert (d["production"], d["previous"], d["canary"]) == (
        V3,
        V1,
        None,
    )
    assert stages(ws) == {1: "staging", 2: "staging", 3: "production"}
    code, output = cli(ws, "deploy", "show", "api")
    assert code == 0 and "previous    models:/m/1" in output and "deploy rollback api" in output
    d = ok_json(ws, "deploy", "rollback", "api", "-m", "v3 misbehaves")
    assert (d["production"], d["previous"]) == (
        V1,
        V3,
    )
    d = ok_json(ws, "deploy", "retire", "api")
    assert d["retired"] is True
    code, output = cli(ws, "deploy", "list")
    assert code == 0 and "retired" in output
    code, output = cli(ws, "deploy", "canary", "api", "models:/m/2")
    assert code == 5 and "is retired" in output
    history = ok_json(ws, "deploy", "history", "api")
    assert [(e["revision"], e["action"], e["reason"]) for e in history] == [
        (1, "create", None),
        (2, "canary", None),
        (3, "promote", "healthy"),
        (4, "rollback", "v3 misbehaves"),
        (5, "retire", None),
    ]
    code, output = cli(ws, "audit", "log", "--object", "deployments:/api")
    assert code == 0
    assert all(f"deployment.{a}" in output for a in ("create", "promote", "rollback", "retire"))
    code, output = cli(ws, "audit", "verify")
    assert code == 0, output


def test_promote_without_a_canary_exits_5(deployed: Path) -> None:
    code, output = cli(deployed, "deploy", "promote", "api")
    assert code == 5 and "has no canary to promote" in flat(output)
    code, output = cli(deployed, "deploy", "rollback", "api")
    assert code == 5 and "no previous production version" in flat(output)


def test_a_gate_refusal_exits_5_naming_the_check_and_force_is_audited(deployed: Path) -> None:
    ws = deployed
    with (ws / "loopml.toml").open("a") as toml:
        toml.write("\n[gates.default.production.thresholds]\nrmse = 40.0\n")
    ok_json(ws, "deploy", "canary", "api", "models:/m/2")  # rmse 41.2
    code, output = cli(ws, "deploy", "promote", "api")
    assert code == 5
    assert "rmse 41.2 is above the maximum 40.0" in flat(output)
    assert stages(ws) == {1: "production", 2: "staging", 3: "staging"}
    assert ok_json(ws, "deploy", "show", "api")["revision"] == 2
    d = ok_json(ws, "deploy", "promote", "api", "--force", "hotfix")
    assert d["production"] == V2
    code, output = cli(ws, "audit", "log", "--object", "models:/m/2")
    assert code == 0 and "model_version.gates_forced" in output


def test_unknown_deployments_exit_3(models: Path) -> None:
    for args in (
        ("show", "nope"),
        ("canary", "nope", "models:/m/2"),
        ("shadow", "nope", "models:/m/2"),
        ("promote", "nope"),
        ("rollback", "nope"),
        ("retire", "nope"),
        ("history", "nope"),
        ("history", "nope", "--at", "2026-01-01T00:00:00Z"),
    ):
        code, output = cli(models, "deploy", *args)
        assert code == 3, (args, output)
        assert "deployment 'nope' does not exist" in flat(output)
    code, output = cli(models, "deploy", "create", "api", "models:/m/9")
    assert code == 3


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time 5:30 ahead of UTC, so that a time read in the wrong zone shows."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("far_from_utc")
def test_history_at_a_time_names_the_versions_that_served(deployed: Path) -> None:
    ws = deployed
    time.sleep(0.005)  # the changes below must fall on later milliseconds than the create
    ok_json(ws, "deploy", "canary", "api", "models:/m/3")
    time.sleep(0.005)
    ok_json(ws, "deploy", "promote", "api")
    times = [e["time_ms"] for e in ok_json(ws, "deploy", "history", "api")]
    assert times == sorted(set(times))

    def at(text: str) -> tuple[int, int]:
        [entry] = ok_json(ws, "deploy", "history", "api", "--at", text)
        return entry["revision"], entry["state"]["production"]["version"]

    assert at(iso(times[0])) == (1, 1)
    assert at(iso(times[1] - 1)) == (1, 1)
    assert at(iso(times[1])) == (2, 1)
    assert at(iso(times[2])) == (3, 3)
    assert at(iso(times[2]).replace("+00:00", "Z")) == (3, 3)
    assert at(iso(times[2]).replace("+00:00", "")) == (3, 3)  # no zone: UTC
    code, output = cli(ws, "deploy", "history", "api", "--at", iso(times[0] - 1))
    assert code == 3 and "did not exist at" in output
    code, output = cli(ws, "deploy", "history", "api", "--at", "yesterday")
    assert code == 2 and "is not a time" in flat(output) and "ISO 8601" in flat(output)
    code, output = cli(ws, "deploy", "history", "api")
    assert code == 0 and "promote" in output and "models:/m/3" in output


def test_show_notes_a_version_archived_after_the_fact(deployed: Path) -> None:
    ws = deployed
    ok_json(ws, "deploy", "canary", "api", "models:/m/2")
    assert cli(ws, "models", "archive", "m", "2")[0] == 0
    shown = ok_json(ws, "deploy", "show", "api")
    assert shown["notes"] == ["canary models:/m/2 is archived and serves nothing"]
    code, output = cli(ws, "deploy", "show", "api")
    assert code == 0 and "note: canary models:/m/2 is archived" in output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_refuses_an_out_of_date_database_before_starting(ws: Path, workers: str) -> None:
    # The lean reader steps aside for a revision it does not know; the full stores then
    # refuse with what to do, before any worker starts.
    with sqlite3.connect(ws / ".loopml" / "loopml.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    code, out = cli(ws, "serve", "--port", "1", "--workers", workers)
    assert code != 0
    assert "schema revision 0001" in out and "loopml db upgrade" in out, out
