"""The retrain loop: newest data -> pipeline -> evaluation -> gates -> canary -> verdict.

One :class:`~loopml.domain.loop.LoopRun` per trigger, advanced one stage per
:meth:`LoopService.step` and stored (with its audit record) after each stage, so a
restarted agent continues where it stopped. Every stage is idempotent, so a crash between
a stage's effect and its record repeats nothing harmful: datasets are content-addressed
(the same rows give the same version), the pipeline's cached steps give the same
registered version, a canary already routed is not routed again, a canary already
promoted is not promoted again.

* **train**: the training data is the loop's base dataset version (``[monitor.NAME.loop]
  data``, default: the first version of the dataset the champion was trained on) plus
  every production row whose label arrived (feedback and reviewed items), except the
  newest :data:`HOLDOUT_SHARE` of them, which become the hold-out data. The pipeline of
  the workspace then runs; its registered version is the candidate.
* **evaluate**: candidate and champion are both evaluated on the same hold-out data, so
  the champion comparison of the gates compares like with like.
* **gate**: the production gates of the model, against the champion. A refusal ends the
  loop as ``rejected``: the production route never changes except through a passed gate.
* **canary**: the candidate takes ``canary_share`` percent of the traffic.
* **watch** until ``watch_s`` has passed and the canary answered ``min_canary_rows``:
  rows it answered since, compared with production over the same period (error on the
  labelled rows, latency p99). It is promoted through the gates if it holds, else the
  canary is removed (production never changed).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.approvals import GatesFailed
from loopml.domain.audit import AuditRecord
from loopml.domain.deployments import Target
from loopml.domain.errors import InvalidInput, InvalidState, LoopmlError
from loopml.domain.lifecycle import Stage
from loopml.domain.loop import LoopRun, LoopState
from loopml.domain.monitoring import LoopSpec, MonitorSpec
from loopml.domain.predictions import Route
from loopml.domain.review import ReviewStatus
from loopml.ports import Clock
from loopml.ports.monitoring import LoopStore, ReviewStore, Trainer
from loopml.ports.predictions import PredictionReader
from loopml.services.monitoring import performance, row_label
from loopml.services.validation import read_schema

if TYPE_CHECKING:
    from loopml.services.datasets import DatasetService
    from loopml.services.deployments import DeploymentService
    from loopml.services.model_evaluation import EvaluationService
    from loopml.services.monitoring import MonitoringService
    from loopml.services.registry import RegistryService

ACTOR = "loopml-loop"
HOLDOUT_SHARE = 0.25
MIN_HOLDOUT_ROWS = 20


@dataclass(frozen=True, slots=True)
class CanaryVerdict:
    canary_rows: int
    production_rows: int
    canary_error: float | None  # the error metric on labelled rows (rmse, or 1 - accuracy)
    production_error: float | None
    canary_latency_p99_ms: float | None
    holds: bool
    ready: bool  # enough rows and time to decide
    reason: str


class LoopService:
    def __init__(
        self,
        store: LoopStore,
        deployments: DeploymentService,
        registry: RegistryService,
        evaluations: EvaluationService,
        datasets: DatasetService,
        monitoring: MonitoringService,
        reader: PredictionReader,
        reviews: ReviewStore,
        clock: Clock,
    ) -> None:
        self.store = store
        self.deployments = deployments
        self.registry = registry
        self.evaluations = evaluations
        self.datasets = datasets
        self.monitoring = monitoring
        self.reader = reader
        self.reviews = reviews
        self.clock = clock

    # lifecycle ---------------------------------------------------------------------------

    def start(self, spec: MonitorSpec, trigger: str, actor: str = ACTOR) -> LoopRun:
        """Start a loop on the deployment, or return the one still running there."""
        if spec.loop is None or spec.label is None:
            raise InvalidInput(
                f"[monitor.{spec.deployment}] has no retrain loop: add a [monitor."
                f"{spec.deployment}.loop] table and a label (the feedback's target column)"
            )
        running = self.active(spec.deployment)
        if running is not None:
            return running
        deployment = self.deployments.get(spec.deployment)
        now = self.clock.now_ms()
        run = LoopRun(
            id=f"{now:013d}-{secrets.token_hex(4)}",
            deployment=spec.deployment,
            trigger=trigger,
            created_ms=now,
            champion=deployment.production.version,
            model=deployment.production.model,
        )
        self.store.create_loop(run, _audit(run, None, actor, f"triggered by {trigger}"))
        return run

    def active(self, deployment: str) -> LoopRun | None:
        for run in self.store.list_loops(deployment, limit=20):
            if not run.finished:
                return run
        return None

    def history(self, deployment: str | None, limit: int = 50) -> list[LoopRun]:
        return self.store.list_loops(deployment, limit)

    def step(self, run: LoopRun, spec: MonitorSpec, trainer: Trainer) -> LoopRun:
        """Advance ``run`` by one stage (or leave it watching); a stage that fails ends the
        loop as ``failed`` with the reason, and never touches the production route."""
        assert spec.loop is not None
        assert spec.label is not None
        stage = {
            LoopState.STARTED: self._train,
            LoopState.TRAINED: self._evaluate,
            LoopState.EVALUATED: self._gate,
            LoopState.GATED: self._canary,
            LoopState.CANARY: self._watch,
        }.get(run.state)
        if stage is None:
            return run
        try:
            return stage(run, spec, spec.loop, trainer)
        except LoopmlError as exc:
            return self._fail(run, spec, f"{run.state.value} failed: {exc}")
        except Exception as exc:  # the user's pipeline or model may raise anything
            return self._fail(run, spec, f"{run.state.value} failed: {type(exc).__name__}: {exc}")

    def run_to_end(self, run: LoopRun, spec: MonitorSpec, trainer: Trainer) -> LoopRun:
        """Advance until the loop finishes or waits for its canary's watch period."""
        while not run.finished:
            advanced = self.step(run, spec, trainer)
            if advanced.revision == run.revision:
                return advanced  # watching: nothing to do yet
            run = advanced
        return run

    def _fail(self, run: LoopRun, spec: MonitorSpec, detail: str) -> LoopRun:
        """End the loop as failed; a canary it routed is removed, so a failed loop never
        leaves its candidate serving."""
        if run.state in (LoopState.GATED, LoopState.CANARY) and run.candidate is not None:
            try:
                current = self.deployments.get(spec.deployment)
                if current.canary == Target(run.model, run.candidate):
                    self.deployments.canary(
                        spec.deployment, None, 0.0, ACTOR, reason=f"loop {run.id} failed"
                    )
                    detail += "; its canary was removed"
            except LoopmlError as exc:
                detail += f"; removing its canary failed too: {exc}"
        return self._record(run, LoopState.FAILED, detail)

    def _record(self, run: LoopRun, state: LoopState, detail: str, **changes: Any) -> LoopRun:
        nxt = run.advance(state, self.clock.now_ms(), detail, **changes)
        self.store.update_loop(nxt, _audit(nxt, run, ACTOR, detail))
        return nxt

    # stages ------------------------------------------------------------------------------

    def _train(self, run: LoopRun, spec: MonitorSpec, loop: LoopSpec, trainer: Trainer) -> LoopRun:
        label = spec.label
        assert label is not None
        base_ref = self._base(spec, loop, run)
        base = self.datasets.read(base_ref)
        if label not in base.column_names:
            raise InvalidInput(
                f"[monitor.{spec.deployment}] label = {label!r} is not a column of the "
                f"training data {base_ref} (its columns: {', '.join(base.column_names)}); "
                "set label to the column the model learns to predict"
            )
        labelled = self._labelled_rows(spec, base.schema, label)
        if labelled.num_rows < MIN_HOLDOUT_ROWS * 2:
            raise InvalidState(
                f"only {labelled.num_rows} production rows have labels; the loop needs at "
                f"least {MIN_HOLDOUT_ROWS * 2} (half for hold-out) before retraining"
            )
        cut = labelled.num_rows - max(MIN_HOLDOUT_ROWS, int(labelled.num_rows * HOLDOUT_SHARE))
        train_rows, holdout = labelled.slice(0, cut), labelled.slice(cut)
        name = base_ref.partition("@")[0]
        data = pa.concat_tables([base, train_rows.select(base.column_names)])
        added = self.datasets.add_table(
            name, data, ACTOR, source=f"loop {run.id}", message=f"{base_ref} + labelled rows"
        ).version
        holdout_ref = self.datasets.add_table(
            f"{spec.deployment}-holdout",
            holdout.select(base.column_names),
            ACTOR,
            source=f"loop {run.id}",
            message="newest labelled production rows, held out",
        ).version.ref
        uri = trainer.train(f"loop {run.id}: {run.trigger}")
        mv = self.registry.resolve(uri)
        if mv.model != run.model:
            raise InvalidState(
                f"the pipeline registered {mv.uri}, but deployment {spec.deployment!r} serves "
                f"model {run.model!r}; the loop retrains the deployed model only"
            )
        if mv.version == run.champion:
            raise InvalidState(
                f"the pipeline returned {mv.uri}, the champion itself, instead of a newly "
                "registered version; make its register step register the model it trained "
                "(a cached step that returns an old URI registers nothing)"
            )
        detail = (
            f"trained {mv.uri} on {added.ref} ({base_ref} + {train_rows.num_rows} labelled "
            f"rows); {holdout.num_rows} newest labelled rows held out as {holdout_ref}"
        )
        facts = {"data": added.ref, "holdout": holdout_ref, "labelled_rows": labelled.num_rows}
        return self._record(run, LoopState.TRAINED, detail, candidate=mv.version, facts=facts)

    def _base(self, spec: MonitorSpec, loop: LoopSpec, run: LoopRun) -> str:
        if loop.data is not None:
            return self.datasets.get(loop.data).ref
        assert run.champion is not None
        trained_on = self.monitoring.reference_dataset(spec, run.model, run.champion)
        return self.datasets.get(trained_on.partition("@")[0] + "@1").ref

    def _labelled_rows(self, spec: MonitorSpec, schema: pa.Schema, label: str) -> pa.Table:
        """Production rows with labels (feedback, then reviewed items), oldest first, as
        the training data's columns; columns the log lacks are null."""
        joined = self.reader.joined(spec.deployment)
        columns: dict[str, list[Any]] = {f.name: [] for f in schema}
        times: list[int] = []
        seen: set[tuple[str, int]] = set()
        if joined.num_rows:
            rows = joined.filter(pc.is_valid(joined.column("label")))
            rows = rows.filter(pc.not_equal(rows.column("route"), Route.SHADOW.value))
            for record in rows.to_pylist():
                value = row_label(record["label"], record.get("row") or 0)
                key = (record["request_id"], record.get("row") or 0)
                if value is None or key in seen:
                    continue
                seen.add(key)
                _append(columns, {k[3:]: v for k, v in record.items() if k.startswith("in.")})
                columns[label][-1] = value
                times.append(record["time_ms"])
        for item in self.reviews.list_items(spec.deployment, ReviewStatus.LABELLED, 100_000):
            if (item.request_id, item.row) in seen:
                continue
            _append(columns, dict(item.inputs))
            columns[label][-1] = item.label
            times.append(item.time_ms)
        order = np.argsort(np.asarray(times, dtype=np.int64), kind="stable")
        table = pa.table({n: pa.array(v, schema.field(n).type) for n, v in columns.items()})
        return table.take(pa.array(order, pa.int64())) if len(order) else table

    def _evaluate(
        self, run: LoopRun, spec: MonitorSpec, loop: LoopSpec, trainer: Trainer
    ) -> LoopRun:
        holdout = str(run.facts["holdout"])
        label = spec.label
        assert label is not None
        assert run.candidate is not None
        assert run.champion is not None
        scores: dict[str, Mapping[str, float]] = {}
        for who, version in (("candidate", run.candidate), ("champion", run.champion)):
            result = self.evaluations.evaluate(
                f"models:/{run.model}/{version}",
                holdout,
                label=label,
                actor=ACTOR,
                schema=None if loop.schema is None else read_schema(Path(loop.schema)),
                trusted=spec.trusted,
            )
            scores[who] = dict(result.record.metrics)
        detail = f"on {holdout}: " + "; ".join(
            f"{who} v{v} {_brief(scores[who])}"
            for who, v in (("candidate", run.candidate), ("champion", run.champion))
        )
        return self._record(run, LoopState.EVALUATED, detail, facts={"scores": scores})

    def _gate(self, run: LoopRun, spec: MonitorSpec, loop: LoopSpec, trainer: Trainer) -> LoopRun:
        assert run.candidate is not None
        report = self.registry.gate_report(run.model, run.candidate, Stage.PRODUCTION)
        if not report.passed:
            return self._record(run, LoopState.REJECTED, f"gates refused: {report.failure_text()}")
        mv = self.registry.resolve(f"models:/{run.model}/{run.candidate}")
        if mv.stage is Stage.CANDIDATE:
            # Production is reached from staging only: a canary is a staging version, so
            # the promotion at the end of the watch is the lifecycle's usual step.
            try:
                self.registry.transition(
                    run.model,
                    run.candidate,
                    Stage.STAGING,
                    ACTOR,
                    reason=f"loop {run.id}: production gates passed",
                )
            except GatesFailed as exc:
                return self._record(run, LoopState.REJECTED, f"staging gates refused: {exc}")
        return self._record(run, LoopState.GATED, f"production gates passed: {report.summary()}")

    def _canary(self, run: LoopRun, spec: MonitorSpec, loop: LoopSpec, trainer: Trainer) -> LoopRun:
        assert run.candidate is not None
        target = Target(run.model, run.candidate)
        current = self.deployments.get(spec.deployment)
        if current.canary != target or current.canary_share != loop.canary_share:
            self.deployments.canary(
                spec.deployment, target.uri, loop.canary_share, ACTOR, reason=f"loop {run.id}"
            )
        now = self.clock.now_ms()
        return self._record(
            run,
            LoopState.CANARY,
            f"{target.uri} takes {loop.canary_share:g}% of {spec.deployment!r}; watched for "
            f"{loop.watch_s}s",
            canary_since_ms=now,
            watch_until_ms=now + loop.watch_s * 1000,
        )

    def _watch(self, run: LoopRun, spec: MonitorSpec, loop: LoopSpec, trainer: Trainer) -> LoopRun:
        assert run.candidate is not None
        verdict = self.verdict(run, spec)
        current = self.deployments.get(spec.deployment)
        # Promoted before a crash cut the record off: the route changed, so finish that.
        promoted = current.production == Target(run.model, run.candidate)
        if promoted or (verdict.ready and verdict.holds):
            if not promoted:
                self.deployments.promote(spec.deployment, ACTOR, reason=f"loop {run.id}")
            self.registry.set_alias(run.model, "champion", run.candidate, ACTOR)
            return self._record(run, LoopState.PROMOTED, verdict.reason, facts=_facts(verdict))
        if verdict.ready or not verdict.holds:
            if current.canary is not None:
                self.deployments.canary(spec.deployment, None, 0.0, ACTOR, reason=f"loop {run.id}")
            return self._record(run, LoopState.ROLLED_BACK, verdict.reason, facts=_facts(verdict))
        return run

    def verdict(self, run: LoopRun, spec: MonitorSpec) -> CanaryVerdict:
        """How the canary did since it started, beside production over the same period."""
        assert spec.loop is not None
        assert run.canary_since_ms is not None
        loop = spec.loop
        now = self.clock.now_ms()
        table = self.reader.joined(spec.deployment, run.canary_since_ms, now + 1)
        parts = {route: _route(table, route) for route in (Route.CANARY, Route.PRODUCTION)}
        canary, production = parts[Route.CANARY], parts[Route.PRODUCTION]
        canary_error = _error(canary, spec.task)
        production_error = _error(production, spec.task)
        latency = _p99(canary)
        rows = canary.num_rows
        waited = now >= (run.watch_until_ms or 0)
        problems = []
        if latency is not None and latency > loop.max_latency_p99_ms:
            problems.append(f"canary latency p99 {latency:.1f} ms > {loop.max_latency_p99_ms:g} ms")
        if (
            canary_error is not None
            and production_error is not None
            and canary_error > production_error * loop.max_error_ratio
        ):
            problems.append(
                f"canary error {canary_error:.4g} > {loop.max_error_ratio:g} x production's "
                f"{production_error:.4g} on labelled rows"
            )
        enough = rows >= loop.min_canary_rows
        if problems and enough:
            holds, ready, reason = False, True, "canary degraded: " + "; ".join(problems)
        elif waited and not enough:
            holds, ready = False, True
            reason = (
                f"canary answered only {rows} rows in its watch period (needs "
                f"{loop.min_canary_rows}); rolled back rather than promoted unseen"
            )
        else:
            holds, ready = True, waited and enough
            reason = (
                f"canary held for {loop.watch_s}s over {rows} rows: error "
                f"{_fmt(canary_error)} vs production {_fmt(production_error)}, latency p99 "
                f"{_fmt(latency)} ms"
            )
        return CanaryVerdict(
            rows, production.num_rows, canary_error, production_error, latency, holds, ready, reason
        )


def _audit(run: LoopRun, before: LoopRun | None, actor: str, detail: str) -> AuditRecord:
    return AuditRecord(
        action=f"loop.{run.state.value}",
        object_type="loop",
        object_id=f"{run.deployment}/{run.id}",
        actor=actor,
        before=None if before is None else {"state": before.state.value},
        after={"state": run.state.value, "candidate": run.candidate, "detail": detail},
        reason=None,
    )


def _append(columns: dict[str, list[Any]], values: Mapping[str, Any]) -> None:
    for name, column in columns.items():
        column.append(values.get(name))


def _route(table: pa.Table, route: Route) -> pa.Table:
    if table.num_rows == 0:
        return table
    return table.filter(pc.equal(table.column("route"), route.value))


def _error(table: pa.Table, task: str | None) -> float | None:
    if table.num_rows == 0 or "label" not in table.column_names:
        return None
    rows = table.filter(pc.is_valid(table.column("label")))
    if rows.num_rows == 0 or "out.prediction" not in rows.column_names:
        return None
    pairs = [
        (p, row_label(y, r or 0))
        for p, y, r in zip(
            rows.column("out.prediction").to_pylist(),
            rows.column("label").to_pylist(),
            rows.column("row").to_pylist(),
            strict=True,
        )
    ]
    pairs = [(p, y) for p, y in pairs if p is not None and y is not None]
    if not pairs:
        return None
    scores = performance(pairs, task)
    return scores["rmse"] if "rmse" in scores else 1.0 - scores["accuracy"]


def _p99(table: pa.Table) -> float | None:
    if table.num_rows == 0:
        return None
    return float(np.percentile(table.column("latency_ms").to_numpy(zero_copy_only=False), 99))


def _facts(verdict: CanaryVerdict) -> dict[str, Any]:
    return {
        "canary_rows": verdict.canary_rows,
        "canary_error": verdict.canary_error,
        "production_error": verdict.production_error,
        "canary_latency_p99_ms": verdict.canary_latency_p99_ms,
    }


def _brief(metrics: Mapping[str, float]) -> str:
    keys = [k for k in ("rmse", "r2", "accuracy", "f1") if k in metrics]
    return ", ".join(f"{k} {metrics[k]:.4g}" for k in keys) or "no headline metric"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
