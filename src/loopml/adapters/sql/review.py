"""The human review queue in SQL.

Items are inserted in batches that do nothing on the unique ``(request_id, row)``, so a
scan of the prediction log that runs again (or twice at once) queues each row once. An
answer is a compare-and-set on the open status, written with its audit event in the same
transaction: of two reviewers answering one item at once, the first wins and the second
is refused with :class:`InvalidState`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select, update

from loopml.adapters.monitor_rows import (
    DEPLOYMENT_LEN,
    answered_already,
    check_limit,
    fits,
    label_columns,
    no_review_item,
    review_from_row,
    review_row,
)
from loopml.adapters.sql import schema as t
from loopml.adapters.sql.audit import append_event
from loopml.adapters.sql.database import SqlDatabase
from loopml.domain.audit import AuditRecord
from loopml.domain.review import ReviewItem, ReviewStatus

_i = t.review_items.c
_c = t.review_cursors.c
_OPEN = ReviewStatus.OPEN.value
_BATCH = 500  # rows per INSERT: 16 parameters each stays far below SQLite's limit


class SqlReviewStore:
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def add_items(self, items: Sequence[ReviewItem]) -> int:
        rows = [review_row(item) for item in items]  # every item checked before any write
        added = 0
        with self.db.write() as conn:
            for start in range(0, len(rows), _BATCH):
                result = conn.execute(
                    self.db.upsert(t.review_items)
                    .values(rows[start : start + _BATCH])
                    .on_conflict_do_nothing(index_elements=["request_id", "row"])
                    .returning(_i.id)
                )
                added += len(result.all())
        return added

    def next_item(self, deployment: str | None) -> ReviewItem | None:
        query = select(t.review_items).where(_i.status == _OPEN)
        if deployment is not None:
            query = query.where(_i.deployment == deployment)
        with self.db.read() as conn:
            row = conn.execute(query.order_by(_i.time_ms, _i.id).limit(1)).mappings().first()
        return None if row is None else review_from_row(row)

    def get_item(self, item_id: int) -> ReviewItem:
        with self.db.read() as conn:
            return self._item(conn, item_id)

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
        with self.db.write() as conn:
            done = conn.execute(
                update(t.review_items).where(_i.id == item_id, _i.status == _OPEN).values(**values)
            )
            if done.rowcount != 1:
                raise answered_already(self._item(conn, item_id))
            append_event(conn, audit, time_ms)
            return self._item(conn, item_id)

    def list_items(
        self, deployment: str | None, status: ReviewStatus | None = None, limit: int = 100
    ) -> list[ReviewItem]:
        query = (
            select(t.review_items)
            .order_by(_i.time_ms.desc(), _i.id.desc())
            .limit(check_limit(limit))
        )
        if deployment is not None:
            query = query.where(_i.deployment == deployment)
        if status is not None:
            query = query.where(_i.status == ReviewStatus(status).value)
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        return [review_from_row(row) for row in rows]

    def open_stats(self, deployment: str | None) -> tuple[int, int | None]:
        query = select(func.count(), func.min(_i.time_ms)).where(_i.status == _OPEN)
        if deployment is not None:
            query = query.where(_i.deployment == deployment)
        with self.db.read() as conn:
            count, oldest = conn.execute(query).one()
        return int(count), None if oldest is None else int(oldest)

    def get_cursor(self, deployment: str) -> int:
        with self.db.read() as conn:
            found = conn.execute(select(_c.time_ms).where(_c.deployment == deployment)).scalar()
        return 0 if found is None else int(found)

    def set_cursor(self, deployment: str, time_ms: int) -> None:
        fits("deployment name", deployment, DEPLOYMENT_LEN)
        with self.db.write() as conn:
            conn.execute(
                self.db.upsert(t.review_cursors)
                .values(deployment=deployment, time_ms=time_ms)
                .on_conflict_do_update(index_elements=["deployment"], set_={"time_ms": time_ms})
            )

    @staticmethod
    def _item(conn: Connection, item_id: int) -> ReviewItem:
        row = conn.execute(select(t.review_items).where(_i.id == item_id)).mappings().first()
        if row is None:
            raise no_review_item(item_id)
        return review_from_row(row)
