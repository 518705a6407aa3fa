"""The stat index behind ``loopml data status``: what changed in a folder, fast.

When a folder is added, the index records each file's size, modification time (ns),
inode and content hash, as they were *before* the file was hashed. ``status`` walks the
folder and re-hashes only the files whose stat differs from the record (git's index works
the same way); an unchanged file costs one ``stat`` and a dictionary lookup. A file written
during its own hashing has a newer mtime than recorded, so it is hashed again next time
rather than wrongly taken as unchanged.

The index is local state of this machine, one file per dataset under
``.loopml/index/``, written atomically, in a compact binary layout (described in
:mod:`loopml.adapters.stat_walk`) grouped by folder, so that loading it is a small part
of a status and each worker process reads only its share.

A large folder (``parallel_from`` recorded files, 20,000 by default) is walked by one
process per available core, at most four: this process and helpers running
:mod:`loopml.adapters.stat_walk`, each statting its share of the recorded files. A helper
that cannot start, fails, answers nonsense or is still walking long after this process
finished its own share (``HELPER_PATIENCE`` times as long, at least ``HELPER_MIN_WAIT``
seconds) is killed, and this process walks that share itself: the answer is the same,
only later. Without an index for the version (added elsewhere, or the file was lost),
status hashes every file and compares with the version's manifest. A damaged index is
only a slower status, never a wrong one: it is ignored. (Indexes written by earlier
releases, layout 1, are still read, by this process alone.)
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import blake3

from loopml.adapters import stat_walk
from loopml.adapters.stat_walk import Layout, Share
from loopml.domain.datasets import TABLE_SUFFIXES, FolderStatus, SourceFile
from loopml.domain.errors import NotFound, StorageError

if TYPE_CHECKING:
    from loopml.ports import TableFile  # annotation only: status never imports the ports

_TABLE_SUFFIXES = tuple(TABLE_SUFFIXES)
_MAGIC_1 = b"LOOPML-STAT-INDEX 1\n"
PARALLEL_FROM = 20_000  # measured on 2 cores: a helper gains nothing at 10,000, 22% at 20,000
MAX_WORKERS = 4  # each helper also lists the folders on its way, and costs a start
HELPER_PATIENCE = 5.0  # a helper may take this many times our own share's walk ...
HELPER_MIN_WAIT = 10.0  # ... and at least this many seconds, before we walk its share
# A helper is this interpreter running stat_walk.py by its path: not in a frozen or an
# embedding application (where sys.executable is not a Python), nor from a zip.
_HELPER_RUNS = (
    any(n in Path(sys.executable or "?").name.lower() for n in ("python", "pypy"))
    and not getattr(sys, "frozen", False)
    and Path(stat_walk.__file__).is_file()
)


class StatIndex:
    """Index files under ``folder``; with None (an in-memory app), kept in memory.

    ``workers`` fixes the number of walking processes (default: one per available core,
    at most :data:`MAX_WORKERS`, for folders of at least ``parallel_from`` files)."""

    def __init__(
        self, folder: Path | None, *, workers: int | None = None, parallel_from: int = PARALLEL_FROM
    ) -> None:
        self.folder = folder
        self.workers = workers
        self.parallel_from = parallel_from
        self._memory: dict[str, bytes] = {}
        # The index holds() read, for the status() that follows: (name, file identity,
        # what _load returned). Reused only while the file is the same.
        self._last: tuple[str, tuple[int, ...], _Loaded] | None = None

    def record(self, name: str, version: int, root: Path, files: list[TableFile]) -> None:
        """Remember the files of ``version`` as they were read."""
        kept = [
            (f.path, f.size, f.mtime_ns, f.inode, f.digest) for f in files if f.path and f.inode
        ]
        body = stat_walk.pack(version, str(root), kept, complete=len(kept) == len(files))
        body += blake3.blake3(body).digest()
        if self.folder is None:
            self._memory[name] = body
            return
        path = self.folder / f"{name}.idx"
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(body)
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"cannot write the stat index {path}: {exc}") from exc

    def holds(self, name: str, version: int) -> bool:
        """True if the index recorded all of ``version``'s files (so no manifest is
        needed) and is intact."""
        layout, _ = self._load(name)
        return layout is not None and layout.version == version and layout.complete

    def status(
        self, name: str, version: int, root: Path, baseline: list[SourceFile] | None
    ) -> FolderStatus:
        """Compare ``root`` now with ``version``: with ``baseline`` (the version's files)
        when given, else with the files recorded for it (see :meth:`holds`)."""
        if not root.is_dir():
            raise NotFound(f"{root} is not a folder; `loopml data status` compares a folder")
        layout, source = self._load(name)
        self._last = None  # used: do not keep it in memory
        if baseline is None and (
            layout is None or layout.version != version or not layout.complete
        ):
            raise NotFound(f"no stat index for dataset {name!r}; give the version's files")
        stale, unmet, new = self._walk(root, layout, source)
        seen = (layout.n if layout else 0) - len(unmet) - len(stale)  # unchanged by stat
        hashed: dict[str, str] = {}  # hashed again: path -> digest now
        for path in stale + new:
            digest = _hash(root, path)
            if digest is not None:
                hashed[path] = digest
        gone = set(unmet) | {p for p in stale if p not in hashed}  # removed while we looked
        if baseline is None:  # the index holds the version: a stat match is unchanged
            assert layout is not None  # checked above
            added = [p for p in new if p in hashed]
            changed = [p for p in stale if p in hashed and hashed[p] != _recorded(layout, p)]
            removed = list(gone)
        else:  # compare every digest (recorded, or hashed now) with the manifest's
            expected = {f.path: f.digest for f in baseline}
            now = _unchanged_digests(layout, gone, set(stale)) if layout else {}
            now.update(hashed)
            added = [p for p in now if p not in expected]
            changed = [p for p, d in now.items() if p in expected and d != expected[p]]
            removed = [p for p in expected if p not in now]
        files = seen + len(hashed)
        return FolderStatus(
            version,
            tuple(sorted(added)),
            tuple(sorted(removed)),
            tuple(sorted(changed)),
            files - len(added) - len(changed),
            len(hashed),
        )

    def _walk(
        self, root: Path, layout: Layout | None, source: tuple[str, tuple[int, ...]] | None
    ) -> tuple[list[str], list[str], list[str]]:
        """(stale, unmet, new) over every share: helpers walk shares 1.., this process 0."""
        n = layout.n if layout else 0
        workers = self._workers(n) if source is not None and _HELPER_RUNS else 1
        cuts = stat_walk.cuts_for(n, workers)
        folder = os.fspath(root)
        helpers: list[subprocess.Popen[bytes] | None] = []
        if source is not None:
            helpers = [_spawn(source, folder, w, cuts) for w in range(1, workers)]
        stale: list[str] = []
        unmet: list[str] = []
        new: list[str] = []
        patience = 0.0  # how long a helper may take, once our own share is done
        try:
            for worker in range(workers):
                found = _finish(helpers[worker - 1], patience) if worker else None
                if found is None:  # this process's share, or a helper's that failed
                    started = time.monotonic()
                    with stat_walk.PausedGC():
                        found = _walk_share(folder, Share(layout, cuts, worker))
                    patience = max(patience, HELPER_PATIENCE * (time.monotonic() - started))
                stale += found[0]
                unmet += found[1]
                new += found[2]
        finally:
            for proc in helpers:
                if proc is not None and proc.returncode is None:  # we failed first
                    proc.kill()
                    proc.communicate()
        return stale, unmet, new

    def _workers(self, n: int) -> int:
        if self.workers is not None:
            return max(1, min(self.workers, n))
        if n < self.parallel_from or not _HELPER_RUNS:
            return 1
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on every OS
            cores = os.cpu_count() or 1
        return max(1, min(cores, MAX_WORKERS))

    def _load(self, name: str) -> _Loaded:
        """The parsed index (None if missing or damaged) and, when it was read from a file
        helpers can read too, that file's path and identity."""
        if self.folder is None:
            data = self._memory.get(name)
            return (None, None) if data is None else (_parse(data), None)
        path = self.folder / f"{name}.idx"
        try:
            with path.open("rb") as handle:
                ident = stat_walk.identity(os.fstat(handle.fileno()))
                if self._last is not None and self._last[:2] == (name, ident):
                    return self._last[2]
                data = handle.read()
        except OSError:
            return None, None
        layout = _parse(data)
        loaded = (
            layout,
            None if layout is None or data.startswith(_MAGIC_1) else (os.fspath(path), ident),
        )
        self._last = (name, ident, loaded)
        return loaded


_Loaded = tuple[Layout | None, tuple[str, tuple[int, ...]] | None]


def _parse(data: bytes) -> Layout | None:
    """The index in ``data``; None if it is damaged (status then hashes against the
    manifest: slower, never wrong)."""
    try:
        if data.startswith(_MAGIC_1):
            return Layout(_from_layout_1(data))
        body = memoryview(data)[: -stat_walk.CHECKSUM_BYTES]
        if blake3.blake3(body).digest() != data[len(body) :]:
            return None
        return Layout(data)
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError):
        return None


def _walk_share(folder: str, share: Share) -> tuple[list[str], ...]:
    try:
        return stat_walk.walk(folder, share, _TABLE_SUFFIXES)
    except OSError as exc:
        raise StorageError(f"cannot read the folder {folder}: {exc}") from exc


def _spawn(
    source: tuple[str, tuple[int, ...]], folder: str, worker: int, cuts: list[int]
) -> subprocess.Popen[bytes] | None:
    argv = stat_walk.helper_argv(source[0], folder, worker, cuts, source[1], _TABLE_SUFFIXES)
    try:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    except OSError:  # no interpreter to run, no processes left: walk it here
        return None


def _finish(proc: subprocess.Popen[bytes] | None, patience: float) -> tuple[list[str], ...] | None:
    """A helper's answer; None if it failed, or is still at it well after ours."""
    if proc is None:
        return None
    try:
        out, _ = proc.communicate(timeout=max(HELPER_MIN_WAIT, patience))
    except subprocess.TimeoutExpired:  # stuck (or not our walk at all): do it ourselves
        proc.kill()
        proc.communicate()
        return None
    return stat_walk.read_helper_output(out) if proc.returncode == 0 else None


def _hash(root: Path, path: str) -> str | None:
    """The file's BLAKE3 digest now; None if it vanished."""
    from loopml.adapters.artifacts.fsspec_store import hash_large_file  # lazy: start-up

    try:
        return hash_large_file(root / path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {root / path} to hash it: {exc}") from exc


def _recorded(layout: Layout, path: str) -> str | None:
    row = layout.row(path)
    return None if row is None else layout.digest(row)


def _unchanged_digests(layout: Layout, gone: set[str], stale: set[str]) -> dict[str, str]:
    """Recorded path -> digest of every file the walk met with its recorded stat."""
    return {
        p: layout.digest(row)
        for row, p in enumerate(layout.paths())
        if p not in gone and p not in stale
    }


def _from_layout_1(data: bytes) -> bytes:
    """A layout 1 index (one JSON header line, paths, three columns, digests) in layout 2."""
    header_end = data.index(b"\n", len(_MAGIC_1))
    header = json.loads(data[len(_MAGIC_1) : header_end])
    n = int(header["files"])
    start = header_end + 1 + int(header["paths"])
    paths = data[header_end + 1 : start].decode().split("\n") if n else []
    column = struct.Struct(f"<{n}q")
    sizes, mtimes, inodes = (column.unpack_from(data, start + 8 * n * i) for i in range(3))
    digests = data[start + 24 * n :]
    if len(digests) != 32 * n or len(paths) != n:
        raise ValueError("truncated stat index")
    files = [
        (p, size, mtime, inode, digests[32 * i : 32 * i + 32].hex())
        for i, (p, size, mtime, inode) in enumerate(zip(paths, sizes, mtimes, inodes, strict=True))
    ]
    body = stat_walk.pack(int(header["version"]), str(header["root"]), files, complete=True)
    return body + blake3.blake3(body).digest()
