"""Schema revisions: check, create and upgrade, safely under concurrency.

Opening a store never migrates. :func:`check_schema` compares the database's revision
with the one this code needs and raises :class:`SchemaOutOfDate` with the command to run.
:func:`initialize` creates the schema of a brand-new database (``loopml init``, or the SDK
on a new workspace) and :func:`upgrade` moves an existing one forward (``loopml db
upgrade``). Both take a lock first (a file lock beside a SQLite database, an advisory lock
on PostgreSQL) and re-read the revision under it, so two processes opening the same fresh
workspace at once both succeed and the schema is created exactly once.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import inspect, text

from loopml.adapters.sql.database import SqlDatabase
from loopml.domain.errors import SchemaOutOfDate, StorageError

HEAD_REVISION = "0007"  # the newest file in migrations/versions; a test keeps them in step
_PG_LOCK_KEY = 0x100B_3A11
MIGRATIONS = Path(__file__).with_name("migrations")


def current_revision(db: SqlDatabase) -> str | None:
    """The database's schema revision, or None when it has no loopml schema yet."""
    with db.read() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return None if row is None else str(row[0])


def check_schema(db: SqlDatabase) -> None:
    revision = current_revision(db)
    if revision == HEAD_REVISION:
        return
    if revision is None:
        raise SchemaOutOfDate(
            f"the metadata database {db.url} has no loopml schema; run `loopml init` in the "
            "workspace (or `loopml db upgrade` for a server database)"
        )
    raise SchemaOutOfDate(
        f"the metadata database {db.url} is at schema revision {revision} but this loopml "
        f"needs {HEAD_REVISION}; back it up, then run `loopml db upgrade`"
    )


def initialize(db: SqlDatabase) -> bool:
    """Create the schema if the database has none; True if this call created it."""
    with _migration_lock(db):
        revision = current_revision(db)
        if revision is None:
            _alembic_upgrade(db)
            return True
    if revision != HEAD_REVISION:
        check_schema(db)
    return False


def upgrade(db: SqlDatabase) -> tuple[str | None, str]:
    """Upgrade to the newest revision; return (revision before, revision after)."""
    with _migration_lock(db):
        before = current_revision(db)
        if before != HEAD_REVISION:
            _alembic_upgrade(db)
        return before, HEAD_REVISION


def _alembic_upgrade(db: SqlDatabase) -> None:
    from alembic import command  # alembic is only needed when migrating
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()


@contextlib.contextmanager
def _migration_lock(db: SqlDatabase) -> Iterator[None]:
    path = db.sqlite_path
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.with_name(path.name + ".migrate.lock")
        try:
            handle = open(lock_path, "a+b")  # noqa: SIM115  # closed in the finally below
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as exc:
            raise StorageError(f"cannot lock {lock_path} to migrate the database: {exc}") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        return
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
