"""``loopml data status`` end to end: the lean start-up path and the full one agree, the
output is plain text, and the lean path loads no storage or data library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import cli

from loopml.adapters.sql.sqlite_reader import SqliteDatasetReader
from loopml.bootstrap_lean import lean_data_status
from loopml.cli.context import State
from loopml.client import Client
from loopml.config import load_settings


def _tree(root: Path) -> Path:
    for d in range(3):
        for i in range(4):
            path = root / f"p{d}" / f"f{i}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"a,b\n{d},{i}\n", encoding="utf-8")
    (root / "top.csv").write_text("a,b\n9,9\n", encoding="utf-8")
    return root


@pytest.fixture
def added(ws: Path, tmp_path: Path) -> Path:
    tree = _tree(tmp_path / "tree")
    code, output = cli(ws, "data", "add", "t", str(tree))
    assert code == 0, output
    return tree


def _change(tree: Path) -> None:
    (tree / "p1" / "f2.csv").write_text("a,b\n1,2\n1,3\n", encoding="utf-8")  # modified
    (tree / "p2" / "f0.csv").unlink()  # removed
    (tree / "p0" / "[red]new.csv").write_text("a,b\n5,5\n", encoding="utf-8")  # added
    os.utime(tree / "top.csv", ns=(1, 1))  # touched: hashed again, unchanged


def test_the_lean_path_and_the_full_app_give_the_same_answer(ws: Path, added: Path) -> None:
    lean = State(workspace=ws).data_status()
    assert isinstance(lean.store, SqliteDatasetReader)  # no SQLAlchemy on this path
    with Client(ws) as client:
        full = client.app.data_status
        assert not isinstance(full.store, SqliteDatasetReader)
        assert lean.status("t") == full.status("t")
        assert lean.status("t").clean
        _change(added)
        found = lean.status("t")
        assert found == full.status("t")
        assert (found.added, found.removed, found.modified) == (
            ("p0/[red]new.csv",),
            ("p2/f0.csv",),
            ("p1/f2.csv",),
        )
        assert (found.unchanged, found.rehashed) == (11, 3)
        other = added.parent / "copy"
        _tree(other)
        assert lean.status("t", other) == full.status("t", other)  # against the manifest


def test_changes_print_as_plain_lines_and_exit_1(ws: Path, added: Path) -> None:
    _change(added)
    code, output = cli(ws, "data", "status", "t")
    assert code == 1
    assert output.splitlines() == [
        "  added     p0/[red]new.csv",  # a file name is text, never markup
        "  removed   p2/f0.csv",
        "  modified  p1/f2.csv",
        "t@1: changes not added yet (11 unchanged, 3 hashed again)",
    ]
    code, output = cli(ws, "data", "status", "t", "--json")
    assert code == 1
    assert json.loads(output)["removed"] == ["p2/f0.csv"]
    code, output = cli(ws, "data", "status", "nope")
    assert code == 3 and "dataset 'nope' does not exist" in output


def test_a_database_at_another_revision_goes_through_the_full_app(ws: Path, added: Path) -> None:
    import sqlite3

    with sqlite3.connect(ws / ".loopml" / "loopml.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    conn.close()
    assert lean_data_status(load_settings(ws)) is None
    code, output = cli(ws, "data", "status", "t")
    assert code == 7
    assert "revision 0001" in output and "loopml db upgrade" in output


def test_status_loads_no_storage_data_or_ui_library(ws: Path, added: Path) -> None:
    """The command as a user runs it, in a fresh interpreter: the lean path imports
    neither SQLAlchemy nor Arrow, pandas, numpy, fsspec, rich, nor the composition root."""
    code = (
        "import sys\n"
        "from loopml.cli.main import app\n"
        f"sys.argv = ['loopml', '--workspace', {str(ws)!r}, 'data', 'status', 't']\n"
        "try:\n"
        "    app()\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code)\n"
        "heavy = ('sqlalchemy', 'alembic', 'pyarrow', 'pandas', 'numpy', 'fsspec', 'rich',\n"
        "         'loopml.bootstrap', 'loopml.ports', 'loopml.adapters.artifacts.fsspec_store')\n"
        "print('heavy:', ','.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "t@1: no changes (13 unchanged, 0 hashed again)" in done.stdout, done.stdout
    assert "exit 0" in done.stdout
    assert "heavy: \n" in done.stdout, done.stdout


def test_a_folder_added_by_a_relative_path_is_compared_from_anywhere(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path / "rel")
    monkeypatch.chdir(tmp_path)
    code, output = cli(ws, "data", "add", "r", "rel")
    assert code == 0, output
    monkeypatch.chdir(ws)  # elsewhere: the recorded source is absolute
    code, output = cli(ws, "data", "status", "r")
    assert code == 0 and "r@1: no changes (13 unchanged, 0 hashed again)" in output, output
