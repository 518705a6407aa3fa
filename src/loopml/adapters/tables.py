"""Reading tables: CSV and Parquet files or folders, and in-memory frames, as Arrow.

Files are read as streams of record batches, so a file larger than memory is added batch
by batch. Every failure becomes an :class:`InvalidInput` that names the file and, where
Arrow says it, the line or the column, with what to do next; nothing reaches the caller
as a bare Arrow exception.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from io import RawIOBase
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loopml.adapters.artifacts.fsspec_store import hash_bytes, hash_large_file
from loopml.domain.datasets import PACK_FILE_BYTES, TABLE_SUFFIXES
from loopml.domain.errors import InvalidInput, NotFound
from loopml.ports import TableFile
from loopml.stats.batches import cores, map_ordered

SUFFIXES = TABLE_SUFFIXES
_CSV_BLOCK = 4 << 20  # bytes per CSV block; types are inferred from the first one
_MAX_BLOCK = (1 << 31) - 1  # Arrow's largest block size
_KEEP_BYTES = 64 << 20  # small files' bytes kept from hashing to parsing, per folder


class FileTableReader:
    """The files of a path (one file, or every CSV/Parquet file under a folder, in path
    order), each with its size and BLAKE3 content hash, read lazily as record batches."""

    def files(self, path: Path) -> list[TableFile]:
        if not path.exists():
            raise NotFound(
                f"{path} does not exist; give the path of a CSV or Parquet file or folder"
            )
        if path.is_file():
            return [_table_file(str(path), path.name)]
        found = _table_paths(str(path))
        if not found:
            raise InvalidInput(
                f"folder {path} holds no CSV or Parquet file (looked for "
                f"{', '.join(SUFFIXES)}); point at a file or a folder of them"
            )
        kept = 0  # bytes of small CSV files kept to be parsed without a second read
        files = []
        for relative, location in found:
            file = _table_file(location, relative, keep=kept < _KEEP_BYTES)
            kept += len(file.content or b"")
            files.append(file)
        return files

    def read_together(self, files: Sequence[TableFile], schema: pa.Schema) -> pa.Table | None:
        """Small CSV files with one header line, parsed as one file: the header once, then
        every file's rows, with ``schema``'s column types. Arrow's parser costs about half a
        millisecond a call whatever the input's size, so a folder of 100,000 small files
        parsed file by file spends most of its time there.

        None (read them one by one instead) unless every file is CSV, unchanged since it
        was hashed, free of quotes (a quote left open would run into the next file), and
        starts with the same header line, and the rows fit ``schema``."""
        header: bytes | None = None
        body = bytearray()
        for file in files:
            if _kind(file.location) != "csv":
                return None
            data = file.content
            if data is None:
                try:
                    with open(file.location, "rb") as source:
                        data = source.read()
                except OSError:
                    return None
                if hash_bytes(data).hexdigest != file.digest:
                    return None
            if b'"' in data:
                return None
            start = data.find(b"\n") + 1
            if not start:
                return None
            if header is None:
                header = data[:start]
                body += header
            elif data[:start] != header:
                return None
            body += memoryview(data)[start:]
            if body[-1:] != b"\n":
                body += b"\n"
        read = pacsv.ReadOptions(use_threads=False, block_size=_size(body))
        types = pacsv.ConvertOptions(
            column_types=dict(zip(schema.names, schema.types, strict=True))
        )
        try:
            table = _parse(body, read, types)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return None
        return table if table.schema.equals(schema) else None


def _table_paths(root: str) -> list[tuple[str, str]]:
    """(path relative to ``root``, "/"-separated; path) of each CSV or Parquet file under
    ``root``, ordered part by part (as sorted paths compare). Folders are entered, symlinks
    to folders are not; a folder that cannot be listed is an error, never skipped."""
    found: list[tuple[str, str]] = []
    stack = [("", root)]
    while stack:
        prefix, folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((f"{prefix}{entry.name}/", entry.path))
                    elif _suffix(entry.name) in SUFFIXES and entry.is_file():
                        found.append((prefix + entry.name, entry.path))
        except OSError as exc:
            raise InvalidInput(
                f"cannot list folder {folder}: {exc}; make it readable, or add the files "
                "you mean one folder at a time"
            ) from exc
    found.sort(key=lambda item: item[0].split("/"))
    return found


def _suffix(name: str) -> str:
    """The lower-cased suffix of a file name, as ``Path.suffix`` cuts it."""
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def _kind(location: str) -> str | None:
    """ "csv" or "parquet" by the file's suffix; None for any other file."""
    return SUFFIXES.get(_suffix(os.path.basename(location)))


def _table_file(location: str, relative: str, keep: bool = False) -> TableFile:
    """The file at ``location``, stat and hash taken; with ``keep``, a small CSV file's
    bytes are kept in the answer (read once, for :meth:`FileTableReader.read_together`)."""
    kind = _kind(location)
    if kind is None:
        raise InvalidInput(
            f"{location} is not a CSV or Parquet file (its suffix is "
            f"{Path(location).suffix!r}); loopml reads {', '.join(SUFFIXES)}"
        )
    content: bytes | None = None
    try:
        with open(location, "rb", buffering=0) as source:
            st = os.fstat(source.fileno())  # before hashing: a write shows as a newer mtime
            if st.st_size <= PACK_FILE_BYTES:
                data = source.readall()
                digest = hash_bytes(data).hexdigest
                # only CSV is ever read together (read_together), so only CSV is kept
                content = data if keep and kind == "csv" else None
            else:
                digest = hash_large_file(location)
    except OSError as exc:
        raise InvalidInput(f"cannot read {location}: {exc}") from exc
    read = _csv_batches if kind == "csv" else _parquet_batches
    return TableFile(
        relative,
        st.st_size,
        digest,
        lambda: read(Path(location)),
        st.st_mtime_ns,
        st.st_ino,
        location,
        content,
    )


def _csv_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The rows of a CSV file, parsed a block at a time on every core, in file order.

    The file is cut into blocks of about ``_CSV_BLOCK`` bytes at line ends, as Arrow's
    own reader cuts it. Column types are inferred from the first block; each later block
    is parsed with those types on a thread of its own (Arrow's parser releases the GIL),
    a few blocks ahead of the caller, so memory holds a bounded number of blocks whatever
    the file's size. A quoted value may span lines: where a block may have been cut
    inside one, the file is read from that block on by Arrow's quote-aware streaming
    reader instead, on one core.
    """
    size = os.path.getsize(path)
    if size == 0:
        raise InvalidInput(f"{path} is empty; a CSV file needs at least a header line")
    with open(path, "rb", buffering=0) as source:
        # A small file gets a buffer its size: zeroing 4 MiB costs more than parsing it.
        blocks = _blocks(source, min(_CSV_BLOCK, size + 1))
        _, first, last = next(blocks)
        options = pacsv.ReadOptions(use_threads=False, block_size=_size(first))
        try:
            table: pa.Table | None = _parse(first, options)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            if last or not _quoted(first):
                raise _csv_error(path, exc) from exc
            table = None
        # Without a whole row (a line longer than the block), or maybe cut in a quoted
        # value: Arrow's reader infers the types from rows it sees whole, or says why not.
        if table is None or not (last or (table.num_rows and not _cut_in_quotes(first, table))):
            blocks.close()
            yield from _csv_stream(path)
            return
        _check_csv_schema(path, table.schema)
        names = table.schema.names
        convert = pacsv.ConvertOptions(
            column_types=dict(zip(names, table.schema.types, strict=True))
        )
        yield from (batch for batch in table.to_batches() if batch.num_rows)
        del table, first  # not held while the rest is read

        def parse(block: tuple[int, bytearray, bool]) -> tuple[int, pa.Table | None]:
            """A block's rows (on a thread), or None if it may end inside a quoted value."""
            start, data, final = block
            options = pacsv.ReadOptions(
                use_threads=False, column_names=names, block_size=_size(data)
            )
            try:
                rows = _parse(data, options, convert)
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                if final or not _quoted(data):
                    raise _csv_error(path, exc, names, _lines_before(path, start)) from exc
                return start, None  # the quote-aware reader tells a real error from a cut
            return start, None if not final and _cut_in_quotes(data, rows) else rows

        resume: int | None = None
        with closing(map_ordered(parse, blocks, min(cores(), 8), "loopml-csv")) as parsed:
            for start, block in parsed:
                if block is None:
                    resume = start
                    break
                yield from (batch for batch in block.to_batches() if batch.num_rows)
    if resume is not None:
        yield from _csv_stream(path, resume, names, convert)


def _quoted(data: bytearray) -> bool:
    return data.find(b'"') >= 0


def _cut_in_quotes(data: bytearray, table: pa.Table) -> bool:
    """True if the block ``table`` was parsed from may end inside a quoted value.

    Arrow reads a quoted value left open at the end of its input up to that end, so a block
    cut inside one ends with a row whose open value ends with the cut's line end: as the
    last column's text, or, in another column, by leaving the row short, which Arrow
    refuses. Only blocks holding a quote are looked at."""
    if not _quoted(data):
        return False
    if not table.num_rows:
        return True
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            value = column[-1].as_py()
            if value and value[-1] in "\r\n":
                return True
    return False


def _csv_stream(
    path: Path,
    offset: int = 0,
    names: list[str] | None = None,
    convert: pacsv.ConvertOptions | None = None,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``path`` from byte ``offset`` (a row's start), by Arrow's streaming
    reader with quoted line ends allowed: slower, for the files that need it. With
    ``names`` and ``convert``, the columns and types of the rows before ``offset``."""
    source = pa.OSFile(str(path))
    source.seek(offset)
    # Arrow refuses a row longer than two blocks: a block of at least 1 MiB (as tiny
    # blocks in tests) keeps that limit where it was.
    read = pacsv.ReadOptions(block_size=max(_CSV_BLOCK, 1 << 20), column_names=names)
    quoted = pacsv.ParseOptions(newlines_in_values=True)
    with source:
        try:
            reader = pacsv.open_csv(
                source, read_options=read, parse_options=quoted, convert_options=convert
            )
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise _csv_error(path, exc, names) from exc
        if names is None:
            _check_csv_schema(path, reader.schema)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                raise _csv_error(path, exc, reader.schema.names) from exc
            yield batch


def _check_csv_schema(path: Path, schema: pa.Schema) -> None:
    _check_names(path, schema.names)
    # Arrow reads bytes that are not UTF-8 as a binary column instead of failing.
    binary = [f.name for f in schema if pa.types.is_binary(f.type)]
    if binary:
        raise InvalidInput(
            f"cannot read CSV {path}: column(s) {', '.join(map(repr, binary))} hold text that "
            "is not valid UTF-8; loopml reads CSV as UTF-8: convert the file "
            "(e.g. `iconv -f latin1 -t utf-8`)"
        )


def _blocks(source: RawIOBase, size: int) -> Generator[tuple[int, bytearray, bool], None, None]:
    """(byte offset, bytes, is the last) of consecutive blocks of ``source`` that end at a
    line end (or the file's end): about ``size`` bytes each, longer when a line is. Each
    block is a buffer of its own, handed to Arrow without a copy."""
    rest = b""
    offset = 0
    more = size
    while True:
        buffer = bytearray(len(rest) + more)
        buffer[: len(rest)] = rest
        read = source.readinto(memoryview(buffer)[len(rest) :]) or 0
        end = len(rest) + read
        if not read:  # the end of the file: its last line needs no line end
            if end:
                del buffer[end:]
                yield offset, buffer, True
            return
        # Arrow ends a line at "\n", "\r\n" or "\r"; "\r" alone is looked for only when
        # there is no "\n" (a "\r\n" cut after its "\r" leaves an empty line, skipped).
        cut = buffer.rfind(b"\n", 0, end) + 1 or buffer.rfind(b"\r", 0, end) + 1
        if not cut:  # a line longer than the block: read on, twice as much each time
            rest, more = bytes(buffer[:end]), 2 * more
            continue
        rest, more = bytes(buffer[cut:end]), size
        del buffer[cut:]
        yield offset, buffer, False
        offset += cut


def _size(data: bytearray) -> int:
    """A block size at which Arrow parses all of ``data`` as one record batch."""
    return min(max(len(data), 1), _MAX_BLOCK)


def _parse(
    data: bytearray, read: pacsv.ReadOptions, convert: pacsv.ConvertOptions | None = None
) -> pa.Table:
    return pacsv.read_csv(pa.py_buffer(data), read_options=read, convert_options=convert)


def _lines_before(path: Path, offset: int) -> int:
    """The line ends in the first ``offset`` bytes of ``path`` (read again: only an error
    asks, so the fast path never counts)."""
    lines = 0
    with open(path, "rb", buffering=0) as source:
        while offset > 0 and (data := source.read(min(offset, 16 << 20))):
            lines += data.count(b"\n")
            offset -= len(data)
    return lines


def _csv_error(
    path: Path, exc: Exception, names: list[str] | None = None, lines_before: int = 0
) -> InvalidInput:
    text = str(exc).strip()
    if lines_before:  # Arrow counts rows from the start of the block it parsed
        text = re.sub(
            r"Row #(\d+)", lambda m: f"Row #{int(m.group(1)) + lines_before}", text, count=1
        )
    found = re.search(r"CSV column #(\d+)", text)
    if found and names and int(found.group(1)) < len(names):  # Arrow counts from 0
        column = int(found.group(1))
        text = text.replace(found.group(0), f"CSV column {column + 1} {names[column]!r}")
    if "Empty CSV file" in text:
        return InvalidInput(f"{path} is empty; a CSV file needs at least a header line")
    if "Expected" in text and "columns" in text:
        hint = "every row must have as many fields as the header; fix or drop the ragged rows"
    elif "UTF8" in text or isinstance(exc, UnicodeDecodeError):
        hint = "loopml reads CSV as UTF-8; convert the file (e.g. `iconv -f latin1 -t utf-8`)"
    elif "conversion error" in text:
        hint = (
            "the column's type was inferred from the first rows and a later value does not "
            "fit it; clean the column, or convert the file to Parquet with explicit types"
        )
    else:
        hint = "check that the file is a well-formed CSV with a header line"
    return InvalidInput(f"cannot read CSV {path}: {text}; {hint}")


def _parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    try:
        # Without pre_buffer: with it, Arrow reads every column chunk of the file ahead
        # into memory (a 5 GB file, 5 GB), and is no faster from a local disk.
        handle = pq.ParquetFile(path, pre_buffer=False)
        _check_names(path, handle.schema_arrow.names)
        yield from handle.iter_batches(batch_size=65_536)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(
            f"cannot read Parquet {path}: {exc}; the file may be truncated or not Parquet "
            "(write it again, or check the copy)"
        ) from exc


def _check_names(path: Path, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise InvalidInput(
                f"{path} has two columns named {name!r} (the second is column {i + 1}); "
                "column names must be unique: rename one"
            )
        seen.add(name)


def to_arrow(obj: object) -> pa.Table:
    """A pandas or polars DataFrame, a pyarrow Table or RecordBatch, or a 1- or 2-D numpy
    array (columns named ``c0, c1, ...``), as a pyarrow Table."""
    if isinstance(obj, pa.Table):
        table = obj
    elif isinstance(obj, pa.RecordBatch):
        table = pa.Table.from_batches([obj])
    elif type(obj).__module__.startswith("pandas"):
        try:
            table = pa.Table.from_pandas(obj, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInput(
                f"cannot store the DataFrame: {exc}; give each column values of one type "
                "(e.g. df[col] = df[col].astype(str))"
            ) from exc
    elif type(obj).__module__.startswith("polars"):
        table = obj.to_arrow()  # type: ignore[attr-defined]
    elif type(obj).__module__ == "numpy":
        table = _from_numpy(obj)
    else:
        raise InvalidInput(
            f"cannot log a {type(obj).__name__} as a dataset; expected a pandas or polars "
            "DataFrame, a pyarrow Table or a numpy array"
        )
    _check_names(Path("<data>"), table.column_names)
    return table


def _from_numpy(array: Any) -> pa.Table:
    if array.ndim == 1:
        return pa.table({"c0": array})
    if array.ndim == 2:
        return pa.table({f"c{i}": array[:, i] for i in range(array.shape[1])})
    raise InvalidInput(
        f"cannot log a {array.ndim}-D numpy array as a dataset; expected 1 or 2 dimensions"
    )
