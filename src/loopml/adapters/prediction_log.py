"""The prediction log's writer: records go to Parquet segments off the request path.

``submit`` puts a :class:`~loopml.domain.predictions.PredictionRecord` on a bounded
``queue.Queue`` and returns at once (a few microseconds, no I/O, no Arrow); when the queue
is full it returns False and counts the record as dropped. One background thread drains
the queue (when busy, every ``GATHER_SECONDS`` rather than once per record),
copies each record into its segment's columns at once (:class:`SegmentBuilder`: the
serving process keeps no per-record objects alive) and writes **segments**: one Parquet
file per segment, under
``<workspace>/.loopml/predictions/<deployment>/``, named
``<first time_ms>-<last time_ms>-<writer id>-<seq>.parquet`` (13-digit zero-padded
milliseconds), so a plain listing sorts by time and a reader skips files outside a time
window without opening them.

**Layout: one row per predicted row.** A request of ``k`` rows becomes ``k`` rows with the
request's ``request_id``, ``time_ms``, ``deployment``, ``model``, ``version``, ``route``,
``latency_ms`` and ``rows`` repeated and ``row`` (0..k-1) set, and one column per input
(``in.<name>``) and per output (``out.<name>``). Drift monitoring reads one feature as one
Parquet column of plain values, without unpacking structs or lists; the repeated
request-level columns cost almost nothing once Parquet's dictionary and run-length
encoding are applied. Records of one segment with different inputs share the union of
their columns (nulls where a record had none); a column whose values Arrow cannot type
together (strings and numbers mixed) is stored as JSON text. Readers unify segments whose
schemas differ.

**Durability contract.** A segment is written to a temporary file beside its final name,
fsynced, renamed into place and the directory fsynced: it is complete or absent, never
half-written. A record is durable once its segment is renamed into place, which happens
when ``segment_records`` records (all deployments together) are waiting or
``segment_seconds`` after the first of them reached the writer, whichever comes first;
``flush()`` forces it and returns True once everything submitted before the call is
durable. Records still queued or waiting when the process is killed are lost: at any
moment at most ``queue_size + segment_records`` records. A record in a renamed segment is
never lost.

**Losses are never silent.** Queue overflow, records the writer cannot store (an invalid
deployment name, columns whose lengths disagree with ``rows``) and records still unwritten
at ``close`` are counted in :attr:`dropped`; failed writes (a full disk) in
:attr:`write_errors`. The writer logs them (logger ``loopml.predictions``) and keeps them
in a sidecar file ``_stats/<writer id>.json``, updated within ``segment_seconds`` of a
change, so ``loopml predictions stats`` reports them after a restart. A failed write never
stops the server: the writer keeps the segment, retries with a growing pause (up to
``max_retry_seconds``) and meanwhile stops draining the queue, so memory stays bounded and
further records are dropped and counted rather than piling up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.adapters.fsync import fsync_directory
from loopml.adapters.prediction_segments import (
    STATS_DIR,
    SegmentBuilder,
    SegmentWriter,
    check_record,
    segment_name,
    write_json_atomic,
    write_segment,
)
from loopml.domain.errors import InvalidInput
from loopml.domain.predictions import PredictionRecord

log = logging.getLogger("loopml.predictions")


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False


_STOP = object()
GATHER_SECONDS = 0.01  # a busy writer takes new records this often


class ParquetPredictionSink:
    """A :class:`~loopml.ports.predictions.PredictionSink` writing Parquet segments under ``root``.

    The thread starts on the first ``submit``; constructing the sink does no I/O.
    ``segment_writer`` is the function that stores one segment (tests slow it down or make
    it fail).
    """

    def __init__(
        self,
        root: Path,
        *,
        queue_size: int = 10_000,
        segment_records: int = 1_000,
        segment_seconds: float = 1.0,
        retry_seconds: float = 0.5,
        max_retry_seconds: float = 5.0,
        segment_writer: SegmentWriter = write_segment,
    ) -> None:
        if queue_size < 1 or segment_records < 1 or segment_seconds <= 0:
            raise InvalidInput(
                f"prediction log needs queue_size >= 1, segment_records >= 1 and "
                f"segment_seconds > 0; got {queue_size}, {segment_records}, {segment_seconds}"
            )
        self.root = root
        self.writer_id = secrets.token_hex(6)
        self._queue: queue.Queue[Any] = queue.Queue(queue_size)
        self._segment_records = segment_records
        self._segment_seconds = segment_seconds
        self._retry_seconds = retry_seconds
        self._max_retry_seconds = max_retry_seconds
        self._write = segment_writer
        self._lock = threading.Lock()
        self._running = False  # True between the first submit and close
        self._closed = False
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # also wakes a writer pausing after a failure
        self._wake = threading.Event()  # ends a gathering pause at once: flush and close
        self._overflow = 0
        self._rejected = 0
        self._lost = 0
        self._errors = 0
        self._last_error = ""
        self._written = 0
        self._segments = 0
        self._seq = 0
        self._known_dirs: set[Path] = set()
        self._valid_names: set[str] = set()
        self._persisted: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._next_persist = 0.0
        self._started_ms = 0
        self._first_at = 0.0  # when the oldest record waiting in the writer was taken

    # -- the request path --------------------------------------------------------------

    def submit(self, record: PredictionRecord) -> bool:
        """Queue ``record`` for writing; False (and counted) if the queue is full."""
        if not self._running and not self._start():
            with self._lock:
                self._overflow += 1
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            with self._lock:
                self._overflow += 1
            return False
        return True

    @property
    def dropped(self) -> int:
        """Records that will never be written: overflow, rejected, and lost at close."""
        return self._overflow + self._rejected + self._lost

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def write_errors(self) -> int:
        return self._errors

    @property
    def last_error(self) -> str:
        return self._last_error

    @property
    def written(self) -> int:
        """Records stored in segments by this sink."""
        return self._written

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write everything submitted so far; True once it is durable, False on timeout
        or when the writer is failing (see :attr:`last_error`)."""
        if self._thread is None:
            return True  # nothing was ever submitted
        if self._closed:
            return self._lost == 0
        deadline = time.monotonic() + timeout_s
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout_s)
        except queue.Full:
            return False
        self._wake.set()
        return marker.done.wait(max(0.0, deadline - time.monotonic())) and marker.ok

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is waiting and stop the thread; records submitted later are dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._running = False
            thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        with contextlib.suppress(queue.Full):  # a full queue means a busy writer: it sees
            self._queue.put_nowait(_STOP)  # the flag after its current batch
        thread.join(timeout_s)
        if thread.is_alive():
            log.error(
                "prediction log writer did not stop within %.1f s; %d records may be lost",
                timeout_s,
                self._queue.qsize(),
            )

    def _start(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            if self._thread is None:
                self._started_ms = int(time.time() * 1000)
                self._thread = threading.Thread(
                    target=self._run, name=f"loopml-prediction-log-{self.writer_id}", daemon=True
                )
                self._thread.start()
                self._running = True
            return True

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        pending: dict[str, SegmentBuilder] = {}  # records taken, not yet stored
        gathering = False
        failing = False
        backoff = self._retry_seconds
        while not self._stopping.is_set():
            if failing:
                if self._stopping.wait(backoff):
                    break
                failing = not self._seal(pending)
                backoff = (
                    min(backoff * 2, self._max_retry_seconds) if failing else self._retry_seconds
                )
                self._persist_counters()
                continue
            wait = self._segment_seconds
            if pending:
                wait = max(0.0, self._first_at + self._segment_seconds - time.monotonic())
            items = self._take(wait, self._segment_records - _records(pending), gathering)
            gathering = len(items) > 1  # records arrive faster than one per wake-up
            failing = not self._handle(items, pending)
            del items  # the records are copied into ``pending``: let them go now
            if (
                pending
                and not failing
                and time.monotonic() - self._first_at >= self._segment_seconds
            ):
                failing = not self._seal(pending)
            self._persist_counters()
        self._finish(pending)

    def _handle(self, items: list[Any], pending: dict[str, SegmentBuilder]) -> bool:
        """Copy the records taken into ``pending`` and answer flush requests, sealing a
        full segment; False once a write fails (what is left is requeued)."""
        for index, item in enumerate(items):
            ok = True
            if item is _STOP:
                self._stopping.set()
            elif isinstance(item, _Flush):
                ok = self._seal(pending)
                self._persist_counters(force=True)
                item.ok = ok
                item.done.set()
            else:
                if not pending:
                    self._first_at = time.monotonic()
                self._add(pending, item)
                if _records(pending) >= self._segment_records:
                    ok = self._seal(pending)
            if not ok or self._stopping.is_set():
                self._requeue(items[index + 1 :], pending)
                return ok
        return True

    def _take(self, wait: float, limit: int, gathering: bool) -> list[Any]:
        """Up to ``limit`` queued items, waiting up to ``wait`` seconds for them.

        A writer that found at most one item last time (``gathering`` False) blocks on
        the queue and wakes for the next one. A busy one pauses ``GATHER_SECONDS`` (or
        until ``flush``/``close``) and then takes what came meanwhile: a hundred
        wake-ups a second at most rather than one per record, each a thread switch the
        serving thread pays for, and each short enough (about 20 records at 2,000
        requests/s) that copying them holds the interpreter lock for well under a
        millisecond. Longer pauses measured worse: the p99 latency at one connection
        grew with the records copied per wake-up (benchmarks/README.md).

        Taking a batch under the queue's own lock costs one lock round per batch instead
        of one ``get`` per record. It relies on ``queue.Queue`` keeping its items in the
        ``queue`` deque guarded by ``mutex`` and ``not_full``, as it has since Python 2.
        ``limit`` is the room left in the segment, so records taken plus records waiting
        never exceed ``segment_records``.
        """
        q = self._queue
        if gathering:
            self._wake.wait(min(GATHER_SECONDS, wait))
            self._wake.clear()
            first = []
        else:
            try:
                first = [q.get(timeout=wait)]
            except queue.Empty:
                return []
        with q.mutex:
            count = min(max(limit, 1) - len(first), len(q.queue))
            rest = [q.queue.popleft() for _ in range(count)]
            if count:
                q.not_full.notify_all()
        return [*first, *rest]

    def _requeue(self, items: list[Any], pending: dict[str, SegmentBuilder]) -> None:
        """Keep items taken but not handled because the writer began failing or stopping:
        records join ``pending`` (which stays within ``segment_records``: see ``_take``),
        flush requests go back to the front of the queue."""
        for item in items:
            if isinstance(item, PredictionRecord):
                self._add(pending, item)
        markers = [i for i in items if not isinstance(i, PredictionRecord)]
        if markers:
            with self._queue.mutex:
                self._queue.queue.extendleft(reversed(markers))
                self._queue.not_empty.notify()

    def _finish(self, pending: dict[str, SegmentBuilder]) -> None:
        """On close: write whatever is queued or waiting, once; count what cannot be."""
        markers: list[_Flush] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Flush):
                markers.append(item)
            elif item is not _STOP:
                self._add(pending, item)
        if pending and not self._seal(pending):
            lost = _records(pending)
            with self._lock:
                self._lost += lost
            log.error(
                "prediction log closed with %d records it could not write (%s)",
                lost,
                self._last_error,
            )
            pending.clear()
        self._persist_counters(force=True)
        for marker in markers:
            marker.ok = self._lost == 0
            marker.done.set()

    def _add(self, pending: dict[str, SegmentBuilder], record: PredictionRecord) -> None:
        """Copy ``record`` into its deployment's segment, or reject (and count) it."""
        try:
            check_record(record, self._valid_names)
        except Exception as exc:  # whatever is wrong with one record must not stop the log
            self._reject(1, str(exc))
            return
        builder = pending.get(record.deployment)
        if builder is None:
            builder = pending[record.deployment] = SegmentBuilder()
        builder.add(record)

    def _seal(self, pending: dict[str, SegmentBuilder]) -> bool:
        """Write ``pending`` as one segment per deployment; keep (in ``pending``) what
        failed to write and return False if anything did."""
        failed: dict[str, SegmentBuilder] = {}
        for deployment, builder in pending.items():
            name = segment_name(builder.first_ms, builder.last_ms, self.writer_id, self._seq)
            try:
                table = builder.table()
                directory = self._directory(deployment)
                self._write(directory, name, table)
            except OSError as exc:
                with self._lock:
                    self._errors += 1
                self._last_error = f"writing {self.root / deployment / name}: {exc}"
                log.error("prediction log: %s; will retry", self._last_error)
                failed[deployment] = builder
                continue
            except Exception as exc:  # not the disk (a type Parquet cannot hold): no retry
                self._reject(builder.records, f"cannot store {deployment} records: {exc}")
                continue
            self._seq += 1
            self._segments += 1
            self._written += builder.records
        pending.clear()
        pending.update(failed)
        return not failed

    def _reject(self, count: int, reason: str) -> None:
        with self._lock:
            self._rejected += count
        self._last_error = reason
        log.error("prediction log dropped %d record(s): %s", count, reason)

    def _directory(self, deployment: str) -> Path:
        directory = self.root / deployment
        if directory not in self._known_dirs:
            existed = directory.is_dir()
            directory.mkdir(parents=True, exist_ok=True)
            if not existed:
                fsync_directory(directory.parent)
            self._known_dirs.add(directory)
        return directory

    def _persist_counters(self, *, force: bool = False) -> None:
        """Log and store changed loss counters: at most once per ``segment_seconds`` (the
        writer wakes that often when idle), and at once when ``force``."""
        counters = (self._overflow, self._rejected, self._lost, self._errors)
        if counters == self._persisted:
            return
        now = time.monotonic()
        if not force and now < self._next_persist:
            return
        self._next_persist = now + self._segment_seconds
        if counters[0] != self._persisted[0]:
            log.warning(
                "prediction log queue was full: %d records dropped so far (queue size %d)",
                counters[0],
                self._queue.maxsize,
            )
        self._persisted = counters
        data = {
            "writer": self.writer_id,
            "pid": os.getpid(),
            "started_ms": self._started_ms,
            "updated_ms": int(time.time() * 1000),
            "overflow": counters[0],
            "rejected": counters[1],
            "lost": counters[2],
            "write_errors": counters[3],
            "last_error": self._last_error,
        }
        try:
            directory = self.root / STATS_DIR
            directory.mkdir(parents=True, exist_ok=True)
            write_json_atomic(directory / f"{self.writer_id}.json", data)
        except OSError as exc:  # the log line above still reports the counts
            log.error("prediction log could not record its loss counters: %s", exc)


def _records(pending: dict[str, SegmentBuilder]) -> int:
    return sum(builder.records for builder in pending.values())
