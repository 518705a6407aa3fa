"""Reading the prediction log, and the feedback that joins it by request id.

Segments are the Parquet files :mod:`loopml.adapters.prediction_log` writes, one folder per
deployment; their names carry the first and last ``time_ms`` they hold, so a time window
skips whole files without opening them, and sorting names sorts segments by time. Rows of
a window are ``since_ms <= time_ms < until_ms``. Segments may differ in columns (a new
model version with another input) or in a column's type; :meth:`read` and :meth:`export`
give one schema (the union, numbers widened, and JSON text where types cannot be
reconciled). Half-written temporary files left by a killed writer start with ``.`` and are
never read.

Feedback is stored the same way, as Parquet segments under ``_feedback/`` (``request_id``,
``time_ms``, ``label`` as JSON text, so any JSON label keeps its shape). When a request has
several feedback rows the newest ``time_ms`` wins, ties going to the one stored last.
:meth:`joined` is a left join: every prediction row, with ``label`` and
``feedback_time_ms`` null where no feedback arrived; a multi-row request's label is
repeated on each of its rows (``row`` says which one it is).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loopml.adapters.fsync import fsync_directory
from loopml.adapters.prediction_segments import (
    FEEDBACK_DIR,
    INPUT_PREFIX,
    OUTPUT_PREFIX,
    RECORDS_KEY,
    STATS_DIR,
    TEMP_PREFIX,
    segment_name,
    to_arrow_column,
    write_segment,
)
from loopml.domain.errors import IntegrityError, InvalidInput
from loopml.domain.names import validate_identifier
from loopml.domain.predictions import Feedback, PredictionRecord, Route
from loopml.ports.predictions import DeploymentLogStats, PredictionLogStats

_SEGMENT = re.compile(r"^(\d{13})-(\d{13})-[0-9a-f]+-\d+\.parquet$")
_EXPORT_SUFFIXES = (".parquet", ".csv")
BASE_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("time_ms", pa.int64()),
        ("deployment", pa.string()),
        ("model", pa.string()),
        ("version", pa.int64()),
        ("route", pa.string()),
        ("latency_ms", pa.float64()),
        ("rows", pa.int32()),
        ("row", pa.int32()),
    ]
)
FEEDBACK_SCHEMA = pa.schema(
    [("request_id", pa.string()), ("time_ms", pa.int64()), ("label", pa.string())]
)


@dataclass(frozen=True, slots=True)
class Segment:
    path: Path
    first_ms: int
    last_ms: int

    def overlaps(self, since_ms: int | None, until_ms: int | None) -> bool:
        return (since_ms is None or self.last_ms >= since_ms) and (
            until_ms is None or self.first_ms < until_ms
        )


@dataclass(frozen=True, slots=True)
class _Labels:
    """The newest feedback per request id: ids, decoded labels and their times."""

    ids: pa.Array
    labels: pa.Array
    times: pa.Array


class ParquetPredictionReader:
    """A :class:`~loopml.ports.predictions.PredictionReader` over the segments under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._writer_id = secrets.token_hex(6)
        self._seq = 0
        # The newest label of every request, decoded, and the feedback segments it was
        # built from: segments are never changed once written, so the same names give
        # the same labels, and a monitor judging many windows decodes them once.
        self._labels_of: tuple[tuple[str, ...], _Labels] | None = None

    # -- predictions -------------------------------------------------------------------

    def deployments(self) -> list[str]:
        """Deployments with at least a folder of segments, by name."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name[:1].isalnum())

    def segments(self, deployment: str | None) -> list[Segment]:
        """Segments of ``deployment`` (every deployment when None), oldest first."""
        if deployment is None:
            found = [s for d in self.deployments() for s in _segments_in(self.root / d)]
            return sorted(found, key=lambda s: s.path.name)
        validate_identifier("deployment name", deployment)
        return _segments_in(self.root / deployment)

    def scan(
        self, deployment: str | None, since_ms: int | None = None, until_ms: int | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of the rows in the window, segment by segment, oldest first;
        batches of different segments may have different columns."""
        for segment in self.segments(deployment):
            if segment.overlaps(since_ms, until_ms):
                yield from _read(segment.path, since_ms, until_ms).to_batches()

    def read(
        self, deployment: str | None, since_ms: int | None = None, until_ms: int | None = None
    ) -> pa.Table:
        """The rows in the window as one table with one schema."""
        tables = [
            _read(s.path, since_ms, until_ms)
            for s in self.segments(deployment)
            if s.overlaps(since_ms, until_ms)
        ]
        return _concat(tables, BASE_SCHEMA)

    def tail(self, deployment: str | None, n: int) -> list[PredictionRecord]:
        """The newest ``n`` records (requests), oldest first; empty if none are logged."""
        if n <= 0:
            return []
        tables: list[pa.Table] = []
        seen = 0
        for segment in reversed(self.segments(deployment)):
            table = _read(segment.path, None, None)
            tables.insert(0, table)
            seen += _records_in(table)
            if seen >= n:
                break
        rows = _concat(tables, BASE_SCHEMA).to_pylist()
        records = _group_records(rows)
        records.sort(key=lambda r: r.time_ms)  # stable: file order breaks ties
        return records[-n:]

    def known_request_ids(self, request_ids: Sequence[str]) -> set[str]:
        """The ids among ``request_ids`` that some logged prediction carries."""
        wanted = pa.array(list(set(request_ids)), pa.string())
        found: set[str] = set()
        for segment in self.segments(None):
            ids = _read_columns(segment.path, ["request_id"])["request_id"]
            hits = wanted.filter(pc.is_in(wanted, value_set=pc.unique(ids)))
            found.update(hits.to_pylist())
            if len(found) == len(wanted):
                break
        return found

    # -- feedback ----------------------------------------------------------------------

    def add_feedback(self, items: Sequence[Feedback]) -> int:
        """Store ``items`` durably as one feedback segment; return how many."""
        if not items:
            return 0
        labels: list[str] = []
        for item in items:
            try:
                labels.append(json.dumps(item.label))
            except (TypeError, ValueError) as exc:
                raise InvalidInput(
                    f"the label of request {item.request_id} is not JSON data "
                    f"({type(item.label).__name__}): {exc}; send numbers, strings, lists "
                    "or objects"
                ) from exc
        table = pa.table(
            [
                pa.array([i.request_id for i in items], pa.string()),
                pa.array([i.time_ms for i in items], pa.int64()),
                pa.array(labels, pa.string()),
            ],
            schema=FEEDBACK_SCHEMA,
        )
        directory = self.root / FEEDBACK_DIR
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            fsync_directory(directory.parent)
        times = [i.time_ms for i in items]
        name = segment_name(min(times), max(times), self._writer_id, self._seq)
        self._seq += 1
        write_segment(directory, name, table)
        return len(items)

    def joined(
        self, deployment: str | None, since_ms: int | None = None, until_ms: int | None = None
    ) -> pa.Table:
        """Prediction rows of the window with ``label`` and ``feedback_time_ms`` (null where
        no feedback arrived): a left join by request id."""
        return _with_labels(self.read(deployment, since_ms, until_ms), self._labels())

    def _labels(self) -> _Labels:
        segments = _segments_in(self.root / FEEDBACK_DIR)
        names = tuple(s.path.name for s in segments)
        cached = self._labels_of
        if cached is not None and cached[0] == names:
            return cached[1]
        labels = _newest_labels([_read_columns(s.path, None, FEEDBACK_SCHEMA) for s in segments])
        self._labels_of = (names, labels)
        return labels

    # -- export and stats --------------------------------------------------------------

    def export(
        self,
        path: Path,
        deployment: str | None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        *,
        with_feedback: bool = False,
    ) -> int:
        """Write the window to ``path`` (.parquet or .csv) atomically; return the rows.

        Segments are read one at a time, so memory holds one segment, not the window."""
        suffix = path.suffix.lower()
        if suffix not in _EXPORT_SUFFIXES:
            raise InvalidInput(
                f"cannot export to {path}: expected a name ending in .parquet or .csv"
            )
        segments = [s for s in self.segments(deployment) if s.overlaps(since_ms, until_ms)]
        schema = _unify([pq.read_schema(s.path) for s in segments] or [BASE_SCHEMA])
        labels = self._labels() if with_feedback else None
        if labels is not None:
            schema = schema.append(pa.field("label", labels.labels.type))
            schema = schema.append(pa.field("feedback_time_ms", pa.int64()))
        if suffix == ".csv":  # CSV holds no lists or structs: those columns become JSON
            schema = pa.schema(
                [pa.field(f.name, pa.string()) if pa.types.is_nested(f.type) else f for f in schema]
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{TEMP_PREFIX}{path.name}")
        rows = 0
        try:
            with open(tmp, "wb") as handle:
                writer: Any = (
                    pacsv.CSVWriter(handle, schema)
                    if suffix == ".csv"
                    else pq.ParquetWriter(handle, schema, compression="zstd")
                )
                with writer:
                    for segment in segments:
                        table = _read(segment.path, since_ms, until_ms)
                        if labels is not None:
                            table = _with_labels(table, labels)
                        if table.num_rows:
                            writer.write_table(_conform(table, schema))
                            rows += table.num_rows
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return rows

    def stats(self) -> PredictionLogStats:
        """Segments, records and rows per deployment, feedback, and every writer's losses."""
        deployments: list[DeploymentLogStats] = []
        for name in self.deployments():
            segments = _segments_in(self.root / name)
            records = rows = size = 0
            for segment in segments:
                meta = pq.read_metadata(segment.path)
                rows += meta.num_rows
                records += int((meta.metadata or {}).get(RECORDS_KEY, meta.num_rows))
                size += segment.path.stat().st_size
            deployments.append(
                DeploymentLogStats(
                    deployment=name,
                    segments=len(segments),
                    records=records,
                    rows=rows,
                    bytes=size,
                    first_ms=min((s.first_ms for s in segments), default=None),
                    last_ms=max((s.last_ms for s in segments), default=None),
                )
            )
        feedback = _segments_in(self.root / FEEDBACK_DIR)
        totals = {"overflow": 0, "rejected": 0, "lost": 0, "write_errors": 0}
        last_error, last_time = "", -1
        for sidecar in _files(self.root / STATS_DIR, ".json"):
            try:
                data = json.loads(sidecar.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # another writer is replacing it; its counts are in the new one
            for key in totals:
                totals[key] += int(data.get(key, 0))
            if data.get("last_error") and int(data.get("updated_ms", 0)) > last_time:
                last_error, last_time = str(data["last_error"]), int(data["updated_ms"])
        folders = [self.root / d for d in self.deployments()]
        folders += [self.root / FEEDBACK_DIR, self.root / STATS_DIR]
        temporaries = sum(
            1
            for folder in folders
            if folder.is_dir()
            for p in folder.iterdir()
            if p.name.startswith(TEMP_PREFIX)
        )
        return PredictionLogStats(
            deployments=deployments,
            feedback_segments=len(feedback),
            feedback_rows=sum(pq.read_metadata(s.path).num_rows for s in feedback),
            dropped=totals["overflow"] + totals["rejected"] + totals["lost"],
            overflow=totals["overflow"],
            rejected=totals["rejected"],
            lost=totals["lost"],
            write_errors=totals["write_errors"],
            last_error=last_error,
            temporaries=temporaries,
        )


def _newest_labels(tables: list[pa.Table]) -> _Labels:
    """The newest feedback of each request id (ties: the one stored last), decoded."""
    if not tables:
        return _Labels(pa.array([], pa.string()), pa.array([]), pa.array([], pa.int64()))
    table = pa.concat_tables([t.select(FEEDBACK_SCHEMA.names) for t in tables])
    table = table.append_column("order", pa.array(range(table.num_rows), pa.int64()))
    keys = [("request_id", "ascending"), ("time_ms", "ascending"), ("order", "ascending")]
    table = table.take(pc.sort_indices(table, sort_keys=keys))
    ids = table["request_id"].combine_chunks()
    # The last row of each run of equal ids is its newest feedback.
    last = pc.not_equal(ids[:-1], ids[1:]) if len(ids) > 1 else pa.array([], pa.bool_())
    keep = pa.concat_arrays([last, pa.array([True])])
    table = table.filter(keep)
    decoded = [None if s is None else json.loads(s) for s in table["label"].to_pylist()]
    return _Labels(
        table["request_id"].combine_chunks(),
        to_arrow_column(decoded),
        table["time_ms"].combine_chunks(),
    )


def _files(folder: Path, suffix: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name.endswith(suffix) and p.name[:1] != "."]


def _segments_in(folder: Path) -> list[Segment]:
    found = []
    for path in _files(folder, ".parquet"):
        match = _SEGMENT.match(path.name)
        if match:
            found.append(Segment(path, int(match[1]), int(match[2])))
    return sorted(found, key=lambda s: s.path.name)


def _read_columns(
    path: Path, columns: list[str] | None, empty: pa.Schema = BASE_SCHEMA
) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except FileNotFoundError:  # removed (by hand) since it was listed: it holds nothing now
        table = empty.empty_table()
        return table if columns is None else table.select(columns)
    except (OSError, pa.ArrowException) as exc:
        raise IntegrityError(
            f"prediction log segment {path} cannot be read ({exc}); segments are renamed "
            "into place whole, so this file was changed afterwards: move it aside"
        ) from exc


def _read(path: Path, since_ms: int | None, until_ms: int | None) -> pa.Table:
    table = _read_columns(path, None).replace_schema_metadata(None)
    if since_ms is not None:
        table = table.filter(pc.greater_equal(table["time_ms"], since_ms))
    if until_ms is not None:
        table = table.filter(pc.less(table["time_ms"], until_ms))
    return table


def _records_in(table: pa.Table) -> int:
    return int(pc.sum(pc.equal(table["row"], 0)).as_py() or 0) if table.num_rows else 0


def _unify(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """One schema for all: the union of the columns, numbers widened, JSON text where the
    types of a column cannot be reconciled."""
    schemas = [s.remove_metadata() for s in schemas]
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    fields: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        for f in schema:
            fields.setdefault(f.name, []).append(f.type)
    unified = []
    for name, types in fields.items():
        try:
            single = [pa.schema([pa.field(name, t)]) for t in types]
            unified.append(pa.unify_schemas(single, promote_options="permissive").field(0))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            unified.append(pa.field(name, pa.string()))
    return pa.schema(unified)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns and types (missing ones null)."""
    columns = []
    for f in schema:
        if f.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        column = table[f.name]
        if column.type != f.type:
            try:
                column = column.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                column = pa.array(
                    [None if v is None else json.dumps(v) for v in column.to_pylist()],
                    pa.string(),
                )
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _concat(tables: Sequence[pa.Table], empty: pa.Schema) -> pa.Table:
    if not tables:
        return empty.empty_table()
    schema = _unify([t.schema for t in tables])
    return pa.concat_tables([_conform(t, schema) for t in tables])


def _with_labels(table: pa.Table, labels: _Labels) -> pa.Table:
    index = pc.index_in(table["request_id"], value_set=labels.ids)
    table = table.append_column("label", labels.labels.take(index))
    return table.append_column("feedback_time_ms", labels.times.take(index))


def _group_records(rows: list[dict[str, Any]]) -> list[PredictionRecord]:
    """Rows back into records: a record's rows are consecutive, starting at ``row`` 0."""
    groups: list[list[dict[str, Any]]] = []
    for row in rows:
        if row["row"] == 0 or not groups or groups[-1][0]["request_id"] != row["request_id"]:
            groups.append([])
        groups[-1].append(row)
    records = []
    for group in groups:
        head = group[0]
        records.append(
            PredictionRecord(
                request_id=head["request_id"],
                time_ms=head["time_ms"],
                deployment=head["deployment"],
                model=head["model"],
                version=head["version"],
                route=_route(head["route"]),
                inputs=_side(group, INPUT_PREFIX),
                outputs=_side(group, OUTPUT_PREFIX),
                latency_ms=head["latency_ms"],
                rows=len(group),
            )
        )
    return records


def _side(group: list[dict[str, Any]], prefix: str) -> dict[str, list[Any]]:
    names = [k for k in group[0] if k.startswith(prefix)]
    columns = {k[len(prefix) :]: [row[k] for row in group] for k in names}
    # A column only other records of the segment had is all null here: not this record's.
    return {k: v for k, v in columns.items() if any(x is not None for x in v)}


def _route(value: str) -> Route:
    try:
        return Route(value)
    except ValueError:  # a route this version does not know: shown as written
        return cast(Route, value)
