"""A second, lean composition root for commands that must start in a fraction of a second.

:mod:`loopml.bootstrap` wires every store and service; importing it alone costs about
0.4 s (SQLAlchemy and every adapter). ``loopml data status`` needs the newest dataset
version, the stat index and, rarely, one manifest blob: on a SQLite workspace it reads
the version with the standard library's sqlite3 and wires nothing else. Any other
database, or a schema revision the lean reader does not know, returns None, and the
caller uses the full application. (``loopml serve`` has its own: :mod:`loopml.bootstrap_serve`.)
"""

from __future__ import annotations

from loopml.adapters.sql.sqlite_reader import SqliteDatasetReader
from loopml.adapters.stat_index import StatIndex
from loopml.config import STATE_DIR, Settings, sqlite_file
from loopml.domain.artifacts import Digest
from loopml.services.dataset_status import DatasetStatus


def lean_data_status(settings: Settings) -> DatasetStatus | None:
    """Status over a SQLite file at the schema revision the lean reader knows, else None.
    Wired as ``bootstrap._wire`` wires it: the stat index in ``.loopml/index``."""
    path = sqlite_file(settings)
    if path is None:
        return None
    reader = SqliteDatasetReader.open(path, settings.metadata_url, settings.busy_timeout_seconds)
    if reader is None:
        return None
    index = StatIndex(settings.root / STATE_DIR / "index")
    return DatasetStatus(reader, _BlobsOnFirstRead(settings.artifact_url), index)


class _BlobsOnFirstRead:
    """The workspace's blob store, made when status first needs a manifest: most runs
    never do, and the store's module costs about 15 ms to import."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get_bytes(self, digest: Digest) -> bytes:
        from loopml.adapters.artifacts.fsspec_store import FsspecBlobStore  # lazy: above

        return FsspecBlobStore(self.url).get_bytes(digest)
