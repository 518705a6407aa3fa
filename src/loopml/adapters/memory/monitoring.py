"""In-memory monitoring, review and loop stores, sharing :class:`MemoryDatabase`.

They keep the rows the SQL tables keep, structured parts as the same canonical JSON text
(:mod:`loopml.adapters.monitor_rows`), so a value that SQL would refuse or change (a set,
a tuple that comes back as a list) is refused or changed here too, and the contract suite
can damage a stored row on every backend alike. Every call holds the database lock,
checks first and changes last, so a refused call leaves neither a row nor an audit event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loopml.adapters.memory.stores import MemoryDatabase
from loopml.adapters.monitor_rows import (
    DEPLOYMENT_LEN,
    JOB_LEN,
    REFERENCE_KEY_LEN,
    answered_already,
    check_finished,
    check_limit,
    fits,
    job_finished_already,
    label_columns,
    loop_changed_meanwhile,
    loop_exists,
    loop_from_text,
    loop_row,
    no_job_slot,
    no_loop,
    no_review_item,
    no_window,
    reference_from_text,
    review_from_row,
    review_row,
    to_json,
    window_from_text,
    window_row,
)
from loopml.domain.loop import JobRun, JobState, LoopRun
from loopml.domain.review import ReviewItem, ReviewStatus

if TYPE_CHECKING:
    from loopml.domain.audit import AuditRecord
    from loopml.domain.monitoring import WindowReport
    from loopml.ports import Clock


class MemoryMonitorStore:
    def __init__(self, db: MemoryDatabase, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def add_window(self, report: WindowReport) -> bool:
        row = window_row(report)
        key = (report.deployment, report.window_key)
        with self.db.lock:
            if key in self.db.windows:
                return False
            self.db.windows[key] = row
            return True

    def replace_window(self, report: WindowReport) -> None:
        row = window_row(report)
        key = (report.deployment, report.window_key)
        with self.db.lock:
            stored = self.db.windows.get(key)
            if stored is None:
                raise no_window(report)
            # the SQL row keeps its creation time (and so its place in the order)
            self.db.windows[key] = {**row, "created_ms": stored["created_ms"]}

    def list_windows(
        self, deployment: str, since_ms: int | None = None, limit: int = 1000
    ) -> list[WindowReport]:
        check_limit(limit)
        with self.db.lock:
            rows = [
                r
                for (d, _), r in self.db.windows.items()
                if d == deployment and (since_ms is None or r["created_ms"] >= since_ms)
            ]
        rows.sort(key=lambda r: r["created_ms"])  # stable: creation order breaks ties
        return [window_from_text(deployment, r["window_key"], r["report"]) for r in rows[-limit:]]

    def find_reference(self, key: str) -> dict[str, Any] | None:
        with self.db.lock:
            text = self.db.references.get(key)
        return None if text is None else reference_from_text(key, text)

    def put_reference(self, key: str, data: dict[str, Any]) -> None:
        fits("reference key", key, REFERENCE_KEY_LEN)
        text = to_json(f"monitoring reference {key!r}", dict(data))
        with self.db.lock:
            self.db.references[key] = text


class MemoryReviewStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    def add_items(self, items: Sequence[ReviewItem]) -> int:
        rows = [review_row(item) for item in items]
        with self.db.lock:
            items_by_id = self.db.review_items
            taken = {(r["request_id"], r["row"]) for r in items_by_id.values()}
            added = 0
            for row in rows:
                if (row["request_id"], row["row"]) in taken:
                    continue
                taken.add((row["request_id"], row["row"]))
                item_id = len(items_by_id) + 1  # items are never deleted
                items_by_id[item_id] = {**row, "id": item_id}
                added += 1
            return added

    def next_item(self, deployment: str | None) -> ReviewItem | None:
        with self.db.lock:
            rows = self._open(deployment)
        return review_from_row(min(rows, key=_oldest_first)) if rows else None

    def get_item(self, item_id: int) -> ReviewItem:
        with self.db.lock:
            return review_from_row(self._row(item_id))

    def label_item(
        self,
        item_id: int,
        label: Any,
        reviewer: str,
        time_ms: int,
        agrees: bool,
        audit: AuditRecord,
    ) -> ReviewItem:
        values = label_columns(item_id, label, reviewer, time_ms, agrees)
        with self.db.lock:
            row = self._row(item_id)
            if row["status"] != ReviewStatus.OPEN.value:
                raise answered_already(review_from_row(row))
            answered = {**row, **values}
            item = review_from_row(answered)
            self.db.review_items[item_id] = answered
            self.db.append_event(audit, time_ms)
            return item

    def list_items(
        self, deployment: str | None, status: ReviewStatus | None = None, limit: int = 100
    ) -> list[ReviewItem]:
        check_limit(limit)
        wanted = None if status is None else ReviewStatus(status).value
        with self.db.lock:
            rows = [
                r
                for r in self.db.review_items.values()
                if (deployment is None or r["deployment"] == deployment)
                and (wanted is None or r["status"] == wanted)
            ]
        rows.sort(key=_oldest_first, reverse=True)
        return [review_from_row(r) for r in rows[:limit]]

    def open_stats(self, deployment: str | None) -> tuple[int, int | None]:
        with self.db.lock:
            rows = self._open(deployment)
        return len(rows), min((int(r["time_ms"]) for r in rows), default=None)

    def get_cursor(self, deployment: str) -> int:
        with self.db.lock:
            return self.db.review_cursors.get(deployment, 0)

    def set_cursor(self, deployment: str, time_ms: int) -> None:
        fits("deployment name", deployment, DEPLOYMENT_LEN)
        with self.db.lock:
            self.db.review_cursors[deployment] = time_ms

    def _open(self, deployment: str | None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.db.review_items.values()
            if r["status"] == ReviewStatus.OPEN.value
            and (deployment is None or r["deployment"] == deployment)
        ]

    def _row(self, item_id: int) -> dict[str, Any]:
        found = self.db.review_items.get(item_id)
        if found is None:
            raise no_review_item(item_id)
        return found


class MemoryLoopStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    def create_loop(self, run: LoopRun, audit: AuditRecord) -> None:
        row = loop_row(run)
        with self.db.lock:
            if run.id in self.db.loops:
                raise loop_exists(run)
            self.db.loops[run.id] = row
            self.db.append_event(audit, run.created_ms)

    def update_loop(self, run: LoopRun, audit: AuditRecord) -> None:
        row = loop_row(run)
        with self.db.lock:
            stored = self.db.loops.get(run.id)
            if stored is None:
                raise no_loop(run.id)
            if stored["revision"] != run.revision - 1:
                raise loop_changed_meanwhile(run, stored["revision"])
            self.db.loops[run.id] = row
            self.db.append_event(audit, run.updated_ms)

    def get_loop(self, loop_id: str) -> LoopRun:
        with self.db.lock:
            row = self.db.loops.get(loop_id)
        if row is None:
            raise no_loop(loop_id)
        return loop_from_text(loop_id, row["data"])

    def list_loops(self, deployment: str | None, limit: int = 50) -> list[LoopRun]:
        check_limit(limit)
        with self.db.lock:
            rows = [
                r
                for r in self.db.loops.values()
                if deployment is None or r["deployment"] == deployment
            ]
        rows.sort(key=lambda r: (r["created_ms"], r["id"]), reverse=True)
        return [loop_from_text(r["id"], r["data"]) for r in rows[:limit]]

    def claim_job(self, job: str, due_ms: int, now_ms: int) -> bool:
        fits("job name", job, JOB_LEN)
        with self.db.lock:
            if (job, due_ms) in self.db.jobs:
                return False
            self.db.jobs[job, due_ms] = JobRun(job, due_ms, now_ms)
            return True

    def finish_job(self, job: str, due_ms: int, state: JobState, now_ms: int, detail: str) -> None:
        check_finished(job, state)
        with self.db.lock:
            found = self.db.jobs.get((job, due_ms))
            if found is None:
                raise no_job_slot(job, due_ms)
            if found.state is not JobState.RUNNING:
                raise job_finished_already(found)
            self.db.jobs[job, due_ms] = dataclasses.replace(
                found, state=JobState(state), finished_ms=now_ms, detail=detail
            )

    def last_job(self, job: str) -> JobRun | None:
        with self.db.lock:
            found = [r for (name, _), r in self.db.jobs.items() if name == job]
        return max(found, key=lambda r: r.due_ms, default=None)


def _oldest_first(row: Mapping[str, Any]) -> tuple[int, int]:
    return int(row["time_ms"]), int(row["id"])
