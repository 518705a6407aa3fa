from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from loopml.adapters.sql import migrate
from loopml.adapters.sql.database import SqlDatabase
from loopml.adapters.sql.schema import metadata
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
        match=r"revision 0000 but this loopml needs 0001.*"
        r"loopml db upgrade",
    ):
        migrate.check_schema(db)
    db.dispose()
