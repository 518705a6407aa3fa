"""The stat index against an oracle that hashes every file, on real folders.

Every scenario runs three ways: one process, and the walk split over two and three
processes (helpers forced on however small the folder), with the index as the baseline
and with the manifest as the baseline. All must give the oracle's answer: the split walk
is an optimisation, never a different result.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.adapters import stat_index as stat_index_module
from loopml.adapters import stat_walk
from loopml.adapters.artifacts.fsspec_store import hash_large_file
from loopml.adapters.stat_index import StatIndex
from loopml.domain.datasets import FolderStatus, SourceFile
from loopml.ports import TableFile

SUFFIXES = (".csv", ".parquet", ".pq")
WORKERS = (1, 2, 3)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _tree(root: Path) -> Path:
    """Files in the root and in nested folders, one big folder (split across workers),
    and files status must ignore."""
    for i in range(3):
        _write(root / f"top{i}.csv", f"a\n{i}\n")
    for d in range(4):
        for i in range(5):
            _write(root / f"part{d}" / f"f{i}.csv", f"a\n{d}{i}\n")
    for i in range(40):
        _write(root / "big" / f"b{i:02}.parquet", f"x{i}")
    _write(root / "deep" / "er" / "est" / "x.pq", "deep")
    _write(root / "notes.txt", "not a table")
    _write(root / "UPPER.CSV", "a\n1\n")
    return root


def _files(root: Path) -> list[TableFile]:
    """What ``data add`` records: every table file, stat before hash, in path order."""
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    out = []
    for p in found:
        st = p.stat()
        out.append(
            TableFile(
                p.relative_to(root).as_posix(),
                st.st_size,
                hash_large_file(p),
                lambda: iter(()),
                st.st_mtime_ns,
                st.st_ino,
            )
        )
    return out


def _oracle(root: Path, baseline: list[SourceFile]) -> tuple[tuple[str, ...], ...]:
    """(added, removed, modified) by hashing every table file the walk would meet."""
    now: dict[str, str] = {}
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        for entry in os.scandir(folder):
            if entry.name.lower().endswith(SUFFIXES) and entry.is_file():
                now[prefix + entry.name] = hash_large_file(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                stack.append((Path(entry.path), f"{prefix}{entry.name}/"))
    expected = {f.path: f.digest for f in baseline}
    return (
        tuple(sorted(p for p in now if p not in expected)),
        tuple(sorted(p for p in expected if p not in now)),
        tuple(sorted(p for p in now if p in expected and now[p] != expected[p])),
    )


def _status_every_way(
    tmp_path: Path, root: Path, files: list[TableFile]
) -> list[tuple[str, FolderStatus]]:
    baseline = [SourceFile(f.path, f.size, f.digest) for f in files]
    results = []
    for workers in WORKERS:
        index = StatIndex(tmp_path / f"index{workers}", workers=workers, parallel_from=1)
        index.record("d", 1, root, files)
        assert index.holds("d", 1)
        results.append((f"index, {workers} workers", index.status("d", 1, root, None)))
        results.append((f"manifest, {workers}", index.status("d", 1, root, baseline)))
    no_index = StatIndex(tmp_path / "none")
    results.append(("manifest, no index", no_index.status("d", 1, root, baseline)))
    return results


def _touch(path: Path) -> None:
    os.utime(path, ns=(1, 1))


def _modify(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "more\n", encoding="utf-8")


def _to_folder(path: Path) -> None:
    path.unlink()
    _write(path / "inside.csv", "a\n1\n")


def _to_symlinked_folder(path: Path) -> None:
    target = path.parent.parent / "elsewhere"
    shutil.copytree(path, target)
    shutil.rmtree(path)
    path.symlink_to(target, target_is_directory=True)


SCENARIOS: dict[str, Callable[[Path], object]] = {
    "nothing": lambda root: None,
    "modified in a subfolder": lambda root: _modify(root / "part1" / "f2.csv"),
    "modified in the shared big folder": lambda root: _modify(root / "big" / "b33.parquet"),
    "touched only (hashed again, same content)": lambda root: _touch(root / "big" / "b01.parquet"),
    "removed from the root": lambda root: (root / "top1.csv").unlink(),
    "removed from the shared folder": lambda root: (root / "big" / "b39.parquet").unlink(),
    "a whole folder removed": lambda root: shutil.rmtree(root / "part3"),
    "added to the shared folder": lambda root: _write(root / "big" / "new.csv", "a\n1\n"),
    "added in a new folder": lambda root: _write(root / "fresh" / "sub" / "n.csv", "a\n1\n"),
    "added under a known folder": lambda root: _write(root / "deep" / "n" / "n.pq", "n"),
    "a recorded file became a folder": lambda root: _to_folder(root / "part0" / "f0.csv"),
    "a folder became a symlink (not followed)": lambda root: _to_symlinked_folder(root / "part2"),
    "a symlink to a file added": lambda root: (root / "link.csv").symlink_to(root / "top0.csv"),
    "a non-table file added": lambda root: _write(root / "big" / "readme.md", "x"),
    "renamed": lambda root: (root / "part1" / "f1.csv").rename(root / "part1" / "g1.csv"),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_walk_gives_the_oracles_answer(tmp_path: Path, scenario: str) -> None:
    root = _tree(tmp_path / "tree")
    files = _files(root)
    SCENARIOS[scenario](root)
    added, removed, modified = _oracle(root, [SourceFile(f.path, f.size, f.digest) for f in files])
    results = _status_every_way(tmp_path, root, files)
    for how, found in results:
        assert (found.added, found.removed, found.modified) == (added, removed, modified), how
    # the index-based walks agree on the counts too: only a stat change means a hash
    with_index = {(r.unchanged, r.rehashed) for how, r in results if how.startswith("index")}
    assert len(with_index) == 1, results


def test_only_files_whose_stat_changed_are_hashed_again(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    files = _files(root)
    _touch(root / "big" / "b05.parquet")
    _modify(root / "part0" / "f1.csv")
    _write(root / "big" / "new.csv", "a\n1\n")
    for workers in WORKERS:
        index = StatIndex(tmp_path / f"i{workers}", workers=workers, parallel_from=1)
        index.record("d", 1, root, files)
        found = index.status("d", 1, root, None)
        assert (found.unchanged, found.rehashed) == (len(files) - 1, 3), workers
        assert found.modified == ("part0/f1.csv",)
        assert found.added == ("big/new.csv",)


def test_a_helper_that_fails_or_lies_is_replaced_by_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path / "tree")
    files = _files(root)
    _modify(root / "big" / "b30.parquet")
    (root / "part3" / "f4.csv").unlink()
    index = StatIndex(tmp_path / "index", workers=3, parallel_from=1)
    index.record("d", 1, root, files)
    expected = index.status("d", 1, root, None)
    assert expected.modified == ("big/b30.parquet",) and expected.removed == ("part3/f4.csv",)
    monkeypatch.setattr(stat_index_module, "HELPER_MIN_WAIT", 0.5)
    for helper in (
        [sys.executable, "-c", "raise SystemExit(3)"],  # fails
        [sys.executable, "-c", "print('S/etc/passwd')"],  # answers garbage, no end mark
        [str(tmp_path / "no-such-python")],  # cannot start
        [sys.executable, "-c", "import time; time.sleep(60)"],  # hangs: killed
    ):
        monkeypatch.setattr(stat_walk, "helper_argv", lambda *_a, h=helper: h)
        assert index.status("d", 1, root, None) == expected, helper


def test_a_helper_refuses_an_index_replaced_after_it_was_read(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    index = StatIndex(tmp_path / "index")
    index.record("d", 1, root, _files(root))
    path = tmp_path / "index" / "d.idx"
    ident = stat_walk.identity(path.stat())
    argv = stat_walk.helper_argv(str(path), str(root), 1, [0, 10, 30, 60], ident, SUFFIXES)
    import subprocess

    done = subprocess.run(argv, capture_output=True, check=False)
    assert done.returncode == 0 and stat_walk.read_helper_output(done.stdout) == ([], [], [])
    index.record("d", 1, root, _files(root))  # replaced: another inode
    done = subprocess.run(argv, capture_output=True, check=False)
    assert done.returncode == 2 and done.stdout == b""


def test_each_recorded_file_is_judged_by_exactly_one_worker(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    files = _files(root)
    data = stat_walk.pack(
        1, str(root), [(f.path, f.size, f.mtime_ns, f.inode, f.digest) for f in files], True
    )
    layout = stat_walk.Layout(data + bytes(32))
    for workers in (1, 2, 3, 4, 7):
        cuts = stat_walk.cuts_for(layout.n, workers)
        owned = [
            prefix + name
            for w in range(workers)
            for prefix, names in stat_walk.Share(layout, cuts, w).own.items()
            for name in names
        ]
        assert sorted(owned) == sorted(f.path for f in files), workers
        leaders = [p for w in range(workers) for p in stat_walk.Share(layout, cuts, w).leads]
        assert len(leaders) == len(set(leaders)), workers  # each folder has one leader


def test_a_damaged_index_is_ignored_never_trusted(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    files = _files(root)
    index = StatIndex(tmp_path / "index")
    index.record("d", 1, root, files)
    path = tmp_path / "index" / "d.idx"
    data = bytearray(path.read_bytes())
    stats_at = stat_walk.Layout(bytes(data)).stats_at
    data[stats_at] ^= 1  # the first row's size: a wrong "unchanged" if it were believed
    path.write_bytes(bytes(data))
    assert not index.holds("d", 1)
    _modify(root / "big" / "b00.parquet")
    baseline = [SourceFile(f.path, f.size, f.digest) for f in files]
    found = index.status("d", 1, root, baseline)
    assert found.modified == ("big/b00.parquet",)
    assert found.rehashed == len(files)  # nothing trusted: every file hashed


def test_an_index_of_the_previous_layout_is_still_read(tmp_path: Path) -> None:
    """Layout 1 (before the folder grouping): JSON header, paths, columns, digests."""
    root = _tree(tmp_path / "tree")
    files = _files(root)
    paths = "\n".join(f.path for f in files).encode()
    header = {"version": 1, "root": str(root), "files": len(files), "paths": len(paths)}

    def column(values: list[int]) -> bytes:
        return b"".join(v.to_bytes(8, "little", signed=True) for v in values)

    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "d.idx").write_bytes(
        b"LOOPML-STAT-INDEX 1\n"
        + json.dumps(header).encode()
        + b"\n"
        + paths
        + column([f.size for f in files])
        + column([f.mtime_ns for f in files])
        + column([f.inode for f in files])
        + b"".join(bytes.fromhex(f.digest) for f in files)
    )
    index = StatIndex(tmp_path / "index")
    assert index.holds("d", 1) and not index.holds("d", 2)
    _modify(root / "top2.csv")
    found = index.status("d", 1, root, None)
    assert (found.modified, found.rehashed) == (("top2.csv",), 1)


def test_an_index_missing_a_file_cannot_answer_alone(tmp_path: Path) -> None:
    """A name with a newline cannot be stored: the index says it does not hold the
    version, so status compares with the manifest (and the file is not called new)."""
    root = _tree(tmp_path / "tree")
    _write(root / "odd\nname.csv", "a\n1\n")
    files = _files(root)
    index = StatIndex(tmp_path / "index")
    index.record("d", 1, root, files)
    assert not index.holds("d", 1)
    found = index.status("d", 1, root, [SourceFile(f.path, f.size, f.digest) for f in files])
    assert found.clean and found.rehashed == 1


def test_the_index_file_ends_with_a_checksum_of_the_rest(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    StatIndex(tmp_path / "index").record("d", 7, root, _files(root))
    data = (tmp_path / "index" / "d.idx").read_bytes()
    assert data.startswith(stat_walk.MAGIC)
    assert blake3.blake3(data[:-32]).digest() == data[-32:]
    assert stat_walk.read_version(data) == 7


def test_a_file_removed_between_the_walk_and_its_hash_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path / "tree")
    files = _files(root)
    index = StatIndex(tmp_path / "index")
    index.record("d", 1, root, files)
    _touch(root / "part2" / "f3.csv")
    walk = stat_index_module.StatIndex._walk

    def walk_then_remove(self: StatIndex, *args: object) -> tuple[list[str], ...]:
        found = walk(self, *args)  # type: ignore[arg-type]
        (root / "part2" / "f3.csv").unlink()
        return found

    monkeypatch.setattr(stat_index_module.StatIndex, "_walk", walk_then_remove)
    found = index.status("d", 1, root, None)
    assert (found.removed, found.rehashed) == (("part2/f3.csv",), 0)
    assert found.unchanged == len(files) - 1


def test_the_helpers_walk_their_shares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a silent fallback: with healthy helpers this process walks only its share."""
    root = _tree(tmp_path / "tree")
    index = StatIndex(tmp_path / "index", workers=3, parallel_from=1)
    index.record("d", 1, root, _files(root))
    here: list[stat_walk.Share] = []
    walk_share = stat_index_module._walk_share

    def counted(folder: str, share: stat_walk.Share) -> tuple[list[str], ...]:
        here.append(share)
        return walk_share(folder, share)

    monkeypatch.setattr(stat_index_module, "_walk_share", counted)
    assert index.status("d", 1, root, None).clean
    assert len(here) == 1


_NAMES = st.sampled_from(["a.csv", "b.csv", "c.parquet", "d.pq", "e.CSV", "f.txt"])
_DIRS = st.sampled_from(["", "x/", "y/", "x/z/", "w/v/u/"])


@settings(max_examples=25, deadline=None)
@given(
    files=st.sets(st.tuples(_DIRS, _NAMES), min_size=1, max_size=25),
    changes=st.lists(
        st.tuples(st.sampled_from(["modify", "touch", "remove", "add"]), _DIRS, _NAMES),
        max_size=6,
    ),
)
def test_any_tree_and_changes_give_the_same_answer_every_way(
    tmp_path_factory: pytest.TempPathFactory,
    files: set[tuple[str, str]],
    changes: list[tuple[str, str, str]],
) -> None:
    tmp_path = tmp_path_factory.mktemp("case")
    root = tmp_path / "tree"
    root.mkdir()
    for folder, name in files:
        _write(root / folder / name, f"{folder}{name}\n")
    recorded = _files(root)
    for op, folder, name in changes:
        path = root / folder / name
        if op == "add" or not path.is_file():
            _write(path, f"new {op}\n")
        elif op == "modify":
            _modify(path)
        elif op == "touch":
            _touch(path)
        else:
            path.unlink()
    expected = _oracle(root, [SourceFile(f.path, f.size, f.digest) for f in recorded])
    for how, found in _status_every_way(tmp_path, root, recorded):
        assert (found.added, found.removed, found.modified) == expected, how


def test_an_index_kept_in_memory_answers_the_same(tmp_path: Path) -> None:
    """The in-memory app's index (no folder): one process, same answers."""
    root = _tree(tmp_path / "tree")
    files = _files(root)
    index = StatIndex(None, workers=3, parallel_from=1)
    index.record("d", 1, root, files)
    assert index.holds("d", 1) and not index.holds("e", 1)
    _modify(root / "big" / "b07.parquet")
    found = index.status("d", 1, root, None)
    assert (found.modified, found.rehashed, found.unchanged) == (
        ("big/b07.parquet",),
        1,
        len(files) - 1,
    )
