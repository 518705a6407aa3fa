"""The audit trail is tamper-evident on a real SQLite workspace, through the SDK and the CLI.

Each test builds a workspace the way a user does (register, promote, alias), then edits the
database behind loopml's back with the raw ``sqlite3`` module, as someone with file access
could: change an event's recorded ``after`` value, delete an event from the middle, cut the
last event off. ``verify_audit`` must fail and name the first bad event, and ``loopml audit
verify`` must exit 6 (IntegrityError's code) with that event in its message.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

from loopml.bootstrap import init_workspace
from loopml.cli.main import app as cli_app
from loopml.client import Client
from loopml.domain.audit import AuditEvent, event_hash

if TYPE_CHECKING:
    from pathlib import Path

    from loopml.domain.audit import ChainReport

# The events the scenario below appends, in order.
EXPECTED_ACTIONS = ["model.create", "model_version.create", "model_version.stage", "alias.set"]


def _scenario_workspace(root: Path) -> Path:
    """A workspace with a registered, promoted and aliased model: four audit events."""
    init_workspace(root)
    model = LinearRegression().fit(np.arange(8.0).reshape(-1, 1), np.arange(8.0) * 2 + 1)
    with Client(root, capture_code=False) as client:
        mv = client.register_model(model, "bike-demand")
        client.promote("bike-demand", mv.version, "staging", reason="passed offline eval")
        client.set_alias("bike-demand", "champion", mv.version)
        report = client.verify_audit()
        assert report.ok, report.problem
        assert report.checked == 4
        events = list(reversed(client.audit_events().items))
    assert [e.action for e in events] == EXPECTED_ACTIONS
    assert [e.seq for e in events] == [1, 2, 3, 4]
    return root


def _db(root: Path) -> Path:
    return root / ".loopml" / "loopml.db"


def _tamper(root: Path, sql: str, *params: object) -> None:
    """Change the database with the raw sqlite3 module, outside loopml entirely."""
    with closing(sqlite3.connect(_db(root))) as conn, conn:
        changed = conn.execute(sql, params).rowcount
    assert changed == 1, f"the tampering statement changed {changed} rows, expected 1"


def _verify(root: Path) -> ChainReport:
    with Client(root, capture_code=False) as client:
        return client.verify_audit()


def _cli_verify(root: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, ["--workspace", str(root), "audit", "verify"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_intact_chain_verifies_in_sdk_and_cli(tmp_path: Path) -> None:
    root = _scenario_workspace(tmp_path / "ws")

    report = _verify(root)
    assert report.ok
    assert report.first_bad_seq is None
    assert report.checked == 4

    code, output = _cli_verify(root)
    assert code == 0, output
    assert "audit trail intact: 4 events" in output
    assert report.head_hash in output


def test_edited_after_value_is_detected_at_that_event(tmp_path: Path) -> None:
    root = _scenario_workspace(tmp_path / "ws")
    # Rewrite history: claim version 1 went to production, not staging.
    _tamper(root, "UPDATE audit_events SET after = ? WHERE seq = ?", '{"stage":"production"}', 3)

    report = _verify(root)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.checked == 2  # events 1 and 2 still verify
    assert report.problem is not None
    assert "event 3" in report.problem
    assert "edited" in report.problem

    code, output = _cli_verify(root)
    assert code == 6, output
    assert "audit trail broken at event 3" in output
    assert "model_version.stage" in output


def test_edit_restoring_the_hash_still_breaks_the_link(tmp_path: Path) -> None:
    """Someone who also recomputes the edited event's hash is caught by the next event."""
    root = _scenario_workspace(tmp_path / "ws")
    with closing(sqlite3.connect(_db(root))) as conn, conn:
        row = conn.execute(
            "SELECT prev_hash, seq, time_ms, actor, action, object_type, object_id, before,"
            " reason FROM audit_events WHERE seq = 3"
        ).fetchone()
        prev, seq, time_ms, actor, action, otype, oid, _before, reason = row
        forged = event_hash(
            AuditEvent(
                seq,
                time_ms,
                actor,
                action,
                otype,
                oid,
                {"stage": "candidate"},
                {"stage": "production"},
                reason,
                prev,
                hash="",
            )
        )
        conn.execute(
            "UPDATE audit_events SET after = ?, hash = ? WHERE seq = 3",
            ('{"stage":"production"}', forged),
        )

    report = _verify(root)
    assert not report.ok
    assert report.first_bad_seq == 4
    assert report.problem is not None
    assert "does not link" in report.problem


def test_deleted_middle_event_is_named(tmp_path: Path) -> None:
    root = _scenario_workspace(tmp_path / "ws")
    _tamper(root, "DELETE FROM audit_events WHERE seq = ?", 2)

    report = _verify(root)
    assert not report.ok
    assert report.first_bad_seq == 2
    assert report.checked == 1
    assert report.problem is not None
    assert "event 2 is missing" in report.problem

    code, output = _cli_verify(root)
    assert code == 6, output
    assert "audit trail broken at event 2" in output
    assert "event 2 is missing" in output


def test_deleted_last_event_is_detected_by_the_head(tmp_path: Path) -> None:
    root = _scenario_workspace(tmp_path / "ws")
    _tamper(root, "DELETE FROM audit_events WHERE seq = ?", 4)

    report = _verify(root)
    assert not report.ok
    assert report.first_bad_seq == 4
    assert report.checked == 3  # the three remaining events are internally consistent
    assert report.problem is not None
    assert "deleted from the end" in report.problem

    code, output = _cli_verify(root)
    assert code == 6, output
    assert "audit trail broken at event 4" in output


@pytest.mark.parametrize("column", ["actor", "object_id", "reason", "time_ms"])
def test_every_sealed_column_is_covered_by_the_hash(tmp_path: Path, column: str) -> None:
    root = _scenario_workspace(tmp_path / "ws")
    value: object = 1 if column == "time_ms" else "mallory"
    _tamper(root, f"UPDATE audit_events SET {column} = ? WHERE seq = 3", value)

    report = _verify(root)
    assert not report.ok
    assert report.first_bad_seq == 3


@pytest.mark.parametrize(("column", "value"), [("after", "{not json"), ("time_ms", "yesterday")])
def test_undecodable_event_is_reported_not_raised(tmp_path: Path, column: str, value: str) -> None:
    root = _scenario_workspace(tmp_path / "ws")
    _tamper(root, f"UPDATE audit_events SET {column} = ? WHERE seq = ?", value, 2)

    report = _verify(root)
    assert not report.ok
    assert report.first_bad_seq == 2

    code, output = _cli_verify(root)
    assert code == 6, output
    assert "audit trail broken at event 2" in output
