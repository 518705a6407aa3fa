"""In-memory alert store, keeping the JSON text the SQL table keeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopml.adapters.alert_rows import alert_from_text, alert_row
from loopml.adapters.memory.stores import MemoryDatabase
from loopml.adapters.monitor_rows import check_limit
from loopml.domain.alerts import Alert, Delivery
from loopml.domain.audit import AuditRecord


class MemoryAlertStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    def add_alert(self, alert: Alert, deliveries: Sequence[Delivery], audit: AuditRecord) -> bool:
        row = alert_row(alert, deliveries)
        with self.db.lock:
            if alert.id in self.db.alerts:
                return False
            self.db.alerts[alert.id] = row
            self.db.append_event(audit, alert.time_ms)
        return True

    def _newest_first(self) -> list[dict[str, Any]]:
        rows = list(self.db.alerts.values())
        rows.sort(key=lambda r: (r["time_ms"], r["id"]), reverse=True)
        return rows

    def list_alerts(
        self, deployment: str | None, limit: int = 100
    ) -> list[tuple[Alert, list[Delivery]]]:
        check_limit(limit)
        with self.db.lock:
            rows = [r for r in self._newest_first() if deployment in (None, r["deployment"])]
        return [alert_from_text(str(r["id"]), str(r["data"])) for r in rows[:limit]]

    def last_alert(self, dedup_key: str) -> Alert | None:
        with self.db.lock:
            rows = [r for r in self._newest_first() if r["dedup_key"] == dedup_key]
        return None if not rows else alert_from_text(str(rows[0]["id"]), str(rows[0]["data"]))[0]
