"""Promotion gates: the rules a model version must pass to move into staging or production.

A :class:`GatePolicy` holds one :class:`StagePolicy` per target stage, as a default for
every model and per model (a model's own policy for a stage replaces the default for that
stage, whole). A stage policy lists its rules:

* ``thresholds`` and ``fairness``: absolute :class:`Limit` values (``min``/``max``);
* ``champion``: :class:`RelativeRule` values against the current champion's metric (not
  worse by more than a margin, or better by at least one; absolute or in percent);
* ``slices``: relative rules applied to every slice measured for both candidate and
  champion (``slice:region=eu/accuracy``...);
* data validation of the training and evaluation data, a predict latency p99 budget, a
  model size budget, and whether a person must approve (and may approve their own request).

Metric direction matters: every metric a rule names must have a direction, built in or
declared by the policy (:mod:`loopml.domain.metric_directions`); :class:`GatePolicy`
refuses a name without one, naming its key path.

The TOML file format is in :mod:`loopml.domain.gate_file`, the evaluation of the rules
against a candidate's facts in :mod:`loopml.domain.gate_checks` (the report in
:mod:`loopml.domain.gate_report`), force and approval in :mod:`loopml.domain.approvals`.
Standard library only, no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from loopml.domain.errors import InvalidInput
from loopml.domain.lifecycle import Stage
from loopml.domain.metric_directions import (
    Direction,
    MetricDirections,
    closest,
    split_name,
)
from loopml.domain.names import validate_identifier

FORMAT_VERSION = 1
TRAINING = "training"
EVALUATION = "evaluation"
DATA_ROLES = (TRAINING, EVALUATION)
# Gates guard promotions. Moving back to candidate or into archived must always be possible.
GATED_STAGES = (Stage.STAGING, Stage.PRODUCTION)


def check_number(value: object, what: str) -> float:
    """``value`` as a finite float; :class:`InvalidInput` naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Limit:
    """An absolute bound on a metric or a fairness measure: ``minimum <= value <= maximum``.

    Either side may be ``None`` (unbounded), not both. Both sides are inclusive.
    """

    name: str
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.minimum is None and self.maximum is None:
            raise InvalidInput(
                f"the limit on {self.name!r} sets neither min nor max; set at least one, "
                "e.g. { min = 0.8 }"
            )
        low = None if self.minimum is None else check_number(self.minimum, "min")
        high = None if self.maximum is None else check_number(self.maximum, "max")
        if low is not None and high is not None and low > high:
            raise InvalidInput(
                f"min {low!r} is greater than max {high!r}; expected min <= max, so that "
                "some value can pass"
            )
        object.__setattr__(self, "minimum", low)
        object.__setattr__(self, "maximum", high)


class Margin(StrEnum):
    """How a relative rule compares a candidate with the champion (the file's key names)."""

    MAX_WORSE = "max_worse"  # not worse than the champion by more than an amount
    MAX_WORSE_PCT = "max_worse_pct"  # ... by more than a percentage of |champion|
    MIN_BETTER = "min_better"  # better than the champion by at least an amount
    MIN_BETTER_PCT = "min_better_pct"  # ... by at least a percentage of |champion|

    @property
    def percent(self) -> bool:
        return self in (Margin.MAX_WORSE_PCT, Margin.MIN_BETTER_PCT)

    @property
    def better(self) -> bool:
        return self in (Margin.MIN_BETTER, Margin.MIN_BETTER_PCT)


@dataclass(frozen=True, slots=True)
class RelativeRule:
    """A bound on ``metric`` relative to the champion's value of it.

    ``amount`` is in the metric's units, or in percent of the champion's absolute value for
    the ``*_pct`` margins (``5`` is 5%). It is never negative: to allow a candidate to be
    worse, use a ``max_worse`` margin rather than a negative ``min_better``.
    """

    metric: str
    margin: Margin
    amount: float

    def __post_init__(self) -> None:
        _check_name(self.metric)
        object.__setattr__(self, "margin", _margin(self.margin))  # text is accepted too
        amount = check_number(self.amount, self.margin.value)
        if amount < 0:
            other = "max_worse" if self.margin.better else "min_better"
            raise InvalidInput(
                f"{self.margin.value} is {amount!r}; expected a number >= 0. A negative "
                f"margin reads backwards: use {other}{'_pct' if self.margin.percent else ''} "
                "instead"
            )
        object.__setattr__(self, "amount", amount)

    def bound(self, champion: float, direction: Direction) -> float:
        """The value the candidate must reach: a minimum if higher is better, else a maximum."""
        step = abs(champion) * self.amount / 100 if self.margin.percent else self.amount
        signed = step if self.margin.better else -step  # positive is towards better
        return champion + signed if direction is Direction.HIGHER else champion - signed

    def describe(self, direction: Direction) -> str:
        """The bound's arithmetic as a phrase after the champion value, e.g. ``+ 5%``."""
        up = self.margin.better == (direction is Direction.HIGHER)
        amount = f"{_plain(self.amount)}%" if self.margin.percent else _plain(self.amount)
        return f"{'+' if up else '-'} {amount}"


def _plain(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _margin(value: object) -> Margin:
    if isinstance(value, str) and value in {m.value for m in Margin}:
        return Margin(value)
    raise InvalidInput(
        f"margin {value!r} is not known; expected one of {', '.join(m.value for m in Margin)}"
    )


def _check_name(name: object) -> None:
    split_name(name)  # type: ignore[arg-type]  # it refuses what is not text


@dataclass(frozen=True, slots=True)
class StagePolicy:
    """The rules a version must pass to enter one stage (see the module docstring)."""

    thresholds: tuple[Limit, ...] = ()
    champion: tuple[RelativeRule, ...] = ()
    slices: tuple[RelativeRule, ...] = ()
    fairness: tuple[Limit, ...] = ()
    require_data_validation: tuple[str, ...] = ()
    max_latency_p99_ms: float | None = None
    max_model_size_bytes: int | None = None
    require_approval: bool = False
    allow_self_approval: bool = False

    def __post_init__(self) -> None:
        for key, kind in _SECTIONS:
            self._check_rules(key, kind)
        for rule in self.slices:
            scope, _, metric = split_name(rule.metric)
            if scope is not None:
                raise InvalidInput(
                    f"slices: {rule.metric!r} names one {scope} metric; name the metric alone "
                    f"(e.g. {metric!r}), the rule applies to every slice. Bound one slice "
                    "under thresholds or champion instead"
                )
            if rule.margin.better:
                raise InvalidInput(
                    f"slices.{rule.metric}: {rule.margin.value} is not allowed here; slice "
                    "rules bound how much a slice may regress: use max_worse or max_worse_pct"
                )
        object.__setattr__(self, "require_data_validation", _roles(self.require_data_validation))
        if self.max_latency_p99_ms is not None:
            budget = check_number(self.max_latency_p99_ms, "max_latency_p99_ms")
            _positive(budget, "max_latency_p99_ms", "milliseconds, e.g. 50")
            object.__setattr__(self, "max_latency_p99_ms", budget)
        size = self.max_model_size_bytes
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int):
                raise InvalidInput(
                    f"max_model_size_bytes must be a whole number of bytes (e.g. 50_000_000), "
                    f"got {type(size).__name__} {size!r}"
                )
            _positive(size, "max_model_size_bytes", "bytes, e.g. 50_000_000")
        for key in ("require_approval", "allow_self_approval"):
            if not isinstance(getattr(self, key), bool):
                raise InvalidInput(f"{key} must be true or false, got {getattr(self, key)!r}")
        if self.allow_self_approval and not self.require_approval:
            raise InvalidInput(
                "allow_self_approval = true only matters when require_approval = true; set "
                "require_approval = true, or remove allow_self_approval"
            )

    def _check_rules(self, key: str, kind: type[Limit | RelativeRule]) -> None:
        rules = tuple(getattr(self, key))
        if not all(isinstance(r, kind) for r in rules):
            raise InvalidInput(f"{key} must hold {kind.__name__} values, got {rules!r}")
        names = [getattr(r, _ID[kind]) for r in rules]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InvalidInput(f"{key}: {repeated!r} appear more than once; keep one rule each")
        object.__setattr__(self, key, rules)

    @property
    def is_empty(self) -> bool:
        """True when the policy checks nothing and needs no approval."""
        return self == StagePolicy()

    def metric_names(self) -> list[tuple[str, str]]:
        """``(section, name)`` of every metric or measure the rules name, in order."""
        return [
            *(("thresholds", r.name) for r in self.thresholds),
            *(("champion", r.metric) for r in self.champion),
            *(("slices", r.metric) for r in self.slices),
            *(("fairness", r.name) for r in self.fairness),
        ]


_ID: dict[type, str] = {Limit: "name", RelativeRule: "metric"}
_SECTIONS: tuple[tuple[str, type[Limit | RelativeRule]], ...] = (
    ("thresholds", Limit),
    ("champion", RelativeRule),
    ("slices", RelativeRule),
    ("fairness", Limit),
)


def _roles(values: object) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidInput(
            f"require_data_validation must be a list of roles, got {values!r}; e.g. "
            f'["{TRAINING}", "{EVALUATION}"]'
        )
    for role in values:
        if role not in DATA_ROLES:
            close = closest(str(role), DATA_ROLES)
            guess = f" (did you mean {close!r}?)" if close else ""
            raise InvalidInput(
                f"require_data_validation: unknown data role {role!r}{guess}; expected "
                f"{TRAINING!r} and/or {EVALUATION!r}"
            )
    if len(set(values)) != len(values):
        raise InvalidInput(f"require_data_validation {list(values)!r} repeats a role")
    return tuple(values)


def _positive(value: float, key: str, unit: str) -> None:
    if value <= 0:
        raise InvalidInput(
            f"{key} is {value!r}; a budget must be greater than 0 ({unit}). Remove the key "
            "to have no budget"
        )


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """Every stage policy of a workspace: defaults for all models, and per-model ones.

    Args:
        default: the stage policies of every model without its own policy for that stage.
        models: per model name, stage policies that replace the default for their stage.
        directions: the directions of metrics that are not built in.
        format_version: the version of the file format.
    """

    default: Mapping[Stage, StagePolicy] = field(default_factory=dict)
    models: Mapping[str, Mapping[Stage, StagePolicy]] = field(default_factory=dict)
    directions: MetricDirections = field(default_factory=MetricDirections)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        check_format_version(self.format_version)
        directions: object = self.directions  # a plain mapping is accepted too
        if not isinstance(directions, MetricDirections):
            if not isinstance(directions, Mapping):
                raise InvalidInput(
                    f"directions must map metric names to 'higher' or 'lower', got {directions!r}"
                )
            object.__setattr__(self, "directions", MetricDirections(directions))
        object.__setattr__(self, "default", _stages(self.default, "gates.default"))
        models = {}
        for name, stages in dict(self.models).items():
            validate_identifier("model name", name)
            models[name] = _stages(stages, f"gates.models.{toml_key(name)}")
        object.__setattr__(self, "models", MappingProxyType(models))
        for where, policy in self.stage_policies():
            for section, name in policy.metric_names():
                problem = self.directions.problem(section, name)
                if problem is not None:
                    raise InvalidInput(f"{where}.{section}.{toml_key(name)}: {problem}")

    def stage_policies(self) -> list[tuple[str, StagePolicy]]:
        """``(key path, policy)`` of every stage policy, defaults first."""
        found = [(f"gates.default.{s.value}", p) for s, p in self.default.items()]
        for name, stages in self.models.items():
            found += [(f"gates.models.{toml_key(name)}.{s.value}", p) for s, p in stages.items()]
        return found

    def for_stage(self, model: str, stage: Stage | str) -> StagePolicy | None:
        """The policy ``model`` must pass to enter ``stage``: its own, else the default.

        ``None`` means no gate: the move needs nothing but the lifecycle's permission.
        """
        target = Stage.parse(stage) if isinstance(stage, str) else stage
        own = self.models.get(model, {})
        return own[target] if target in own else self.default.get(target)


def check_format_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput(
            f"format_version must be a positive integer, got {version!r}; this loopml "
            f"writes format_version = {FORMAT_VERSION}"
        )
    if version > FORMAT_VERSION:
        raise InvalidInput(
            f"format_version {version} is newer than this loopml understands "
            f"({FORMAT_VERSION}); upgrade loopml to read this gate policy"
        )
    return version


def gated_stage(text: object) -> Stage:
    """The stage named ``text`` if gates may guard it; :class:`InvalidInput` otherwise."""
    names = [s.value for s in GATED_STAGES]
    if isinstance(text, Stage):
        text = text.value  # one path for members and their text, so messages read the same
    if isinstance(text, str) and text in names:
        return Stage(text)
    if isinstance(text, str) and text in {s.value for s in Stage}:
        raise InvalidInput(
            f"stage {text!r} takes no gates: gates guard promotions into "
            f"{' and '.join(names)}; moving back or archiving is always allowed"
        )
    close = closest(str(text), names)
    guess = f" (did you mean {close!r}?)" if close else ""
    raise InvalidInput(f"unknown stage {text!r}{guess}; expected {' or '.join(names)}")


def _stages(value: object, where: str) -> Mapping[Stage, StagePolicy]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where} must map stages to StagePolicy values, got {value!r}")
    stages: dict[Stage, StagePolicy] = {}
    for stage, policy in value.items():
        try:
            target = gated_stage(stage)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from exc
        if not isinstance(policy, StagePolicy):
            raise InvalidInput(f"{where}.{target.value} must be a StagePolicy, got {policy!r}")
        stages[target] = policy
    return MappingProxyType(stages)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(key: str) -> str:
    """``key`` as written in a TOML key path: bare when it may be, else a quoted string."""
    if _BARE_KEY.match(key):
        return key
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if ord(c) >= 0x20 and c != "\x7f" else f"\\u{ord(c):04X}" for c in escaped)
    return f'"{escaped}"'
