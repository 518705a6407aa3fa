"""``loopml agent``: the in-process scheduler that runs monitors and the actions they call.

Each monitored deployment gets two jobs:

* ``monitor:<deployment>`` on the monitor's ``schedule``: judge the new windows of the
  prediction log, queue unsure rows for review, apply the alert rules, and start a retrain
  loop when a rule with ``action = "retrain"`` fires;
* ``loop:<deployment>`` every :data:`LOOP_EVERY`: advance the deployment's running retrain
  loop (train, evaluate, gate, canary, watch, promote or roll back).

**Exactly once across crashes.** Before a job runs, its ``(job, due time)`` slot is
claimed in the store (a unique key); a claimed slot is never run again, by this agent
after a restart or by a second agent. A missed slot runs once on restart (not once per
missed slot, see :mod:`loopml.domain.schedule`). A slot claimed and never finished was cut
off by a crash: it is reported and not re-run, and the work it was doing is not lost,
because monitors store each window once and the retrain loop resumes from the stage it
recorded. **Never crashed by a job.** A job that raises is recorded as failed with its
error; the agent goes on with the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from loopml.domain.alerts import RuleAction
from loopml.domain.errors import LoopmlError
from loopml.domain.loop import JobState
from loopml.domain.monitoring import MonitorSpec
from loopml.domain.schedule import Schedule, catch_up
from loopml.ports import Clock
from loopml.ports.monitoring import LoopStore, RequestCounts, ServiceMetrics, Trainer
from loopml.services.alerting import HISTORY_WINDOWS, AlertService
from loopml.services.loop import LoopService
from loopml.services.monitoring import MonitoringService
from loopml.services.review import ReviewService

log = logging.getLogger("loopml.agent")
LOOP_EVERY = "@every 10s"


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    schedule: Schedule
    run: Callable[[], str]  # returns a one-line summary


@dataclass(frozen=True, slots=True)
class JobOutcome:
    job: str
    due_ms: int
    ok: bool
    detail: str
    missed: int = 0


class Agent:
    def __init__(
        self,
        store: LoopStore,
        clock: Clock,
        monitoring: MonitoringService,
        reviews: ReviewService,
        alerts: AlertService,
        loops: LoopService,
        specs: dict[str, MonitorSpec],
        trainer: Trainer,
        loop_every: str = LOOP_EVERY,
        service: ServiceMetrics | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.monitoring = monitoring
        self.reviews = reviews
        self.alerts = alerts
        self.loops = loops
        self.specs = specs
        self.trainer = trainer
        self.service = service
        self._counts: dict[str, RequestCounts] = {}  # the server's counters at the last run
        self.started_ms = clock.now_ms()
        self.jobs: list[Job] = []
        for name, spec in sorted(specs.items()):
            self.jobs.append(
                Job(f"monitor:{name}", Schedule.parse(spec.schedule), self._monitor(spec))
            )
            if spec.loop is not None:
                self.jobs.append(Job(f"loop:{name}", Schedule.parse(loop_every), self._loop(spec)))

    # jobs --------------------------------------------------------------------------------

    def monitor_once(self, spec: MonitorSpec) -> str:
        """Windows, review queue, alerts and (if a rule says so) a retrain loop, now."""
        reports = self.monitoring.run(spec)
        windows = self.monitoring.windows(spec.deployment, limit=HISTORY_WINDOWS)
        live: dict[str, float] = {}
        if spec.review_below is not None:
            _, age = self.reviews.stats(spec.deployment)
            live["review_queue_age_s"] = 0.0 if age is None else age
        rate = self.error_rate(spec.deployment)
        if rate is not None:
            live["error_rate"] = rate
        fired = self.alerts.check(spec.deployment, windows, live)
        parts = [f"{len(reports)} new window(s)"]
        if reports:
            latest = reports[-1]
            parts.append(f"latest score {latest.score:.2f}")
            if latest.drifted:
                parts.append(f"drifted: {', '.join(latest.drifted)}")
        for alert, deliveries in fired:
            failed = [d for d in deliveries if not d.ok]
            parts.append(f"alert {alert.rule} ({alert.metric} {alert.value:.3g})")
            for d in failed:
                log.warning("alert %s not delivered to %s: %s", alert.id, d.sink, d.error)
            if alert.action is RuleAction.RETRAIN and spec.loop is None:
                parts.append(
                    f"rule {alert.rule} asks to retrain, but [monitor.{spec.deployment}.loop] "
                    "is missing: no loop started"
                )
            elif alert.action is RuleAction.RETRAIN:
                run = self.loops.start(spec, trigger=f"alert {alert.id} ({alert.rule})")
                parts.append(f"retrain loop {run.id} {run.state.value}")
        # The review queue last: a review set-up that fails never holds back the alerts.
        queued = self.reviews.sync(spec)
        if queued:
            parts.append(f"{queued} row(s) queued for review")
        return "; ".join(parts)

    def error_rate(self, deployment: str) -> float | None:
        """Share of the deployment's requests answered with an error since the previous
        call, from the running server's counters; None on the first call, when no server
        answers, after a server restart (its counters went back) or without requests."""
        counts = None if self.service is None else self.service.counts()
        now = None if counts is None else counts.get(deployment)
        if now is None:
            return None
        before = self._counts.get(deployment)
        self._counts[deployment] = now
        return None if before is None else error_rate_between(before, now)

    def loop_once(self, spec: MonitorSpec) -> str:
        run = self.loops.active(spec.deployment)
        if run is None:
            return "no loop running"
        run = self.loops.run_to_end(run, spec, self.trainer)
        return f"loop {run.id}: {run.state.value}: {run.steps[-1].detail}"

    def _monitor(self, spec: MonitorSpec) -> Callable[[], str]:
        return lambda: self.monitor_once(spec)

    def _loop(self, spec: MonitorSpec) -> Callable[[], str]:
        return lambda: self.loop_once(spec)

    # scheduling --------------------------------------------------------------------------

    def tick(self) -> list[JobOutcome]:
        """Run every job that is due now, each slot at most once; return what ran."""
        outcomes: list[JobOutcome] = []
        for job in self.jobs:
            now = self.clock.now_ms()
            last = self.store.last_job(job.name)
            since = (
                last.due_ms
                if last is not None
                else job.schedule.last_at_or_before(self.started_ms) - 1
            )
            due = catch_up(job.schedule, since, now)
            if due.due_ms is None:
                continue
            if last is not None and last.state is JobState.RUNNING:
                log.warning(
                    "job %s was cut off at its %d slot (agent crash or kill); not re-run",
                    job.name,
                    last.due_ms,
                )
            if not self.store.claim_job(job.name, due.due_ms, now):
                continue  # another agent took this slot
            outcomes.append(self._run(job, due.due_ms, due.missed))
        return outcomes

    def _run(self, job: Job, due_ms: int, missed: int) -> JobOutcome:
        try:
            detail = job.run()
            state, ok = JobState.DONE, True
        except LoopmlError as exc:
            detail, state, ok = str(exc), JobState.FAILED, False
        except Exception as exc:  # a job must never take the agent down
            log.exception("job %s failed", job.name)
            detail, state, ok = f"{type(exc).__name__}: {exc}", JobState.FAILED, False
        self.store.finish_job(job.name, due_ms, state, self.clock.now_ms(), detail[:2000])
        return JobOutcome(job.name, due_ms, ok, detail, missed)

    def run_forever(
        self,
        stop: threading.Event,
        on_outcome: Callable[[JobOutcome], None] | None = None,
        poll_s: float = 1.0,
    ) -> None:
        """Tick until ``stop`` is set (SIGINT/SIGTERM handlers of the CLI set it)."""
        while not stop.is_set():
            for outcome in self.tick():
                if on_outcome is not None:
                    on_outcome(outcome)
            stop.wait(poll_s)


def error_rate_between(before: RequestCounts, now: RequestCounts) -> float | None:
    """Share of the requests between two readings of a server's counters answered with an
    error; None without requests, or if the counters went back (the server restarted)."""
    if now.answered < before.answered or now.errors < before.errors:
        return None
    errors = now.errors - before.errors
    total = now.answered - before.answered + errors
    return errors / total if total > 0 else None
