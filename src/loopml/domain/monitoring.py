"""Monitors: what is watched on a deployment, and what one window of its traffic showed.

A :class:`MonitorSpec` (one ``[monitor.<deployment>]`` table of ``loopml.toml``) says how
to cut the prediction log of a deployment into windows (``window_rows`` newest rows, or
``window_s`` seconds of traffic), which feedback label gives performance, which column
segments the drift, and when predictions go to human review. The reference is the stored
profile of the data the production version was trained on, found through its lineage.

A :class:`WindowReport` is one evaluated window: drift per feature and per model output
(:class:`~loopml.domain.drift.FeatureDrift`), per segment, performance on the rows whose
labels arrived, and the service figures read from the log (latency p99, records the log
lost). Reports are stored once per ``(deployment, window_key)``, so running a monitor twice
on the same window stores nothing new. :meth:`WindowReport.observations` flattens a report
into the numbers alert rules watch (``drift_score``, ``performance:rmse``...).

Standard library only, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Any

from loopml.domain.drift import FeatureDrift, dataset_score
from loopml.domain.errors import ConfigError, InvalidInput
from loopml.domain.names import validate_identifier
from loopml.domain.schedule import Schedule

_SPEC_KEYS = {
    "window_rows",
    "window_s",
    "min_rows",
    "label",
    "task",
    "segment_by",
    "review_below",
    "review_function",
    "schedule",
    "reference",
    "loop",
    "trusted",
}
_TASKS = ("regression", "classification")


@dataclass(frozen=True, slots=True)
class LoopSpec:
    """How the retrain loop of a deployment rolls a winner out (``[monitor.NAME.loop]``)."""

    canary_share: float = 20.0  # percent of traffic the retrained model takes
    watch_s: int = 600  # how long the canary is watched before it is promoted
    min_canary_rows: int = 50  # rows the canary must answer before a verdict
    max_error_ratio: float = 1.10  # canary error (with labels) at most 10% above production
    max_latency_p99_ms: float = 250.0
    data: str | None = None  # dataset the pipeline trains on; labelled rows are added to it
    schema: str | None = None  # schema file the evaluation data is validated against

    @classmethod
    def from_mapping(cls, where: str, table: Mapping[str, Any]) -> LoopSpec:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(table) - known)
        if unknown:
            raise InvalidInput(
                f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        spec = cls(**dict(table))
        for name in ("data", "schema"):
            value = getattr(spec, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidInput(f"{where}.{name} must be a non-empty string, got {value!r}")
        if not _is_number(spec.canary_share) or not 0 < spec.canary_share < 100:
            raise InvalidInput(
                f"{where}.canary_share must be a percentage between 0 and 100, "
                f"got {spec.canary_share!r}"
            )
        for name in ("watch_s", "min_canary_rows", "max_error_ratio", "max_latency_p99_ms"):
            value = getattr(spec, name)
            if not _is_number(value) or value <= 0:
                raise InvalidInput(f"{where}.{name} must be a positive number, got {value!r}")
        return spec


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    deployment: str
    window_rows: int | None = None
    window_s: int | None = None
    min_rows: int = 30  # a window with fewer rows is recorded but judges nothing
    label: str | None = None  # name of the feedback label: performance once labels arrive
    task: str | None = None  # "regression" or "classification"; from the outputs if unset
    segment_by: str | None = None
    review_below: float | None = None  # confidence under which a row goes to review
    review_function: str | None = None  # "file.py:name" computing confidence per row
    schedule: str = "@every 5m"
    reference: str | None = None  # "dataset@version"; default: the training data's lineage
    loop: LoopSpec | None = None  # retrain loop settings; None: no automatic retraining
    # Load the deployment's models with types skops does not trust by default (tree
    # ensembles), as `loopml serve --trusted` does: only for models you registered.
    trusted: bool = False

    def __post_init__(self) -> None:
        validate_identifier("deployment name", self.deployment)
        where = f"[monitor.{self.deployment}]"
        if (self.window_rows is None) == (self.window_s is None):
            raise InvalidInput(
                f"{where} needs exactly one of window_rows (the newest N rows) or window_s "
                f"(the last N seconds), got window_rows={self.window_rows!r}, "
                f"window_s={self.window_s!r}"
            )
        for name in ("window_rows", "window_s", "min_rows"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise InvalidInput(f"{where} {name} must be a positive integer, got {value!r}")
        for name in ("label", "segment_by", "review_function", "reference"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidInput(f"{where} {name} must be a non-empty string, got {value!r}")
        try:
            Schedule.parse(self.schedule)  # refused here, not when the agent starts
        except InvalidInput as exc:
            raise InvalidInput(f"{where} schedule: {exc}") from exc
        if self.task is not None and self.task not in _TASKS:
            raise InvalidInput(f"{where} task must be one of {_TASKS}, got {self.task!r}")
        if self.review_below is not None and not (
            isinstance(self.review_below, int | float) and math.isfinite(self.review_below)
        ):
            raise InvalidInput(
                f"{where} review_below must be a number (a confidence), got {self.review_below!r}"
            )
        if not isinstance(self.trusted, bool):
            raise InvalidInput(f"{where} trusted must be true or false, got {self.trusted!r}")
        if self.review_function is not None and ":" not in self.review_function:
            raise InvalidInput(
                f"{where} review_function must look like 'file.py:function', "
                f"got {self.review_function!r}"
            )

    @classmethod
    def from_mapping(cls, deployment: str, table: Mapping[str, Any]) -> MonitorSpec:
        where = f"[monitor.{deployment}]"
        if not isinstance(table, Mapping):
            raise InvalidInput(f"{where} must be a table, got {table!r}")
        unknown = sorted(set(table) - _SPEC_KEYS)
        if unknown:
            raise InvalidInput(
                f"{where}: unknown key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_SPEC_KEYS))}. See docs/monitoring.md"
            )
        values = dict(table)
        loop = values.pop("loop", None)
        if loop is not None and not isinstance(loop, Mapping):
            raise InvalidInput(f"{where}.loop must be a table, got {loop!r}")
        return cls(
            deployment=deployment,
            loop=None if loop is None else LoopSpec.from_mapping(f"{where}.loop", loop),
            **values,
        )


def workspace_monitors(
    table: Mapping[str, Any], root: str, config_file: str
) -> dict[str, MonitorSpec]:
    """:func:`monitors_from_config` of a workspace, whose errors name its ``config_file``."""
    try:
        return monitors_from_config(table, root)
    except InvalidInput as exc:
        raise ConfigError(f"{config_file}: {exc}") from exc


def monitors_from_config(
    table: Mapping[str, Any], root: str | None = None
) -> dict[str, MonitorSpec]:
    """The ``[monitor]`` table of loopml.toml: one sub-table per deployment. A relative
    ``loop.schema`` path is relative to ``root`` (the workspace)."""
    specs = {name: MonitorSpec.from_mapping(name, spec) for name, spec in table.items()}
    for name, spec in specs.items():
        loop = spec.loop
        if root is not None and loop is not None and loop.schema is not None:
            path = PurePath(root) / loop.schema  # an absolute schema path stays as it is
            specs[name] = replace(spec, loop=replace(loop, schema=str(path)))
    return specs


@dataclass(frozen=True, slots=True)
class WindowReport:
    deployment: str
    window_key: str  # identifies the window: "rows:<first>-<last>" or "time:<start>-<end>"
    start_ms: int  # time of the first row in the window
    end_ms: int  # time of the last row
    rows: int
    model: str = ""
    version: int = 0  # production version that answered most rows of the window
    reference: str = ""  # "dataset@version" the features were compared with
    features: tuple[FeatureDrift, ...] = ()
    outputs: tuple[FeatureDrift, ...] = ()  # prediction drift
    segments: Mapping[str, tuple[FeatureDrift, ...]] = field(default_factory=dict)
    segment_by: str | None = None
    performance: Mapping[str, float] = field(default_factory=dict)
    labelled_rows: int = 0
    latency_p99_ms: float | None = None
    log_dropped: int = 0  # prediction-log records lost by the server so far
    created_ms: int = 0
    note: str = ""  # why nothing was judged (too few rows, no reference...)

    @property
    def score(self) -> float:
        """Largest level over features and outputs: 1.0 or more means drift (see
        :attr:`~loopml.domain.drift.FeatureDrift.level`)."""
        return dataset_score([*self.features, *self.outputs])

    @property
    def drifted(self) -> tuple[str, ...]:
        return tuple(c.column for c in (*self.features, *self.outputs) if c.drifted)

    def observations(self) -> dict[str, float]:
        """The figures alert rules watch, by metric name."""
        seen: dict[str, float] = {"log_dropped": float(self.log_dropped)}
        if self.features or self.outputs:  # a window too small to judge says nothing of drift
            seen["drift_score"] = self.score
        for c in (*self.features, *self.outputs):
            seen[f"feature_drift:{c.column}"] = c.level
        for name, value in self.performance.items():
            seen[f"performance:{name}"] = value
        if self.latency_p99_ms is not None:
            seen["latency_p99_ms"] = self.latency_p99_ms
        return seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "window_key": self.window_key,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "rows": self.rows,
            "model": self.model,
            "version": self.version,
            "reference": self.reference,
            "features": [c.to_dict() for c in self.features],
            "outputs": [c.to_dict() for c in self.outputs],
            "segments": {k: [c.to_dict() for c in v] for k, v in self.segments.items()},
            "segment_by": self.segment_by,
            "performance": dict(self.performance),
            "labelled_rows": self.labelled_rows,
            "latency_p99_ms": self.latency_p99_ms,
            "log_dropped": self.log_dropped,
            "created_ms": self.created_ms,
            "note": self.note,
            "score": _finite(self.score),
            "drifted": list(self.drifted),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowReport:
        def drifts(items: list[Mapping[str, Any]]) -> tuple[FeatureDrift, ...]:
            return tuple(FeatureDrift.from_dict(i) for i in items)

        try:
            return cls(
                deployment=data["deployment"],
                window_key=data["window_key"],
                start_ms=int(data["start_ms"]),
                end_ms=int(data["end_ms"]),
                rows=int(data["rows"]),
                model=data.get("model", ""),
                version=int(data.get("version", 0)),
                reference=data.get("reference", ""),
                features=drifts(data.get("features", [])),
                outputs=drifts(data.get("outputs", [])),
                segments={k: drifts(v) for k, v in data.get("segments", {}).items()},
                segment_by=data.get("segment_by"),
                performance={k: float(v) for k, v in data.get("performance", {}).items()},
                labelled_rows=int(data.get("labelled_rows", 0)),
                latency_p99_ms=data.get("latency_p99_ms"),
                log_dropped=int(data.get("log_dropped", 0)),
                created_ms=int(data.get("created_ms", 0)),
                note=data.get("note", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(
                f"stored monitoring window is damaged ({exc!r}); expected a dict made by "
                "WindowReport.to_dict()"
            ) from exc


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: float) -> float | str:
    return value if math.isfinite(value) else "inf"
