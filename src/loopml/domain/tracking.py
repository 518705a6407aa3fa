"""Experiments, runs and what a run records: params, metrics, tags, artifacts, inputs.

These are plain frozen values. Times are integer milliseconds since the Unix epoch (UTC),
the unit of the metric hot path, used everywhere for one consistent representation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from loopml.domain.artifacts import ArtifactRef
from loopml.domain.errors import InvalidInput, ParamConflict
from loopml.domain.names import is_known_key, validate_key

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"

    @property
    def is_terminal(self) -> bool:
        return self is not RunStatus.RUNNING


@dataclass(frozen=True, slots=True)
class Experiment:
    id: int
    name: str
    created_ms: int


class Metric(NamedTuple):
    """One point of a metric series. A named tuple, not a dataclass: it is built once per
    logged value, and a tuple is built several times faster than a frozen dataclass."""

    key: str
    value: float
    step: int
    timestamp_ms: int


def make_metric(key: str, value: object, step: object, timestamp_ms: int) -> Metric:
    """Validate and build a :class:`Metric`; NaN and infinities are kept as they are."""
    if type(value) is float and type(step) is int and is_known_key(key):
        return Metric(key, value, step, timestamp_ms)  # the hot path: nothing to convert
    validate_key("metric", key)
    if isinstance(value, bool):
        raise InvalidInput(f"metric {key!r} must be a number, got bool {value!r}; log 0 or 1")
    if not isinstance(value, int | float):
        try:
            value = float(value)  # type: ignore[arg-type]  # numpy scalars and friends
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"metric {key!r} must be a number, got {type(value).__name__} {value!r}"
            ) from exc
    if isinstance(step, int) and not isinstance(step, bool):
        return Metric(key, float(value), step, timestamp_ms)
    try:
        whole = int(step)  # type: ignore[call-overload]  # numpy integers and friends
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metric {key!r} step must be an integer, got {step!r}") from exc
    return Metric(key, float(value), whole, timestamp_ms)


def param_text(key: str, value: object) -> str:
    """Params are stored as text: ``str(value)``, validated for length."""
    validate_key("param", key)
    text = value if isinstance(value, str) else _canonical_text(value)
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidInput(
            f"param {key!r} value is {len(text)} characters; at most {MAX_PARAM_VALUE} are "
            "allowed. Log large values as an artifact instead."
        )
    return text


def check_params_unchanged(run_id: str, stored: Mapping[str, str], new: Mapping[str, str]) -> None:
    """Params are immutable: raise :class:`ParamConflict`, naming both values, for every
    param in ``new`` that ``stored`` already holds with a different value."""
    clashes = [(k, stored[k], v) for k, v in new.items() if k in stored and stored[k] != v]
    if clashes:
        detail = "; ".join(f"{k!r} is {old!r}, new value {v!r}" for k, old, v in clashes)
        raise ParamConflict(
            f"run {run_id} already has different values for params: {detail}. Params are "
            "immutable; start a new run, or log changing values as metrics or tags"
        )


def tag_text(key: str, value: object) -> str:
    validate_key("tag", key)
    text = value if isinstance(value, str) else _canonical_text(value)
    if len(text) > MAX_TAG_VALUE:
        raise InvalidInput(
            f"tag {key!r} value is {len(text)} characters; at most {MAX_TAG_VALUE} are allowed"
        )
    return text


def _canonical_text(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return repr(value)  # keep 1.0 distinct from 1
    return str(value)


@dataclass(frozen=True, slots=True)
class CodeVersion:
    """Where the code of a run came from. ``diff_hash`` is set only when ``dirty``."""

    commit: str
    branch: str | None
    dirty: bool
    diff_hash: str | None = None
    repo_path: str | None = None


@dataclass(frozen=True, slots=True)
class EnvironmentInfo:
    python: str
    platform: str
    packages: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """A dataset version a run read: ``name`` and ``version`` plus its content digest."""

    name: str
    version: int
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class Run:
    """A run and everything it recorded, as of the moment it was read."""

    id: str
    experiment: str
    name: str
    status: RunStatus
    start_ms: int
    end_ms: int | None = None
    parent_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # latest value per key
    tags: dict[str, str] = field(default_factory=dict)
    code: CodeVersion | None = None
    environment: EnvironmentInfo | None = None
    artifacts: tuple[ArtifactRef, ...] = ()
    inputs: tuple[DatasetRef, ...] = ()

    @property
    def duration_ms(self) -> int | None:
        return None if self.end_ms is None else self.end_ms - self.start_ms
