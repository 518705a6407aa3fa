"""``loopml serve`` on a SQLite workspace starts without SQLAlchemy (bootstrap_serve), and
falls back to the full application where the lean reader cannot read the database."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loopml.adapters.sql.sqlite_reader import SqliteServingReader
from loopml.client import Client
from loopml.config import load_settings
from loopml.domain.errors import InvalidInput, SchemaOutOfDate
from loopml.server.build import workspace_sources
from loopml.server.review_desk import ReviewDesk

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


def test_a_malformed_config_refuses_the_lean_start_as_it_refuses_the_full_one(
    workspace: Client,
) -> None:
    settings = workspace.app.settings
    assert settings is not None
    config = settings.root / "loopml.toml"
    config.write_text(config.read_text() + "\n[gates]\nbogus = 1\n")
    with pytest.raises(InvalidInput, match=r"loopml\.toml: gates: unknown key 'bogus'"):
        workspace_sources(load_settings(settings.root))


def test_the_review_gauges_read_nan_until_the_queue_opens_and_never_wait_for_it() -> None:
    opened = threading.Event()
    release = threading.Event()

    class Queue:  # stands in for the review service the full stores would make
        def stats(self, deployment: str | None) -> tuple[int, float | None]:
            return 3, 12.5

    def slow_open() -> Queue:
        opened.set()
        release.wait(5)
        return Queue()

    desk = ReviewDesk(slow_open, {})  # type: ignore[arg-type]
    desk.open_in_background()
    assert opened.wait(5)
    started = time.perf_counter()
    size, age = desk.queue()
    assert math.isnan(size) and math.isnan(age)
    assert time.perf_counter() - started < 0.1  # did not wait for the opening
    release.set()
    deadline = time.monotonic() + 5
    while math.isnan(desk.queue()[0]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert desk.queue() == (3, 12.5)
