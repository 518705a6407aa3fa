from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from loopml.adapters.sql import migrate
from loopml.adapters.sql.database import SqlDatabase
from loopml.adapters.sql.schema import metadata
from loopml.adapters.sql.tracking import SqlTrackingStore
from loopml.domain.errors import SchemaOutOfDate


def test_head_revision_constant_matches_the_scripts() -> None:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == migrate.HEAD_REVISION


def test_migrated_database_matches_the_table_definitions(tmp_path: Path) -> None:
    db = SqlDatabase(f"sqlite:///{tmp_path / 'x.db'}")
    assert migrate.initialize(db) is True
    assert migrate.initialize(db) is False  # idempotent
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    db.dispose()
    assert diff == []


def test_opening_never_migrates_and_says_what_to_run(tmp_path: Path) -> None:
    db = SqlDatabase(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(SchemaOutOfDate, match="has no loopml schema; run `loopml init`"):
        migrate.check_schema(db)
    migrate.initialize(db)
    with db.write() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0000'")
    with pytest.raises(
        SchemaOutOfDate,
        match=rf"revision 0000 but this loopml needs {migrate.HEAD_REVISION}.*"
        r"loopml db upgrade",
    ):
        migrate.check_schema(db)
    db.dispose()


def _alembic(db: SqlDatabase, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with db.engine.connect() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)
        conn.commit()


_POINTS = [  # (run_pk, key, value, step, timestamp_ms), in write order
    (1, "loss", 0.5, 0, 10),
    (1, "acc", None, 0, 10),  # NaN is a NULL in revision 0001
    (2, "loss", 9.0, 0, 11),
    (1, "loss", 0.25, 1, 12),
    (1, "loss", 0.125, 1, 12),  # same step and time: logging order is kept
    (1, "loss", 1e308, -3, 13),
]


def test_upgrade_moves_metric_points_into_chunks_and_back(tmp_path: Path) -> None:
    db = SqlDatabase(f"sqlite:///{tmp_path / 'x.db'}")
    _alembic(db, "upgrade", "0001")
    with db.write() as conn:
        conn.exec_driver_sql("INSERT INTO experiments (id, name, created_ms) VALUES (1, 'e', 0)")
        for pk in (1, 2):
            conn.exec_driver_sql(
                "INSERT INTO runs (pk, id, experiment_id, name, status, start_ms) "
                f"VALUES ({pk}, 'r{pk}', 1, 'n', 'RUNNING', 0)"
            )
        conn.exec_driver_sql(
            "INSERT INTO metrics (run_pk, key, value, step, timestamp_ms) VALUES (?, ?, ?, ?, ?)",
            _POINTS,
        )
    migrate.upgrade(db)
    store = SqlTrackingStore(db)
    loss = store.get_metric_history("r1", "loss")
    assert [(p.value, p.step) for p in loss] == [(1e308, -3), (0.5, 0), (0.25, 1), (0.125, 1)]
    [acc] = store.get_metric_history("r1", "acc")
    assert acc.value != acc.value  # NaN came back as NaN
    assert [p.value for p in store.get_metric_history("r2", "loss")] == [9.0]

    _alembic(db, "downgrade", "0001")
    with db.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT run_pk, key, value, step, timestamp_ms FROM metrics ORDER BY id"
        ).all()
    db.dispose()
    assert sorted(map(tuple, rows), key=repr) == sorted(_POINTS, key=repr)


def test_upgrade_to_0004_adds_approval_requests_and_downgrade_removes_them(
    tmp_path: Path,
) -> None:
    db = SqlDatabase(f"sqlite:///{tmp_path / 'x.db'}")
    _alembic(db, "upgrade", "0003")
    _alembic(db, "upgrade", "0004")
    with db.read() as conn:
        assert "approval_requests" in inspect(conn).get_table_names()
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0004"
    _alembic(db, "downgrade", "0003")
    with db.read() as conn:
        assert "approval_requests" not in inspect(conn).get_table_names()
    db.dispose()


_MONITORING_TABLES = {
    "monitor_windows",
    "monitor_references",
    "review_items",
    "review_cursors",
    "loop_runs",
    "agent_jobs",
}


def test_upgrade_to_0007_adds_monitoring_tables_and_keeps_deployments(tmp_path: Path) -> None:
    db = SqlDatabase(f"sqlite:///{tmp_path / 'x.db'}")
    _alembic(db, "upgrade", "0006")
    with db.write() as conn:
        conn.exec_driver_sql(
            "INSERT INTO deployments (name, revision, state, updated_ms) VALUES ('api', 3, '{}', 5)"
        )
    _alembic(db, "upgrade", "0007")
    with db.read() as conn:
        assert set(inspect(conn).get_table_names()) >= _MONITORING_TABLES
        assert conn.exec_driver_sql("SELECT name, revision FROM deployments").all() == [("api", 3)]
    _alembic(db, "downgrade", "0006")
    with db.read() as conn:
        assert not _MONITORING_TABLES & set(inspect(conn).get_table_names())
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0006"
    db.dispose()
