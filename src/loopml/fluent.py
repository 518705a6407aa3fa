"""The module-level SDK: ``loopml.start_run(...)`` and friends on a default client.

A process-wide default :class:`~loopml.client.Client` is created on first use (finding
or creating the workspace). The active run is tracked per thread and per asyncio task
(a context variable), and ``start_run`` inside another run nests under it.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.client import ActiveRun, Client
from loopml.client.workspace_pipeline import config_params, load_pipeline
from loopml.domain.datasets import DatasetVersion
from loopml.domain.errors import InvalidState
from loopml.domain.pipelines import Pipeline
from loopml.domain.registry import ModelVersion
from loopml.domain.tracking import RunStatus
from loopml.services.pipelines import Observer, PipelineResult

if TYPE_CHECKING:
    from loopml.domain.sweep import SweepResult
    from loopml.services.agent import Agent
    from loopml.services.sweep import Trial

_default: Client | None = None
_default_lock = threading.Lock()
_active: contextvars.ContextVar[tuple[ActiveRun, ...]] = contextvars.ContextVar(
    "loopml_active_runs", default=()
)


def get_client() -> Client:
    """The default client of this process, created on first use."""
    global _default  # noqa: PLW0603  # the one process-wide default client
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def set_client(client: Client | None) -> None:
    """Replace the default client (e.g. ``Client("other/workspace")``); None resets it."""
    global _default  # noqa: PLW0603  # the one process-wide default client
    with _default_lock:
        _default = client


@contextmanager
def start_run(
    experiment: str | None = None,
    name: str | None = None,
    *,
    tags: Mapping[str, object] | None = None,
    nested: bool = True,
) -> Iterator[ActiveRun]:
    """Start a run and make it the active one for the ``with`` block.

    Inside another active run the new run is its child (``nested=False`` to start a
    top-level run instead). The run ends as finished, or failed if the block raised.
    """
    stack = _active.get()
    parent = stack[-1] if stack and nested else None
    if experiment is None and parent is not None:
        experiment = parent.experiment
    run = get_client().start_run(experiment, name, parent=parent, tags=tags)
    token = _active.set((*stack, run))
    try:
        with run:
            yield run
    finally:
        _active.reset(token)


def active_run() -> ActiveRun | None:
    stack = _active.get()
    return stack[-1] if stack else None


def _require_run() -> ActiveRun:
    run = active_run()
    if run is None:
        raise InvalidState(
            "no active run: wrap the call in `with loopml.start_run():`, or use "
            "a Client and pass a run id explicitly"
        )
    return run


def log_param(key: str, value: object) -> None:
    _require_run().log_param(key, value)


def log_params(params: Mapping[str, object]) -> None:
    _require_run().log_params(params)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    _require_run().log_metric(key, value, step)


def log_metrics(values: Mapping[str, object], step: int | None = None) -> None:
    _require_run().log_metrics(values, step)


def set_tags(tags: Mapping[str, object]) -> None:
    _require_run().set_tags(tags)


def log_artifact(source: str | Path | bytes, name: str | None = None) -> None:
    _require_run().log_artifact(source, name)


def log_dataset(name: str, data: object, message: str = "") -> DatasetVersion:
    """Add ``data`` (a path, DataFrame, Arrow table or numpy array) as a version of dataset
    ``name`` and record it as an input of the active run."""
    return _require_run().log_dataset(name, data, message)


def register_model(model: object, name: str, **kwargs: Any) -> ModelVersion:
    """Register ``model``; inside a run, the version's lineage points at that run."""
    run = active_run()
    if run is None:
        return get_client().register_model(model, name, **kwargs)
    kwargs.setdefault("run_id", run.id)
    return run.client.register_model(model, name, **kwargs)


def run_pipeline(
    pipeline: Pipeline,
    *,
    client: Client | None = None,
    params: Mapping[str, Any] | None = None,
    resume: bool = False,
    observer: Observer | None = None,
    source: str | None = None,
) -> PipelineResult:
    """Run ``pipeline`` with content-keyed caching; each step is a run nested under the
    pipeline's run, and the active run while it executes (so ``loopml.log_metric`` and
    ``loopml.register_model`` inside a step record to it). See docs/pipelines.md."""
    chosen = get_client() if client is None else client
    if params:
        pipeline = pipeline.with_params(params)
    return chosen.app.pipelines.run(
        pipeline, runs=StepRuns(chosen), observer=observer, resume=resume, source=source
    )


class StepRuns:
    """Pipeline step runs as SDK runs: buffered metrics, and active while a step runs."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.open: dict[str, ActiveRun] = {}

    def start(self, experiment: str, name: str, parent: str | None, tags: dict[str, str]) -> str:
        run = self.client.start_run(experiment, name, parent=parent, tags=tags)
        self.open[run.id] = run
        return run.id

    @contextmanager
    def active(self, run_id: str) -> Iterator[ActiveRun]:
        active = self.open[run_id]
        token = _active.set((*_active.get(), active))
        try:
            yield active
        finally:
            _active.reset(token)

    def finish(self, run_id: str, status: RunStatus) -> None:
        self.open.pop(run_id).end(status)


def sweep(
    objective: Callable[[Trial[ActiveRun]], object], *, client: Client | None = None, **kwargs: Any
) -> SweepResult:
    """Search hyperparameters with Optuna: ``loopml.sweep(objective, name="ridge",
    metric="r2", n_trials=20, register_as="bike-demand")``. Arguments as
    :meth:`~loopml.client.Client.sweep`; ``client`` defaults to the default client.

    Every trial is a run nested under the sweep's run (itself nested under the active run,
    if any), and is the active run while its objective runs, so ``loopml.log_metric`` and
    friends inside the objective log to the trial.
    """
    chosen = get_client() if client is None else client
    outer = active_run()
    if outer is not None and outer.client is chosen and "parent" not in kwargs:
        kwargs["parent"] = outer

    def in_trial_run(trial: Trial[ActiveRun]) -> object:
        token = _active.set((*_active.get(), trial.run))
        try:
            return objective(trial)
        finally:
            _active.reset(token)

    # Not callable: pass it on as it is, for the sweep's own error message.
    return chosen.sweep(in_trial_run if callable(objective) else objective, **kwargs)


def load_model(uri: str, *, trusted: bool = False) -> Any:
    return get_client().load_model(uri, trusted=trusted)


def search_runs(filter: str | None = None, **kwargs: Any) -> Any:
    return get_client().search_runs(filter, **kwargs)


def flush() -> None:
    get_client().flush()


class PipelineTrainer:
    """How the retrain loop trains: it runs the workspace's pipeline (``[pipeline]`` of
    loopml.toml, with its params) and returns the model version the pipeline registered,
    the newest ``models:/`` URI a step returned."""

    def __init__(self, client: Client, target: str | None = None) -> None:
        self.client = client
        self.target = target

    def train(self, reason: str) -> str:
        source, pipeline = load_pipeline(self.client, self.target)
        result = run_pipeline(
            pipeline, client=self.client, params=config_params(self.client), source=source
        )
        failed = [o for o in result.outcomes if o.error]
        if not result.ok:
            why = failed[0].error if failed else "a step was skipped"
            raise InvalidState(f"pipeline {pipeline.name} ({source}) failed for {reason}: {why}")
        for outcome in reversed(result.outcomes):
            record = outcome.record
            for stored in () if record is None else record.outputs.values():
                value = self.client.app.pipelines.load_output(stored)
                if isinstance(value, str) and value.startswith("models:/"):
                    return value
        raise InvalidState(
            f"pipeline {pipeline.name} ({source}) ran but no step returned a registered "
            "model's URI (models:/NAME/VERSION); the retrain loop needs one, e.g. from a "
            "register step returning `mv.uri`"
        )


def build_agent(client: Client) -> Agent:
    """The agent of the client's workspace: a monitor job per ``[monitor.NAME]``, and a
    loop job for each with a retrain loop, training through :class:`PipelineTrainer`."""
    from loopml.services.agent import Agent  # lazy: numpy, Arrow

    app = client.app
    return Agent(
        app.stores.loops,
        app.clock,
        app.monitoring,
        app.reviews,
        app.alerting,
        app.loops,
        app.monitor_specs,
        PipelineTrainer(client),
        service=app.service_metrics,
    )
