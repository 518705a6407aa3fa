"""The files of the prediction log: segment layout, names and atomic writes.

:mod:`loopml.adapters.prediction_log` explains the layout (one row per predicted row,
``in.<name>`` / ``out.<name>`` columns) and the durability contract; this module holds the
pieces the writer and the reader share. A segment is written to a temporary file beside
its final name, fsynced, renamed into place and its folder fsynced, so it is complete or
absent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from loopml.adapters.fsync import fsync_directory
from loopml.domain.errors import InvalidInput
from loopml.domain.names import validate_identifier
from loopml.domain.predictions import PredictionRecord

log = logging.getLogger("loopml.predictions")

FEEDBACK_DIR = "_feedback"
STATS_DIR = "_stats"
TEMP_PREFIX = ".tmp-"
RECORDS_KEY = b"loopml.records"  # Parquet key-value metadata: records (requests) in a segment
INPUT_PREFIX = "in."
OUTPUT_PREFIX = "out."
REQUEST_COLUMNS = (
    "request_id",
    "time_ms",
    "deployment",
    "model",
    "version",
    "route",
    "latency_ms",
    "rows",
    "row",
)

SegmentWriter = Callable[[Path, str, pa.Table], None]


def segment_name(first_ms: int, last_ms: int, writer: str, seq: int) -> str:
    return f"{max(first_ms, 0):013d}-{max(last_ms, 0):013d}-{writer}-{seq:06d}.parquet"


def write_segment(directory: Path, name: str, table: pa.Table) -> None:
    """Write ``table`` as ``directory/name``: temp file, fsync, rename, directory fsync."""
    tmp = directory / f"{TEMP_PREFIX}{name}"
    try:
        with open(tmp, "wb") as handle:
            # A file object passed to pyarrow is written to and left open (the writer only
            # closes files it opened itself), so it can be fsynced before the rename.
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    try:
        fsync_directory(directory)
    except OSError as exc:  # renamed already: retrying would write the records twice
        log.warning("could not fsync %s after adding %s: %s", directory, name, exc)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def to_arrow_column(values: list[Any]) -> pa.Array:
    """Arrow's own typing of ``values``; JSON text when they do not share one type."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array(
            [None if v is None else json.dumps(v, default=str) for v in values], pa.string()
        )


def records_table(records: Sequence[PredictionRecord]) -> pa.Table:
    """The rows of ``records`` in the segment layout (see the module docstring)."""
    single = all(r.rows == 1 for r in records)

    def repeat(get: Callable[[PredictionRecord], Any]) -> list[Any]:
        if single:
            return [get(r) for r in records]
        return [v for r in records for v in [get(r)] * r.rows]

    row_index = [0] * len(records) if single else [i for r in records for i in range(r.rows)]
    arrays: list[pa.Array] = [
        pa.array(repeat(lambda r: r.request_id), pa.string()),
        pa.array(repeat(lambda r: r.time_ms), pa.int64()),
        pa.array(repeat(lambda r: r.deployment), pa.string()),
        pa.array(repeat(lambda r: r.model), pa.string()),
        pa.array(repeat(lambda r: r.version), pa.int64()),
        pa.array(repeat(lambda r: str(r.route)), pa.string()),
        pa.array(repeat(lambda r: float(r.latency_ms)), pa.float64()),
        pa.array(repeat(lambda r: r.rows), pa.int32()),
        pa.array(row_index, pa.int32()),
    ]
    names = list(REQUEST_COLUMNS)
    for prefix, side in ((INPUT_PREFIX, "inputs"), (OUTPUT_PREFIX, "outputs")):
        maps: list[Mapping[str, Sequence[Any]]] = [getattr(r, side) for r in records]
        shapes = {tuple(m) for m in maps}
        # The usual case, every record with the same columns, skips the ordered union.
        columns = (
            next(iter(shapes)) if len(shapes) == 1 else dict.fromkeys(k for m in maps for k in m)
        )
        for column in columns:
            if single:
                values = [m[column][0] if column in m else None for m in maps]
            else:
                values = [
                    v
                    for m, r in zip(maps, records, strict=True)
                    for v in (m[column] if column in m else [None] * r.rows)
                ]
            arrays.append(to_arrow_column(values))
            names.append(prefix + column)
    table = pa.Table.from_arrays(arrays, names=names)
    return table.replace_schema_metadata({RECORDS_KEY: str(len(records)).encode()})


def check_record(record: PredictionRecord, valid_names: set[str]) -> None:
    """InvalidInput if the writer cannot store ``record`` as its layout needs."""
    if record.deployment not in valid_names:
        validate_identifier("deployment name", record.deployment)
        valid_names.add(record.deployment)
    rows = {record.rows}
    for side in (record.inputs, record.outputs):
        if side and set(map(len, side.values())) != rows:  # one C-level pass per side
            name, values = next((k, v) for k, v in side.items() if len(v) != record.rows)
            raise InvalidInput(
                f"request {record.request_id}: column {name!r} has {len(values)} values "
                f"but the record has {record.rows} rows"
            )
