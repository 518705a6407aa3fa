"""Reading tables: CSV and Parquet files or folders, and in-memory frames, as Arrow.

Files are read as streams of record batches, so a file larger than memory is added batch
by batch. Every failure becomes an :class:`InvalidInput` that names the file and, where
Arrow says it, the line or the column, with what to do next; nothing reaches the caller
as a bare Arrow exception.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loopml.adapters.artifacts.fsspec_store import hash_large_file
from loopml.domain.datasets import TABLE_SUFFIXES
from loopml.domain.errors import InvalidInput, NotFound
from loopml.ports import TableFile

SUFFIXES = TABLE_SUFFIXES
_CSV_BLOCK = 4 << 20  # bytes per CSV block: Arrow reads ~40 ahead, so this bounds memory


class FileTableReader:
    """The files of a path (one file, or every CSV/Parquet file under a folder, in path
    order), each with its size and BLAKE3 content hash, read lazily as record batches."""

    def files(self, path: Path) -> list[TableFile]:
        if not path.exists():
            raise NotFound(
                f"{path} does not exist; give the path of a CSV or Parquet file or folder"
            )
        if path.is_file():
            return [_table_file(path, path.name)]
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not found:
            raise InvalidInput(
                f"folder {path} holds no CSV or Parquet file (looked for "
                f"{', '.join(SUFFIXES)}); point at a file or a folder of them"
            )
        return [_table_file(p, p.relative_to(path).as_posix()) for p in found]


def _table_file(path: Path, relative: str) -> TableFile:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InvalidInput(
            f"{path} is not a CSV or Parquet file (its suffix is {path.suffix!r}); "
            f"loopml reads {', '.join(SUFFIXES)}"
        )
    try:
        st = path.stat()  # before hashing: a write during the hash shows as a newer mtime
        digest = hash_large_file(path)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    read = _csv_batches if kind == "csv" else _parquet_batches
    return TableFile(
        relative,
        st.st_size,
        digest,
        lambda: read(path),
        st.st_mtime_ns,
        st.st_ino,
    )


def _csv_batches(path: Path) -> Iterator[pa.RecordBatch]:
    if os.path.getsize(path) == 0:
        raise InvalidInput(f"{path} is empty; a CSV file needs at least a header line")
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _csv_error(path, exc) from exc
    _check_names(path, reader.schema.names)
    # Arrow reads bytes that are not UTF-8 as a binary column instead of failing.
    binary = [f.name for f in reader.schema if pa.types.is_binary(f.type)]
    if binary:
        raise InvalidInput(
            f"cannot read CSV {path}: column(s) {', '.join(map(repr, binary))} hold text that "
            "is not valid UTF-8; loopml reads CSV as UTF-8: convert the file "
            "(e.g. `iconv -f latin1 -t utf-8`)"
        )
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise _csv_error(path, exc, reader.schema.names) from exc
        yield batch


def _csv_error(path: Path, exc: Exception, names: list[str] | None = None) -> InvalidInput:
    text = str(exc).strip()
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
        handle = pq.ParquetFile(path)
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
