"""``loopml serve`` on a SQLite workspace starts without SQLAlchemy (bootstrap_serve), and
falls back to the full application where the lean reader cannot read the database."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from loopml.adapters.sql.sqlite_reader import SqliteServingReader
from loopml.client import Client
from loopml.config import load_settings
from loopml.domain.errors import SchemaOutOfDate
from loopml.server.build import workspace_sources

_CHILD = """
import sys
from pathlib import Path
from loopml.config import load_settings
from loopml.server.build import serve_sources, workspace_sources

running = serve_sources(workspace_sources(load_settings(Path(sys.argv[1]))))
print(sorted(running.server.routes.endpoints))
print([name for name in ("sqlalchemy", "alembic", "loopml.bootstrap") if name in sys.modules])
"""


def test_a_sqlite_workspace_is_served_without_importing_sqlalchemy(workspace: Client) -> None:
    assert workspace.app.settings is not None
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(workspace.app.settings.root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.splitlines() == ["['demand', 'hot']", "[]"], done.stderr


def test_a_database_the_lean_reader_does_not_know_is_served_by_the_full_stores(
    workspace: Client,
) -> None:
    settings = workspace.app.settings
    assert settings is not None
    lean = workspace_sources(settings)
    assert isinstance(getattr(lean.deployments, "__self__", None), SqliteServingReader)
    database = Path(settings.metadata_url[len("sqlite:///") :])
    with sqlite3.connect(database) as conn:  # as if a newer loopml had migrated it
        conn.execute("CREATE TABLE later_feature (id INTEGER)")
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    # The full stores then check the revision and refuse, saying what to do.
    with pytest.raises(SchemaOutOfDate, match=r"schema revision 9999 .*loopml db upgrade"):
        workspace_sources(load_settings(settings.root))
