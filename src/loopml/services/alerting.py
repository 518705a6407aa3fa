"""Alerting: the rules of ``[alerts]`` applied to each deployment's monitoring windows.

:meth:`AlertService.check` turns the stored windows of a deployment into observations
(:meth:`~loopml.domain.monitoring.WindowReport.observations`), asks every rule that
watches the deployment whether it fires (:func:`loopml.domain.alerts.evaluate`: N
consecutive windows, de-duplication, cooldown), sends each firing to the rule's sinks and
stores the alert with what every sink reported, audited. Delivery is at least once: the
alert is stored after its sinks were tried, so an agent killed in between sends it again
on its next run, with the same alert id (receivers de-duplicate on it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from loopml.domain.alerts import Alert, AlertRule, Delivery, Observation, evaluate
from loopml.domain.audit import AuditRecord
from loopml.domain.errors import ConfigError
from loopml.domain.monitoring import WindowReport
from loopml.ports import Clock
from loopml.ports.monitoring import AlertSink, AlertStore

ACTOR = "loopml-alerts"
HISTORY_WINDOWS = 200  # windows looked at per check: enough to see a condition clear


class AlertService:
    def __init__(
        self,
        store: AlertStore,
        rules: Sequence[AlertRule],
        sinks: Mapping[str, AlertSink],
        clock: Clock,
    ) -> None:
        missing = sorted({s for r in rules for s in r.sinks if s not in sinks})
        if missing:
            raise ConfigError(
                f"alert rules send to sink(s) {', '.join(missing)} that [alerts.sinks] does "
                f"not define (defined: {', '.join(sorted(sinks)) or 'none'}); add them or "
                "fix the rules' sinks"
            )
        self.store = store
        self.rules = tuple(rules)
        self.sinks = dict(sinks)
        self.clock = clock

    def check(
        self,
        deployment: str,
        windows: Sequence[WindowReport],
        live: Mapping[str, float] | None = None,
    ) -> list[tuple[Alert, list[Delivery]]]:
        """Fire what the windows (oldest first) and the ``live`` figures (read now, e.g.
        ``review_queue_age_s``) call for; return the new alerts."""
        observations = [
            seen
            for w in windows[-HISTORY_WINDOWS:]
            if not w.note or w.rows
            for seen in Observation.of_window(deployment, w.window_key, w.end_ms, w.observations())
        ]
        now = self.clock.now_ms()
        if live:
            observations += Observation.of_window(deployment, f"live:{now}", now, live)
        fired: list[tuple[Alert, list[Delivery]]] = []
        for rule in self.rules:
            if not rule.applies_to(deployment):
                continue
            last = self.store.last_alert(rule.dedup_key(deployment))
            firing = evaluate(rule, observations, last, now_ms=now)
            if firing is None:
                continue
            alert = firing.alert
            deliveries = [_deliver(self.sinks[name], alert) for name in rule.sinks]
            if self.store.add_alert(alert, deliveries, _audit(alert, deliveries)):
                fired.append((alert, deliveries))
        return fired

    def list(self, deployment: str | None, limit: int = 100) -> list[tuple[Alert, list[Delivery]]]:
        return self.store.list_alerts(deployment, limit)


def _deliver(sink: AlertSink, alert: Alert) -> Delivery:
    """A sink's report; a sink that raises (it should not) is a failed delivery, so one
    bad sink never stops the others or the agent."""
    try:
        return sink.deliver(alert)
    except Exception as exc:
        return Delivery(sink.name, False, 1, f"{type(exc).__name__}: {exc}")


def _audit(alert: Alert, deliveries: Sequence[Delivery]) -> AuditRecord:
    return AuditRecord(
        action="alert.fire",
        object_type="alert",
        object_id=f"{alert.deployment}/{alert.id}",
        actor=ACTOR,
        after={
            "rule": alert.rule,
            "metric": alert.metric,
            "value": alert.value,
            "threshold": alert.threshold,
            "delivered": {d.sink: d.ok for d in deliveries},
        },
        reason=alert.message,
    )
