"""The SDK's explicit client and the run handle it gives out.

``Client`` opens a workspace (creating one in the current folder when none is found, as a
first run on a laptop expects) and exposes tracking, registry and audit in one object,
with no hidden global state. ``ActiveRun`` logs into one run; used as a context manager
it ends the run as finished, or failed if the block raised.

Metric points are buffered and group-committed; see :mod:`loopml.services.metric_buffer`
for exactly when they become durable. Reads through the client flush first, so a client
always reads what it wrote.
"""

from __future__ import annotations

import atexit
import sys
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopml.adapters.signature import infer_signature
from loopml.bootstrap import Loopml, init_workspace, open_workspace
from loopml.client.active_run import ActiveRun
from loopml.config import CONFIG_FILE, load_settings
from loopml.domain.approvals import ApprovalRequest, ApprovalStatus
from loopml.domain.artifacts import ArtifactRef
from loopml.domain.audit import AuditEvent, ChainReport
from loopml.domain.data_schema import DataSchema
from loopml.domain.datasets import DatasetVersion
from loopml.domain.evaluation import Evaluation
from loopml.domain.gate_checks import ModelFacts
from loopml.domain.gate_report import GateReport
from loopml.domain.lifecycle import Stage
from loopml.domain.model_card import ModelCard
from loopml.domain.model_evaluation import ModelEvaluation
from loopml.domain.monitor_report import MonitorReport, build_report
from loopml.domain.paging import Page
from loopml.domain.registry import Model, ModelVersion, Signature
from loopml.domain.tracking import DatasetRef, Metric, Run, RunStatus, make_metric
from loopml.domain.validation_report import ValidationReport
from loopml.services.metric_buffer import MetricBuffer
from loopml.services.sweep import Trial, run_sweep

__all__ = ["ActiveRun", "Client", "RunList", "runs_frame"]

if TYPE_CHECKING:
    from loopml.domain.sweep import SweepResult, TrialRecord
    from loopml.services.datasets import AddResult
    from loopml.services.model_evaluation import EvaluationResult


class RunList(list[Run]):
    """A page of runs; ``next_page_token`` fetches the next one (None on the last)."""

    next_page_token: str | None = None


class Client:
    """Explicit access to one workspace: ``Client()`` or ``Client("path/to/workspace")``."""

    def __init__(
        self, workspace: str | Path | None = None, *, app: Loopml | None = None, **settings: object
    ) -> None:
        if app is None:
            app = _open(workspace, settings)
        self.app = app
        sink = app.tracking.write_metrics
        if app.settings is None:  # in-memory app: the buffer's own defaults
            self._buffer = MetricBuffer(sink)
        else:
            self._buffer = MetricBuffer(
                sink,
                max_points=app.settings.metric_flush_points,
                max_delay=app.settings.metric_flush_seconds,
            )
        # The last step of each metric key, per run that is still being logged to.
        self._steps: dict[str, dict[str, int]] = {}
        self.actor = app.settings.actor if app.settings else "sdk"
        atexit.register(_close_at_exit, weakref.ref(self))

    # tracking ----------------------------------------------------------------------------
    def start_run(
        self,
        experiment: str | None = None,
        name: str | None = None,
        *,
        parent: str | ActiveRun | None = None,
        tags: Mapping[str, object] | None = None,
    ) -> ActiveRun:
        parent_id = parent.id if isinstance(parent, ActiveRun) else parent
        run = self.app.tracking.start_run(experiment, name, parent_id, tags)
        return ActiveRun(self, run)

    def end_run(self, run_id: str, status: RunStatus | str = RunStatus.FINISHED) -> None:
        self._buffer.flush(run_id)
        self.app.tracking.end_run(run_id, status)
        self._steps.pop(run_id, None)

    def log_params(self, run_id: str, params: Mapping[str, object]) -> None:
        self.app.tracking.log_params(run_id, params)

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        step: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        steps = self._steps.setdefault(run_id, {})
        step = _next_step(steps, key, step)
        ts = self.app.clock.now_ms() if timestamp_ms is None else timestamp_ms
        self._buffer.add(run_id, make_metric(key, value, step, ts))

    def log_metrics(
        self,
        run_id: str,
        values: Mapping[str, object],
        step: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        steps = self._steps.setdefault(run_id, {})
        ts = self.app.clock.now_ms() if timestamp_ms is None else timestamp_ms
        points = [make_metric(k, v, _next_step(steps, k, step), ts) for k, v in values.items()]
        self._buffer.add_many(run_id, points)

    def set_tags(self, run_id: str, tags: Mapping[str, object]) -> None:
        self.app.tracking.set_tags(run_id, tags)

    def log_artifact(
        self, run_id: str, source: str | Path | bytes, name: str | None = None
    ) -> ArtifactRef:
        if isinstance(source, bytes):
            if name is None:
                raise TypeError("log_artifact(bytes) needs name=, e.g. name='report.json'")
            return self.app.tracking.log_artifact(run_id, name, source)
        path = Path(source)
        return self.app.tracking.log_artifact(run_id, path.name if name is None else name, path)

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetRef]) -> None:
        self.app.tracking.log_inputs(run_id, inputs)

    # datasets ----------------------------------------------------------------------------
    def add_dataset(self, name: str, data: object, message: str = "") -> AddResult:
        """Add a version of dataset ``name`` from a CSV or Parquet file or folder (a path),
        or from a pandas or polars DataFrame, a pyarrow Table or a numpy array. Identical
        content returns the existing version and stores nothing."""
        if isinstance(data, str | Path):
            return self.app.datasets.add_path(name, Path(data), self.actor, message)
        from loopml.adapters.tables import to_arrow  # Arrow loads on use

        return self.app.datasets.add_table(name, to_arrow(data), self.actor, message=message)

    def log_dataset(
        self, run_id: str, name: str, data: object, message: str = ""
    ) -> DatasetVersion:
        """Add ``data`` as a version of ``name`` and record it as an input of the run."""
        version = self.add_dataset(name, data, message).version
        self.log_inputs(run_id, [DatasetRef(version.name, version.version, version.digest)])
        return version

    def get_dataset(self, ref: str) -> DatasetVersion:
        """``'bikes'`` (newest), ``'bikes@latest'`` or ``'bikes@3'``."""
        return self.app.datasets.get(ref)

    def read_dataset(self, ref: str) -> Any:
        """A version's rows as a pyarrow Table (``.to_pandas()`` for pandas)."""
        return self.app.datasets.read(ref)

    def infer_schema(
        self, ref: str, label: str | None = None, key: Sequence[str] | None = None
    ) -> DataSchema:
        """A schema that dataset version ``ref`` passes (see ``loopml data schema``)."""
        return self.app.validation.infer(ref, label, list(key) if key else None)

    def validate_data(
        self, data: object, schema: DataSchema | str | Path, environment: str = "training"
    ) -> ValidationReport:
        """Check ``data`` (a path, DataFrame, Arrow table or numpy array) against a schema
        or a schema file; ``report.ok`` is False when any finding is an error."""
        from loopml.adapters.tables import to_arrow  # Arrow loads on use
        from loopml.services.validation import read_schema

        rules = schema if isinstance(schema, DataSchema) else read_schema(Path(schema))
        if isinstance(data, str | Path):
            return self.app.validation.validate_path(Path(data), rules, environment)
        return self.app.validation.validate_batches(to_arrow(data), rules, environment)

    def flush(self) -> None:
        """Write every buffered metric point now; returns once they are committed."""
        self._buffer.flush()

    def get_run(self, run_id: str) -> Run:
        self._buffer.flush(run_id)
        return self.app.tracking.get_run(run_id)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        self._buffer.flush(run_id)
        return self.app.tracking.get_metric_history(run_id, key)

    def search_runs(
        self,
        filter: str | None = None,
        *,
        experiments: Sequence[str] = (),
        order_by: Sequence[str] | str | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
        output: Literal["list", "frame"] = "list",
    ) -> Any:
        """Runs matching ``filter`` (e.g. ``"metrics.rmse < 0.3 and params.model = 'gbr'"``):
        a :class:`RunList`, or a pandas DataFrame with ``output="frame"``."""
        self._buffer.flush()
        page = self.app.tracking.search_runs(experiments, filter, order_by, max_results, page_token)
        if output == "frame":
            return runs_frame(page.items)
        runs = RunList(page.items)
        runs.next_page_token = page.next_page_token
        return runs

    # registry ----------------------------------------------------------------------------
    def register_model(
        self,
        model: object,
        name: str,
        *,
        sample: Any = None,
        signature: Signature | None = None,
        run_id: str | None = None,
        flavor: str | None = None,
        metrics: Mapping[str, float] | None = None,
        inputs: Sequence[DatasetRef] = (),
        description: str = "",
        trusted: bool = False,
    ) -> ModelVersion:
        """Register ``model`` as the next version of ``name`` (stage ``candidate``)."""
        if signature is None and sample is not None:
            signature = infer_signature(sample, model)
        if run_id is not None:
            self._buffer.flush(run_id)
        return self.app.registry.register(
            model,
            name,
            self.actor,
            flavor=flavor,
            signature=signature,
            run_id=run_id,
            metrics=metrics,
            inputs=inputs,
            description=description,
            trusted=trusted,
        )

    def load_model(self, uri: str, *, trusted: bool = False) -> Any:
        """Load ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` or ``models:/NAME/STAGE``."""
        return self.app.registry.load(uri, trusted=trusted)

    def get_model_version(self, uri: str) -> ModelVersion:
        return self.app.registry.resolve(uri)

    def get_model(self, name: str) -> Model:
        return self.app.registry.get_model(name)

    def list_models(self, page_size: int = 100, page_token: str | None = None) -> Page[Model]:
        return self.app.registry.list_models(page_size, page_token)

    def list_versions(
        self,
        name: str,
        stage: Stage | str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> Page[ModelVersion]:
        parsed = Stage.parse(stage) if isinstance(stage, str) else stage
        return self.app.registry.list_versions(name, parsed, page_size, page_token)

    def promote(
        self,
        name: str,
        version: int,
        stage: Stage | str,
        *,
        reason: str | None = None,
        archive_existing: bool = False,
        allow_multiple: bool = False,
        force_reason: str | None = None,
    ) -> ModelVersion:
        """Move a version to ``stage``; a stage guarded by gates (``[gates]`` in
        loopml.toml, see docs/gates.md) runs them first, and only ``force_reason`` (a
        written reason, audited) lets a failing version through."""
        return self.app.registry.transition(
            name,
            version,
            stage,
            self.actor,
            reason=reason,
            archive_existing=archive_existing,
            allow_multiple=allow_multiple,
            force_reason=force_reason,
        )

    def archive(self, name: str, version: int, reason: str | None = None) -> ModelVersion:
        return self.app.registry.archive(name, version, self.actor, reason)

    # approvals ---------------------------------------------------------------------------
    def request_approval(
        self, name: str, version: int, stage: Stage | str = Stage.PRODUCTION
    ) -> ApprovalRequest:
        """Ask that another person approve moving a version into ``stage``, whose gate
        policy sets ``require_approval``; give them the returned request's ``id``."""
        return self.app.registry.request_approval(name, version, stage, self.actor)

    def approve(self, request_id: str, comment: str | None = None) -> ApprovalRequest:
        """Approve a pending request; then anyone may promote the version."""
        return self.app.registry.approve(request_id, self.actor, comment)

    def reject(self, request_id: str, comment: str) -> ApprovalRequest:
        """Reject a pending request; the comment says why and is required."""
        return self.app.registry.reject(request_id, self.actor, comment)

    def cancel_approval(self, request_id: str, comment: str | None = None) -> ApprovalRequest:
        """Withdraw your own pending request."""
        return self.app.registry.cancel(request_id, self.actor, comment)

    def get_approval(self, request_id: str) -> ApprovalRequest:
        return self.app.registry.get_approval(request_id)

    def list_approvals(
        self,
        model: str | None = None,
        status: ApprovalStatus | str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> Page[ApprovalRequest]:
        """Approval requests, newest first; of one model and one status when given."""
        return self.app.registry.list_approvals(model, status, page_size, page_token)

    # evaluation and gates ----------------------------------------------------------------
    def evaluate_model(
        self,
        uri: str,
        data: object,
        *,
        label: str,
        slices: Sequence[str] = (),
        sensitive: Sequence[str] = (),
        schema: DataSchema | None = None,
        importance_metric: str | None = None,
        trusted: bool = False,
    ) -> EvaluationResult:
        """Evaluate a registered version on labelled ``data`` (``NAME@VERSION`` of a
        dataset, or a DataFrame / Arrow table) and store the evaluation with it."""
        return self.app.evaluations.evaluate(
            uri,
            data,
            label=label,
            actor=self.actor,
            slices=slices,
            sensitive=sensitive,
            schema=schema,
            importance_metric=importance_metric,
            trusted=trusted,
        )

    def record_evaluation(
        self,
        uri: str,
        evaluation: Evaluation,
        *,
        dataset: str | None = None,
        data_validation: Mapping[str, bool | None] | None = None,
        latency_p99_ms: float | None = None,
    ) -> ModelEvaluation:
        """Store an evaluation computed elsewhere (``loopml.evaluate_regression`` in a
        pipeline step, say) with the version ``uri`` names; the gates read it."""
        return self.app.evaluations.record(
            self.app.registry.resolve(uri),
            evaluation,
            self.actor,
            dataset=dataset,
            data_validation=data_validation,
            latency_p99_ms=latency_p99_ms,
        )

    def check_gates(
        self,
        name: str,
        stage: Stage | str,
        metrics: Mapping[str, float],
        *,
        model_size_bytes: int | None = None,
        latency_p99_ms: float | None = None,
        data_validation: Mapping[str, bool | None] | None = None,
    ) -> GateReport:
        """Judge a candidate that is not registered yet against the gates of ``stage``
        (and the champion of ``name``): the gate step of a pipeline."""
        facts = ModelFacts.from_flat_metrics(
            metrics,
            model_size_bytes=model_size_bytes,
            latency_p99_ms=latency_p99_ms,
            data_validation=dict(data_validation or {}),
        )
        return self.app.registry.judge(name, stage, facts)

    def gate_report(self, uri: str, stage: Stage | str) -> GateReport:
        """What the gates of ``stage`` say about a registered version, without moving it."""
        mv = self.app.registry.resolve(uri)
        return self.app.registry.gate_report(mv.model, mv.version, stage)

    def monitor_report(self, deployment: str) -> MonitorReport:
        """Everything monitoring knows of ``deployment``: its windows, alerts and retrain
        loops, oldest first, for ``loopml monitor report`` (render it with
        :func:`loopml.adapters.monitor_html.render_monitor_html` or ``to_dict()``)."""
        app = self.app
        return build_report(
            deployment,
            app.monitoring.windows(deployment),
            [alert.to_dict() for alert, _ in reversed(app.alerting.list(deployment, 1000))],
            list(reversed(app.loops.history(deployment))),
            app.clock.now_ms(),
        )

    def model_card(self, uri: str, sections: str | Path | None = None) -> ModelCard:
        """The model card of ``uri``: what the registry, datasets, evaluations, gates and
        lineage know about the version, with the sections people wrote in ``sections``
        (default ``cards/NAME.md`` under the workspace root, read when it exists). Write
        it with ``card.to_markdown()`` or ``loopml card``.

        Raises:
            NotFound: no such version, or ``sections`` was given and does not exist.
        """
        from loopml.adapters.card_files import default_sections, read_sections, shown_path

        mv = self.app.registry.resolve(uri)
        root = self.app.root
        path = default_sections(root, mv.model) if sections is None else Path(sections)
        text = read_sections(path, required=sections is not None)
        return self.app.cards.card(mv.uri, text, sections_file=shown_path(path, root))

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self.app.registry.set_alias(name, alias, version, self.actor)

    def delete_alias(self, name: str, alias: str) -> None:
        self.app.registry.delete_alias(name, alias, self.actor)

    # sweeps ------------------------------------------------------------------------------
    def sweep(
        self,
        objective: Callable[[Trial[ActiveRun]], object],
        *,
        name: str,
        metric: str,
        n_trials: int,
        direction: str | None = None,
        space: Mapping[str, object] | None = None,
        register_as: str | None = None,
        sample: Any = None,
        pruner: object = "median",
        seed: int | None = 0,
        timeout_s: float | None = None,
        experiment: str | None = None,
        parent: str | ActiveRun | None = None,
        on_trial: Callable[[TrialRecord], None] | None = None,
    ) -> SweepResult:
        """Search hyperparameters with Optuna; every trial is a run under the sweep's run.

        Needs the ``sweep`` extra (``pip install 'loopml[sweep]'``). See docs/sweep.md.

        Args:
            objective: called once per trial with a :class:`~loopml.services.sweep.Trial`
                (``suggest_float/int/categorical``, ``report(value, step)``, ``run``);
                returns the metric's value, or ``(value, model)``.
            name: the sweep's name: its run's name and the ``loopml.sweep`` tag.
            metric: the metric the objective's value is logged as and optimized.
            n_trials: how many trials to run (fewer if ``timeout_s`` passes first).
            direction: ``"maximize"`` or ``"minimize"``; unset, inferred from a known
                metric name (``accuracy`` is maximized, ``rmse`` minimized).
            space: parameters suggested before the objective runs (in ``trial.params``):
                an optuna distribution, a list of choices or a ``(low, high)`` pair each.
            register_as: register the best trial's model as a candidate version of this
                model (every trial must then return ``(value, model)``).
            sample: input rows to infer the registered version's signature from.
            pruner: ``"median"`` (default), ``"hyperband"``, ``"none"`` or an optuna pruner.
            seed: the sampler's seed, for a repeatable sweep (``None`` for a random one).
            timeout_s: start no new trial after this many seconds.
            experiment: the experiment of the sweep's runs (a ``parent``'s by default).
            parent: a run to nest the sweep's run under.
            on_trial: called with each trial's record as it ends.

        Returns:
            The sweep's run id, each trial's record, the best trial and the registered
            version. Raises :class:`~loopml.domain.errors.InvalidState` if every trial
            failed, naming the first error.
        """
        if isinstance(parent, ActiveRun):
            experiment = experiment or parent.experiment
            parent = parent.id
        elif parent is not None and experiment is None:
            experiment = self.get_run(parent).experiment
        return run_sweep(
            self,
            objective,
            name=name,
            metric=metric,
            n_trials=n_trials,
            direction=direction,
            space=space,
            register_as=register_as,
            sample=sample,
            pruner=pruner,
            seed=seed,
            timeout_s=timeout_s,
            experiment=experiment,
            parent=parent,
            on_trial=on_trial,
        )

    # audit -------------------------------------------------------------------------------
    def audit_events(
        self, object_id: str | None = None, page_size: int = 100, page_token: str | None = None
    ) -> Page[AuditEvent]:
        return self.app.audit.list_events(object_id, page_size, page_token)

    def verify_audit(self) -> ChainReport:
        return self.app.audit.verify()

    def close(self) -> None:
        """Flush buffered metrics and release database connections."""
        self._buffer.close()
        self.app.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _next_step(steps: dict[str, int], key: str, step: int | None) -> int:
    """``step``, or one past the key's last step in this run (0 for its first point)."""
    if step is None:
        step = steps.get(key, -1) + 1
    steps[key] = step
    return step


def runs_frame(runs: Sequence[Run]) -> Any:
    """One row per run: attributes, then ``params.*``, ``metrics.*`` and ``tags.*``."""
    import pandas as pd

    rows = []
    for run in runs:
        row: dict[str, object] = {
            "run_id": run.id,
            "experiment": run.experiment,
            "name": run.name,
            "status": run.status.value,
            "start_ms": run.start_ms,
            "end_ms": run.end_ms,
        }
        row.update({f"params.{k}": v for k, v in run.params.items()})
        row.update({f"metrics.{k}": v for k, v in run.metrics.items()})
        row.update({f"tags.{k}": v for k, v in run.tags.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _open(workspace: str | Path | None, flags: Mapping[str, object]) -> Loopml:
    settings = load_settings(workspace, flags=flags, require=False)
    if not (settings.root / CONFIG_FILE).is_file():
        init_workspace(settings.root, **flags)
        print(
            f"loopml: created a workspace in {settings.root} (loopml.toml, .loopml/)",
            file=sys.stderr,
        )
        settings = load_settings(settings.root, flags=flags)
    return open_workspace(settings, create=True)


def _close_at_exit(ref: weakref.ReferenceType[Client]) -> None:
    client = ref()
    if client is not None:
        try:
            client._buffer.close()
        except Exception as exc:  # at exit there is no caller left to raise to
            print(f"loopml: could not write buffered metrics at exit: {exc}", file=sys.stderr)
