"""An in-memory :class:`~loopml.ports.BlobStore` for tests of the services that use one.

It keeps the semantics of the real store that callers rely on, not just its signatures:
content addressing with BLAKE3, deduplication, verification on every read and an atomic,
verified ``get_file``. ``objects`` is the raw digest-to-bytes mapping, public on purpose so a
test can corrupt an object and watch the IntegrityError surface.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from loopml.adapters.artifacts.fsspec_store import check_digest, hash_bytes, write_verified
from loopml.domain.errors import NotFound, StorageError
from loopml.ports import StoredObject

if TYPE_CHECKING:
    from pathlib import Path

    from loopml.domain.artifacts import Digest


class MemoryBlobStore:
    """Blobs in a dict, lost when the process ends."""

    def __init__(self) -> None:
        self.objects: dict[Digest, bytes] = {}
        self.modified: dict[Digest, float] = {}  # public: a test can age an object

    def __repr__(self) -> str:
        return f"MemoryBlobStore({len(self.objects)} objects)"

    def put_bytes(self, data: bytes) -> Digest:
        return self.store_bytes(data)[0]

    def store_bytes(self, data: bytes) -> tuple[Digest, bool]:
        digest = hash_bytes(data)
        new = digest not in self.objects
        if new:
            self.objects[digest] = bytes(data)
        self.modified[digest] = time.time()
        return digest, new

    def put_file(self, path: Path) -> tuple[Digest, int]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {path} to store it: {exc}") from exc
        return self.put_bytes(data), len(data)

    def get_bytes(self, digest: Digest) -> bytes:
        data = self._get(digest)
        check_digest(digest, hash_bytes(data).hexdigest, self._location(digest))
        return data

    def get_file(self, digest: Digest, dest: Path) -> None:
        write_verified([self._get(digest)], digest, dest, self._location(digest))

    def exists(self, digest: Digest) -> bool:
        return digest in self.objects

    def list_objects(self) -> Iterator[StoredObject]:
        for digest, data in list(self.objects.items()):
            yield StoredObject(digest, len(data), self.modified.get(digest, time.time()))

    def delete(self, digest: Digest) -> None:
        self.objects.pop(digest, None)
        self.modified.pop(digest, None)

    def sweep_temporaries(self, before_s: float) -> tuple[int, int]:
        return 0, 0  # a dict is never half-written

    def _get(self, digest: Digest) -> bytes:
        try:
            return self.objects[digest]
        except KeyError as exc:
            raise NotFound(f"object {digest} is not in the in-memory blob store") from exc

    @staticmethod
    def _location(digest: Digest) -> str:
        return f"memory:{digest}"
