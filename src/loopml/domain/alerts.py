"""Alerts: when a watched figure of a deployment calls for people, or for a retrain.

Monitors turn each window of a deployment's traffic into **observations**: one number per
watched metric (``drift_score``, ``performance:rmse``, ``latency_p99_ms``...), stamped with
the window's key and time (:class:`Observation`). An :class:`AlertRule` says which metric
of which deployment (or of every one, ``"*"``) is bad when it is above or below a
threshold, for how many consecutive windows before anyone is told (``for_windows``), how
long to stay quiet after telling (``cooldown_s``), how loud (``severity``), through which
sinks (names of ``[alerts.sinks.NAME]`` tables) and whether to act (``action = "retrain"``).

:func:`evaluate` is the whole decision, pure: given a rule, a deployment's observations
(oldest first) and the last alert of the same **de-dup key** (rule + deployment +
metric), it returns a :class:`Firing` or ``None``:

1. Observations of other metrics and NaN values (nothing measured) are ignored; a window
   observed twice counts once, with its newest value.
2. The newest window must breach the threshold, and so must the ``for_windows - 1``
   windows before it. Thresholds are inclusive limits of what is fine, as in gates: a
   value *equal* to the threshold does not breach.
3. **De-duplication.** A window already alerted on never alerts again, and neither does a
   condition that has been breaching continuously since the last alert: one episode, one
   alert. Once the condition clears (one window within the threshold) and comes back for
   ``for_windows`` windows, that is a new episode.
4. **Cooldown.** A new episode within ``cooldown_s`` of the last alert (by the clock of the
   caller, ``now_ms``) waits; if it is still breaching when the cooldown ends, it alerts
   then.

To see whether a condition cleared since the last alert, :func:`evaluate` needs the
observations reaching back to that alert's window (``last_alert.observed_ms``). Given
fewer, a condition that never cleared looks like a new episode and alerts again once per
cooldown: noisy, never silent.

An :class:`Alert` is the stored record of one firing, with a message for people; its id
is derived from the de-dup key and the window, so recording the same firing twice (a crash
between sending and recording) is one alert. A :class:`Delivery` is what one sink reports
back. The ``[alerts]`` table of ``loopml.toml`` is read by :mod:`loopml.domain.alert_config`.

Standard library only, no I/O.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from loopml.domain.errors import InvalidInput
from loopml.domain.json_numbers import decode_number, encode_number
from loopml.domain.metric_directions import closest
from loopml.domain.names import validate_identifier

ANY_DEPLOYMENT = "*"
DEFAULT_SINKS = ("log",)
DEFAULT_COOLDOWN_S = 3600.0
# Figures with a fixed name; the prefixed ones name a column or a metric after the colon.
METRICS = ("drift_score", "error_rate", "latency_p99_ms", "log_dropped", "review_queue_age_s")
METRIC_PREFIXES = ("feature_drift:", "performance:")
_MAX_METRIC = 250
_E = TypeVar("_E", bound=StrEnum)


class Comparison(StrEnum):
    """Which side of the threshold is bad."""

    ABOVE = "above"
    BELOW = "below"

    def breached(self, value: float, threshold: float) -> bool:
        """True if ``value`` is on the bad side; equal to the threshold is fine."""
        return value > threshold if self is Comparison.ABOVE else value < threshold


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class RuleAction(StrEnum):
    """What the agent does, beside telling people, when a rule fires."""

    RETRAIN = "retrain"


def validate_metric(metric: object) -> str:
    """``metric`` if it names a figure monitors produce, else :class:`InvalidInput`."""
    if not isinstance(metric, str) or not metric:
        raise InvalidInput(
            f"alert metric must be a non-empty string, got {metric!r}; {_METRIC_HINT}"
        )
    if metric in METRICS:
        return metric
    for prefix in METRIC_PREFIXES:
        if metric.startswith(prefix):
            rest = metric[len(prefix) :]
            if not rest.strip() or len(metric) > _MAX_METRIC or _CONTROL.search(rest):
                raise InvalidInput(
                    f"alert metric {metric!r} needs a name after {prefix!r} (at most "
                    f"{_MAX_METRIC} characters, no control characters), e.g. "
                    f"{prefix}{'rmse' if prefix == 'performance:' else 'temperature'}"
                )
            return metric
    guess = closest(metric, [*METRICS, *METRIC_PREFIXES])
    hint = f" (did you mean {guess!r}?)" if guess else ""
    raise InvalidInput(f"alert metric {metric!r} is not known{hint}; {_METRIC_HINT}")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_METRIC_HINT = (
    f"expected one of {', '.join(METRICS)}, or feature_drift:<column> or "
    "performance:<metric> (e.g. performance:rmse)"
)


@dataclass(frozen=True, slots=True)
class AlertRule:
    """When a figure of a deployment is bad enough, for long enough, to tell people.

    Enum fields also accept their string values (``comparison="above"``), and ``sinks``
    any sequence of names; they are stored as the enum and a tuple.
    """

    name: str
    metric: str
    comparison: Comparison
    threshold: float
    deployment: str = ANY_DEPLOYMENT
    for_windows: int = 1
    cooldown_s: float = DEFAULT_COOLDOWN_S
    severity: Severity = Severity.WARNING
    sinks: tuple[str, ...] = DEFAULT_SINKS
    action: RuleAction | None = None

    def __post_init__(self) -> None:
        validate_identifier("alert rule name", self.name)
        where = f"alert rule {self.name!r}"
        if self.deployment != ANY_DEPLOYMENT:
            _wrap(where, validate_identifier, "deployment", self.deployment)
        _wrap(where, validate_metric, self.metric)
        object.__setattr__(
            self, "comparison", _enum(where, "comparison", Comparison, self.comparison)
        )
        object.__setattr__(self, "severity", _enum(where, "severity", Severity, self.severity))
        if self.action is not None:
            object.__setattr__(self, "action", _enum(where, "action", RuleAction, self.action))
        if not _is_number(self.threshold) or not math.isfinite(self.threshold):
            raise InvalidInput(
                f"{where}: threshold must be a finite number, got {self.threshold!r}; "
                "e.g. threshold = 1.0 for drift_score (1.0 is the drift line)"
            )
        if isinstance(self.for_windows, bool) or not isinstance(self.for_windows, int):
            raise InvalidInput(
                f"{where}: for_windows must be a whole number of windows, got "
                f"{self.for_windows!r}; e.g. for_windows = 3"
            )
        if self.for_windows < 1:
            raise InvalidInput(
                f"{where}: for_windows must be at least 1 (the newest window alone), got "
                f"{self.for_windows}"
            )
        if not _is_number(self.cooldown_s) or not 0 <= self.cooldown_s < math.inf:
            raise InvalidInput(
                f"{where}: cooldown_s must be a number of seconds >= 0, got "
                f"{self.cooldown_s!r}; e.g. cooldown_s = 3600 (at most one alert an hour)"
            )
        given: object = self.sinks  # any sequence of names, stored as a tuple
        if isinstance(given, str) or not isinstance(given, Sequence):
            raise InvalidInput(
                f"{where}: sinks must be a list of sink names, got {given!r}; "
                'e.g. sinks = ["log", "ops-webhook"]'
            )
        sinks = tuple(given)
        if not sinks:
            raise InvalidInput(
                f"{where}: sinks is empty, so nobody would hear of it; name at least one "
                'sink, e.g. sinks = ["log"]'
            )
        for sink in sinks:
            _wrap(where, validate_identifier, "sink name", sink)
        if len(set(sinks)) != len(sinks):
            raise InvalidInput(f"{where}: sinks {list(sinks)!r} names a sink twice; name each once")
        object.__setattr__(self, "sinks", sinks)

    def applies_to(self, deployment: str) -> bool:
        return self.deployment in (ANY_DEPLOYMENT, deployment)

    def breached(self, value: float) -> bool:
        """True if ``value`` is on the bad side of the threshold (NaN never is)."""
        return self.comparison.breached(value, self.threshold)

    def dedup_key(self, deployment: str) -> str:
        """The identity of "this condition on this deployment": rule, deployment, metric."""
        return f"{self.name}|{deployment}|{self.metric}"

    def to_dict(self) -> dict[str, Any]:
        """The rule as a ``[[alerts.rules]]`` table (what :func:`rule_from_mapping` reads)."""
        data: dict[str, Any] = {
            "name": self.name,
            "deployment": self.deployment,
            "metric": self.metric,
            "comparison": self.comparison.value,
            "threshold": self.threshold,
            "for_windows": self.for_windows,
            "cooldown_s": self.cooldown_s,
            "severity": self.severity.value,
            "sinks": list(self.sinks),
        }
        if self.action is not None:
            data["action"] = self.action.value
        return data


@dataclass(frozen=True, slots=True)
class Observation:
    """One figure of one window of a deployment's traffic."""

    time_ms: int  # the window's time (its end), which orders observations
    deployment: str
    metric: str
    value: float  # NaN: nothing measured (e.g. no labelled rows yet)
    window: str  # the window's key, unique within the deployment

    @classmethod
    def of_window(
        cls, deployment: str, window: str, time_ms: int, figures: Mapping[str, float]
    ) -> tuple[Observation, ...]:
        """One observation per figure of a window, e.g. ``WindowReport.observations()``."""
        return tuple(
            cls(time_ms, deployment, metric, float(value), window)
            for metric, value in figures.items()
        )


@dataclass(frozen=True, slots=True)
class Alert:
    """The record of one firing: what was bad, how bad, where, and what to do."""

    id: str
    rule: str
    deployment: str
    metric: str
    value: float
    threshold: float
    comparison: Comparison
    severity: Severity
    time_ms: int  # when it fired
    observed_ms: int  # time of the window that made it fire
    window: str  # key of that window
    windows: int  # how many consecutive windows were breaching
    message: str  # for people
    dedup_key: str
    action: RuleAction | None = None

    @property
    def title(self) -> str:
        """One line for a subject or a chat header."""
        return f"[loopml {self.severity.value}] {self.rule}: {self.metric} on {self.deployment}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "deployment": self.deployment,
            "metric": self.metric,
            "value": encode_number(self.value),
            "threshold": self.threshold,
            "comparison": self.comparison.value,
            "severity": self.severity.value,
            "time_ms": self.time_ms,
            "observed_ms": self.observed_ms,
            "window": self.window,
            "windows": self.windows,
            "message": self.message,
            "dedup_key": self.dedup_key,
            "action": None if self.action is None else self.action.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        try:
            action = data.get("action")
            return cls(
                id=str(data["id"]),
                rule=str(data["rule"]),
                deployment=str(data["deployment"]),
                metric=str(data["metric"]),
                value=float(decode_number(data["value"], "alert value")),  # type: ignore[arg-type]
                threshold=float(data["threshold"]),
                comparison=Comparison(data["comparison"]),
                severity=Severity(data["severity"]),
                time_ms=int(data["time_ms"]),
                observed_ms=int(data["observed_ms"]),
                window=str(data["window"]),
                windows=int(data["windows"]),
                message=str(data["message"]),
                dedup_key=str(data["dedup_key"]),
                action=None if action is None else RuleAction(action),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(
                f"stored alert is damaged ({exc!r}): {dict(data)!r:.200}; "
                "expected a dict made by Alert.to_dict()"
            ) from exc


@dataclass(frozen=True, slots=True)
class Firing:
    """A rule's verdict that people must be told: the alert to record and send, and the
    consecutive breaching observations that made it (oldest first)."""

    alert: Alert
    observations: tuple[Observation, ...]


def evaluate(
    rule: AlertRule,
    observations: Iterable[Observation],
    last_alert: Alert | None,
    *,
    now_ms: int | None = None,
) -> Firing | None:
    """Whether ``rule`` fires on one deployment's observations (see the module docstring).

    Args:
        rule: the rule.
        observations: oldest first, of a single deployment; other metrics and deployments
            the rule does not watch are ignored. Pass those since ``last_alert``'s window
            (or, with no alert, at least ``rule.for_windows`` windows).
        last_alert: the newest alert of ``rule.dedup_key(deployment)``, or None.
        now_ms: the caller's clock, for the cooldown and the alert's time; by default the
            newest observation's time.

    Raises:
        InvalidInput: the observations mix deployments, or ``last_alert`` belongs to
            another rule, deployment or metric.
    """
    windows = _windows(rule, observations)
    if not windows:
        return None
    newest = windows[-1]
    streak: list[Observation] = []
    for seen in reversed(windows):
        if not rule.breached(seen.value):
            break
        streak.append(seen)
    streak.reverse()
    if len(streak) < rule.for_windows:
        return None
    key = rule.dedup_key(newest.deployment)
    now = newest.time_ms if now_ms is None else now_ms
    if last_alert is not None:
        if last_alert.dedup_key != key:
            raise InvalidInput(
                f"last alert {last_alert.id!r} is of {last_alert.dedup_key!r}, not of {key!r}; "
                "pass the newest alert of the same rule, deployment and metric"
            )
        if last_alert.window == newest.window:
            return None  # this window was alerted on already
        if streak[0].time_ms <= last_alert.observed_ms:
            return None  # breaching without a break since the last alert: the same episode
        if now - last_alert.time_ms < rule.cooldown_s * 1000:
            return None
    return Firing(_alert(rule, newest, len(streak), key, now), tuple(streak))


def evaluate_all(
    rule: AlertRule,
    observations: Iterable[Observation],
    last_alerts: Mapping[str, Alert],
    *,
    now_ms: int | None = None,
) -> list[Firing]:
    """:func:`evaluate` for every deployment in ``observations`` that ``rule`` watches;
    ``last_alerts`` maps de-dup keys to the newest alert of each."""
    by_deployment: dict[str, list[Observation]] = {}
    for seen in observations:
        if rule.applies_to(seen.deployment):
            by_deployment.setdefault(seen.deployment, []).append(seen)
    firings = []
    for deployment, group in by_deployment.items():
        last = last_alerts.get(rule.dedup_key(deployment))
        firing = evaluate(rule, group, last, now_ms=now_ms)
        if firing is not None:
            firings.append(firing)
    return firings


def alert_id(dedup_key: str, window: str) -> str:
    """The id of the alert of ``dedup_key`` on ``window``: the same firing, the same id."""
    return hashlib.sha256(f"{dedup_key}\n{window}".encode()).hexdigest()[:24]


def _windows(rule: AlertRule, observations: Iterable[Observation]) -> list[Observation]:
    """The rule's measured observations, one per window (its newest), oldest first."""
    by_window: dict[str, Observation] = {}
    deployments: set[str] = set()
    for seen in sorted(observations, key=lambda o: o.time_ms):
        if seen.metric != rule.metric or not rule.applies_to(seen.deployment):
            continue
        if math.isnan(seen.value):
            continue
        deployments.add(seen.deployment)
        by_window.pop(seen.window, None)  # a window observed again moves to its new place
        by_window[seen.window] = seen
    if len(deployments) > 1:
        raise InvalidInput(
            f"evaluate judges one deployment at a time, got observations of "
            f"{', '.join(sorted(deployments))} for rule {rule.name!r}; use evaluate_all"
        )
    return list(by_window.values())


def _alert(rule: AlertRule, newest: Observation, windows: int, key: str, now_ms: int) -> Alert:
    span = "the newest window" if windows == 1 else f"{windows} consecutive windows"
    message = (
        f"{rule.metric} of deployment {newest.deployment} is {newest.value:.6g}, "
        f"{rule.comparison.value} the threshold {rule.threshold:g} of rule {rule.name!r} "
        f"in {span} (newest: {newest.window})"
    )
    if rule.action is not None:
        message += f"; action: {rule.action.value}"
    return Alert(
        id=alert_id(key, newest.window),
        rule=rule.name,
        deployment=newest.deployment,
        metric=rule.metric,
        value=newest.value,
        threshold=rule.threshold,
        comparison=rule.comparison,
        severity=rule.severity,
        time_ms=now_ms,
        observed_ms=newest.time_ms,
        window=newest.window,
        windows=windows,
        message=message,
        dedup_key=key,
        action=rule.action,
    )


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a sink reports after trying to deliver an alert; sinks return it instead of
    raising, so a bad target never stops the agent."""

    sink: str
    ok: bool
    attempts: int
    error: str = ""  # for people: what failed and what to check
    status: int | None = None  # the last HTTP status or SMTP reply code, if any

    def to_dict(self) -> dict[str, Any]:
        return {
            "sink": self.sink,
            "ok": self.ok,
            "attempts": self.attempts,
            "error": self.error,
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delivery:
        try:
            status = data.get("status")
            return cls(
                sink=str(data["sink"]),
                ok=bool(data["ok"]),
                attempts=int(data["attempts"]),
                error=str(data.get("error", "")),
                status=None if status is None else int(status),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(
                f"stored delivery is damaged ({exc!r}): {dict(data)!r:.200}; "
                "expected a dict made by Delivery.to_dict()"
            ) from exc


def _enum(where: str, field: str, kind: type[_E], value: object) -> _E:
    if isinstance(value, kind):
        return value
    allowed = [m.value for m in kind]
    if isinstance(value, str) and value in allowed:
        return kind(value)
    raise InvalidInput(
        f"{where}: {field} must be one of {', '.join(map(repr, allowed))}, got {value!r}"
    )


def _wrap(where: str, check: Any, *args: Any) -> Any:
    try:
        return check(*args)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}") from exc


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)
