"""The stat index's file layout and the walk that compares a folder with it.

Standard library only, and no other loopml module: besides being imported, this file runs
as a helper *process* (``python -I -S stat_walk.py``), so that a large folder is walked by
several processes at once. Threads did not help when measured (two walked no faster than
one): each ``stat`` is too short to pay for handing the GIL over. The helper starts in
about 10 ms (no ``site``, no ``json``, no ``typing``: every annotation here is a builtin
type).

Layout, little-endian, one file per dataset (``.loopml/index/NAME.idx``)::

    b"LOOPML-STAT-INDEX 2\\n"
    <7q   version, complete (0/1), files n, dirs k, and the byte lengths of the three
          text blocks that follow
    root      the folder that was added (UTF-8, for people reading the file)
    dirs      each folder holding recorded files, relative to the root ("" for the root
              itself), each followed by "\\n"
    <(k+1)q   the first row of each folder, then n: a folder's files are consecutive rows
    <(k+1)q   where each folder's names start in the names block, then its length
    names     each file's name (last path component), each followed by "\\n"
    <nq * 3   size, mtime_ns, inode of each row
    32 * n    BLAKE3 digest of each row
    32        BLAKE3 of all the bytes before: :mod:`loopml.adapters.stat_index` checks it
              (helpers read only a file it checked: same device, inode, size and mtime)

Files whose path holds a newline are left out and ``complete`` is 0: such an index still
saves hashing, but cannot say on its own that nothing was removed.

**The walk split over processes.** The rows are cut into contiguous shares, one per
worker. A worker stats only the recorded files of its share, and *leads* the folders whose
first row is in its share: only the leader of a folder reports its new files and walks its
new sub-folders. Worker 0 leads the folders that hold no recorded file (the root,
usually). Every worker walks down from the root into just the folders it needs,
always by listing the parent and entering real directories (never a symlink), exactly as
a single walk would. So each recorded file is judged by exactly one worker and each new
file reported by exactly one, and the workers' answers add up to the single walk's.
"""

from __future__ import annotations

import gc
import os
import struct
import sys

MAGIC = b"LOOPML-STAT-INDEX 2\n"
CHECKSUM_BYTES = 32
_HEAD = struct.Struct("<7q")
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
_SUBDIR_FLAGS = _DIR_FLAGS | getattr(os, "O_NOFOLLOW", 0)
# Listing an open folder (scandir(fd)) lets each stat resolve one name, not the whole
# path again: about 13% less CPU per file, measured on Linux.
_LIST_FD = os.scandir in os.supports_fd


class Layout:
    """A parsed index: the folder table, read eagerly, and the rows, read on demand."""

    __slots__ = (
        "_dir_index",
        "_names",
        "_rows",
        "complete",
        "data",
        "digests_at",
        "dirs",
        "n",
        "names_at",
        "offsets",
        "starts",
        "stats_at",
        "version",
    )

    def __init__(self, data: bytes) -> None:
        """Parse ``data``; ValueError (or struct.error, a ValueError) if it is damaged."""
        if not data.startswith(MAGIC):
            raise ValueError("not a version 2 stat index")
        at = len(MAGIC)
        version, complete, n, k, root_len, dirs_len, names_len = _HEAD.unpack_from(data, at)
        at += _HEAD.size + root_len
        dirs = _text(data[at : at + dirs_len]).split("\n")
        if dirs.pop() != "" or len(dirs) != k or n < 0:
            raise ValueError("damaged folder table")
        at += dirs_len
        starts = struct.unpack_from(f"<{k + 1}q", data, at)
        offsets = struct.unpack_from(f"<{k + 1}q", data, at + 8 * (k + 1))
        self.names_at = at + 16 * (k + 1)
        self.stats_at = self.names_at + names_len
        self.digests_at = self.stats_at + 24 * n
        if (
            len(data) != self.digests_at + 32 * n + CHECKSUM_BYTES
            or starts[-1] != n
            or offsets[-1] != names_len
            or any(starts[j] >= starts[j + 1] for j in range(k))
            or any(offsets[j] > offsets[j + 1] for j in range(k))
            or (k == 0 and n != 0)
        ):
            raise ValueError("truncated or damaged stat index")
        self.data = data
        self.version = version
        self.complete = bool(complete)
        self.n = n
        self.dirs = dirs
        self.starts = starts
        self.offsets = offsets
        self._names: dict[int, list[str]] = {}
        self._rows: dict[int, dict[str, int]] = {}
        self._dir_index: dict[str, int] | None = None

    def names(self, j: int) -> list[str]:
        """The file names of folder ``j``, in row order."""
        found = self._names.get(j)
        if found is None:
            a, b = self.offsets[j], self.offsets[j + 1]
            found = _text(self.data[self.names_at + a : self.names_at + b]).split("\n")
            if found.pop() != "" or len(found) != self.starts[j + 1] - self.starts[j]:
                raise ValueError(f"damaged names of folder {self.dirs[j]!r}")
            self._names[j] = found
        return found

    def stats(self, a: int, b: int) -> list[tuple[int, int, int]]:
        """(size, mtime_ns, inode) of rows ``a`` to ``b``."""
        at, n = self.stats_at, self.n
        count = f"<{b - a}q"
        return list(
            zip(
                struct.unpack_from(count, self.data, at + 8 * a),
                struct.unpack_from(count, self.data, at + 8 * (n + a)),
                struct.unpack_from(count, self.data, at + 8 * (2 * n + a)),
                strict=True,
            )
        )

    def digest(self, row: int) -> str:
        at = self.digests_at + 32 * row
        return self.data[at : at + 32].hex()

    def paths(self) -> list[str]:
        """Every recorded path, in row order."""
        return [_prefix(d) + name for j, d in enumerate(self.dirs) for name in self.names(j)]

    def row(self, path: str) -> int | None:
        """The row recording ``path``, or None (folders are mapped on first use)."""
        if self._dir_index is None:
            self._dir_index = {d: j for j, d in enumerate(self.dirs)}
        folder, _, name = path.rpartition("/")
        j = self._dir_index.get(folder)
        if j is None:
            return None
        rows = self._rows.get(j)
        if rows is None:
            rows = self._rows[j] = {n: int(self.starts[j]) + i for i, n in enumerate(self.names(j))}
        return rows.get(name)


def pack(
    version: int, root: str, files: list[tuple[str, int, int, int, str]], complete: bool
) -> bytes:
    """The index of ``files``: (path relative to ``root``, size, mtime_ns, inode, hex
    digest), paths "/"-separated; ``complete`` if they are all of the version's files.
    Rows are grouped by folder, in order of appearance. Without the checksum: the caller
    appends it."""
    groups: dict[str, list[tuple[str, int, int, int, str]]] = {}
    for f in files:
        if "\n" in f[0]:
            complete = False
            continue
        folder, _, name = f[0].rpartition("/")
        groups.setdefault(folder, []).append((name, *f[1:]))
    rows = [f for group in groups.values() for f in group]
    n, k = len(rows), len(groups)
    starts, offsets = [0], [0]
    names = []
    for group in groups.values():
        starts.append(starts[-1] + len(group))
        block = "".join(f[0] + "\n" for f in group).encode("utf-8", "surrogateescape")
        offsets.append(offsets[-1] + len(block))
        names.append(block)
    root_b = root.encode("utf-8", "surrogateescape")
    dirs_b = "".join(d + "\n" for d in groups).encode("utf-8", "surrogateescape")
    names_b = b"".join(names)
    column = struct.Struct(f"<{n}q").pack
    return b"".join(
        (
            MAGIC,
            _HEAD.pack(version, int(complete), n, k, len(root_b), len(dirs_b), len(names_b)),
            root_b,
            dirs_b,
            struct.pack(f"<{k + 1}q", *starts),
            struct.pack(f"<{k + 1}q", *offsets),
            names_b,
            column(*(f[1] for f in rows)),
            column(*(f[2] for f in rows)),
            column(*(f[3] for f in rows)),
            b"".join(bytes.fromhex(f[4]) for f in rows),
        )
    )


def read_version(head: bytes) -> int | None:
    """The version an index records, from its first bytes; None if it is not one."""
    if not head.startswith(MAGIC) or len(head) < len(MAGIC) + _HEAD.size:
        return None
    version, complete = _HEAD.unpack_from(head, len(MAGIC))[:2]
    return int(version) if complete else None


def cuts_for(n: int, workers: int) -> list[int]:
    """Row boundaries of ``workers`` contiguous shares of ``n`` rows; worker 0 (the
    calling process, which starts first) takes a little more."""
    if workers <= 1:
        return [0, n]
    first = min(n, round(n * 1.04 / workers))
    rest = n - first
    return [0, *(first + rest * i // (workers - 1) for i in range(workers))]


class Share:
    """What one worker needs for the walk: its recorded files, the folders it leads, the
    folders it enters and those anybody knows (so the others' are not taken for new)."""

    __slots__ = ("known", "leads", "needed", "others", "own")

    def __init__(self, layout: Layout | None, cuts: list[int], worker: int) -> None:
        self.own: dict[str, dict[str, tuple[int, int, int]]] = {}  # prefix -> name -> stat
        self.others: dict[str, set[str]] = {}  # led folder -> the other workers' names
        self.leads: set[str] = set()
        self.needed: set[str] = set()
        self.known: set[str] = set()
        if layout is None or layout.n == 0:  # nothing recorded: worker 0 finds it all
            self.known.add("")
            if worker == 0:
                self.leads.add("")
                self.needed.add("")
            return
        a, b = cuts[worker], cuts[worker + 1]
        stats = layout.stats(a, b) if a < b else []
        starts = layout.starts
        for j, folder in enumerate(layout.dirs):
            prefix = _prefix(folder)
            _add_with_parents(self.known, prefix)
            s, e = starts[j], starts[j + 1]
            lo, hi = max(s, a), min(e, b)
            if lo >= hi:
                continue
            names = layout.names(j)
            self.own[prefix] = dict(
                zip(names[lo - s : hi - s], stats[lo - a : hi - a], strict=True)
            )
            _add_with_parents(self.needed, prefix)
            if lo == s:  # the folder's first row is ours: we lead it
                self.leads.add(prefix)
                if hi < e:
                    self.others[prefix] = set(names[hi - s :])
        if worker == 0:  # folders with no recorded file of their own: led by worker 0
            recorded = {_prefix(d) for d in layout.dirs}
            for prefix in self.known - recorded:
                self.leads.add(prefix)
                self.needed.add(prefix)


def walk(root: str, share: Share, suffixes: tuple[str, ...]) -> tuple[list[str], ...]:
    """Walk ``root`` for ``share``: (stale, unmet, new) paths relative to ``root``.

    ``stale``: recorded files of the share whose size, mtime_ns or inode differ (hash them
    again); ``unmet``: recorded files of the share not found as files (removed); ``new``:
    files with a table suffix in the folders the share leads that no worker records."""
    stale: list[str] = []
    new: list[str] = []
    own_by_dir, others_by_dir = share.own, share.others
    leads, needed, known = share.leads, share.needed, share.known
    empty: set[str] = set()
    nobody: dict[str, tuple[int, int, int]] = {}  # stays empty: nothing recorded here is ours
    stack: list[tuple[str, bool]] = [("", False)]  # (prefix, a folder nobody knows)
    while stack:
        prefix, unknown = stack.pop()
        own = nobody if unknown else own_by_dir.get(prefix, nobody)
        others = empty if unknown else others_by_dir.get(prefix, empty)
        lead = unknown or prefix in leads
        take = own.pop
        with _Listing(root, prefix) as entries:
            for entry in entries:  # the hot loop: one stat and one lookup per file
                name = entry.name
                rec = take(name, None)
                if rec is not None:
                    if entry.is_file():
                        st = entry.stat()
                        if rec != (st.st_size, st.st_mtime_ns, st.st_ino):
                            stale.append(prefix + name)
                        continue
                    own[name] = rec  # no longer a file: stays unmet
                if entry.is_dir(follow_symlinks=False):
                    sub = f"{prefix}{name}/"
                    if unknown or sub not in known:
                        if lead:
                            stack.append((sub, True))
                    elif sub in needed:
                        stack.append((sub, False))
                elif (
                    lead
                    and name not in others
                    and (name.endswith(suffixes) or name.lower().endswith(suffixes))
                    and entry.is_file()
                ):
                    new.append(prefix + name)
    unmet = [prefix + name for prefix, names in own_by_dir.items() for name in names]
    return stale, unmet, new


class PausedGC:
    """Garbage collection paused for a block: building a share and walking allocate only
    acyclic objects (tuples, strings, stat results), and 50,000 long-lived tuples would
    otherwise trigger collections that find nothing (about a third of a share's build)."""

    def __enter__(self) -> None:
        self.was_on = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.was_on:
            gc.enable()


class _Listing:
    """``os.scandir`` of ``root/prefix``, through a descriptor where the OS allows it; a
    folder that vanished (or turned into a symlink) since it was seen lists as empty."""

    def __init__(self, root: str, prefix: str) -> None:
        self.path = os.path.join(root, prefix) if prefix else root
        self.fd = -1
        self.it: os._ScandirIterator[str] | None = None
        self.top = not prefix

    def __enter__(self) -> os._ScandirIterator[str] | tuple[()]:
        try:
            if _LIST_FD:
                self.fd = os.open(self.path, _DIR_FLAGS if self.top else _SUBDIR_FLAGS)
                self.it = os.scandir(self.fd)
            else:
                self.it = os.scandir(self.path)
        except OSError as exc:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
            if self.top or not _vanished(exc):
                raise
            return ()
        return self.it

    def __exit__(self, *exc: object) -> None:
        if self.it is not None:
            self.it.close()
        if self.fd >= 0:
            os.close(self.fd)


def _vanished(exc: OSError) -> bool:
    """Gone, or no longer a directory (O_NOFOLLOW refuses a symlink with ELOOP)."""
    import errno  # only on this rare path: keeps the helper's start-up small

    return isinstance(exc, FileNotFoundError | NotADirectoryError) or exc.errno == errno.ELOOP


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _prefix(folder: str) -> str:
    return f"{folder}/" if folder else ""


def _add_with_parents(into: set[str], prefix: str) -> None:
    while prefix not in into:
        into.add(prefix)
        if not prefix:
            return
        prefix = prefix[: prefix.rstrip("/").rfind("/") + 1]


# The helper process ------------------------------------------------------------------------
# argv: INDEX ROOT WORKER CUTS IDENT SUFFIXES, the lists comma-separated; IDENT is the
# index file's (device, inode, size, mtime_ns) as the caller read it, so a helper never
# walks with an index replaced in between. Output on stdout: one record per path, a kind
# byte (S stale, U unmet, N new), the path (file-system encoding) and a NUL; then b"E\0".


def helper_argv(
    index: str,
    root: str,
    worker: int,
    cuts: list[int],
    ident: tuple[int, ...],
    suffixes: tuple[str, ...],
) -> list[str]:
    return [
        sys.executable,
        "-I",  # no PYTHON* variables, no user site, not the current folder on the path
        "-S",  # no site: the helper needs the standard library only
        __file__,
        index,
        root,
        str(worker),
        ",".join(map(str, cuts)),
        ",".join(map(str, ident)),
        ",".join(suffixes),
    ]


def read_helper_output(data: bytes) -> tuple[list[str], ...] | None:
    """(stale, unmet, new) from a helper's stdout; None unless it finished."""
    records = data.split(b"\0")
    if len(records) < 2 or records[-2:] != [b"E", b""]:
        return None
    found: dict[int, list[str]] = {ord("S"): [], ord("U"): [], ord("N"): []}
    for record in records[:-2]:
        kind = found.get(record[0]) if record else None
        if kind is None:
            return None
        kind.append(os.fsdecode(record[1:]))
    return found[ord("S")], found[ord("U")], found[ord("N")]


def identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _helper(argv: list[str]) -> int:
    index, root, worker, cuts, ident, suffixes = argv
    with open(index, "rb") as source:
        if ",".join(map(str, identity(os.fstat(source.fileno())))) != ident:
            return 2  # replaced since the caller read it: the caller walks this share
        data = source.read()
    gc.disable()
    share = Share(Layout(data), [int(c) for c in cuts.split(",")], int(worker))
    stale, unmet, new = walk(root, share, tuple(suffixes.split(",")))
    out = [b"S" + os.fsencode(p) + b"\0" for p in stale]
    out += [b"U" + os.fsencode(p) + b"\0" for p in unmet]
    out += [b"N" + os.fsencode(p) + b"\0" for p in new]
    out.append(b"E\0")
    sys.stdout.buffer.write(b"".join(out))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_helper(sys.argv[1:]))
