"""The stored form of an alert, shared by the SQL and memory alert stores: the alert and
what each sink reported, as one canonical JSON object, with errors in the same words."""

from __future__ import annotations

import json
from collections.abc import Sequence

from loopml.adapters.monitor_rows import DEPLOYMENT_LEN, fits, to_json
from loopml.domain.alerts import Alert, Delivery
from loopml.domain.errors import StorageError

ID_LEN = 64
DEDUP_LEN = 512


def alert_row(alert: Alert, deliveries: Sequence[Delivery]) -> dict[str, object]:
    fits("alert id", alert.id, ID_LEN)
    fits("deployment name", alert.deployment, DEPLOYMENT_LEN)
    fits("alert de-dup key", alert.dedup_key, DEDUP_LEN)
    data = {"alert": alert.to_dict(), "deliveries": [d.to_dict() for d in deliveries]}
    return {
        "id": alert.id,
        "deployment": alert.deployment,
        "dedup_key": alert.dedup_key,
        "time_ms": alert.time_ms,
        "data": to_json(f"alert {alert.id}", data),
    }


def alert_from_text(alert_id: str, text: str) -> tuple[Alert, list[Delivery]]:
    try:
        data = json.loads(text)
        return Alert.from_dict(data["alert"]), [Delivery.from_dict(d) for d in data["deliveries"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(
            f"stored alert {alert_id!r} is damaged ({exc}); it was written by another "
            "program or edited by hand. Delete the row or restore the database"
        ) from exc
