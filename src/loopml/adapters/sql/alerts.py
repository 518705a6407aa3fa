"""Alerts in SQL: one row per alert id (the same firing is stored once), found by
deployment or by de-dup key, newest first."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from loopml.adapters.alert_rows import alert_from_text, alert_row
from loopml.adapters.monitor_rows import check_limit
from loopml.adapters.sql import schema as t
from loopml.adapters.sql.audit import append_event
from loopml.adapters.sql.database import SqlDatabase
from loopml.domain.alerts import Alert, Delivery
from loopml.domain.audit import AuditRecord

_a = t.alerts.c


class SqlAlertStore:
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def add_alert(self, alert: Alert, deliveries: Sequence[Delivery], audit: AuditRecord) -> bool:
        row = alert_row(alert, deliveries)
        with self.db.write() as conn:
            done = conn.execute(
                self.db.upsert(t.alerts)
                .values(**row)
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(_a.id)  # rowcount is -1 for this insert on PostgreSQL
            ).first()
            if done is not None:
                append_event(conn, audit, alert.time_ms)
        return done is not None

    def list_alerts(
        self, deployment: str | None, limit: int = 100
    ) -> list[tuple[Alert, list[Delivery]]]:
        query = select(_a.id, _a.data).order_by(_a.time_ms.desc(), _a.id.desc())
        if deployment is not None:
            query = query.where(_a.deployment == deployment)
        with self.db.read() as conn:
            rows = conn.execute(query.limit(check_limit(limit))).all()
        return [alert_from_text(alert_id, text) for alert_id, text in rows]

    def last_alert(self, dedup_key: str) -> Alert | None:
        query = (
            select(_a.id, _a.data)
            .where(_a.dedup_key == dedup_key)
            .order_by(_a.time_ms.desc(), _a.id.desc())
            .limit(1)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else alert_from_text(row[0], row[1])[0]
