"""Content-addressed blob storage on a local directory or any fsspec filesystem.

Objects are named by the BLAKE3 hash of their bytes and live at
``<root>/blake3/<first 2 hex>/<remaining 62 hex>``. The path is derived only from a validated
:class:`~loopml.domain.artifacts.Digest`, never from a user-supplied name, so no input can
escape the root, and identical content is stored once. Writes are atomic so that a crash never
leaves a partial object under its final name: on the local filesystem the bytes go to a
uniquely named temporary file in the object's directory, are fsynced and renamed into place
(then the directory is fsynced); on object stores they go up in a single PUT, which the store
makes visible all at once. Every read re-hashes the bytes and raises IntegrityError on a
mismatch, and ``get_file`` verifies before the file appears at its destination, so silent
corruption (disk rot, a truncated copy, a hand edit) is reported, never returned.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from io import FileIO
from pathlib import Path
from queue import Queue
from typing import IO, TYPE_CHECKING, Any

import blake3

from loopml.adapters.fsync import fsync_directory
from loopml.domain.artifacts import SUPPORTED_ALGORITHMS, Digest
from loopml.domain.errors import (
    ConcurrentModification,
    ConfigError,
    IntegrityError,
    InvalidInput,
    NotFound,
    StorageError,
)
from loopml.ports import StoredObject

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

ALGORITHM = "blake3"
CHUNK_SIZE = 1024 * 1024
TEMP_PREFIX = ".tmp-"
# Not smaller: freeing a buffer this size raises glibc's dynamic threshold for serving
# allocations from mmap to 16 MiB, so the numpy arrays of later work (a model's predict in
# batch scoring) stop costing fresh page faults; with 8 MiB, scoring a ridge model ran 15%
# slower.
_LARGE_READ = 16 << 20
_SMALL_FILE = 1 << 20
_LOCAL_PROTOCOLS = frozenset({"file", "local"})


def hash_bytes(data: bytes) -> Digest:
    """Return the BLAKE3 digest of ``data``."""
    return Digest(ALGORITHM, blake3.blake3(data).hexdigest())


def hash_large_file(path: str | Path) -> str:
    """BLAKE3 hex digest of a file of any size, read into reused buffers of 16 MiB. Not
    mmap: mapped pages would count in the process's resident memory (a 5 GB file would
    look like a 5 GB process), and a file cut short while mapped kills the process.

    A file of more than two buffers is read on a thread of its own while the previous
    buffer is hashed here (both release the GIL): on two cores that hides most of the
    hashing behind the copy from the page cache."""
    with open(path, "rb", buffering=0) as source:
        size = os.fstat(source.fileno()).st_size
        if size <= _SMALL_FILE:  # one read: a 16 MiB buffer costs more than the hash
            return str(blake3.blake3(source.readall()).hexdigest())
        if size <= 2 * _LARGE_READ:
            hasher = blake3.blake3()
            buffer = bytearray(_LARGE_READ)
            view = memoryview(buffer)
            while n := source.readinto(buffer):
                hasher.update(view[:n])
            return str(hasher.hexdigest())
        return _hash_overlapped(source)


def _hash_overlapped(source: FileIO) -> str:
    hasher = blake3.blake3()
    free: Queue[bytearray] = Queue()
    full: Queue[tuple[bytearray, int] | BaseException] = Queue()
    for _ in range(2):
        free.put(bytearray(_LARGE_READ))
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                buffer = free.get()
                n = source.readinto(buffer)
                full.put((buffer, n))
                if not n:
                    return
        except BaseException as exc:  # raised on the calling thread
            full.put(exc)

    reader = threading.Thread(target=read, name="loopml-hash-read", daemon=True)
    reader.start()
    try:
        while True:
            item = full.get()
            if isinstance(item, BaseException):
                raise item
            buffer, n = item
            if not n:
                return str(hasher.hexdigest())
            hasher.update(memoryview(buffer)[:n])
            free.put(buffer)
    finally:
        stop.set()
        free.put(bytearray(0))  # wakes a reader waiting for a buffer; it then stops
        reader.join()


def hash_file(path: Path) -> tuple[Digest, int]:
    """Return the BLAKE3 digest and size of the file at ``path``, read in 1 MiB chunks."""
    hasher = blake3.blake3()
    size = 0
    try:
        with open(path, "rb") as source:
            for chunk in _chunks(source):
                hasher.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise StorageError(f"cannot read {path} to hash it: {exc}") from exc
    return Digest(ALGORITHM, hasher.hexdigest()), size


def check_digest(digest: Digest, actual_hex: str, location: str) -> None:
    """Raise :class:`IntegrityError` unless ``actual_hex`` is the hash ``digest`` records."""
    if actual_hex != digest.hexdigest:
        raise IntegrityError(
            f"object {digest} at {location} is corrupt: expected {digest.algorithm} hash "
            f"{digest.hexdigest}, actual {actual_hex}. Restore the object from a backup, or "
            "delete it and log the artifact again (identical content is stored only once, so "
            "the corrupt copy must be removed before it can be replaced)."
        )


def write_verified(chunks: Iterable[bytes], digest: Digest, dest: Path, location: str) -> None:
    """Stream ``chunks`` to a temporary file beside ``dest`` and rename it into place only
    if they hash to ``digest``: a corrupt object never appears at ``dest``."""
    hasher = blake3.blake3()
    try:
        with _staged(dest.parent) as staged:
            for chunk in chunks:
                hasher.update(chunk)
                staged.file.write(chunk)
            check_digest(digest, hasher.hexdigest(), location)
            staged.commit(dest)
    except OSError as exc:
        raise StorageError(f"cannot copy object {digest} from {location} to {dest}: {exc}") from exc


class FsspecBlobStore:
    """The :class:`~loopml.ports.BlobStore` on a local path or an fsspec URL.

    Args:
        url: A local directory (``./mlruns/artifacts``) or an fsspec URL
            (``s3://bucket/prefix``, ``memory://name``). Nothing is created until the first
            write; remote protocols need their fsspec package (``s3fs``, ``gcsfs``...).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        # Local stores bypass fsspec (atomic rename and fsync need the os module itself),
        # so a local workspace never imports it: a fifth of a second off every command.
        local = _local_path(url)
        if local is not None:
            self._fs: Any = None
            self._root: str = str(local)
            self._local: Path | None = local
            return
        from fsspec.core import url_to_fs  # lazy: see above

        try:
            fs, root = url_to_fs(url)
        except (ValueError, ImportError) as exc:
            raise ConfigError(
                f"artifact store URL {url!r} is unusable: {exc}. Expected a local path or an "
                "fsspec URL such as 's3://bucket/prefix', with the protocol's package installed."
            ) from exc
        protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        self._fs = fs
        self._root = root.rstrip("/")
        self._local = Path(root) if protocols & _LOCAL_PROTOCOLS else None

    def __repr__(self) -> str:
        return f"FsspecBlobStore({self.url!r})"

    def put_bytes(self, data: bytes) -> Digest:
        return self.store_bytes(data)[0]

    def store_bytes(self, data: bytes) -> tuple[Digest, bool]:
        digest = hash_bytes(data)
        if self._local is None:
            return digest, self._put_remote(digest, lambda path: self._fs.pipe_file(path, data))
        final = Path(self._location(digest))
        try:
            if _refresh(final):
                return digest, False
            with _staged(final.parent) as staged:
                staged.file.write(data)
                staged.commit(final)
        except OSError as exc:
            raise StorageError(f"cannot write object {digest} to {final}: {exc}") from exc
        return digest, True

    def put_file(self, path: Path) -> tuple[Digest, int]:
        # Hash first, so content already stored costs one read and no write at all.
        digest, size = hash_file(path)
        if self._local is None:
            self._put_remote(digest, lambda remote: self._fs.put_file(str(path), remote))
            return digest, size
        final = Path(self._location(digest))
        if _refresh(final):
            return digest, size
        hasher = blake3.blake3()
        try:
            with open(path, "rb") as source, _staged(final.parent) as staged:
                for chunk in _chunks(source):
                    hasher.update(chunk)
                    staged.file.write(chunk)
                if hasher.hexdigest() != digest.hexdigest:
                    raise ConcurrentModification(
                        f"{path} changed while it was being stored (hashed as {digest}, then "
                        "read differently); log it again once nothing is writing to it"
                    )
                staged.commit(final)
        except OSError as exc:
            raise StorageError(f"cannot store {path} as object {digest} at {final}: {exc}") from exc
        return digest, size

    def get_bytes(self, digest: Digest) -> bytes:
        location = self._location(digest)
        try:
            if self._local is None:
                data: bytes = self._fs.cat_file(location)
            else:
                data = Path(location).read_bytes()
        except FileNotFoundError as exc:
            raise self._not_found(digest, location) from exc
        except OSError as exc:
            raise StorageError(f"cannot read object {digest} at {location}: {exc}") from exc
        check_digest(digest, blake3.blake3(data).hexdigest(), location)
        return data

    def get_file(self, digest: Digest, dest: Path) -> None:
        location = self._location(digest)
        with self._open(digest, location) as source:
            write_verified(_chunks(source), digest, dest, location)

    def exists(self, digest: Digest) -> bool:
        location = self._location(digest)
        try:
            if self._local is not None:
                return Path(location).is_file()
            return bool(self._fs.exists(location))
        except OSError as exc:
            raise StorageError(f"cannot look up object {digest} at {location}: {exc}") from exc

    def list_objects(self) -> Iterator[StoredObject]:
        try:
            if self._local is not None:
                yield from _local_objects(self._local)
                return
            for path, info in self._fs.find(self._root, detail=True).items():
                digest = _digest_of(path)
                if digest is not None:
                    yield StoredObject(digest, int(info.get("size", 0)), _modified(info))
        except OSError as exc:
            raise StorageError(f"cannot list the artifact store {self.url}: {exc}") from exc

    def delete(self, digest: Digest) -> None:
        location = self._location(digest)
        try:
            if self._local is not None:
                Path(location).unlink(missing_ok=True)
            elif self._fs.exists(location):
                self._fs.rm_file(location)
        except OSError as exc:
            raise StorageError(f"cannot delete object {digest} at {location}: {exc}") from exc

    def sweep_temporaries(self, before_s: float) -> tuple[int, int]:
        if self._local is None:
            return 0, 0  # remote writes are whole-object uploads: nothing half-written stays
        files = size = 0
        for path in self._local.glob(f"*/*/{TEMP_PREFIX}*"):
            try:
                st = path.stat()
                if st.st_mtime < before_s:
                    path.unlink()
                    files, size = files + 1, size + st.st_size
            except FileNotFoundError:
                continue  # its writer finished (renamed it) or another sweep took it
            except OSError as exc:
                raise StorageError(f"cannot remove the temporary file {path}: {exc}") from exc
        return files, size

    def _key(self, digest: Digest) -> str:
        return f"{digest.algorithm}/{digest.hexdigest[:2]}/{digest.hexdigest[2:]}"

    def _location(self, digest: Digest) -> str:
        if self._local is not None:
            return str(self._local / self._key(digest))
        return f"{self._root}/{self._key(digest)}"

    def _open(self, digest: Digest, location: str) -> IO[bytes]:
        try:
            if self._local is not None:
                return open(location, "rb")
            source: IO[bytes] = self._fs.open(location, "rb")
        except FileNotFoundError as exc:
            raise self._not_found(digest, location) from exc
        except OSError as exc:
            raise StorageError(f"cannot open object {digest} at {location}: {exc}") from exc
        return source

    def _put_remote(self, digest: Digest, upload: Callable[[str], object]) -> bool:
        """Upload unless already stored; True if this call stored it."""
        location = self._location(digest)
        try:
            if self._fs.exists(location):
                return False
            upload(location)
        except OSError as exc:
            raise StorageError(f"cannot write object {digest} to {location}: {exc}") from exc
        return True

    def _not_found(self, digest: Digest, location: str) -> NotFound:
        return NotFound(
            f"object {digest} is not in the artifact store {self.url} (looked for {location}); "
            "check the digest, or that the store URL is the one the artifact was logged to"
        )


def _refresh(final: Path) -> bool:
    """True if ``final`` exists, after marking it as just stored: a garbage collection
    that started before this write must see it as young, not as old and unreferenced."""
    try:
        os.utime(final)
    except FileNotFoundError:
        return False
    return True


def _local_path(url: str) -> Path | None:
    """The folder a local URL names (a path, or ``file://``), or None for anything fsspec
    must open (``s3://``, ``memory://``, chained ``a::b`` URLs...)."""
    if url.startswith("file://"):
        url = url[len("file://") :]
    elif "://" in url or "::" in url:
        return None
    return Path(url).expanduser().absolute()


def _local_objects(root: Path) -> Iterator[StoredObject]:
    for algorithm in SUPPORTED_ALGORITHMS:
        for path in (root / algorithm).glob("*/*"):
            digest = _digest_of(path.as_posix())
            if digest is None:
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            yield StoredObject(digest, st.st_size, st.st_mtime)


def _digest_of(path: str) -> Digest | None:
    """The digest an object path stands for, or None for anything else (temporaries)."""
    parts = path.rstrip("/").split("/")
    if len(parts) < 3 or parts[-3] not in SUPPORTED_ALGORITHMS:
        return None
    hexdigest = parts[-2] + parts[-1]
    try:
        return Digest(parts[-3], hexdigest)
    except InvalidInput:
        return None


def _modified(info: dict[str, Any]) -> float:
    """An fsspec listing's modification time; unknown means now (never old enough to go)."""
    for key in ("mtime", "LastModified", "last_modified", "created"):
        value: Any = info.get(key)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
    return time.time()


class _Staged:
    """A uniquely named temporary file that takes its final name only on :meth:`commit`."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        self.file: IO[bytes] = open(self.path, "xb")  # noqa: SIM115 - closed by commit/discard

    def commit(self, final: Path) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.path, final)
        fsync_directory(final.parent)

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


@contextmanager
def _staged(directory: Path) -> Iterator[_Staged]:
    """Yield a temporary file in ``directory`` (created if needed); whatever is not
    committed when the block ends, normally or by an exception, is deleted."""
    directory.mkdir(parents=True, exist_ok=True)
    staged = _Staged(directory)
    try:
        yield staged
    finally:
        staged.discard()


def _chunks(source: IO[bytes]) -> Iterator[bytes]:
    while chunk := source.read(CHUNK_SIZE):
        yield chunk
