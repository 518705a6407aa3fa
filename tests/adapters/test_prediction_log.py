"""The prediction log on real files with its real writer thread.

Records go in through ``submit`` and come back through the reader; segments roll by count
and by time; a blocked writer makes the queue overflow, and every drop is counted exactly;
a failing disk is retried and reported; nothing the writer meets raises into the caller.
The writer is slowed down or made to fail by handing it a segment writer that waits on an
event or raises before delegating to the real one.
"""

from __future__ import annotations

import errno
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.adapters.prediction_log import ParquetPredictionSink
from loopml.adapters.prediction_reader import ParquetPredictionReader
from loopml.adapters.prediction_segments import SegmentBuilder, write_segment
from loopml.bootstrap import build_memory
from loopml.domain.errors import InvalidInput
from loopml.domain.predictions import Feedback, PredictionRecord, Route

T0 = 1_700_000_000_000


def record(
    i: int,
    deployment: str = "iris",
    *,
    rows: int = 1,
    inputs: dict[str, list[object]] | None = None,
    route: Route = Route.PRODUCTION,
    version: int = 1,
) -> PredictionRecord:
    return PredictionRecord(
        request_id=f"req-{i}",
        time_ms=T0 + i,
        deployment=deployment,
        model="iris-model",
        version=version,
        route=route,
        inputs=inputs
        if inputs is not None
        else {"sepal": [0.1 * i + r for r in range(rows)], "kind": ["a"] * rows},
        outputs={"label": [i % 3] * rows, "proba": [[0.2, 0.8]] * rows},
        latency_ms=0.5,
    )


def wait_until(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.005)
    return check()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "predictions"


@pytest.fixture
def reader(root: Path) -> ParquetPredictionReader:
    return ParquetPredictionReader(root)


@pytest.fixture
def sink(root: Path) -> Iterator[ParquetPredictionSink]:
    s = ParquetPredictionSink(root, segment_records=100, segment_seconds=5.0)
    yield s
    s.close()


class Gate:
    """A segment writer that blocks until opened, then writes for real."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()

    def __call__(self, directory: Path, name: str, table: pa.Table) -> None:
        self.entered.set()
        assert self.open.wait(10)
        write_segment(directory, name, table)


class FailingDisk:
    """A segment writer that fails ``failures`` times with ENOSPC, then writes."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, directory: Path, name: str, table: pa.Table) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError(errno.ENOSPC, "No space left on device")
        write_segment(directory, name, table)


def test_records_round_trip_through_tail_and_scan(
    sink: ParquetPredictionSink, reader: ParquetPredictionReader
) -> None:
    sent = [record(i) for i in range(5)]
    sent.append(record(5, rows=3, route=Route.CANARY, version=2))
    sent.append(record(6, "bikes", inputs={"temp": [21.5]}))
    assert all(sink.submit(r) for r in sent)
    assert sink.flush()

    assert reader.deployments() == ["bikes", "iris"]
    got = reader.tail(None, 100)
    assert [r.request_id for r in got] == [r.request_id for r in sent]
    for back, original in zip(got, sent, strict=True):
        assert back.deployment == original.deployment
        assert (back.model, back.version, back.route) == (
            original.model,
            original.version,
            original.route,
        )
        assert back.rows == original.rows
        assert back.latency_ms == original.latency_ms
        assert {k: list(v) for k, v in back.inputs.items()} == original.inputs
        assert {k: list(v) for k, v in back.outputs.items()} == original.outputs
    assert [r.request_id for r in reader.tail("iris", 2)] == ["req-4", "req-5"]

    batches = list(reader.scan("iris"))
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 5 + 3  # one row per predicted row
    assert table.column_names == [
        "request_id",
        "time_ms",
        "deployment",
        "model",
        "version",
        "route",
        "latency_ms",
        "rows",
        "row",
        "in.sepal",
        "in.kind",
        "out.label",
        "out.proba",
    ]
    multi = table.filter(pa.compute.equal(table["request_id"], "req-5"))
    assert multi["row"].to_pylist() == [0, 1, 2]
    assert multi["rows"].to_pylist() == [3, 3, 3]
    assert multi["route"].to_pylist() == ["canary"] * 3
    assert table.schema.field("in.sepal").type == pa.float64()
    assert table.schema.field("out.proba").type == pa.list_(pa.float64())


def test_time_window_reads_only_rows_inside(
    sink: ParquetPredictionSink, reader: ParquetPredictionReader
) -> None:
    for i in range(10):
        sink.submit(record(i))
    assert sink.flush()
    window = reader.read("iris", T0 + 3, T0 + 6)
    assert window["request_id"].to_pylist() == ["req-3", "req-4", "req-5"]
    assert reader.read("iris", T0 + 100, None).num_rows == 0
    assert [b.num_rows for b in reader.scan(None, None, T0 + 2)] == [2]


def test_segments_roll_by_count(root: Path, reader: ParquetPredictionReader) -> None:
    sink = ParquetPredictionSink(root, segment_records=10, segment_seconds=60)
    try:
        for i in range(25):
            assert sink.submit(record(i))
        assert wait_until(lambda: len(reader.segments("iris")) == 2)
        time.sleep(0.05)  # the last 5 wait for 10 records or 60 s: no third segment yet
        segments = reader.segments("iris")
        assert [pq.read_metadata(s.path).num_rows for s in segments] == [10, 10]
        assert sink.flush()
        segments = reader.segments("iris")
        assert [pq.read_metadata(s.path).num_rows for s in segments] == [10, 10, 5]
        # Names sort by time and carry each segment's first and last time.
        assert [(s.first_ms, s.last_ms) for s in segments] == [
            (T0, T0 + 9),
            (T0 + 10, T0 + 19),
            (T0 + 20, T0 + 24),
        ]
    finally:
        sink.close()


def test_segments_roll_by_time_without_flush(root: Path, reader: ParquetPredictionReader) -> None:
    sink = ParquetPredictionSink(root, segment_records=1000, segment_seconds=0.1)
    try:
        for i in range(3):
            sink.submit(record(i))
        started = time.monotonic()
        assert wait_until(lambda: len(reader.segments("iris")) == 1, timeout_s=3)
        assert time.monotonic() - started < 2
        assert len(reader.tail("iris", 10)) == 3
    finally:
        sink.close()


def test_overflow_returns_false_and_counts_every_drop(
    root: Path, reader: ParquetPredictionReader
) -> None:
    gate = Gate()
    sink = ParquetPredictionSink(
        root, queue_size=3, segment_records=1, segment_seconds=60, segment_writer=gate
    )
    try:
        assert sink.submit(record(0))
        assert gate.entered.wait(5)  # the writer holds record 0 and is stuck writing it
        assert [sink.submit(record(i)) for i in range(1, 4)] == [True, True, True]
        assert sink.queue_depth == 3
        started = time.perf_counter()
        assert [sink.submit(record(i)) for i in range(4, 11)] == [False] * 7
        assert time.perf_counter() - started < 0.5  # never blocks the caller
        assert sink.dropped == 7
        gate.open.set()
        assert sink.flush()
        assert sink.dropped == 7
        assert [r.request_id for r in reader.tail("iris", 100)] == [f"req-{i}" for i in range(4)]
    finally:
        gate.open.set()
        sink.close()
    stats = reader.stats()  # what `loopml predictions stats` reports after a restart
    assert (stats.overflow, stats.dropped, stats.lost) == (7, 7, 0)


def test_failed_writes_are_retried_counted_and_reported(
    root: Path, reader: ParquetPredictionReader
) -> None:
    disk = FailingDisk(failures=2)
    sink = ParquetPredictionSink(root, retry_seconds=0.01, segment_writer=disk)
    try:
        for i in range(3):
            assert sink.submit(record(i))
        assert not sink.flush()  # the first write fails: flush says so at once
        assert "No space left on device" in sink.last_error
        assert wait_until(lambda: sink.written == 3)
        assert sink.flush()
        assert sink.write_errors == 2
        assert sink.dropped == 0
        assert len(reader.tail("iris", 10)) == 3
    finally:
        sink.close()
    stats = reader.stats()
    assert stats.write_errors == 2
    assert "No space left on device" in stats.last_error


def test_records_still_unwritten_at_close_are_counted_as_lost(
    root: Path, reader: ParquetPredictionReader
) -> None:
    sink = ParquetPredictionSink(
        root, retry_seconds=0.01, segment_records=2, segment_writer=FailingDisk(10**6)
    )
    for i in range(5):
        assert sink.submit(record(i))
    sink.close(timeout_s=5)
    assert sink.dropped == 5
    assert not sink.submit(record(9))  # after close: refused and counted, not queued
    assert sink.dropped == 6
    stats = reader.stats()
    assert stats.lost == 5
    assert stats.write_errors >= 1
    assert [d.segments for d in stats.deployments] == [0]


def test_records_the_writer_cannot_store_are_rejected_not_raised(
    sink: ParquetPredictionSink, reader: ParquetPredictionReader
) -> None:
    bad_name = record(0, "../escape")
    ragged = record(1, inputs={"a": [1, 2]})  # two values, but the record says one row
    object.__setattr__(ragged, "rows", 1)
    garbled = record(3)
    object.__setattr__(garbled, "inputs", None)  # not even columns
    text_version = record(4)
    object.__setattr__(text_version, "version", "1")  # Parquet's column is int64
    float_time = record(5)
    object.__setattr__(float_time, "time_ms", 1.5e12)
    assert sink.submit(bad_name)
    assert sink.submit(ragged)
    assert sink.submit(garbled)
    assert sink.submit(record(2))
    assert sink.submit(text_version)
    assert sink.submit(float_time)
    assert sink.flush()
    assert sink.dropped == 5
    assert [r.request_id for r in reader.tail(None, 10)] == ["req-2"]
    assert not (reader.root.parent / "escape").exists()


def test_an_error_that_is_not_the_disk_drops_the_segment_without_retrying(
    root: Path, reader: ParquetPredictionReader
) -> None:
    calls = []

    def unstorable(directory: Path, name: str, table: pa.Table) -> None:
        calls.append(name)
        if len(calls) == 1:
            raise pa.ArrowNotImplementedError("a type Parquet cannot hold")
        write_segment(directory, name, table)

    sink = ParquetPredictionSink(root, segment_writer=unstorable)
    try:
        sink.submit(record(0))
        assert sink.flush()  # rejected, counted, and the log goes on
        sink.submit(record(1))
        assert sink.flush()
        assert sink.dropped == 1
        assert sink.write_errors == 0
        assert [r.request_id for r in reader.tail(None, 5)] == ["req-1"]
    finally:
        sink.close()


def segment_table(records: list[PredictionRecord]) -> pa.Table:
    builder = SegmentBuilder()
    for r in records:
        builder.add(r)
    return builder.table()


def test_a_segment_holds_the_union_of_columns_row_by_row() -> None:
    table = segment_table(
        [
            record(0, rows=2, inputs={"a": [1.0, 2.0]}),
            record(1, inputs={"b": ["x"]}),
            record(2, inputs={"b": ["y"], "a": [3.0]}),
        ]
    )
    assert table["in.a"].to_pylist() == [1.0, 2.0, None, 3.0]
    assert table["in.b"].to_pylist() == [None, None, "x", "y"]
    assert table["request_id"].to_pylist() == ["req-0", "req-0", "req-1", "req-2"]
    assert table["rows"].to_pylist() == [2, 2, 1, 1]
    assert table["row"].to_pylist() == [0, 1, 0, 0]
    assert table["out.label"].to_pylist() == [0, 0, 1, 2]
    assert table.schema.metadata == {b"loopml.records": b"3"}


def test_the_writer_keeps_no_record_objects_while_a_segment_fills(
    root: Path, reader: ParquetPredictionReader
) -> None:
    """Taken records are copied into the segment's columns and let go at once, so they
    never age into the collector's older generations in a serving process."""

    class Columns(dict[str, list[object]]):  # a dict that can be weakly referenced
        pass

    sink = ParquetPredictionSink(root, segment_records=1000, segment_seconds=60)
    try:
        sent = record(0, inputs=Columns(sepal=[0.5], kind=["a"]))
        alive = weakref.ref(sent.inputs)
        assert sink.submit(sent)
        del sent
        assert wait_until(lambda: alive() is None)  # no segment written yet, nothing held
        assert reader.segments("iris") == []
        assert sink.flush()
        assert [r.inputs["sepal"] for r in reader.tail("iris", 5)] == [[0.5]]
    finally:
        sink.close()


def test_mixed_value_types_are_kept_as_json_text() -> None:
    table = segment_table([record(0, inputs={"x": [1]}), record(1, inputs={"x": ["one"]})])
    assert table["in.x"].to_pylist() == ["1", '"one"']
    widened = segment_table([record(0, inputs={"x": [1]}), record(1, inputs={"x": [2.5]})])
    assert widened.schema.field("in.x").type == pa.float64()


def test_segments_with_different_schemas_read_as_one(
    root: Path, reader: ParquetPredictionReader
) -> None:
    for inputs in ({"x": [1]}, {"x": [2.5], "y": ["new"]}, {"x": ["text"]}):
        sink = ParquetPredictionSink(root)
        sink.submit(record(len(reader.segments(None)), inputs=inputs))
        sink.close()
    table = reader.read("iris")
    assert table.num_rows == 3
    assert table["in.x"].to_pylist() == ["1", "2.5", "text"]  # no common type: JSON text
    assert table["in.y"].to_pylist() == [None, "new", None]
    assert table.schema.field("in.x").type == pa.string()


def test_feedback_joins_by_request_id_newest_wins(
    sink: ParquetPredictionSink, reader: ParquetPredictionReader
) -> None:
    for i in range(4):
        sink.submit(record(i))
    sink.submit(record(4, rows=2))
    assert sink.flush()
    assert reader.add_feedback([Feedback("req-1", 10, 0), Feedback("req-2", 10, 1)]) == 2
    assert reader.add_feedback([Feedback("req-1", 20, 2), Feedback("req-2", 5, 9)]) == 2
    assert reader.add_feedback([Feedback("req-4", 1, 7), Feedback("unknown", 1, 1)]) == 2
    assert reader.add_feedback([]) == 0

    joined = reader.joined("iris")
    assert joined.num_rows == 6  # a left join: every prediction row, no more
    by_row = list(
        zip(
            joined["request_id"].to_pylist(),
            joined["label"].to_pylist(),
            joined["feedback_time_ms"].to_pylist(),
            strict=True,
        )
    )
    assert by_row == [
        ("req-0", None, None),
        ("req-1", 2, 20),  # the newest of two labels
        ("req-2", 1, 10),  # an older label arriving later does not win
        ("req-3", None, None),
        ("req-4", 7, 1),  # a multi-row request: its label on each row
        ("req-4", 7, 1),
    ]
    assert reader.known_request_ids(["req-1", "unknown", "req-4"]) == {"req-1", "req-4"}
    assert reader.stats().feedback_rows == 6


def test_feedback_with_equal_times_keeps_the_one_stored_last(
    reader: ParquetPredictionReader, sink: ParquetPredictionSink
) -> None:
    sink.submit(record(0))
    assert sink.flush()
    reader.add_feedback([Feedback("req-0", 5, "cat")])
    reader.add_feedback([Feedback("req-0", 5, "dog")])
    assert reader.joined(None)["label"].to_pylist() == ["dog"]


def test_feedback_label_must_be_json_data(reader: ParquetPredictionReader) -> None:
    with pytest.raises(InvalidInput, match="req-0"):
        reader.add_feedback([Feedback("req-0", 1, object())])


def test_export_parquet_and_csv_with_feedback(
    tmp_path: Path, sink: ParquetPredictionSink, reader: ParquetPredictionReader
) -> None:
    for i in range(6):
        sink.submit(record(i))
    assert sink.flush()
    reader.add_feedback([Feedback("req-3", 1, 1)])
    assert reader.export(tmp_path / "o.parquet", "iris", T0 + 2, with_feedback=True) == 4
    table = pq.read_table(tmp_path / "o.parquet")
    assert table["request_id"].to_pylist() == ["req-2", "req-3", "req-4", "req-5"]
    assert table["label"].to_pylist() == [None, 1, None, None]
    assert reader.export(tmp_path / "o.csv", None) == 6
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert len(lines) == 7
    assert '"[0.2, 0.8]"' in lines[1]  # a list column becomes JSON text in CSV
    with pytest.raises(InvalidInput, match=r"\.parquet or \.csv"):
        reader.export(tmp_path / "o.xlsx", None)
    assert reader.export(tmp_path / "none.parquet", "nothing-here") == 0
    assert pq.read_table(tmp_path / "none.parquet").num_rows == 0


def test_unknown_or_unsafe_deployment(reader: ParquetPredictionReader) -> None:
    assert reader.tail("nothing-logged", 5) == []
    assert reader.read("nothing-logged").num_rows == 0
    with pytest.raises(InvalidInput, match="deployment name"):
        reader.tail("../etc", 5)


def test_submit_costs_microseconds_and_never_raises(sink: ParquetPredictionSink) -> None:
    records = [record(i) for i in range(2000)]
    started = time.perf_counter()
    for r in records:
        sink.submit(r)
    per_call = (time.perf_counter() - started) / len(records)
    assert per_call < 100e-6  # measured ~1-2 µs; generous for loaded CI machines
    assert sink.flush()


def test_memory_app_logs_into_a_temporary_folder_removed_on_close() -> None:
    app = build_memory()
    folder = app.predictions_dir
    assert app.prediction_sink.submit(record(0))
    assert app.prediction_sink.flush()
    assert [r.request_id for r in app.predictions.tail(None, 5)] == ["req-0"]
    app.close()
    assert not folder.exists()
