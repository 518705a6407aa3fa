"""The standard-library reader of dataset versions against the SQL store it shadows.

``loopml data status`` reads the newest version of a SQLite workspace with
:class:`SqliteDatasetReader` instead of SQLAlchemy: it must return exactly what
:class:`SqlDatasetStore` returns from the same database, raise the same NotFound, and
step aside (``open`` gives None) for a database it was not written for.
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.adapters.sql import migrate
from loopml.adapters.sql.database import SqlDatabase
from loopml.adapters.sql.datasets import SqlDatasetStore
from loopml.adapters.sql.sqlite_reader import SCHEMA_REVISION, SqliteDatasetReader
from loopml.domain.artifacts import Digest
from loopml.domain.datasets import DataColumn
from loopml.domain.errors import NotFound
from loopml.ports import NewDatasetVersion


@pytest.fixture
def database(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[Path, SqlDatasetStore]]:
    path = tmp_path / "loopml.db"
    shutil.copyfile(sqlite_template, path)
    db = SqlDatabase(f"sqlite:///{path}")
    try:
        yield path, SqlDatasetStore(db)
    finally:
        db.dispose()


def _new(digest: str, **changes: object) -> NewDatasetVersion:
    new = NewDatasetVersion(
        name="bikes",
        digest=digest,
        rows=10,
        columns=(DataColumn("hr", "int64"), DataColumn("note", "string")),
        manifest=Digest("blake3", "1" * 64),
        size=123,
        created_ms=1_000,
        author="ana",
        source="data/bikes",
        message="first",
        profile=None,
    )
    return dataclasses.replace(new, **changes)


def _reader(path: Path) -> SqliteDatasetReader:
    reader = SqliteDatasetReader.open(path, f"sqlite:///{path}", 5.0)
    assert reader is not None
    return reader


def test_the_reader_knows_the_newest_schema_revision() -> None:
    assert SCHEMA_REVISION == migrate.HEAD_REVISION


def test_it_reads_what_the_store_reads(database: tuple[Path, SqlDatasetStore]) -> None:
    path, store = database
    store.create_version(_new("blake2b:aa"))
    store.create_version(
        _new(
            "blake2b:bb",
            message="with a profile, ünïcode and 'quotes'",
            profile=Digest("blake3", "2" * 64),
            source="/data/bikes folder",
        )
    )
    store.create_version(_new("blake2b:aa", name="other", source=""))
    reader = _reader(path)
    for name, version in (("bikes", None), ("bikes", 1), ("bikes", 2), ("other", None)):
        assert reader.get_version(name, version) == store.get_version(name, version)
    assert reader.get_version("bikes", None).version == 2


def test_it_raises_what_the_store_raises(database: tuple[Path, SqlDatasetStore]) -> None:
    path, store = database
    store.create_version(_new("blake2b:aa"))
    reader = _reader(path)
    for name, version in (("nope", None), ("bikes", 7), ("Bikes", None)):
        with pytest.raises(NotFound) as theirs:
            store.get_version(name, version)
        with pytest.raises(NotFound) as ours:
            reader.get_version(name, version)
        assert str(ours.value) == str(theirs.value)


def test_it_steps_aside_for_a_database_it_does_not_know(
    database: tuple[Path, SqlDatasetStore], tmp_path: Path
) -> None:
    path, _ = database
    missing = tmp_path / "missing.db"
    assert SqliteDatasetReader.open(missing, f"sqlite:///{missing}", 5.0) is None
    assert not missing.exists()  # never creates a database

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    assert SqliteDatasetReader.open(other, f"sqlite:///{other}", 5.0) is None

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    conn.close()
    assert SqliteDatasetReader.open(path, f"sqlite:///{path}", 5.0) is None
