"""Hyperparameter sweeps: what a sweep is asked to do, and what each of its trials became.

A sweep calls an objective once per trial with parameters a sampler chooses; every trial is
a run nested under the sweep's own run. :class:`SweepSpec` validates the request, so a bad
argument fails before any run starts; :func:`objective_outcome` checks what an objective
returned; :class:`TrialRecord` and :class:`SweepResult` are the outcome. The search itself
(Optuna) lives in :mod:`loopml.services.sweep`. Standard library only, no I/O.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from enum import StrEnum

from loopml.domain.errors import InvalidInput
from loopml.domain.metric_directions import Direction as MetricDirection
from loopml.domain.metric_directions import MetricDirections
from loopml.domain.names import validate_identifier, validate_key
from loopml.domain.registry import ModelVersion

# Tags every sweep writes; search with e.g. "tags.loopml.sweep = 'ridge'".
TAG_SWEEP = "loopml.sweep"
TAG_TRIAL = "loopml.trial"
TAG_TRIAL_STATE = "loopml.trial_state"
TAG_ERROR = "loopml.error"
TAG_BEST_RUN = "loopml.best_run"
PRUNERS = ("median", "hyperband", "none")
MAX_ERROR_TEXT = 2000


class Direction(StrEnum):
    """Which way the swept metric gets better."""

    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"

    @classmethod
    def parse(cls, value: object, metric: str) -> Direction:
        """``maximize``/``minimize``; ``None`` infers it from a known metric name (``rmse``
        is minimized, ``accuracy`` maximized)."""
        if value is None:
            found = MetricDirections().find(metric)
            if found is MetricDirection.HIGHER:
                return cls.MAXIMIZE
            if found is MetricDirection.LOWER:
                return cls.MINIMIZE
            raise InvalidInput(
                f"cannot tell whether metric {metric!r} should be maximized or minimized; "
                "pass direction='maximize' or 'minimize' (--direction)"
            )
        if isinstance(value, str) and value.lower() in {d.value for d in cls}:
            return cls(value.lower())
        raise InvalidInput(
            f"direction must be 'maximize' or 'minimize', got {value!r}; "
            "leave it unset to infer it from a known metric such as 'accuracy' or 'rmse'"
        )

    def better(self, value: float, than: float) -> bool:
        return value > than if self is Direction.MAXIMIZE else value < than


class TrialState(StrEnum):
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """A validated sweep request; build it with :meth:`create`."""

    name: str
    metric: str
    direction: Direction
    n_trials: int
    timeout_s: float | None = None
    register_as: str | None = None
    seed: int | None = 0

    @classmethod
    def create(
        cls,
        *,
        name: object,
        metric: object,
        n_trials: object,
        direction: object = None,
        timeout_s: object = None,
        register_as: object = None,
        seed: object = 0,
    ) -> SweepSpec:
        metric_key = validate_key("metric", metric)
        return cls(
            name=validate_identifier("sweep name", name),
            metric=metric_key,
            direction=Direction.parse(direction, metric_key),
            n_trials=_trial_count(n_trials),
            timeout_s=_timeout(timeout_s),
            register_as=None
            if register_as is None
            else validate_identifier("model name", register_as),
            seed=_seed(seed),
        )


def _trial_count(value: object) -> int:
    count = whole_number(value)
    if count is not None and count >= 1:
        return count
    raise InvalidInput(
        f"n_trials must be a whole number of at least 1, got {value!r}; "
        "e.g. n_trials=20 (--trials 20)"
    )


def _timeout(value: object) -> float | None:
    if value is None:
        return None
    seconds = real_number(value)
    if seconds is not None and math.isfinite(seconds) and seconds > 0:
        return seconds
    raise InvalidInput(f"timeout_s must be a positive number of seconds or None, got {value!r}")


def pruner_name(value: object) -> str:
    """A built-in pruner's name (``None`` is ``none``); :class:`InvalidInput` otherwise."""
    if value is None:
        return "none"
    if isinstance(value, str) and value.lower() in PRUNERS:
        return value.lower()
    raise InvalidInput(
        f"pruner must be one of {', '.join(PRUNERS)} (or an optuna pruner object), got {value!r}"
    )


def _seed(value: object) -> int | None:
    if value is None:
        return None
    seed = whole_number(value)
    if seed is not None:
        return seed
    raise InvalidInput(f"seed must be a whole number or None, got {value!r}")


def objective_outcome(
    returned: object, metric: str, *, model_required: bool
) -> tuple[float, object | None]:
    """Split what an objective returned into ``(value, model)``; :class:`InvalidInput`
    saying what was wrong when it is not a finite number or a ``(number, model)`` pair."""
    expected = f"a number (the value of {metric!r}) or a (value, model) pair"
    model: object | None = None
    value = returned
    if isinstance(returned, tuple):
        if len(returned) != 2:
            raise InvalidInput(
                f"the objective returned a tuple of {len(returned)} items; expected {expected}"
            )
        value, model = returned
        if model is None:
            raise InvalidInput("the objective returned (value, None); the model is missing")
    number = real_number(value)
    if number is None:
        raise InvalidInput(
            f"the objective returned {type(value).__name__} {value!r}; expected {expected}"
        )
    if not math.isfinite(number):
        raise InvalidInput(
            f"the objective returned {metric} = {number}; a trial's value must be finite"
        )
    if model_required and model is None:
        raise InvalidInput(
            f"the objective returned only a value, but the sweep registers its best model: "
            f"return (value, model), e.g. `return {metric}, model`"
        )
    return number, model


def error_text(exc: BaseException) -> str:
    """``'ValueError: message'``, cut to a length a tag can hold."""
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """One trial: its run, how it ended, its params and value (the last reported value
    for a pruned trial, none for a failed one) and, if it failed, the error."""

    number: int
    run_id: str
    state: TrialState
    params: dict[str, object] = field(default_factory=dict)
    value: float | None = None
    step: int | None = None  # the last step reported, for a pruned trial
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "number": self.number,
            "run_id": self.run_id,
            "state": self.state.value,
            "value": self.value,
            "step": self.step,
            "params": dict(self.params),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What a sweep did: its run, every trial, the best one and the version registered."""

    name: str
    run_id: str
    metric: str
    direction: Direction
    trials: tuple[TrialRecord, ...]
    best: TrialRecord | None = None
    model_version: ModelVersion | None = None

    @property
    def best_value(self) -> float | None:
        return None if self.best is None else self.best.value

    @property
    def best_params(self) -> dict[str, object]:
        return {} if self.best is None else dict(self.best.params)

    def count(self, state: TrialState) -> int:
        return sum(1 for t in self.trials if t.state is state)

    @property
    def n_complete(self) -> int:
        return self.count(TrialState.COMPLETE)

    @property
    def n_pruned(self) -> int:
        return self.count(TrialState.PRUNED)

    @property
    def n_failed(self) -> int:
        return self.count(TrialState.FAILED)

    def as_dict(self) -> dict[str, object]:
        mv = self.model_version
        return {
            "sweep": self.name,
            "run_id": self.run_id,
            "metric": self.metric,
            "direction": self.direction.value,
            "n_complete": self.n_complete,
            "n_pruned": self.n_pruned,
            "n_failed": self.n_failed,
            "best": None if self.best is None else self.best.as_dict(),
            "model_version": None
            if mv is None
            else {"name": mv.model, "version": mv.version, "uri": mv.uri, "stage": mv.stage.value},
            "trials": [t.as_dict() for t in self.trials],
        }


def real_number(value: object) -> float | None:
    """``value`` as a float if it is a real number (numpy scalars too, bools not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def whole_number(value: object) -> int | None:
    """``value`` as an int if it is a whole number (numpy integers too, bools not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)
