"""The stat index behind ``loopml data status``: what changed in a folder, fast.

When a folder is added, the index records each file's size, modification time (ns),
inode and content hash, as they were *before* the file was hashed. ``status`` walks the
folder with ``os.scandir`` and re-hashes only the files whose stat differs from the
record (git's index works the same way); an unchanged file costs one ``stat``. A file
written during its own hashing has a newer mtime than recorded, so it is re-hashed next
time rather than wrongly taken as unchanged.

The index is local state of this machine, one file per dataset under
``.loopml/index/``, written atomically. Without one (a version added elsewhere),
status hashes every file and compares with the version's manifest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import blake3

from loopml.adapters.tables import SUFFIXES
from loopml.domain.datasets import FolderStatus, SourceFile
from loopml.domain.errors import NotFound, StorageError
from loopml.ports import TableFile

_FORMAT = 1


class StatIndex:
    """Index files under ``folder``; with None (an in-memory app), kept in memory."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._memory: dict[str, dict[str, object]] = {}

    def record(self, name: str, version: int, root: Path, files: list[TableFile]) -> None:
        """Remember the files of ``version`` as they were read."""
        entries = {
            f.path: [f.size, f.mtime_ns, f.inode, f.digest] for f in files if f.path and f.inode
        }
        body = {"format": _FORMAT, "version": version, "root": str(root), "files": entries}
        if self.folder is None:
            self._memory[name] = body
            return
        path = self.folder / f"{name}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(body, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"cannot write the stat index {path}: {exc}") from exc

    def status(
        self, name: str, version: int, root: Path, baseline: list[SourceFile] | None
    ) -> FolderStatus:
        """Compare ``root`` now with ``version``: with ``baseline`` (the version's files)
        when given, else with the files recorded for it (see :meth:`holds`)."""
        if not root.is_dir():
            raise NotFound(f"{root} is not a folder; `loopml data status` compares a folder")
        recorded = self._load(name) or {}
        cache: dict[str, list[object]] = recorded.get("files", {})  # type: ignore[assignment]
        if baseline is None:
            expected = {path: str(entry[3]) for path, entry in cache.items()}
        else:
            expected = {f.path: f.digest for f in baseline}
        current: dict[str, str] = {}
        rehashed = 0
        for rel, full, st in _walk(root):
            entry = cache.get(rel)
            if entry is not None and entry[:3] == [st.st_size, st.st_mtime_ns, st.st_ino]:
                current[rel] = str(entry[3])
                continue
            current[rel] = _hash(full)
            rehashed += 1
        added = sorted(p for p in current if p not in expected)
        removed = sorted(p for p in expected if p not in current)
        modified = sorted(p for p in current if p in expected and current[p] != expected[p])
        unchanged = len(current) - len(added) - len(modified)
        return FolderStatus(
            version, tuple(added), tuple(removed), tuple(modified), unchanged, rehashed
        )

    def holds(self, name: str, version: int) -> bool:
        """True if the index recorded ``version``'s files (so no manifest is needed)."""
        recorded = self._load(name)
        return recorded is not None and recorded.get("version") == version

    def _load(self, name: str) -> dict[str, object] | None:
        if self.folder is None:
            return self._memory.get(name)
        path = self.folder / f"{name}.json"
        try:
            data: dict[str, object] = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # a damaged cache is only a slower status: hash everything
        return data if data.get("format") == _FORMAT else None


def _walk(root: Path) -> list[tuple[str, str, os.stat_result]]:
    """(relative posix path, full path, stat) of every table file under ``root``."""
    found: list[tuple[str, str, os.stat_result]] = []
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, f"{prefix}{entry.name}/"))
                elif os.path.splitext(entry.name)[1].lower() in SUFFIXES and entry.is_file():
                    found.append((prefix + entry.name, entry.path, entry.stat()))
    return found


def _hash(path: str) -> str:
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update_mmap(path)
    return str(hasher.hexdigest())
