"""Group commit for metric points.

``log_metric`` must cost microseconds, not a durable transaction, so points go to an
in-memory buffer and are written in one transaction per flush, across all runs of the
process. The durability contract (also in docs/tracking.md):

* When ``log_metric`` returns, the point is in process memory only.
* It becomes durable when the buffer is flushed, which happens
  - when ``max_points`` points are waiting (the call that fills the buffer writes it),
  - at most ``max_delay`` seconds after the oldest waiting point was logged (a daemon
    thread flushes in the background),
  - when its run ends, on an explicit ``flush()``, and at normal interpreter exit.
* ``flush()`` returns only after the points are committed.
* A process killed with SIGKILL loses at most the points logged since the last flush:
  at most ``max_delay`` seconds' worth, and never a point of a run that has ended.

A flush that fails keeps its points in the buffer and raises; the next flush retries them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from loopml.domain.tracking import Metric

Sink = Callable[[Sequence[tuple[str, Sequence[Metric]]]], None]


class MetricBuffer:
    def __init__(self, sink: Sink, *, max_points: int = 10_000, max_delay: float = 1.0) -> None:
        self._sink = sink
        self._max_points = max_points
        self._max_delay = max_delay
        self._lock = threading.Lock()  # guards _pending and _count
        self._flush_lock = threading.Lock()  # one flush at a time, in order
        self._pending: dict[str, list[Metric]] = {}
        self._count = 0
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.last_error: BaseException | None = None

    def add(self, run_id: str, metric: Metric) -> None:
        with self._lock:
            points = self._pending.get(run_id)
            if points is None:
                self._pending[run_id] = [metric]
            else:
                points.append(metric)
            self._count += 1
            full = self._count >= self._max_points
            first = self._count == 1
        if full:
            self.flush()
        elif first:
            self._ensure_thread()
            self._wake.set()

    def add_many(self, run_id: str, metrics: Sequence[Metric]) -> None:
        if not metrics:
            return
        with self._lock:
            self._pending.setdefault(run_id, []).extend(metrics)
            self._count += len(metrics)
            full = self._count >= self._max_points
        if full:
            self.flush()
        else:
            self._ensure_thread()
            self._wake.set()

    @property
    def pending(self) -> int:
        return self._count

    def flush(self, run_id: str | None = None) -> None:
        """Write waiting points (all, or only ``run_id``'s) and return once committed."""
        with self._flush_lock:
            with self._lock:
                if run_id is None:
                    taken, self._pending = self._pending, {}
                else:
                    points = self._pending.pop(run_id, None)
                    taken = {run_id: points} if points else {}
                self._count -= sum(len(v) for v in taken.values())
            if not taken:
                return
            try:
                self._sink(list(taken.items()))
            except BaseException:
                with self._lock:  # put them back in front, keeping order
                    for rid, points in taken.items():
                        self._pending[rid] = points + self._pending.get(rid, [])
                    self._count += sum(len(v) for v in taken.values())
                raise

    def close(self) -> None:
        """Flush everything and stop the background thread."""
        self._closed = True
        self._closing.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.flush()

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closed:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="loopml-metric-flusher", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            if self._closing.is_set():
                return
            # Points are waiting: give them max_delay to gather company, then write.
            self._closing.wait(self._max_delay)
            try:
                self.flush()
                self.last_error = None
            except Exception as exc:  # kept for the next flush; surfaced on close/flush
                self.last_error = exc
                self._wake.set()
