"""``loopml data status``: what changed in a folder since a dataset's newest version.

Kept apart from :mod:`loopml.services.datasets` because it reads no rows: it needs the
newest version's row, the stat index and at most the version's manifest, not Arrow, so
the command starts in a fraction of the time. It asks the metadata store only for
``get_version`` (:class:`VersionLookup`) and the blob store only for ``get_bytes``
(:class:`BlobReader`), which a lean reader and a store made on first use can answer, and
it imports the ports for their types only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loopml.domain.artifacts import Digest
from loopml.domain.datasets import DatasetVersion, FolderStatus, Manifest
from loopml.domain.errors import InvalidInput
from loopml.domain.names import validate_identifier

if TYPE_CHECKING:  # annotations only: the status command never loads the ports (15 ms)
    from loopml.ports import FileIndex


class VersionLookup(Protocol):
    """What status needs of the metadata store: any ``DatasetStore`` has it."""

    def get_version(self, name: str, version: int | None) -> DatasetVersion:
        """Version ``version``, or the newest when None."""
        ...


class BlobReader(Protocol):
    """What status needs of the blob store (a manifest, when the index cannot answer)."""

    def get_bytes(self, digest: Digest) -> bytes:
        """Verified content."""
        ...


def load_manifest(blobs: BlobReader, version: DatasetVersion) -> Manifest:
    """The chunks and source files of ``version`` (hash-checked on read)."""
    return Manifest.from_dict(json.loads(blobs.get_bytes(version.manifest)))


class DatasetStatus:
    def __init__(self, store: VersionLookup, blobs: BlobReader, index: FileIndex) -> None:
        self.store = store
        self.blobs = blobs
        self.index = index

    def status(self, name: str, path: Path | None = None) -> FolderStatus:
        """What changed in the folder (``path``, else the newest version's source) since
        the newest version; only files whose stat changed are hashed again."""
        version = self.store.get_version(validate_identifier("dataset name", name), None)
        if not version.source and path is None:
            raise InvalidInput(
                f"{version.ref} was not added from a folder; give the folder to compare: "
                f"`loopml data status {name} PATH`"
            )
        root = Path(version.source) if path is None else path
        holds = path is None and self.index.holds(name, version.version)
        baseline = None if holds else list(load_manifest(self.blobs, version).files)
        return self.index.status(name, version.version, root, baseline)
