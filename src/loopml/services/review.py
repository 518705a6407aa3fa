"""The human review queue: unsure predictions in, people's answers out as labels.

:meth:`ReviewService.sync` reads a deployment's prediction log from its cursor and queues
every row whose confidence is below ``review_below``: a classifier's logged
``confidence`` (its top class's probability), or the score of the deployment's
``review_function`` (``file.py:name``, called with the window's inputs and outputs as
pandas DataFrames, returning one confidence per row). The log is written off the request
path, so the queue follows the traffic within the log's flush interval; the cursor lags
by :data:`LAG_MS` so that segments flushed late by another worker are still seen, and a
row already queued is never queued twice.

:meth:`label` stores the answer on the item and, for single-row requests, as feedback of
the request, so reviewed rows join the prediction log like any label (and the retrain
loop reads both). Every answer is audited.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.audit import AuditRecord
from loopml.domain.errors import InvalidInput
from loopml.domain.monitoring import MonitorSpec
from loopml.domain.predictions import Feedback, Route
from loopml.domain.review import Agreement, ReviewItem, ReviewStatus, agreement, agrees
from loopml.ports import Clock
from loopml.ports.monitoring import ReviewStore
from loopml.ports.predictions import PredictionReader
from loopml.services.monitoring import INPUT, OUTPUT, columns_with_prefix

LAG_MS = 60_000
CONFIDENCE = "out.confidence"
PREDICTION = "out.prediction"


class ReviewService:
    def __init__(
        self,
        store: ReviewStore,
        reader: PredictionReader,
        clock: Clock,
        load_function: Callable[[str], Callable[..., Any]],
        tolerance: float = 0.1,
    ) -> None:
        self.store = store
        self.reader = reader
        self.clock = clock
        self.load_function = load_function
        self.tolerance = tolerance  # numbers agree within 10% of the label by default

    def sync(self, spec: MonitorSpec) -> int:
        """Queue the deployment's unsure rows logged since the cursor; return how many."""
        if spec.review_below is None:
            return 0
        cursor = self.store.get_cursor(spec.deployment)
        since = max(0, cursor - LAG_MS) if cursor else None
        table = self.reader.read(spec.deployment, since)
        if table.num_rows == 0:
            return 0
        newest = int(pc.max(table.column("time_ms")).as_py())
        # A shadow's answer was never returned, and it shares the request id of the
        # answer that was: only what callers received is reviewed.
        table = table.filter(pc.not_equal(table.column("route"), Route.SHADOW.value))
        confidence = self._confidence(spec, table)
        unsure = np.flatnonzero(confidence < spec.review_below)
        items = [_item(table, int(i), float(confidence[i])) for i in unsure]
        added = self.store.add_items(items) if items else 0
        self.store.set_cursor(spec.deployment, max(cursor, newest))
        return added

    def _confidence(self, spec: MonitorSpec, table: pa.Table) -> np.ndarray:
        if spec.review_function is not None:
            function = self.load_function(spec.review_function)
            inputs = columns_with_prefix(table, INPUT).to_pandas()
            outputs = columns_with_prefix(table, OUTPUT).to_pandas()
            values = np.asarray(function(inputs, outputs), dtype=float)
            if values.shape != (table.num_rows,):
                raise InvalidInput(
                    f"review_function {spec.review_function} returned shape {values.shape} "
                    f"for {table.num_rows} rows; it must return one confidence per row"
                )
            return values
        if CONFIDENCE not in table.column_names:
            raise InvalidInput(
                f"[monitor.{spec.deployment}] review_below is set but the deployment's model "
                "logs no confidence (only classifiers with predict_proba do); set "
                "review_function = 'file.py:name' to score its rows"
            )
        return np.asarray(table.column(CONFIDENCE).to_numpy(zero_copy_only=False), dtype=float)

    def next(self, deployment: str | None) -> ReviewItem | None:
        return self.store.next_item(deployment)

    def label(self, item_id: int, label: Any, reviewer: str) -> ReviewItem:
        item = self.store.get_item(item_id)
        now = self.clock.now_ms()
        agreed = agrees(item.output, label, self.tolerance)
        audit = AuditRecord(
            actor=reviewer,
            action="review.label",
            object_type="review_item",
            object_id=f"{item.deployment}/{item.request_id}/{item.row}",
            before={"status": item.status.value},
            after={"status": ReviewStatus.LABELLED.value, "label": label, "agrees": agreed},
            reason=None,
        )
        answered = self.store.label_item(item_id, label, reviewer, now, agreed, audit)
        if item.request_rows == 1:  # a request's feedback labels every row it has
            self.reader.add_feedback([Feedback(item.request_id, now, label)])
        return answered

    def stats(self, deployment: str | None) -> tuple[int, float | None]:
        """(open items, age in seconds of the oldest open item)."""
        count, oldest = self.store.open_stats(deployment)
        age = None if oldest is None else max(0.0, (self.clock.now_ms() - oldest) / 1000)
        return count, age

    def agreement(self, deployment: str | None, limit: int = 10_000) -> Agreement:
        return agreement(self.store.list_items(deployment, ReviewStatus.LABELLED, limit))


def _item(table: pa.Table, i: int, confidence: float) -> ReviewItem:
    row = {name: table.column(name)[i].as_py() for name in table.column_names}
    inputs = {k[3:]: v for k, v in row.items() if k.startswith("in.")}
    output = row.get(PREDICTION)
    return ReviewItem(
        deployment=row["deployment"],
        request_id=row["request_id"],
        row=int(row.get("row") or 0),
        model=row["model"],
        version=int(row["version"]),
        time_ms=int(row["time_ms"]),
        inputs=inputs,
        output=_plain(output),
        confidence=confidence,
        request_rows=int(row.get("rows") or 1),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
