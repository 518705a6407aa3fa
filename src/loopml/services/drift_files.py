"""The files ``loopml monitor drift`` judges: listing, planning and reading them in parts.

A path is a CSV or Parquet file or a folder of them. :func:`plan` reads every file's
columns (Parquet footer, CSV header and first block) and checks them against the
reference before a row is read; each :class:`DataFile` then knows which of its columns to
read and under which reference names. Both engines read the same way (see
:mod:`loopml.services.drift_check`): Parquet through a 1 MiB buffer, the whole file or one
row group (:class:`FilePart`); CSV in blocks cut at line ends, parsed with the types
inferred once from the file's first block, so every engine sees the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loopml.domain.datasets import TABLE_SUFFIXES
from loopml.domain.errors import InvalidInput, NotFound

BATCH_ROWS = 65_536  # rows per batch read: what bounds the local engine's memory
CSV_BLOCK = 4 << 20  # bytes per CSV read block locally; types come from the first one

Progress = Callable[[int], None]  # called with the number of rows just tallied
Kind = Literal["csv", "parquet"]
_KINDS: dict[str, Kind] = {"csv": "csv", "parquet": "parquet"}


@dataclass(frozen=True, slots=True)
class DataFile:
    """One input file as both engines read it (picklable: Dask tasks carry it)."""

    path: Path
    kind: Kind
    read: tuple[str, ...]  # the file's columns to read, in the reference's order
    names: tuple[str, ...]  # ... and the reference columns they are
    absent: tuple[str, ...]  # reference columns other files have and this one lacks
    schema: pa.Schema | None = None  # CSV: the types of ``read``, from the first block

    def renamed(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` with the reference's names, and nulls for the columns it lacks."""
        arrays = [batch.column(name) for name in self.read]
        arrays += [pa.nulls(batch.num_rows) for _ in self.absent]
        return pa.RecordBatch.from_arrays(arrays, names=[*self.names, *self.absent])


@dataclass(frozen=True, slots=True)
class FilePart:
    """Rows to tally: a Parquet row group, or the CSV lines around bytes [start, end)."""

    file: DataFile
    row_group: int = 0
    start: int = 0
    end: int = 0


# the files ---------------------------------------------------------------------------
def list_files(paths: list[Path]) -> list[tuple[Path, Kind]]:
    """Every table file named or under a named folder (in path order), each once."""
    if not paths:
        raise InvalidInput("no data to check: give at least one CSV or Parquet file or folder")
    found: list[tuple[Path, Kind]] = []
    seen: dict[Path, Path] = {}
    for path in paths:
        if not path.exists():
            raise NotFound(
                f"{path} does not exist; give the path of a CSV or Parquet file or a folder of them"
            )
        if path.is_dir():
            inside = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES and p.name[:1] != "."
            )
            if not inside:
                raise InvalidInput(
                    f"folder {path} holds no CSV or Parquet file (looked for "
                    f"{', '.join(TABLE_SUFFIXES)}); point at a file or a folder of them"
                )
        else:
            inside = [path]
        for file in inside:
            kind = _KINDS.get(TABLE_SUFFIXES.get(file.suffix.lower(), ""))
            if kind is None:
                raise InvalidInput(
                    f"{file} is not a CSV or Parquet file (its suffix is {file.suffix!r}); "
                    f"drift is checked on {', '.join(TABLE_SUFFIXES)} files"
                )
            key = file.resolve()
            if key in seen:
                raise InvalidInput(
                    f"{file} is given twice (also as {seen[key]}); its rows would count "
                    "twice: name each file or folder once"
                )
            seen[key] = file
            found.append((file, kind))
    return found


def plan(
    listed: list[tuple[Path, Kind]], reference: tuple[str, ...], prefix: str
) -> list[DataFile]:
    """Each file's reference columns (read from its footer or first block), checked."""
    schemas = [(path, kind, _schema(path, kind)) for path, kind in listed]
    present: set[str] = set()
    for path, _, schema in schemas:
        names = schema.names
        for column in reference:
            if names.count(prefix + column) > 1:
                raise InvalidInput(
                    f"{path} has {names.count(prefix + column)} columns named "
                    f"{prefix + column!r}; column names must be unique: rename one"
                )
            if prefix + column in names:
                present.add(column)
    if not present:
        raise _nothing_to_judge(reference, prefix, schemas[0][0], schemas[0][2].names)
    files = []
    for path, kind, schema in schemas:
        names = tuple(c for c in reference if prefix + c in schema.names)
        if not names:  # its rows would count as missing in every column: not this data
            raise InvalidInput(
                f"{path} holds none of the reference's columns (with prefix {prefix!r}) "
                f"while other files do; it is not data of this kind: leave it out (for a "
                "prediction log, give a deployment's folder, not the log's root)"
            )
        read = tuple(prefix + c for c in names)
        absent = tuple(c for c in reference if c in present and c not in names)
        types = pa.schema([schema.field(n) for n in read]) if kind == "csv" else None
        files.append(DataFile(path, kind, read, names, absent, types))
    return files


def _nothing_to_judge(
    reference: tuple[str, ...], prefix: str, path: Path, names: list[str]
) -> InvalidInput:
    shown = _some(names)
    hint = "check that the files hold the data the reference was profiled from"
    if not prefix and any(n.startswith("in.") for n in names):
        hint = "these look like prediction-log segments: pass --prefix in. (prefix='in.')"
    elif prefix:
        hint = f"no column starts with {prefix!r} followed by a reference column; check --prefix"
    return InvalidInput(
        f"none of the reference's columns ({_some(reference)}) is in the data "
        f"(with prefix {prefix!r}); {path} has {shown or 'no columns'}: {hint}"
    )


def _some(names: Sequence[str], shown: int = 12) -> str:
    return ", ".join(map(repr, names[:shown])) + (", ..." if len(names) > shown else "")


def _schema(path: Path, kind: Kind) -> pa.Schema:
    """The file's columns: a Parquet file's footer; a CSV file's first block, parsed."""
    if kind == "parquet":
        try:
            with parquet_file(path) as handle:
                schema: pa.Schema = handle.schema_arrow
                return schema
        except (pa.ArrowInvalid, OSError) as exc:
            raise parquet_error(path, exc) from exc
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path} is empty; a CSV file needs at least a header line")
    with path.open("rb") as handle:
        end = _line_start(handle, CSV_BLOCK)
        handle.seek(0)
        data = handle.read(end)
    # Types are inferred here, once, from the first block (as Arrow's reader would), and
    # every block of either engine is parsed with them: no block infers on its own.
    schema = _parse_csv(path, data, None, None).schema
    binary = [f.name for f in schema if pa.types.is_binary(f.type)]
    if binary:
        raise InvalidInput(
            f"cannot read CSV {path}: column(s) {', '.join(map(repr, binary))} hold text that "
            "is not valid UTF-8; loopml reads CSV as UTF-8: convert the file "
            "(e.g. `iconv -f latin1 -t utf-8`)"
        )
    return schema


def parquet_file(path: Path) -> Any:
    # Column chunks are read through a 1 MiB buffer, not whole: a row group of a million
    # rows would otherwise be held at once.
    return pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)


def parquet_error(path: Path, exc: Exception) -> InvalidInput:
    return InvalidInput(
        f"cannot read Parquet {path}: {exc}; the file may be truncated or not Parquet "
        "(write it again, or check the copy)"
    )


def parquet_batches(file: DataFile, row_group: int | None) -> Iterator[pa.RecordBatch]:
    """A Parquet file's (or one row group's) batches with the reference's names."""
    groups = None if row_group is None else [row_group]
    try:
        with parquet_file(file.path) as handle:
            for batch in handle.iter_batches(
                batch_size=BATCH_ROWS, row_groups=groups, columns=list(file.read)
            ):
                yield file.renamed(batch)
    except (pa.ArrowInvalid, OSError) as exc:
        raise parquet_error(file.path, exc) from exc


def csv_parts(file: DataFile, block: int) -> list[FilePart]:
    size = file.path.stat().st_size
    return [
        FilePart(file, start=s, end=min(s + block, size)) for s in range(0, max(size, 1), block)
    ]


def csv_batches(part: FilePart) -> Iterator[pa.RecordBatch]:
    """The lines of a CSV part with the reference's names: from just after the first line
    break at or after ``start`` (the file's start for the first part) to just after the
    first one at or after ``end``. Consecutive parts meet there, so every line is in
    exactly one part; the file's header line is put back in front of each."""
    file = part.file
    with file.path.open("rb") as handle:
        header = handle.readline()
        start = _line_start(handle, part.start) if part.start else 0
        end = _line_start(handle, part.end)
        if start >= end:
            return
        handle.seek(start)
        data = handle.read(end - start)
    table = _parse_csv(file.path, data if start == 0 else header + data, file.schema, file.read)
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        yield file.renamed(batch)


def _parse_csv(
    path: Path, data: bytes, types: pa.Schema | None, columns: Sequence[str] | None
) -> pa.Table:
    convert = pacsv.ConvertOptions()
    if types is not None and columns is not None:
        convert = pacsv.ConvertOptions(column_types=types, include_columns=list(columns))
    try:
        table: pa.Table = pacsv.read_csv(
            pa.BufferReader(data),
            # one block, so that types are inferred from all of it (when none are given)
            read_options=pacsv.ReadOptions(use_threads=False, block_size=len(data) + 1),
            convert_options=convert,
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        text = str(exc).strip()
        if "Empty CSV file" in text:
            raise InvalidInput(f"{path} is empty; a CSV file needs at least a header line") from exc
        raise InvalidInput(
            f"cannot read CSV {path}: {text}; check that it is a well-formed UTF-8 CSV with "
            "a header line (a column's type is inferred from its first rows: convert the "
            "file to Parquet with explicit types if later values do not fit it)"
        ) from exc
    return table


def _line_start(handle: BinaryIO, offset: int) -> int:
    """The offset just after the first line break at or after ``offset`` (or the end)."""
    handle.seek(offset)
    while True:
        chunk = handle.read(1 << 16)
        if not chunk:
            return handle.tell()
        found = chunk.find(b"\n")
        if found >= 0:
            return handle.tell() - len(chunk) + found + 1
