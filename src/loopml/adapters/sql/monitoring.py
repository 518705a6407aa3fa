"""Monitoring windows and references in SQL.

A window is stored once per ``(deployment, window_key)``: the insert does nothing on that
unique key, so a monitor that runs twice on the same window (or two agents that run it at
once) stores one row and learns from the result that it was second. References are
replaced whole under their key.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from loopml.adapters.monitor_rows import (
    REFERENCE_KEY_LEN,
    check_limit,
    fits,
    no_window,
    reference_from_text,
    to_json,
    window_from_text,
    window_row,
)
from loopml.adapters.sql import schema as t
from loopml.adapters.sql.database import SqlDatabase
from loopml.domain.monitoring import WindowReport
from loopml.ports import Clock

_w = t.monitor_windows.c
_r = t.monitor_references.c


class SqlMonitorStore:
    def __init__(self, db: SqlDatabase, clock: Clock) -> None:
        self.db = db
        self.clock = clock  # stamps references; windows carry their own time

    def add_window(self, report: WindowReport) -> bool:
        row = window_row(report)
        with self.db.write() as conn:
            done = conn.execute(
                self.db.upsert(t.monitor_windows)
                .values(**row)
                .on_conflict_do_nothing(index_elements=["deployment", "window_key"])
                .returning(_w.id)  # rowcount is -1 for this insert on PostgreSQL
            ).first()
        return done is not None

    def replace_window(self, report: WindowReport) -> None:
        row = window_row(report)
        with self.db.write() as conn:
            done = conn.execute(
                update(t.monitor_windows)
                .where(_w.deployment == report.deployment, _w.window_key == report.window_key)
                .values(report=row["report"], score=row["score"], rows=row["rows"])
            )
            if done.rowcount != 1:
                raise no_window(report)

    def list_windows(
        self, deployment: str, since_ms: int | None = None, limit: int = 1000
    ) -> list[WindowReport]:
        query = (
            select(_w.window_key, _w.report)
            .where(_w.deployment == deployment)
            .order_by(_w.created_ms.desc(), _w.id.desc())
            .limit(check_limit(limit))
        )
        if since_ms is not None:
            query = query.where(_w.created_ms >= since_ms)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [window_from_text(deployment, key, text) for key, text in reversed(rows)]

    def find_reference(self, key: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            text = conn.execute(select(_r.data).where(_r.key == key)).scalar()
        return None if text is None else reference_from_text(key, text)

    def put_reference(self, key: str, data: dict[str, Any]) -> None:
        fits("reference key", key, REFERENCE_KEY_LEN)
        values = {
            "data": to_json(f"monitoring reference {key!r}", dict(data)),
            "created_ms": self.clock.now_ms(),
        }
        with self.db.write() as conn:
            conn.execute(
                self.db.upsert(t.monitor_references)
                .values(key=key, **values)
                .on_conflict_do_update(index_elements=["key"], set_=values)
            )
