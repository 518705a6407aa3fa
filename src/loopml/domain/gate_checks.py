"""Evaluating a gate policy: the facts about a candidate in, a :class:`GateReport` out.

:class:`ModelFacts` is what is known about a model version: overall metrics, slice metrics,
fairness measures, the outcome of data validation per data role, the predict latency p99
and the model size. :func:`evaluate_gates` checks a candidate's facts against the policy of
its model and target stage, with the champion's facts for the relative rules, and returns
one :class:`CheckResult` per check.

Outcomes:

* **passed** / **failed** by the numbers. Bounds are inclusive, and a value within 1e-9
  (relative) of its bound counts as on it, so ``38.5 + 5%`` passes ``40.425`` whatever the
  binary rounding.
* **failed, not measured**: a fact the rule needs is missing for the candidate (a metric,
  a data validation that was not run, a latency nobody measured). A NaN metric fails too:
  undefined is not good enough.
* **skipped**, with the reason: a relative rule when there is no champion yet, or when the
  champion lacks the metric (or has NaN); a slice rule when no slice of its metric was
  measured for both. A skipped check never blocks a promotion.

Slice rules apply to every slice present in both candidate and champion; a slice only one
side measured is not compared (bound a slice that must exist under ``thresholds``). A bare
fairness measure (``demographic_parity_difference``) bounds every sensitive column the
candidate reports it for; ``fairness:sex/...`` bounds one column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from loopml.domain.errors import InvalidInput
from loopml.domain.gate_report import (
    CheckKind,
    CheckResult,
    GateReport,
    Outcome,
    format_bytes,
    format_ms,
    format_number,
    format_pair,
)
from loopml.domain.gates import (
    DATA_ROLES,
    GatePolicy,
    Limit,
    RelativeRule,
    StagePolicy,
)
from loopml.domain.lifecycle import Stage
from loopml.domain.metric_directions import (
    FAIRNESS,
    FAIRNESS_MEASURES,
    SLICE,
    Direction,
    MetricDirections,
    split_name,
)

_REL_TOL, _ABS_TOL = 1e-9, 1e-12


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What is known about one model version, as the gates read it.

    Args:
        metrics: overall metrics by plain name (``accuracy``).
        slice_metrics: metrics per slice, by full name (``slice:region=eu/accuracy``).
        fairness: fairness measures, bare (``demographic_parity_difference``) or per
            sensitive column (``fairness:sex/demographic_parity_difference``).
        data_validation: per data role (``training``, ``evaluation``), whether the data
            passed validation; a role that is absent or ``None`` was not validated.
        latency_p99_ms: the 99th percentile of predict latency on a sample, or ``None``.
        model_size_bytes: the size of the model artifact, or ``None``.
        version: the model version the facts are about, shown in reports.
    """

    metrics: Mapping[str, float] = field(default_factory=dict)
    slice_metrics: Mapping[str, float] = field(default_factory=dict)
    fairness: Mapping[str, float] = field(default_factory=dict)
    data_validation: Mapping[str, bool | None] = field(default_factory=dict)
    latency_p99_ms: float | None = None
    model_size_bytes: int | None = None
    version: int | None = None

    def __post_init__(self) -> None:
        for key, scopes in (
            ("metrics", (None,)),
            ("slice_metrics", (SLICE,)),
            ("fairness", (FAIRNESS, None)),
        ):
            object.__setattr__(self, key, _numbers(getattr(self, key), key, scopes))
        outcomes: dict[str, bool | None] = {}
        for role, passed in dict(self.data_validation).items():
            if role not in DATA_ROLES:
                raise InvalidInput(
                    f"data_validation: unknown data role {role!r}; expected "
                    f"{' or '.join(map(repr, DATA_ROLES))}"
                )
            if passed is not None and not isinstance(passed, bool):
                raise InvalidInput(
                    f"data_validation[{role!r}] must be true, false or None (not run), got "
                    f"{passed!r}"
                )
            outcomes[role] = passed
        object.__setattr__(self, "data_validation", MappingProxyType(outcomes))
        latency = self.latency_p99_ms
        if latency is not None:
            if isinstance(latency, bool) or not isinstance(latency, int | float):
                raise InvalidInput(f"latency_p99_ms must be a number, got {latency!r}")
            if not latency >= 0 or math.isinf(latency):  # also refuses NaN
                raise InvalidInput(f"latency_p99_ms must be a finite number >= 0, got {latency!r}")
            object.__setattr__(self, "latency_p99_ms", float(latency))
        size = self.model_size_bytes
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise InvalidInput(f"model_size_bytes must be a whole number >= 0, got {size!r}")

    @classmethod
    def from_flat_metrics(cls, flat: Mapping[str, float], **facts: Any) -> ModelFacts:
        """Facts from one mapping of every metric by full name (as an evaluation's flat
        metrics or a model version's metrics): ``slice:`` names become slice metrics,
        ``fairness:`` names and bare fairness measures become fairness values."""
        parts: dict[str, dict[str, float]] = {"metrics": {}, "slice_metrics": {}, "fairness": {}}
        for name, value in flat.items():
            scope = split_name(name)[0]
            if scope == SLICE:
                parts["slice_metrics"][name] = value
            elif scope == FAIRNESS or name in FAIRNESS_MEASURES:
                parts["fairness"][name] = value
            else:
                parts["metrics"][name] = value
        return cls(
            metrics=parts["metrics"],
            slice_metrics=parts["slice_metrics"],
            fairness=parts["fairness"],
            **facts,
        )

    def value_of(self, name: str) -> float | None:
        """The value of the metric or measure ``name``, or ``None`` when not measured."""
        scope = split_name(name)[0]
        if scope == SLICE:
            return self.slice_metrics.get(name)
        if scope == FAIRNESS or (name in self.fairness and name not in self.metrics):
            return self.fairness.get(name)
        return self.metrics.get(name)


def _numbers(values: object, key: str, scopes: tuple[str | None, ...]) -> Mapping[str, float]:
    if not isinstance(values, Mapping):
        raise InvalidInput(f"{key} must map names to numbers, got {values!r}")
    out: dict[str, float] = {}
    for name, value in values.items():
        scope = split_name(name)[0]
        if scope not in scopes:
            expected = {"metrics": "plain names", "slice_metrics": "slice:<slice>/<metric>"}
            raise InvalidInput(
                f"{key}: {name!r} does not belong here; expected "
                f"{expected.get(key, 'fairness:<column>/<measure> or a bare measure')} "
                "(ModelFacts.from_flat_metrics sorts a flat mapping)"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"{key}[{name!r}] must be a number, got {value!r}")
        out[name] = float(value)
    return MappingProxyType(out)


def evaluate_gates(
    policy: GatePolicy,
    model: str,
    stage: Stage | str,
    candidate: ModelFacts,
    champion: ModelFacts | None = None,
) -> GateReport:
    """Check ``candidate`` against the policy for moving ``model`` into ``stage``.

    ``champion`` holds the facts of the version the candidate would replace (``None``
    when there is none yet: relative checks are then skipped). A stage without a policy
    gives a report with no checks, which passes.
    """
    target = Stage.parse(stage) if isinstance(stage, str) else stage
    rules = policy.for_stage(model, target)
    if rules is None:
        return GateReport(model, target, (), candidate.version, _version(champion), gated=False)
    return evaluate_stage(rules, policy.directions, model, target, candidate, champion)


def evaluate_stage(
    rules: StagePolicy,
    directions: MetricDirections,
    model: str,
    stage: Stage,
    candidate: ModelFacts,
    champion: ModelFacts | None = None,
) -> GateReport:
    """:func:`evaluate_gates` for one stage policy, already chosen."""
    checks: list[CheckResult] = []
    for limit in rules.thresholds:
        checks += _limit(CheckKind.THRESHOLD, limit, limit.name, candidate.value_of(limit.name))
    for rule in rules.champion:
        checks.append(_champion(rule, directions, candidate, champion))
    for rule in rules.slices:
        checks += _slices(rule, directions, candidate, champion)
    for limit in rules.fairness:
        found = _fairness_values(limit.name, candidate)
        for subject, value in found.items() or [(limit.name, None)]:
            checks += _limit(CheckKind.FAIRNESS, limit, subject, value)
    for role in rules.require_data_validation:
        checks.append(_data_validation(role, candidate.data_validation.get(role)))
    if rules.max_latency_p99_ms is not None:
        latency = candidate.latency_p99_ms
        checks.append(_budget(CheckKind.LATENCY, latency, rules.max_latency_p99_ms))
    if rules.max_model_size_bytes is not None:
        size = candidate.model_size_bytes
        checks.append(_budget(CheckKind.MODEL_SIZE, size, rules.max_model_size_bytes))
    return GateReport(
        model,
        stage,
        tuple(checks),
        candidate.version,
        _version(champion),
        has_champion=champion is not None,
        requires_approval=rules.require_approval,
        allow_self_approval=rules.allow_self_approval,
    )


def _version(facts: ModelFacts | None) -> int | None:
    return None if facts is None else facts.version


def _limit(kind: CheckKind, limit: Limit, subject: str, value: float | None) -> list[CheckResult]:
    results = []
    for side, bound, comparison in (("min", limit.minimum, ">="), ("max", limit.maximum, "<=")):
        if bound is None:
            continue
        word = "minimum" if side == "min" else "maximum"
        name = f"{side}:{subject}"
        problem = _unusable(subject, value)
        if value is None or problem is not None:
            message = f"{problem} (the {word} is {format_number(bound)})"
            results.append(CheckResult(name, kind, subject, Outcome.FAILED, message, value, bound))
            continue
        ok = _reaches(value, bound, comparison)
        shown, limit_text = format_pair(value, bound)
        passing, failing = ("at or above", "below") if side == "min" else ("at or below", "above")
        verdict = passing if ok else failing
        message = f"{subject} {shown} is {verdict} the {word} {limit_text}"
        outcome = Outcome.PASSED if ok else Outcome.FAILED
        results.append(CheckResult(name, kind, subject, outcome, message, value, bound, comparison))
    return results


def _fairness_values(name: str, facts: ModelFacts) -> dict[str, float]:
    if split_name(name)[0] == FAIRNESS or name in facts.fairness:
        value = facts.fairness.get(name)
        return {} if value is None else {name: value}
    return {
        key: value
        for key, value in facts.fairness.items()
        if split_name(key)[0] == FAIRNESS and split_name(key)[2] == name
    }


def _champion(
    rule: RelativeRule,
    directions: MetricDirections,
    candidate: ModelFacts,
    champion: ModelFacts | None,
) -> CheckResult:
    name, kind = f"champion:{rule.metric}", CheckKind.CHAMPION
    if champion is None:
        return CheckResult(name, kind, rule.metric, Outcome.SKIPPED, _NO_CHAMPION)
    return _relative(
        name,
        kind,
        rule,
        directions.of(rule.metric),
        rule.metric,
        candidate.value_of(rule.metric),
        champion.value_of(rule.metric),
    )


_NO_CHAMPION = "skipped: there is no champion to compare with yet"


def _slices(
    rule: RelativeRule,
    directions: MetricDirections,
    candidate: ModelFacts,
    champion: ModelFacts | None,
) -> list[CheckResult]:
    kind = CheckKind.SLICE_REGRESSION
    if champion is None:
        name = f"slice_regression:{rule.metric}"
        return [CheckResult(name, kind, rule.metric, Outcome.SKIPPED, _NO_CHAMPION)]
    common = [
        key
        for key in candidate.slice_metrics
        if split_name(key)[2] == rule.metric and key in champion.slice_metrics
    ]
    if not common:
        message = (
            f"skipped: no slice of {rule.metric} was measured for both the candidate and "
            "the champion"
        )
        name = f"slice_regression:{rule.metric}"
        return [CheckResult(name, kind, rule.metric, Outcome.SKIPPED, message)]
    direction = directions.of(rule.metric)
    return [
        _relative(
            f"slice_regression:{key}",
            kind,
            rule,
            direction,
            key,
            candidate.slice_metrics[key],
            champion.slice_metrics[key],
        )
        for key in common
    ]


def _relative(
    name: str,
    kind: CheckKind,
    rule: RelativeRule,
    direction: Direction,
    subject: str,
    value: float | None,
    reference: float | None,
) -> CheckResult:
    problem = _unusable(subject, value)
    if value is None or problem is not None:
        return CheckResult(
            name, kind, subject, Outcome.FAILED, str(problem), value, None, None, reference
        )
    if reference is None or math.isnan(reference):
        held = "no value of" if reference is None else "an undefined (nan)"
        message = f"skipped: the champion has {held} {subject} to compare with"
        return CheckResult(
            name, kind, subject, Outcome.SKIPPED, message, value, None, None, reference
        )
    bound = rule.bound(reference, direction)
    comparison = ">=" if direction is Direction.HIGHER else "<="
    ok = _reaches(value, bound, comparison)
    shown, bound_text = format_pair(value, bound)
    side = ("at or above", "below") if comparison == ">=" else ("at or below", "above")
    message = (
        f"{subject} {shown} is {side[0] if ok else side[1]} the bound {bound_text} "
        f"(champion {format_number(reference)} {rule.describe(direction)})"
    )
    outcome = Outcome.PASSED if ok else Outcome.FAILED
    return CheckResult(name, kind, subject, outcome, message, value, bound, comparison, reference)


def _data_validation(role: str, passed: bool | None) -> CheckResult:
    name, kind = f"data_validation:{role}", CheckKind.DATA_VALIDATION
    if passed is None:
        message = f"{role} data validation was not run; the gate needs it to have passed"
        return CheckResult(name, kind, role, Outcome.FAILED, message)
    message = f"{role} data {'passed' if passed else 'failed'} validation"
    outcome = Outcome.PASSED if passed else Outcome.FAILED
    return CheckResult(name, kind, role, outcome, message, passed)


def _budget(kind: CheckKind, value: float | None, budget: float) -> CheckResult:
    if kind is CheckKind.LATENCY:
        what, unit, show = "predict latency p99", "ms", format_ms
    else:
        what, unit, show = "model size", "bytes", format_bytes
    if value is None:
        message = f"{what} was not measured; the gate needs it (budget {show(budget)})"
        return CheckResult(
            kind.value, kind, what, Outcome.FAILED, message, None, budget, "<=", unit=unit
        )
    ok = _reaches(value, budget, "<=")
    verdict = "within" if ok else "over"
    message = f"{what} {show(value)} is {verdict} the budget {show(budget)}"
    outcome = Outcome.PASSED if ok else Outcome.FAILED
    return CheckResult(kind.value, kind, what, outcome, message, value, budget, "<=", unit=unit)


def _unusable(subject: str, value: float | None) -> str | None:
    if value is None:
        return f"{subject} was not measured for the candidate; the gate needs it"
    if math.isnan(value):
        return f"{subject} is nan (undefined); a gate cannot pass on an undefined value"
    return None


def _reaches(value: float, bound: float, comparison: str) -> bool:
    if math.isclose(value, bound, rel_tol=_REL_TOL, abs_tol=_ABS_TOL):
        return True
    return value >= bound if comparison == ">=" else value <= bound
