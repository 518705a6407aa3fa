from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from loopml.domain.tracking import Metric
from loopml.services.metric_buffer import MetricBuffer

Batch = Sequence[tuple[str, Sequence[Metric]]]


class Sink:
    def __init__(self) -> None:
        self.calls: list[dict[str, list[Metric]]] = []
        self.fail = False
        self.event = threading.Event()

    def __call__(self, batches: Batch) -> None:
        if self.fail:
            raise OSError("disk full")
        self.calls.append({run: list(points) for run, points in batches})
        self.event.set()

    def points(self, run: str) -> list[Metric]:
        return [p for call in self.calls for p in call.get(run, [])]


def m(i: int) -> Metric:
    return Metric("loss", float(i), i, i)


def test_nothing_is_written_until_a_flush_then_one_group_commit() -> None:
    sink = Sink()
    buffer = MetricBuffer(sink, max_points=1000, max_delay=60)
    for i in range(10):
        buffer.add("r1", m(i))
        buffer.add("r2", m(i))
    assert sink.calls == [] and buffer.pending == 20
    buffer.flush()
    assert len(sink.calls) == 1 and buffer.pending == 0
    assert sink.points("r1") == [m(i) for i in range(10)]
    buffer.close()


def test_full_buffer_writes_synchronously() -> None:
    sink = Sink()
    buffer = MetricBuffer(sink, max_points=5, max_delay=60)
    for i in range(5):
        buffer.add("r", m(i))
    assert len(sink.calls) == 1 and buffer.pending == 0
    buffer.close()


def test_background_flush_within_max_delay() -> None:
    sink = Sink()
    buffer = MetricBuffer(sink, max_points=1000, max_delay=0.05)
    start = time.monotonic()
    buffer.add("r", m(1))
    assert sink.event.wait(2.0), "buffered point was never flushed in the background"
    assert time.monotonic() - start < 1.5
    assert sink.points("r") == [m(1)]
    buffer.close()


def test_flush_of_one_run_leaves_the_others() -> None:
    sink = Sink()
    buffer = MetricBuffer(sink, max_points=1000, max_delay=60)
    buffer.add("a", m(1))
    buffer.add("b", m(2))
    buffer.flush("a")
    assert sink.points("a") == [m(1)] and sink.points("b") == [] and buffer.pending == 1
    buffer.close()
    assert sink.points("b") == [m(2)]


def test_failed_flush_loses_nothing_and_keeps_order() -> None:
    sink = Sink()
    buffer = MetricBuffer(sink, max_points=1000, max_delay=60)
    buffer.add("r", m(1))
    sink.fail = True
    with pytest.raises(OSError, match="disk full"):
        buffer.flush()
    buffer.add("r", m(2))
    sink.fail = False
    buffer.flush()
    assert sink.points("r") == [m(1), m(2)]
    buffer.close()


def test_close_is_prompt_and_flushes() -> None:
    sink = Sink()
    buffer = MetricBuffer(sink, max_points=1000, max_delay=30)
    buffer.add("r", m(1))
    start = time.monotonic()
    buffer.close()
    assert time.monotonic() - start < 1.0, "close waited for the flush delay"
    assert sink.points("r") == [m(1)]
