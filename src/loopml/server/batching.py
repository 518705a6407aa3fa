"""Adaptive batching: requests for the same model version that are ready at the same
moment are answered by one model call.

A request puts its (already validated) columns in the queue of its model version and
waits. The first request of an empty queue schedules a flush for the event loop's next
turn (or after ``max_wait_s``, when set): by then every request the server has already
read is in the queue, so under load batches form by themselves, and a lone request waits
for nothing but one loop turn. A flush concatenates the columns, calls the model once and
hands each request its slice. If the batched call fails, each request is retried alone,
so that one bad request cannot fail the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loopml.domain.deployments import Target
from loopml.server.predict import Prediction
from loopml.server.routing import Served

Columns = dict[str, list[Any]]
Predict = Callable[[Served, Columns], Prediction]


@dataclass
class _Waiting:
    columns: Columns
    rows: int
    future: asyncio.Future[tuple[Prediction, float]]


class Batcher:
    def __init__(
        self, predict: Predict, max_batch_rows: int = 256, max_wait_s: float = 0.0
    ) -> None:
        self.predict_fn = predict
        self.max_batch_rows = max_batch_rows
        self.max_wait_s = max_wait_s
        self.queues: dict[Target, list[_Waiting]] = {}
        self.batch_sizes: dict[int, int] = {}  # requests per model call -> calls (metrics)

    async def predict(
        self, served: Served, columns: Columns, rows: int
    ) -> tuple[Prediction, float]:
        """The prediction for ``columns`` and the latency of the model call, in ms."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(columns, rows, loop.create_future())
        queue = self.queues.get(served.target)
        if queue is None:
            queue = self.queues[served.target] = []
            if self.max_wait_s > 0:
                loop.call_later(self.max_wait_s, self._flush, served)
            else:
                loop.call_soon(self._flush, served)
        queue.append(waiting)
        if sum(w.rows for w in queue) >= self.max_batch_rows:
            self._flush(served)
        return await waiting.future

    def _flush(self, served: Served) -> None:
        items = self.queues.pop(served.target, None)
        if not items:
            return
        self.batch_sizes[len(items)] = self.batch_sizes.get(len(items), 0) + 1
        if len(items) == 1:
            self._answer_alone(served, items[0])
            return
        names = list(items[0].columns)
        if any(list(w.columns) != names for w in items[1:]):
            for w in items:  # different column sets (no signature): one call each
                self._answer_alone(served, w)
            return
        merged = {name: [v for w in items for v in w.columns[name]] for name in names}
        started = time.perf_counter()
        try:
            result = self.predict_fn(served, merged)
        except Exception:  # retry alone, so the bad request fails and the others do not
            for w in items:
                self._answer_alone(served, w)
            return
        latency = (time.perf_counter() - started) * 1000
        start = 0
        for w in items:
            end = start + w.rows
            part = Prediction(
                result.values[start:end],
                None if result.confidence is None else result.confidence[start:end],
            )
            if not w.future.done():
                w.future.set_result((part, latency))
            start = end

    def _answer_alone(self, served: Served, w: _Waiting) -> None:
        started = time.perf_counter()
        try:
            result = self.predict_fn(served, w.columns)
        except Exception as exc:
            if not w.future.done():
                w.future.set_exception(exc)
            return
        if not w.future.done():
            w.future.set_result((result, (time.perf_counter() - started) * 1000))
