"""The monitoring report of a deployment: its windows, alerts and retrain loops, summarised.

:func:`build_report` gathers what ``loopml monitor report NAME`` shows into one
:class:`MonitorReport`: the stored :class:`~loopml.domain.monitoring.WindowReport` values
(sorted oldest first, one per window key), the deployment's alerts as plain dicts (what
``Alert.to_dict()`` makes; missing or extra keys are tolerated, since the report only
reads them), its :class:`~loopml.domain.loop.LoopRun` values, and summaries computed from
them:

* one :class:`ColumnTrend` per feature and per model output: its level (the severity,
  held under 1.0 unless the column drifted) in every window
  (NaN where the window did not measure it), ranked most worrying first: drifted in its
  newest measurement, then that measurement's severity, then the largest ever, then the
  name (a window too small to judge does not hide what the one before it showed);
* the verdict of the newest window (:class:`Verdict`), and the drifted columns of the
  newest *judged* window;
* a series per performance metric and for the latency p99, one value per window;
* which alerts are still **open**: the newest alert of each de-dup key whose metric, in
  the newest window that measured it (a judged one, for drift), is still on the bad side
  of its threshold, or was never measured since the alert, so nothing says it cleared;
* the state of the newest loop.

:meth:`MonitorReport.to_dict` is the ``--json`` form: plain JSON types only, non-finite
floats as the strings ``"nan"``, ``"inf"`` and ``"-inf"``.

Standard library only, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from loopml.domain.drift import FeatureDrift
from loopml.domain.errors import InvalidInput
from loopml.domain.json_numbers import encode_number
from loopml.domain.loop import LoopRun
from loopml.domain.monitoring import WindowReport

NAN = math.nan


class Verdict(StrEnum):
    """What the newest window says."""

    DRIFT = "drift"  # at least one feature or output drifted
    NO_DRIFT = "no drift"
    NOT_JUDGED = "not judged"  # too few rows, no reference...: the window's note says why
    NO_WINDOWS = "no windows"


@dataclass(frozen=True, slots=True)
class ColumnTrend:
    """One column's drift across the windows of a report, oldest window first."""

    column: str
    role: str  # "feature" or "output" (prediction drift)
    kind: str  # of its newest measurement: numeric, categorical...
    severities: tuple[float, ...]  # score / threshold per window; NaN: not measured there
    drifted_windows: int  # in how many windows it drifted
    latest: FeatureDrift  # its newest measurement
    latest_window: str  # key of the window of that measurement

    @property
    def latest_severity(self) -> float:
        return self.latest.level

    @property
    def max_severity(self) -> float:
        """The largest severity over all windows (``inf`` wins); NaN if never measured."""
        measured = [s for s in self.severities if not math.isnan(s)]
        return max(measured, default=NAN)

    @property
    def drifted_now(self) -> bool:
        """Whether its newest measurement drifted."""
        return self.latest.drifted

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "role": self.role,
            "kind": self.kind,
            "latest_severity": encode_number(self.latest_severity),
            "max_severity": encode_number(self.max_severity),
            "drifted_now": self.drifted_now,
            "drifted_windows": self.drifted_windows,
            "latest": self.latest.to_dict(),
            "latest_window": self.latest_window,
            "severities": [encode_number(s) for s in self.severities],
        }


@dataclass(frozen=True, slots=True)
class MonitorReport:
    """Everything the monitoring report of one deployment shows (see the module docstring).

    Build it with :func:`build_report`; the fields after ``loops`` are derived from the
    first five.
    """

    deployment: str
    generated_ms: int
    windows: tuple[WindowReport, ...]  # oldest first
    alerts: tuple[Mapping[str, Any], ...]  # oldest first, as given (``Alert.to_dict()``)
    loops: tuple[LoopRun, ...]  # oldest first
    features: tuple[ColumnTrend, ...] = ()  # ranked, most worrying first
    outputs: tuple[ColumnTrend, ...] = ()  # prediction drift, ranked the same way
    performance: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    latency_p99_ms: tuple[float, ...] = ()  # per window; NaN: no rows to time
    open_alerts: tuple[Mapping[str, Any], ...] = ()

    @property
    def latest(self) -> WindowReport | None:
        return self.windows[-1] if self.windows else None

    @property
    def latest_loop(self) -> LoopRun | None:
        return self.loops[-1] if self.loops else None

    @property
    def loop_state(self) -> str | None:
        loop = self.latest_loop
        return None if loop is None else loop.state.value

    @property
    def latest_judged(self) -> WindowReport | None:
        """The newest window whose drift was judged (one with too few rows is not)."""
        return next((w for w in reversed(self.windows) if w.features or w.outputs), None)

    @property
    def drifted(self) -> tuple[str, ...]:
        """The columns (features, then outputs) that drifted in the newest judged window."""
        judged = self.latest_judged
        return () if judged is None else judged.drifted

    @property
    def verdict(self) -> Verdict:
        latest = self.latest
        if latest is None:
            return Verdict.NO_WINDOWS
        if latest.drifted:
            return Verdict.DRIFT
        if not latest.features and not latest.outputs:
            return Verdict.NOT_JUDGED
        return Verdict.NO_DRIFT

    @property
    def rows(self) -> int:
        return sum(w.rows for w in self.windows)

    @property
    def labelled_rows(self) -> int:
        return sum(w.labelled_rows for w in self.windows)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form: plain JSON types, non-finite floats as strings."""
        latest, judged = self.latest, self.latest_judged
        summary = {
            "windows": len(self.windows),
            "rows": self.rows,
            "labelled_rows": self.labelled_rows,
            "first_ms": self.windows[0].start_ms if self.windows else None,
            "last_ms": latest.end_ms if latest else None,
            "latest_window": latest.window_key if latest else None,
            "verdict": self.verdict.value,
            "score": latest.score if latest else None,
            "drifted": list(self.drifted),
            "drifted_window": judged.window_key if judged else None,
            "note": latest.note if latest else "",
            "log_dropped": latest.log_dropped if latest else 0,
            "alerts": len(self.alerts),
            "open_alerts": len(self.open_alerts),
            "loops": len(self.loops),
            "loop_state": self.loop_state,
        }
        data: dict[str, Any] = plain(
            {
                "deployment": self.deployment,
                "generated_ms": self.generated_ms,
                "summary": summary,
                "features": [t.to_dict() for t in self.features],
                "outputs": [t.to_dict() for t in self.outputs],
                "window_keys": [w.window_key for w in self.windows],
                "window_end_ms": [w.end_ms for w in self.windows],
                "performance": {k: list(v) for k, v in self.performance.items()},
                "latency_p99_ms": list(self.latency_p99_ms),
                "windows": [w.to_dict() for w in self.windows],
                "alerts": [dict(a) for a in self.alerts],
                "open_alerts": [_alert_key(a) for a in self.open_alerts],
                "loops": [run.to_dict() for run in self.loops],
            }
        )
        return data


def build_report(
    deployment: str,
    windows: Iterable[WindowReport],
    alerts: Iterable[Mapping[str, Any]],
    loops: Iterable[LoopRun],
    now_ms: int,
) -> MonitorReport:
    """The report of ``deployment`` from its stored windows, alerts and loops, in any order.

    A window key given twice counts once (the last one given). Alerts and loops of other
    deployments are refused, as are windows: mixing them is a caller's mistake that would
    otherwise show as drift of the wrong traffic.

    Raises:
        InvalidInput: a window, alert or loop belongs to another deployment.
    """
    by_key: dict[str, WindowReport] = {}
    for window in windows:
        _same(deployment, "window", window.window_key, window.deployment)
        by_key[window.window_key] = window
    ordered = tuple(sorted(by_key.values(), key=lambda w: (w.end_ms, w.start_ms, w.window_key)))
    alert_list = []
    for alert in alerts:
        if alert.get("deployment") is not None:
            _same(deployment, "alert", _alert_key(alert), str(alert["deployment"]))
        alert_list.append(alert)
    alert_list.sort(key=lambda a: _int(a.get("time_ms")))
    loop_list = []
    for run in loops:
        _same(deployment, "loop", run.id, run.deployment)
        loop_list.append(run)
    loop_list.sort(key=lambda r: (r.created_ms, r.id))
    performance: dict[str, list[float]] = {}
    for i, window in enumerate(ordered):
        for name, value in window.performance.items():
            performance.setdefault(name, [NAN] * len(ordered))[i] = float(value)
    return MonitorReport(
        deployment=deployment,
        generated_ms=now_ms,
        windows=ordered,
        alerts=tuple(alert_list),
        loops=tuple(loop_list),
        features=_trends(ordered, "feature"),
        outputs=_trends(ordered, "output"),
        performance={name: tuple(values) for name, values in performance.items()},
        latency_p99_ms=tuple(
            NAN if w.latency_p99_ms is None else float(w.latency_p99_ms) for w in ordered
        ),
        open_alerts=_open(alert_list, ordered),
    )


def plain(value: Any) -> Any:
    """``value`` as plain JSON types: mappings to dicts with string keys, sequences to
    lists, enums to their values, non-finite floats to strings, anything else to its text."""
    if isinstance(value, Enum):  # before str and int: StrEnum and IntEnum are both
        return plain(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return encode_number(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [plain(v) for v in value]
    return str(value)


def _trends(windows: Sequence[WindowReport], role: str) -> tuple[ColumnTrend, ...]:
    severities: dict[str, list[float]] = {}
    drifted: dict[str, int] = {}
    latest: dict[str, tuple[FeatureDrift, str]] = {}
    for i, window in enumerate(windows):
        for column in window.features if role == "feature" else window.outputs:
            name = column.column
            severities.setdefault(name, [NAN] * len(windows))[i] = column.level
            drifted[name] = drifted.get(name, 0) + column.drifted
            latest[name] = (column, window.window_key)
    trends = [
        ColumnTrend(
            column=name,
            role=role,
            kind=latest[name][0].kind,
            severities=tuple(values),
            drifted_windows=drifted[name],
            latest=latest[name][0],
            latest_window=latest[name][1],
        )
        for name, values in severities.items()
    ]
    return tuple(sorted(trends, key=_rank))


def _rank(trend: ColumnTrend) -> tuple[bool, float, float, str]:
    """Sort key, most worrying first; an unmeasured (NaN) severity sorts last."""
    return (
        not trend.drifted_now,
        -_orderable(trend.latest_severity),
        -_orderable(trend.max_severity),
        trend.column,
    )


def _orderable(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def _open(
    alerts: Sequence[Mapping[str, Any]], windows: Sequence[WindowReport]
) -> tuple[Mapping[str, Any], ...]:
    newest: dict[str, Mapping[str, Any]] = {}
    for alert in alerts:  # oldest first: the last of each key wins
        newest[_alert_key(alert)] = alert
    still = []
    for alert in newest.values():
        metric, threshold = alert.get("metric"), _float(alert.get("threshold"))
        seen = _last_seen(windows, metric) if isinstance(metric, str) else None
        if seen is None or math.isnan(threshold):
            still.append(alert)  # nothing says it cleared
            continue
        value, end_ms = seen
        if _int(alert.get("observed_ms")) > end_ms:
            still.append(alert)  # it fired on a window newer than the newest measurement
        elif (value < threshold) if alert.get("comparison") == "below" else (value > threshold):
            still.append(alert)
    return tuple(still)


def _last_seen(windows: Sequence[WindowReport], metric: str) -> tuple[float, int] | None:
    """The newest measured value of ``metric`` and the end of its window. Drift figures
    come from judged windows only: a window too small to judge has a drift score of 0,
    which does not mean the drift went away."""
    drift = metric == "drift_score" or metric.startswith("feature_drift:")
    for window in reversed(windows):
        if drift and not (window.features or window.outputs):
            continue
        value = window.observations().get(metric)
        if value is not None and not math.isnan(value):
            return value, window.end_ms
    return None


def _alert_key(alert: Mapping[str, Any]) -> str:
    key = alert.get("dedup_key")
    if key is not None:
        return str(key)
    return f"{alert.get('rule', '')}|{alert.get('deployment', '')}|{alert.get('metric', '')}"


def _same(deployment: str, what: str, name: str, owner: str) -> None:
    if owner != deployment:
        raise InvalidInput(
            f"{what} {name!r} belongs to deployment {owner!r}, not {deployment!r}; "
            f"pass only the {what}s of {deployment!r} to build_report"
        )


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError, OverflowError):
        return 0


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return NAN
