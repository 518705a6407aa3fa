"""Hyperparameter sweeps on Optuna: every trial a tracked run, pruning, the best registered.

:func:`run_sweep` drives an Optuna study through its ask-and-tell interface, so loopml, not
Optuna, owns each trial's life: the trial's run starts (nested under the sweep's run)
before the objective is called and ends with the trial: finished when it completed, killed
when it was pruned, failed when the objective raised or returned something that is not a
finite number. A failing trial does not stop the sweep; a sweep whose every trial failed
raises, naming the first error. The sweep reaches runs and the registry only through
:class:`SweepTracker`, the part of the SDK client it needs, and imports Optuna on the first
sweep, never on ``import loopml``. Trials run one after another, in this process; the
Optuna study lives in memory, and the runs are the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from loopml.domain.errors import ConfigError, InvalidInput, InvalidState, StorageError
from loopml.domain.names import validate_key
from loopml.domain.registry import ModelVersion
from loopml.domain.sweep import (
    TAG_BEST_RUN,
    TAG_ERROR,
    TAG_SWEEP,
    TAG_TRIAL,
    TAG_TRIAL_STATE,
    SweepResult,
    SweepSpec,
    TrialRecord,
    TrialState,
    error_text,
    objective_outcome,
    pruner_name,
    real_number,
    whole_number,
)
from loopml.domain.tracking import RunStatus

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.pruners import BasePruner

# Errors of the store, not of the objective: a sweep cannot go on without its records.
_ABORTING = (StorageError,)


class TrialRun(Protocol):
    """The run handle a trial logs to (the SDK's ``ActiveRun``)."""

    @property
    def id(self) -> str: ...

    def log_params(self, params: Mapping[str, object]) -> None: ...

    def log_metric(self, key: str, value: float, step: int | None = None) -> None: ...

    def log_metrics(self, values: Mapping[str, object], step: int | None = None) -> None: ...

    def set_tags(self, tags: Mapping[str, object]) -> None: ...

    def end(self, status: RunStatus = RunStatus.FINISHED) -> None: ...


R = TypeVar("R", bound=TrialRun)
R_co = TypeVar("R_co", bound=TrialRun, covariant=True)
C = TypeVar("C", None, bool, int, float, str)
V = TypeVar("V")


class SweepTracker(Protocol[R_co]):
    """What a sweep needs from the SDK client: start runs, register the best model."""

    def start_run(
        self,
        experiment: str | None = None,
        name: str | None = None,
        *,
        parent: str | None = None,
        tags: Mapping[str, object] | None = None,
    ) -> R_co: ...

    def register_model(
        self, model: object, name: str, *, sample: Any = None, run_id: str | None = None
    ) -> ModelVersion: ...


class Trial(Generic[R]):
    """What the objective receives: suggest parameters, report progress, log to ``run``.

    Every suggested value is logged as a param of the trial's run. ``report(value, step)``
    logs the sweep's metric at that step and raises ``optuna.TrialPruned`` when the pruner
    says the trial is not worth finishing; let it propagate.
    """

    def __init__(self, trial: optuna.Trial, run: R, metric: str) -> None:
        self._trial = trial
        self.run = run
        self.metric = metric
        self.last_report: tuple[int, float] | None = None

    @property
    def number(self) -> int:
        """The trial's number in the sweep: 0, 1, 2..."""
        return self._trial.number

    @property
    def params(self) -> dict[str, Any]:
        """The parameters suggested so far (including those of the sweep's ``space``)."""
        return dict(self._trial.params)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        """A float in ``[low, high]``; ``log=True`` samples on a log scale."""
        return self._logged(name, self._trial.suggest_float(name, low, high, step=step, log=log))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        """An integer in ``[low, high]``."""
        return self._logged(name, self._trial.suggest_int(name, low, high, step=step, log=log))

    def suggest_categorical(self, name: str, choices: Sequence[C]) -> C:
        """One of ``choices`` (None, bools, numbers or strings)."""
        return self._logged(name, self._trial.suggest_categorical(name, choices))

    def report(self, value: float, step: int) -> None:
        """Log an intermediate ``value`` of the metric at ``step`` (0, 1, 2...) and prune
        the trial, by raising ``optuna.TrialPruned``, when the pruner says so."""
        import optuna

        number = real_number(value)
        if number is None:
            raise InvalidInput(
                f"trial.report() needs a number for {self.metric!r}, got "
                f"{type(value).__name__} {value!r}"
            )
        whole = whole_number(step)
        if whole is None or whole < 0:
            raise InvalidInput(f"trial.report() needs a step of 0 or more, got {step!r}")
        self.run.log_metric(self.metric, number, whole)
        self._trial.report(number, whole)
        self.last_report = (whole, number)
        if self._trial.should_prune():
            raise optuna.TrialPruned(
                f"trial {self.number} pruned at step {whole} ({self.metric} = {number:.6g})"
            )

    def should_prune(self) -> bool:
        """Whether the pruner would stop the trial now (``report`` already acts on it)."""
        return self._trial.should_prune()

    def _logged(self, name: str, value: V) -> V:
        self.run.log_params({name: value})
        return value


def run_sweep(
    tracker: SweepTracker[R],
    objective: Callable[[Trial[R]], object],
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
    parent: str | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
) -> SweepResult:
    """Run ``objective`` for ``n_trials`` trials and return what each became.

    See :meth:`loopml.client.Client.sweep` for the arguments. ``on_trial`` is called with
    each trial's record as it ends (the CLI prints it).
    """
    if not callable(objective):
        raise InvalidInput(
            f"the objective must be a function of one trial, got {type(objective).__name__}"
        )
    spec = SweepSpec.create(
        name=name,
        metric=metric,
        n_trials=n_trials,
        direction=direction,
        timeout_s=timeout_s,
        register_as=register_as,
        seed=seed,
    )
    optuna = _import_optuna()
    distributions = _distributions(space)
    chosen_pruner, pruner_label = _pruner(pruner)
    with _quiet_optuna(optuna):
        study = optuna.create_study(
            study_name=spec.name,
            direction=spec.direction.value,
            sampler=optuna.samplers.TPESampler(seed=spec.seed),
            pruner=chosen_pruner,
        )
        sweep_run = tracker.start_run(
            experiment, spec.name, parent=parent, tags={TAG_SWEEP: spec.name}
        )
        try:
            sweep_run.log_params(
                {
                    "sweep.metric": spec.metric,
                    "sweep.direction": spec.direction.value,
                    "sweep.n_trials": spec.n_trials,
                    "sweep.pruner": pruner_label,
                    "sweep.seed": "none" if spec.seed is None else spec.seed,
                }
            )
            sweep = _Sweep(tracker, objective, spec, study, distributions, sweep_run, experiment)
            result = sweep.run(on_trial)
            if result.best is not None and spec.register_as is not None:
                version = tracker.register_model(
                    sweep.best_model, spec.register_as, sample=sample, run_id=result.best.run_id
                )
                result = replace(result, model_version=version)
        except BaseException as exc:
            killed = isinstance(exc, KeyboardInterrupt)
            sweep_run.end(RunStatus.KILLED if killed else RunStatus.FAILED)
            raise
        sweep_run.end(RunStatus.FINISHED)
    return result


class _Sweep(Generic[R]):
    """One sweep in progress: the study, the parent run and the best trial so far."""

    def __init__(
        self,
        tracker: SweepTracker[R],
        objective: Callable[[Trial[R]], object],
        spec: SweepSpec,
        study: optuna.Study,
        distributions: dict[str, BaseDistribution],
        sweep_run: R,
        experiment: str | None,
    ) -> None:
        self.tracker = tracker
        self.objective = objective
        self.spec = spec
        self.study = study
        self.distributions = distributions
        self.sweep_run = sweep_run
        self.experiment = experiment
        self.trials: list[TrialRecord] = []
        self.best: TrialRecord | None = None
        self.best_value: float | None = None
        self.best_model: object | None = None
        self.first_error: BaseException | None = None

    def run(self, on_trial: Callable[[TrialRecord], None] | None) -> SweepResult:
        deadline = None if self.spec.timeout_s is None else time.monotonic() + self.spec.timeout_s
        for _ in range(self.spec.n_trials):
            if deadline is not None and time.monotonic() >= deadline:
                break
            record = self._trial()
            self.trials.append(record)
            if on_trial is not None:
                on_trial(record)
        result = SweepResult(
            name=self.spec.name,
            run_id=self.sweep_run.id,
            metric=self.spec.metric,
            direction=self.spec.direction,
            trials=tuple(self.trials),
            best=self.best,
        )
        self._summarise(result)
        if self.trials and result.n_failed == len(self.trials):
            first = self.trials[0]
            raise InvalidState(
                f"every trial of sweep {self.spec.name!r} failed ({len(self.trials)} of "
                f"{len(self.trials)}); the first, trial {first.number} (run {first.run_id}), "
                f"raised {first.error}. Fix the objective and run the sweep again"
            ) from self.first_error
        return result

    def _trial(self) -> TrialRecord:
        import optuna
        from optuna.trial import TrialState as OptunaState

        otrial = self.study.ask(self.distributions)
        number = otrial.number
        run = self.tracker.start_run(
            self.experiment,
            f"{self.spec.name}-{number}",
            parent=self.sweep_run.id,
            tags={TAG_SWEEP: self.spec.name, TAG_TRIAL: number},
        )
        trial = Trial(otrial, run, self.spec.metric)
        try:
            run.log_params(otrial.params)
            returned = self.objective(trial)
            value, model = objective_outcome(
                returned, self.spec.metric, model_required=self.spec.register_as is not None
            )
            run.log_metric(self.spec.metric, value)
        except optuna.TrialPruned:
            self.study.tell(otrial, state=OptunaState.PRUNED)
            step, last = trial.last_report if trial.last_report else (None, None)
            run.set_tags({TAG_TRIAL_STATE: TrialState.PRUNED.value})
            run.end(RunStatus.KILLED)
            return TrialRecord(number, run.id, TrialState.PRUNED, trial.params, last, step)
        except _ABORTING:
            self.study.tell(otrial, state=OptunaState.FAIL)
            run.end(RunStatus.FAILED)
            raise
        except Exception as exc:
            self.study.tell(otrial, state=OptunaState.FAIL)
            text = error_text(exc)
            run.set_tags({TAG_TRIAL_STATE: TrialState.FAILED.value, TAG_ERROR: text})
            run.end(RunStatus.FAILED)
            if self.first_error is None:
                self.first_error = exc
            return TrialRecord(number, run.id, TrialState.FAILED, trial.params, error=text)
        except BaseException:  # KeyboardInterrupt and friends: stop everything
            self.study.tell(otrial, state=OptunaState.FAIL)
            run.end(RunStatus.KILLED)
            raise
        self.study.tell(otrial, value)
        run.set_tags({TAG_TRIAL_STATE: TrialState.COMPLETE.value})
        run.end(RunStatus.FINISHED)
        record = TrialRecord(number, run.id, TrialState.COMPLETE, trial.params, value)
        if self.best_value is None or self.spec.direction.better(value, self.best_value):
            self.best, self.best_value, self.best_model = record, value, model
            self.sweep_run.log_metric("best_value", value, number)
        return record

    def _summarise(self, result: SweepResult) -> None:
        """The sweep's own run: counts, the best value, trial and params."""
        self.sweep_run.log_metrics(
            {
                "n_complete": result.n_complete,
                "n_pruned": result.n_pruned,
                "n_failed": result.n_failed,
            }
        )
        best = result.best
        if best is not None:
            self.sweep_run.log_metric("best_trial", best.number)
            self.sweep_run.log_params({f"best.{k}": v for k, v in best.params.items()})
            self.sweep_run.set_tags({TAG_BEST_RUN: best.run_id})


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise ConfigError(
            "sweeps need Optuna, an optional dependency: pip install 'loopml[sweep]'"
        ) from exc
    return optuna


@contextmanager
def _quiet_optuna(optuna: Any) -> Iterator[None]:
    """Silence Optuna's per-trial INFO lines while a sweep runs (the runs are the record);
    warnings still show. The caller's verbosity is restored afterwards."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(before, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def _pruner(value: object) -> tuple[BasePruner, str]:
    """An Optuna pruner object and the name to record for it."""
    from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner

    if isinstance(value, BasePruner):
        return value, type(value).__name__
    name = pruner_name(value)
    made = {"median": MedianPruner, "hyperband": HyperbandPruner, "none": NopPruner}[name]()
    return made, name


def _distributions(space: Mapping[str, object] | None) -> dict[str, BaseDistribution]:
    """Optuna distributions from a ``space``: each value an optuna distribution, a list of
    choices, or a ``(low, high)`` pair (integers for an int range, else a float range)."""
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if space is None:
        return {}
    if not isinstance(space, Mapping):
        raise InvalidInput(
            f"space must be a mapping of param name to distribution, got {type(space).__name__}"
        )
    made: dict[str, BaseDistribution] = {}
    for key, spec in space.items():
        validate_key("param", key)
        try:
            if isinstance(spec, BaseDistribution):
                made[key] = spec
            elif isinstance(spec, list) and spec:
                made[key] = CategoricalDistribution(spec)
            elif isinstance(spec, tuple) and len(spec) == 2:
                low, high = spec
                if whole_number(low) is not None and whole_number(high) is not None:
                    made[key] = IntDistribution(int(low), int(high))
                elif real_number(low) is not None and real_number(high) is not None:
                    made[key] = FloatDistribution(float(low), float(high))
                else:
                    raise ValueError(f"bounds must be numbers, got {low!r} and {high!r}")
            else:
                raise ValueError(f"got {type(spec).__name__} {spec!r}")
        except ValueError as exc:
            raise InvalidInput(
                f"space[{key!r}] is not a distribution: {exc}. Expected an optuna "
                "distribution, a list of choices such as ['l1', 'l2'], or a (low, high) "
                "pair such as (0.01, 10.0)"
            ) from exc
    return made
