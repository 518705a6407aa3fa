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
from collections.abc import Callable, Mapping
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


class SegmentBuilder:
    """The columns of one segment, filled record by record.

    A record's values are copied into a few long lists the moment the writer takes it, so
    the writer holds no per-record objects while a segment fills: the request's own dicts
    and lists die at once instead of living up to ``segment_seconds`` in the garbage
    collector's young generations, where every collection of the serving process would
    walk them. Columns are the ordered union of the records' columns, ``None`` where a
    record had none. ``add`` takes records that passed :func:`check_record`.
    """

    def __init__(self) -> None:
        self.records = 0
        self.first_ms = self.last_ms = 0
        self._request: list[list[Any]] = [[] for _ in REQUEST_COLUMNS]
        *self._repeated, self._row_index = self._request  # the same lists, split once
        self._sides: tuple[dict[str, list[Any]], dict[str, list[Any]]] = ({}, {})
        self._rows = 0

    def add(self, record: PredictionRecord) -> None:
        rows = record.rows
        values = (
            record.request_id,
            record.time_ms,
            record.deployment,
            record.model,
            record.version,
            str(record.route),
            float(record.latency_ms),
            rows,
        )
        if rows == 1:
            for column, value in zip(self._repeated, values, strict=True):
                column.append(value)
            self._row_index.append(0)
        else:
            for column, value in zip(self._repeated, values, strict=True):
                column.extend([value] * rows)
            self._row_index.extend(range(rows))
        for side, columns_of_side in zip((record.inputs, record.outputs), self._sides, strict=True):
            for name, given in side.items():
                known = columns_of_side.get(name)
                if known is None:
                    known = columns_of_side[name] = [None] * self._rows
                known.extend(given)
            if len(columns_of_side) != len(side):  # a column this record lacks: nulls
                for name, known in columns_of_side.items():
                    if name not in side:
                        known.extend([None] * rows)
        if not self.records or record.time_ms < self.first_ms:
            self.first_ms = record.time_ms
        if not self.records or record.time_ms > self.last_ms:
            self.last_ms = record.time_ms
        self._rows += rows
        self.records += 1

    def table(self) -> pa.Table:
        """The segment in the layout of the module docstring."""
        arrays = [
            pa.array(values, kind)
            for values, kind in zip(self._request, _REQUEST_TYPES, strict=True)
        ]
        names = list(REQUEST_COLUMNS)
        for prefix, columns in zip((INPUT_PREFIX, OUTPUT_PREFIX), self._sides, strict=True):
            for name, values in columns.items():
                arrays.append(to_arrow_column(values))
                names.append(prefix + name)
        table = pa.Table.from_arrays(arrays, names=names)
        return table.replace_schema_metadata({RECORDS_KEY: str(self.records).encode()})


_REQUEST_TYPES = (
    pa.string(),
    pa.int64(),
    pa.string(),
    pa.string(),
    pa.int64(),
    pa.string(),
    pa.float64(),
    pa.int32(),
    pa.int32(),
)


def check_record(record: PredictionRecord, valid_names: set[str]) -> None:
    """InvalidInput if the writer cannot store ``record`` as its layout needs."""
    if record.deployment not in valid_names:
        validate_identifier("deployment name", record.deployment)
        valid_names.add(record.deployment)
    fields = (record.request_id, record.model, record.time_ms, record.version, record.rows)
    kinds = (str, str, int, int, int)
    if not all(type(v) is k for v, k in zip(fields, kinds, strict=True)) or not isinstance(
        record.latency_ms, int | float
    ):
        raise InvalidInput(
            f"request {record.request_id!r}: request_id and model must be text, time_ms, "
            f"version and rows integers and latency_ms a number; got "
            f"{[type(v).__name__ for v in (*fields, record.latency_ms)]}"
        )
    rows = {record.rows}
    for label, side in (("inputs", record.inputs), ("outputs", record.outputs)):
        if not isinstance(side, Mapping) or not all(
            isinstance(k, str) and isinstance(v, list | tuple) for k, v in side.items()
        ):
            raise InvalidInput(
                f"request {record.request_id}: {label} must map column names to lists of "
                f"values, got {type(side).__name__}"
            )
        if side and set(map(len, side.values())) != rows:  # one C-level pass per side
            name, values = next((k, v) for k, v in side.items() if len(v) != record.rows)
            raise InvalidInput(
                f"request {record.request_id}: column {name!r} has {len(values)} values "
                f"but the record has {record.rows} rows"
            )
