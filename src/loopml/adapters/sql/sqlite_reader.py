"""Reads of a SQLite metadata database with the standard library, for fast starts.

Importing SQLAlchemy, its dialect and every store costs about 0.4 s. Two commands need
only a few rows and start faster without it:

- ``loopml data status`` needs the dataset's newest version: :class:`SqliteDatasetReader`
  reads the tables :class:`loopml.adapters.sql.datasets.SqlDatasetStore` reads
  (``datasets`` joined with ``dataset_versions``);
- ``loopml serve`` needs the deployments, the model versions they route to and the audit
  head (which moves on every change): :class:`SqliteServingReader` reads the tables of
  ``SqlDeploymentStore``, ``SqlRegistryStore`` and ``SqlAuditLog``, and maps model
  versions with the very function the SQL store uses.

Each read is one read transaction through :mod:`sqlite3`, mapped to the same domain
objects as the SQL stores (contract tests keep them in step). A reader reads, never
writes, and never creates a database file.

A reader knows the schema revision it was written for (:data:`SCHEMA_REVISION`, the newest
migration; a test keeps it equal to ``migrate.HEAD_REVISION``): ``open`` gives no reader
for a database at another revision (or none at all), and the caller opens the full stores
instead, which say what to do about it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from loopml.adapters.sql.mapping import version_from_row
from loopml.domain.artifacts import Digest
from loopml.domain.datasets import DataColumn, DatasetVersion, no_dataset, no_version
from loopml.domain.deployments import Deployment
from loopml.domain.errors import NotFound, SchemaOutOfDate, StorageError
from loopml.domain.registry import ModelVersion

SCHEMA_REVISION = "0007"

_VERSION = """
SELECT d.latest_version, v.version, v.digest, v.rows, v.columns, v.manifest, v.size,
       v.created_ms, v.author, v.source, v.message, v.parent, v.profile
FROM datasets AS d
LEFT JOIN dataset_versions AS v
  ON v.dataset_id = d.id AND v.version = COALESCE(?, d.latest_version)
WHERE d.name = ?
"""


class _SqliteReader:
    """One SQLite file at :data:`SCHEMA_REVISION`, read in read transactions."""

    def __init__(self, path: Path, url: str, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self.url = url  # for messages
        self.busy_timeout_s = busy_timeout_s

    @classmethod
    def open(cls, path: Path, url: str, busy_timeout_s: float) -> Self | None:
        """A reader if ``path`` is a loopml database at :data:`SCHEMA_REVISION`, else None."""
        reader = cls(path, url, busy_timeout_s)
        if not path.is_file():
            return None
        try:
            with reader._snapshot() as conn:
                return reader if _revision(conn) == SCHEMA_REVISION else None
        except StorageError:
            return None

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """:meth:`_snapshot`, refused if the database was migrated since ``open``."""
        with self._snapshot() as conn:
            revision = _revision(conn)
            if revision != SCHEMA_REVISION:  # migrated since open(): rare, and explained
                raise SchemaOutOfDate(
                    f"the metadata database {self.url} is at schema revision {revision} but "
                    f"this reader needs {SCHEMA_REVISION}; run the command again"
                )
            yield conn

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction; sqlite3 errors become StorageError. Opened read-write
        (WAL needs its shared-memory file) but never creating the file, never writing."""
        try:
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=rw",
                uri=True,
                timeout=self.busy_timeout_s,
                isolation_level=None,
            )
            try:
                conn.execute("BEGIN")
                yield conn
                conn.execute("COMMIT")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StorageError(
                f"metadata database {self.url} failed: {exc}. "
                "Check that it is reachable and not full or read-only."
            ) from exc


class SqliteDatasetReader(_SqliteReader):
    """``get_version`` of the dataset store, on the SQLite file at ``path``."""

    def get_version(self, name: str, version: int | None) -> DatasetVersion:
        """Version ``version`` of ``name``, or the newest when None; NotFound as the
        store raises it."""
        with self._read() as conn:
            row = conn.execute(_VERSION, (version, name)).fetchone()
        if row is None or not row[0]:
            raise no_dataset(name)
        if row[1] is None:
            raise no_version(name, int(row[0]) if version is None else version)
        return _version(name, row)


class SqliteServingReader(_SqliteReader):
    """What a server routes by: the deployments (``SqlDeploymentStore.list_deployments``),
    model versions (``SqlRegistryStore.get_version``) and the audit head
    (``SqlAuditLog.head``), on the SQLite file at ``path``."""

    def list_deployments(self) -> list[Deployment]:
        with self._read() as conn:
            rows = conn.execute("SELECT state FROM deployments ORDER BY name").fetchall()
        return [Deployment.from_dict(json.loads(str(state))) for (state,) in rows]

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self._read() as conn:
            conn.row_factory = sqlite3.Row
            model = conn.execute("SELECT id FROM models WHERE name = ?", (name,)).fetchone()
            if model is None:
                raise NotFound(
                    f"model {name!r} does not exist; list models with `loopml models list`"
                )
            row = conn.execute(
                "SELECT * FROM model_versions WHERE model_id = ? AND version = ?",
                (model["id"], version),
            ).fetchone()
            aliases = conn.execute(
                "SELECT alias FROM model_aliases WHERE model_id = ? AND version = ?",
                (model["id"], version),
            ).fetchall()
        if row is None:
            raise NotFound(
                f"model {name!r} has no version {version}; list its versions with "
                f"`loopml models show {name}`"
            )
        return version_from_row(dict(row), name, [str(a["alias"]) for a in aliases])

    def head(self) -> tuple[int, str] | None:
        with self._read() as conn:
            row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        if row is None or int(row[0]) == 0:
            return None
        return int(row[0]), str(row[1])


def _revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:  # no such table: no loopml schema
        return None
    return None if row is None else str(row[0])


def _version(name: str, row: tuple[object, ...]) -> DatasetVersion:
    """The row mapped as ``adapters/sql/datasets.py: _version`` maps it."""
    (_, number, digest, rows, columns, manifest, size, created, author, source, message) = row[:11]
    parent, profile = row[11], row[12]
    return DatasetVersion(
        name=name,
        version=int(str(number)),
        digest=str(digest),
        rows=int(str(rows)),
        columns=tuple(DataColumn(n, ty) for n, ty in json.loads(str(columns))),
        manifest=Digest.parse(str(manifest)),
        size=int(str(size)),
        created_ms=int(str(created)),
        author=str(author),
        source=str(source),
        message=str(message),
        parent=None if parent is None else int(str(parent)),
        profile=None if profile is None else Digest.parse(str(profile)),
    )
