"""One handle on a metadata database: the engine, its pragmas, read and write transactions.

SQLite is opened in WAL mode (readers never block the writer), with a busy timeout,
foreign keys on and ``synchronous=FULL`` (an acknowledged commit survives power loss).
Write transactions start with ``BEGIN IMMEDIATE``: they take the write lock up front and
wait for it through the busy timeout, instead of starting as readers and failing with
"database is locked" when they try to upgrade. On PostgreSQL, writes lock the rows they
depend on (``SELECT ... FOR UPDATE``). The constructor does no I/O; the engine connects
on first use.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError

from loopml.domain.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_WRITE = "loopml_write"


class SqlDatabase:
    """Engine plus transaction helpers. Safe to share between threads."""

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0) -> None:
        self.url = url
        self.busy_timeout_s = busy_timeout_s
        self._engine: Engine | None = None

    @property
    def dialect(self) -> str:
        return self.url.split(":", 1)[0].split("+", 1)[0]

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def upsert(self, table: Any) -> Any:
        """An INSERT of this database's dialect, with ``on_conflict_do_*``. The dialect
        module loads on first use: the PostgreSQL one pulls in asyncpg's dialect and
        costs about 0.1 s that a SQLite workspace never needs."""
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table)
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table)

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        raw = self.url.split("///", 1)[1] if "///" in self.url else ""
        return Path(raw) if raw and raw != ":memory:" else None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        if self.is_sqlite:
            path = self.sqlite_path
            if path is None:
                raise ConfigError(
                    f"metadata URL {self.url!r} is not a SQLite file; in-memory "
                    "SQLite cannot be shared between connections. Use a file path "
                    "such as sqlite:////abs/path/loopml.db"
                )
            engine = create_engine(
                self.url,
                connect_args={"timeout": self.busy_timeout_s, "check_same_thread": False},
                pool_size=8,
                max_overflow=8,
            )
            timeout_ms = int(self.busy_timeout_s * 1000)

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cur = dbapi_conn.cursor()
                cur.execute(f"PRAGMA busy_timeout = {timeout_ms}")
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = FULL")
                cur.execute("PRAGMA foreign_keys = ON")
                cur.execute("PRAGMA case_sensitive_like = ON")
                cur.close()
                # SQLite's lower() folds ASCII only; PostgreSQL's folds every letter.
                dbapi_conn.create_function("lower", 1, _lower, deterministic=True)

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                write = conn.get_execution_options().get(_WRITE, False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

            return engine
        if self.dialect == "postgresql":
            url = self.url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
        raise ConfigError(
            f"metadata URL {self.url!r} uses an unsupported database "
            f"{self.dialect!r}; expected sqlite:///PATH or postgresql://..."
        )

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: one consistent snapshot for everything read inside it."""
        with _storage_errors(self.url), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on normal exit, rolled back on any exception."""
        with _storage_errors(self.url), self.engine.connect() as base:
            conn = base.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _lower(value: str | bytes | int | float | None) -> str | bytes | int | float | None:
    return value.lower() if isinstance(value, str) else value


@contextlib.contextmanager
def _storage_errors(url: str) -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        raise StorageError(
            f"metadata database {_redact(url)} failed: {exc.orig}. "
            "Check that it is reachable and not full or read-only."
        ) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StorageError(f"lost the connection to {_redact(url)}: {exc.orig}") from exc
        raise


def _redact(url: str) -> str:
    """Hide a password in a URL before it goes into a message."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail:
        creds, _, host = tail.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{head}://{user}:***@{host}" if ":" in creds else url
    return url
