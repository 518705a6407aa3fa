"""Ports of monitoring and the closed loop: windows, the review queue, retrain loops and
the agent's job slots, alerts and their sinks, the trainer, the server's counters (see
docs/monitoring.md). The conventions of :mod:`loopml.ports` hold here too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only
    from loopml.domain.alerts import Alert, Delivery
    from loopml.domain.audit import AuditRecord
    from loopml.domain.loop import JobRun, JobState, LoopRun
    from loopml.domain.monitoring import WindowReport
    from loopml.domain.review import ReviewItem, ReviewStatus


class MonitorStore(Protocol):
    """Monitoring windows, one per ``(deployment, window_key)``, and the references they
    were compared with (see :mod:`loopml.domain.monitoring`)."""

    def add_window(self, report: WindowReport) -> bool:
        """Store the report; False (and nothing stored) if that window is stored already."""
        ...

    def list_windows(
        self, deployment: str, since_ms: int | None = None, limit: int = 1000
    ) -> list[WindowReport]:
        """The newest ``limit`` windows created at or after ``since_ms``, oldest first."""
        ...

    def replace_window(self, report: WindowReport) -> None:
        """Store a newer report of a stored window (performance once late labels
        arrived); :class:`NotFound` if that window was never stored."""
        ...

    def find_reference(self, key: str) -> dict[str, Any] | None:
        """A summarised reference (plain JSON data) stored under ``key``."""
        ...

    def put_reference(self, key: str, data: dict[str, Any]) -> None: ...


class ReviewStore(Protocol):
    """The human review queue (see :mod:`loopml.domain.review`)."""

    def add_items(self, items: Sequence[ReviewItem]) -> int:
        """Queue the items; an item whose ``(request_id, row)`` is queued already is skipped.
        Returns how many were added."""
        ...

    def next_item(self, deployment: str | None) -> ReviewItem | None:
        """The oldest open item (of one deployment, or of any)."""
        ...

    def get_item(self, item_id: int) -> ReviewItem: ...
    def label_item(
        self,
        item_id: int,
        label: Any,
        reviewer: str,
        time_ms: int,
        agrees: bool,
        audit: AuditRecord,
    ) -> ReviewItem:
        """Answer an open item; :class:`InvalidState` if it was answered already."""
        ...

    def list_items(
        self, deployment: str | None, status: ReviewStatus | None = None, limit: int = 100
    ) -> list[ReviewItem]:
        """Newest first."""
        ...

    def open_stats(self, deployment: str | None) -> tuple[int, int | None]:
        """(open items, time_ms of the oldest open item or None)."""
        ...

    def get_cursor(self, deployment: str) -> int:
        """Time up to which the prediction log was scanned for review (0 at first)."""
        ...

    def set_cursor(self, deployment: str, time_ms: int) -> None: ...


class LoopStore(Protocol):
    """Retrain loop runs and the agent's job ledger (see :mod:`loopml.domain.loop`)."""

    def create_loop(self, run: LoopRun, audit: AuditRecord) -> None: ...
    def update_loop(self, run: LoopRun, audit: AuditRecord) -> None:
        """Store ``run`` if the stored revision is ``run.revision - 1``;
        :class:`ConcurrentModification` if someone changed it meanwhile."""
        ...

    def get_loop(self, loop_id: str) -> LoopRun: ...
    def list_loops(self, deployment: str | None, limit: int = 50) -> list[LoopRun]:
        """Newest first."""
        ...

    def claim_job(self, job: str, due_ms: int, now_ms: int) -> bool:
        """Record that ``job`` starts its ``due_ms`` slot; False if that slot was claimed
        before (by this agent before a restart, or by another agent)."""
        ...

    def finish_job(
        self, job: str, due_ms: int, state: JobState, now_ms: int, detail: str
    ) -> None: ...

    def last_job(self, job: str) -> JobRun | None:
        """The claimed slot with the highest due time."""
        ...


class AlertStore(Protocol):
    """Alerts that fired, with what each sink reported (see :mod:`loopml.domain.alerts`)."""

    def add_alert(self, alert: Alert, deliveries: Sequence[Delivery], audit: AuditRecord) -> bool:
        """Store the alert; False (nothing stored) if an alert with its id exists."""
        ...

    def list_alerts(
        self, deployment: str | None, limit: int = 100
    ) -> list[tuple[Alert, list[Delivery]]]:
        """Newest first."""
        ...

    def last_alert(self, dedup_key: str) -> Alert | None: ...


class Trainer(Protocol):
    """Runs the workspace's training pipeline (implemented above the services, by the
    client); returns the URI of the model version it registered."""

    def train(self, reason: str) -> str: ...


class AlertSink(Protocol):
    """Somewhere alerts go (the log, a webhook, Slack, email). ``deliver`` never raises
    on a delivery failure: it reports it, so a bad target never stops the agent."""

    name: str

    def deliver(self, alert: Alert) -> Delivery: ...


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """Requests a server answered and answered with an error, since it started."""

    answered: float
    errors: float


class ServiceMetrics(Protocol):
    """The running server's request counters (see adapters/server_metrics.py)."""

    def counts(self) -> dict[str, RequestCounts] | None:
        """Per deployment, or None when no server answers."""
        ...
