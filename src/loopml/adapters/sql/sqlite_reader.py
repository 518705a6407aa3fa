"""Dataset versions read from a SQLite metadata database with the standard library.

``loopml data status`` needs one row, the dataset's newest version; SQLAlchemy, its
dialect and the other stores would cost it more than the walk of a 100,000-file folder.
:class:`SqliteDatasetReader` reads the same tables as
:class:`loopml.adapters.sql.datasets.SqlDatasetStore` (``datasets`` joined with
``dataset_versions``, columns as in ``schema.py``) through :mod:`sqlite3`, in one read
transaction, and maps the row to the same :class:`DatasetVersion`; a contract test keeps
the two in step. It reads, never writes, and never creates a database file.

It knows the schema revision it was written for (:data:`SCHEMA_REVISION`, the newest
migration; a test keeps it equal to ``migrate.HEAD_REVISION``): :meth:`SqliteDatasetReader.open`
gives no reader for a database at another revision (or none at all), and the caller opens
the full store instead, which says what to do about it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from loopml.domain.artifacts import Digest
from loopml.domain.datasets import DataColumn, DatasetVersion, no_dataset, no_version
from loopml.domain.errors import SchemaOutOfDate, StorageError

SCHEMA_REVISION = "0007"

_VERSION = """
SELECT d.latest_version, v.version, v.digest, v.rows, v.columns, v.manifest, v.size,
       v.created_ms, v.author, v.source, v.message, v.parent, v.profile
FROM datasets AS d
LEFT JOIN dataset_versions AS v
  ON v.dataset_id = d.id AND v.version = COALESCE(?, d.latest_version)
WHERE d.name = ?
"""


class SqliteDatasetReader:
    """``get_version`` of the dataset store, on the SQLite file at ``path``."""

    def __init__(self, path: Path, url: str, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self.url = url  # for messages
        self.busy_timeout_s = busy_timeout_s

    @classmethod
    def open(cls, path: Path, url: str, busy_timeout_s: float) -> SqliteDatasetReader | None:
        """A reader if ``path`` is a loopml database at :data:`SCHEMA_REVISION`, else None."""
        reader = cls(path, url, busy_timeout_s)
        if not path.is_file():
            return None
        try:
            with reader._snapshot() as conn:
                return reader if _revision(conn) == SCHEMA_REVISION else None
        except StorageError:
            return None

    def get_version(self, name: str, version: int | None) -> DatasetVersion:
        """Version ``version`` of ``name``, or the newest when None; NotFound as the
        store raises it."""
        with self._snapshot() as conn:
            revision = _revision(conn)
            if revision != SCHEMA_REVISION:  # migrated since open(): rare, and explained
                raise SchemaOutOfDate(
                    f"the metadata database {self.url} is at schema revision {revision} but "
                    f"this reader needs {SCHEMA_REVISION}; run the command again"
                )
            row = conn.execute(_VERSION, (version, name)).fetchone()
        if row is None or not row[0]:
            raise no_dataset(name)
        if row[1] is None:
            raise no_version(name, int(row[0]) if version is None else version)
        return _version(name, row)

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
