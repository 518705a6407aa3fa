"""One contract for every BlobStore: local directory, fsspec memory filesystem, in-memory fake.

Each implementation is wrapped in a :class:`Harness` that knows how to reach behind the port
(to corrupt a stored object or count what is really stored), so the same tests prove
content addressing, deduplication, verification on read and atomic ``get_file`` for all.
Tests at the bottom exercise what only the local store can show: files on disk, temporary
files, a crash between write and rename, and a constructor that touches nothing.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import blake3
import fsspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from loopml.adapters.artifacts import fsspec_store
from loopml.adapters.artifacts.fsspec_store import FsspecBlobStore, hash_bytes
from loopml.adapters.memory.blobs import MemoryBlobStore
from loopml.domain.errors import (
    ConcurrentModification,
    ConfigError,
    IntegrityError,
    NotFound,
    StorageError,
)

if TYPE_CHECKING:
    from pathlib import Path

    from loopml.domain.artifacts import Digest
    from loopml.ports import BlobStore

Tamper = Callable[[bytes], bytes]


def flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 0x01]) + data[1:]


def truncate(data: bytes) -> bytes:
    return data[:-1]


@dataclass
class Harness:
    store: BlobStore
    tamper: Callable[[Digest, Tamper], None]
    count_objects: Callable[[], int]


def _key(digest: Digest) -> str:
    return f"blake3/{digest.hexdigest[:2]}/{digest.hexdigest[2:]}"


def _local_harness(root: Path) -> Harness:
    def tamper(digest: Digest, change: Tamper) -> None:
        path = root / _key(digest)
        path.write_bytes(change(path.read_bytes()))

    def count() -> int:
        return sum(1 for p in root.rglob("*") if p.is_file())

    return Harness(FsspecBlobStore(str(root)), tamper, count)


def _fsspec_memory_harness(root: str) -> Harness:
    fs = fsspec.filesystem("memory")

    def tamper(digest: Digest, change: Tamper) -> None:
        path = f"{root}/{_key(digest)}"
        fs.pipe_file(path, change(fs.cat_file(path)))

    def count() -> int:
        return len(fs.find(root)) if fs.exists(root) else 0

    return Harness(FsspecBlobStore(f"memory://{root}"), tamper, count)


def _memory_harness() -> Harness:
    store = MemoryBlobStore()

    def tamper(digest: Digest, change: Tamper) -> None:
        store.objects[digest] = change(store.objects[digest])

    return Harness(store, tamper, lambda: len(store.objects))


@pytest.fixture(params=["local", "fsspec-memory", "memory"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "local":
        yield _local_harness(tmp_path / "store")
    elif request.param == "fsspec-memory":
        root = f"/loopml-test-{uuid.uuid4().hex}"
        yield _fsspec_memory_harness(root)
        fs = fsspec.filesystem("memory")
        if fs.exists(root):
            fs.rm(root, recursive=True)
    else:
        yield _memory_harness()


@pytest.fixture
def store(harness: Harness) -> BlobStore:
    return harness.store


def test_bytes_round_trip(store: BlobStore) -> None:
    digest = store.put_bytes(b"weights")
    assert store.get_bytes(digest) == b"weights"
    assert store.exists(digest)


def test_file_round_trip_returns_digest_and_size(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"\x00\x01model\xff" * 100)
    digest, size = store.put_file(source)
    assert size == 800
    dest = tmp_path / "out" / "nested" / "model.bin"
    store.get_file(digest, dest)
    assert dest.read_bytes() == source.read_bytes()
    assert store.get_bytes(digest) == source.read_bytes()


def test_identical_content_is_stored_once(harness: Harness, tmp_path: Path) -> None:
    source = tmp_path / "same.txt"
    source.write_bytes(b"same content")
    first = harness.store.put_bytes(b"same content")
    second = harness.store.put_bytes(b"same content")
    third, _ = harness.store.put_file(source)
    assert first == second == third
    assert harness.count_objects() == 1
    harness.store.put_bytes(b"other content")
    assert harness.count_objects() == 2


def test_digest_is_blake3_of_content(store: BlobStore, tmp_path: Path) -> None:
    content = b"the quick brown fox"
    expected = blake3.blake3(content).hexdigest()
    digest = store.put_bytes(content)
    assert digest.algorithm == "blake3"
    assert digest.hexdigest == expected
    source = tmp_path / "fox.txt"
    source.write_bytes(content)
    assert store.put_file(source) == (digest, len(content))


@pytest.mark.parametrize("change", [flip_first_byte, truncate])
def test_corruption_detected_by_get_bytes(harness: Harness, change: Tamper) -> None:
    digest = harness.store.put_bytes(b"precious model bytes")
    harness.tamper(digest, change)
    with pytest.raises(IntegrityError, match=str(digest)) as info:
        harness.store.get_bytes(digest)
    message = str(info.value)
    assert "expected" in message
    assert "actual" in message
    assert "backup" in message


@pytest.mark.parametrize("change", [flip_first_byte, truncate])
def test_corruption_detected_by_get_file_leaves_nothing_at_dest(
    harness: Harness, change: Tamper, tmp_path: Path
) -> None:
    digest = harness.store.put_bytes(b"precious model bytes")
    harness.tamper(digest, change)
    dest_dir = tmp_path / "download"
    dest = dest_dir / "model.bin"
    with pytest.raises(IntegrityError, match=str(digest)):
        harness.store.get_file(digest, dest)
    assert not dest.exists()
    assert list(dest_dir.iterdir()) == []  # no temporary file left behind either


def test_corrupt_get_file_keeps_the_previous_dest(harness: Harness, tmp_path: Path) -> None:
    digest = harness.store.put_bytes(b"new version")
    harness.tamper(digest, flip_first_byte)
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"old version")
    with pytest.raises(IntegrityError):
        harness.store.get_file(digest, dest)
    assert dest.read_bytes() == b"old version"


def test_missing_digest_raises_not_found(store: BlobStore, tmp_path: Path) -> None:
    digest = hash_bytes(b"never stored")
    assert not store.exists(digest)
    with pytest.raises(NotFound, match=str(digest)):
        store.get_bytes(digest)
    dest = tmp_path / "missing.bin"
    with pytest.raises(NotFound, match=str(digest)):
        store.get_file(digest, dest)
    assert not dest.exists()


def test_missing_source_file_raises_storage_error_naming_it(
    store: BlobStore, tmp_path: Path
) -> None:
    source = tmp_path / "no-such-file.bin"
    with pytest.raises(StorageError, match=re.escape("no-such-file.bin")):
        store.put_file(source)


def test_empty_content(store: BlobStore, tmp_path: Path) -> None:
    digest = store.put_bytes(b"")
    assert digest.hexdigest == blake3.blake3(b"").hexdigest()
    assert store.get_bytes(digest) == b""
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert store.put_file(empty) == (digest, 0)
    dest = tmp_path / "empty-out"
    store.get_file(digest, dest)
    assert dest.read_bytes() == b""


def test_large_file_spanning_many_chunks(store: BlobStore, tmp_path: Path) -> None:
    content = os.urandom(5 * fsspec_store.CHUNK_SIZE + 12345)
    source = tmp_path / "large.bin"
    source.write_bytes(content)
    digest, size = store.put_file(source)
    assert size == len(content)
    assert digest.hexdigest == blake3.blake3(content).hexdigest()
    dest = tmp_path / "large-out.bin"
    store.get_file(digest, dest)
    assert dest.read_bytes() == content


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50)
@given(data=st.binary(max_size=4096), other=st.binary(max_size=4096))
def test_round_trip_and_equal_bytes_give_equal_digests(
    store: BlobStore, data: bytes, other: bytes
) -> None:
    # One store serves every example: content addressing makes them independent.
    digest = store.put_bytes(data)
    assert store.get_bytes(digest) == data
    assert store.put_bytes(bytes(data)) == digest
    assume(data != other)
    assert store.put_bytes(other) != digest


# --- local filesystem only -------------------------------------------------------------


def _temp_files(root: Path) -> list[Path]:
    return list(root.rglob(f"{fsspec_store.TEMP_PREFIX}*"))


def test_local_layout_is_algorithm_prefix_rest(tmp_path: Path) -> None:
    root = tmp_path / "store"
    digest = FsspecBlobStore(str(root)).put_bytes(b"layout")
    hexdigest = digest.hexdigest
    assert (root / "blake3" / hexdigest[:2] / hexdigest[2:]).read_bytes() == b"layout"


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = FsspecBlobStore(str(root))
    source = tmp_path / "in.bin"
    source.write_bytes(b"file content")
    digest = store.put_bytes(b"bytes content")
    store.put_bytes(b"bytes content")
    store.put_file(source)
    store.put_file(source)
    dest_dir = tmp_path / "out"
    store.get_file(digest, dest_dir / "x.bin")
    assert _temp_files(root) == []
    assert [p.name for p in dest_dir.iterdir()] == ["x.bin"]


def test_local_rewrites_nothing_already_stored(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = FsspecBlobStore(str(root))
    source = tmp_path / "in.bin"
    source.write_bytes(b"content")
    digest = store.put_bytes(b"content")
    inode = (root / _key(digest)).stat().st_ino
    store.put_bytes(b"content")
    store.put_file(source)
    assert (root / _key(digest)).stat().st_ino == inode  # a rename would bring a new inode


def test_remote_uploads_nothing_already_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = f"/loopml-test-{uuid.uuid4().hex}"
    store = FsspecBlobStore(f"memory://{root}")
    source = tmp_path / "in.bin"
    source.write_bytes(b"content")
    store.put_bytes(b"content")
    fs = fsspec.filesystem("memory")
    uploads: list[str] = []
    monkeypatch.setattr(fs, "pipe_file", lambda path, *a, **k: uploads.append(path))
    monkeypatch.setattr(fs, "put_file", lambda lpath, rpath, *a, **k: uploads.append(rpath))
    store.put_bytes(b"content")
    store.put_file(source)
    monkeypatch.undo()
    fs.rm(root, recursive=True)
    assert uploads == []


@pytest.mark.parametrize("how", ["put_bytes", "put_file"])
def test_local_crash_before_rename_leaves_no_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    root = tmp_path / "store"
    store = FsspecBlobStore(str(root))
    content = b"half-written model"
    source = tmp_path / "in.bin"
    source.write_bytes(content)
    digest = hash_bytes(content)

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    write: Callable[[], object] = (
        (lambda: store.put_bytes(content))
        if how == "put_bytes"
        else (lambda: store.put_file(source))
    )
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StorageError, match=digest.hexdigest[2:]):
        write()
    monkeypatch.undo()
    assert not (root / _key(digest)).exists()
    assert not store.exists(digest)
    assert _temp_files(root) == []
    # The store is usable afterwards and the retry succeeds.
    assert store.put_bytes(content) == digest
    assert store.get_bytes(digest) == content


def test_local_crash_during_get_file_leaves_nothing_at_dest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FsspecBlobStore(str(tmp_path / "store"))
    digest = store.put_bytes(b"model")
    dest_dir = tmp_path / "out"

    def crash(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StorageError, match=re.escape("model.bin")):
        store.get_file(digest, dest_dir / "model.bin")
    assert list(dest_dir.iterdir()) == []


def test_local_file_changing_while_stored_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    store = FsspecBlobStore(str(root))
    source = tmp_path / "in.bin"
    source.write_bytes(b"after the change")
    # The first pass saw other bytes, as if the file was rewritten between the two reads.
    before = fsspec_store.hash_file
    monkeypatch.setattr(fsspec_store, "hash_file", lambda path: (hash_bytes(b"before"), 6))
    with pytest.raises(ConcurrentModification, match=re.escape("in.bin")):
        store.put_file(source)
    monkeypatch.setattr(fsspec_store, "hash_file", before)
    assert not store.exists(hash_bytes(b"before"))
    assert _temp_files(root) == []


def test_constructor_does_no_io(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet"
    store = FsspecBlobStore(str(root))
    assert not (tmp_path / "not").exists()
    assert not store.exists(hash_bytes(b"x"))
    assert not (tmp_path / "not").exists()
    store.put_bytes(b"x")
    assert root.is_dir()


def test_unknown_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nosuchprotocol"):
        FsspecBlobStore("nosuchprotocol://bucket/prefix")


def test_store_bytes_says_whether_it_stored_the_content(store: BlobStore) -> None:
    digest, new = store.store_bytes(b"chunk")
    assert new and store.get_bytes(digest) == b"chunk"
    assert store.store_bytes(b"chunk") == (digest, False)
    assert store.put_bytes(b"chunk") == digest


def test_objects_are_listed_and_deleted(store: BlobStore) -> None:
    one, two = store.put_bytes(b"one"), store.put_bytes(b"two")
    listed = {o.digest: o for o in store.list_objects()}
    assert set(listed) == {one, two}
    assert listed[one].size == 3
    assert all(o.modified_s > time.time() - 600 for o in listed.values())
    store.delete(one)
    store.delete(one)  # already gone: nothing happens
    assert [o.digest for o in store.list_objects()] == [two]
    assert not store.exists(one)


def test_local_storing_existing_content_marks_it_young_again(tmp_path: Path) -> None:
    # gc deletes unreferenced objects only when old; reusing one must make it young
    root = tmp_path / "store"
    store = FsspecBlobStore(str(root))
    digest = store.put_bytes(b"chunk")
    os.utime(root / _key(digest), (1_000, 1_000))
    store.put_bytes(b"chunk")
    [obj] = store.list_objects()
    assert obj.modified_s > time.time() - 600


def test_local_sweep_removes_only_old_temporaries(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = FsspecBlobStore(str(root))
    digest = store.put_bytes(b"kept")
    folder = (root / _key(digest)).parent
    old, fresh = folder / ".tmp-old", folder / ".tmp-fresh"
    old.write_bytes(b"12345")
    fresh.write_bytes(b"x")
    os.utime(old, (1_000, 1_000))
    assert store.sweep_temporaries(before_s=time.time() - 60) == (1, 5)
    assert not old.exists() and fresh.exists()
    assert [o.digest for o in store.list_objects()] == [digest]  # temporaries never listed
