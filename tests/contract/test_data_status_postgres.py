"""``loopml data status`` on a workspace whose metadata lives in PostgreSQL.

The lean start-up path is for SQLite files only: here the command goes through the full
application and reads the newest version from the shared database, so a version added
from another machine (another workspace on the same database and artifact store, with no
stat index of its own) is seen and compared against its manifest.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopml.adapters.sql.database import SqlDatabase
from loopml.adapters.sql.sqlite_reader import SqliteDatasetReader
from loopml.cli.context import State
from loopml.cli.main import app
from loopml.client import Client

pytestmark = pytest.mark.postgres


def _workspace(folder: Path, url: str, artifacts: Path) -> Path:
    folder.mkdir()
    (folder / "loopml.toml").write_text(
        f'[store]\nmetadata_url = "{url}"\nartifact_url = "{artifacts}"\n', encoding="utf-8"
    )
    return folder


def test_status_reads_the_newest_version_from_the_shared_database(
    postgres_db: SqlDatabase, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    here = _workspace(tmp_path / "here", postgres_db.url, artifacts)
    there = _workspace(tmp_path / "there", postgres_db.url, artifacts)
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(3):
        (tree / f"f{i}.csv").write_text(f"a\n{i}\n", encoding="utf-8")
    name = f"t{uuid.uuid4().hex[:8]}"
    with Client(there) as client:  # added on the other machine
        client.app.datasets.add_path(name, tree, "ana")
    state = State(workspace=here)
    try:
        assert not isinstance(state.data_status().store, SqliteDatasetReader)
    finally:
        state.close()

    runner = CliRunner()
    result = runner.invoke(app, ["--workspace", str(here), "data", "status", name])
    assert (result.exit_code, result.output.strip()) == (
        0,
        f"{name}@1: no changes (3 unchanged, 3 hashed again)",  # no index here: hashed
    )
    (tree / "f1.csv").write_text("a\nchanged\n", encoding="utf-8")
    result = runner.invoke(app, ["--workspace", str(there), "data", "status", name])
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == "  modified  f1.csv"
