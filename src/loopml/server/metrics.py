"""Server metrics in the Prometheus text format (version 0.0.4), kept in plain counters.

Updated on the request path with a dictionary increment or two, no lock: the server runs
its requests on one event loop thread, and a shadow thread only adds to its own keys
(CPython makes each increment of a dict entry effectively atomic for readers).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loopml.domain.deployments import Target

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
# Regression outputs have no known scale: decades on both sides of zero.
_DECADES = tuple(10.0**e for e in range(-3, 7))
VALUE_BUCKETS = (*(-d for d in reversed(_DECADES)), 0.0, *_DECADES)
MAX_CLASSES = 50  # class series kept in all; a class seen after that counts as "other"

Labels = tuple[tuple[str, str], ...]


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1


@dataclass
class ServerMetrics:
    requests: dict[Labels, int] = field(default_factory=dict)
    errors: dict[Labels, int] = field(default_factory=dict)
    latency: dict[Labels, Histogram] = field(default_factory=dict)
    confidence: dict[Labels, Histogram] = field(default_factory=dict)
    values: dict[Labels, Histogram] = field(default_factory=dict)  # regression outputs
    classes: dict[Labels, int] = field(default_factory=dict)  # classifier outputs
    invalid_fields: dict[Labels, int] = field(default_factory=dict)
    shadow_dropped: int = 0
    # (deployment, answered by, compared with) -> [rows compared, rows differing, sum |diff|]
    disagreement: dict[Labels, list[float]] = field(default_factory=dict)
    batch_sizes: dict[int, int] = field(default_factory=dict)  # requests per call -> calls
    gauges: dict[str, Callable[[], float]] = field(default_factory=dict)

    def answered(
        self,
        labels: Labels,
        seconds: float,
        predictions: list[Any],
        confidence: list[float] | None,
    ) -> None:
        """One answered request: its latency and the distribution of what it answered
        (classes and confidence for classifiers, values for regressors) per version."""
        self.requests[labels] = self.requests.get(labels, 0) + 1
        _histogram(self.latency, labels, LATENCY_BUCKETS_S).observe(seconds)
        per_version = labels[:3]
        if confidence is not None:
            conf = _histogram(self.confidence, per_version, CONFIDENCE_BUCKETS)
            for c in confidence:
                conf.observe(c)
            for p in predictions:
                key = (*per_version, ("class", str(p)))
                if key not in self.classes and len(self.classes) >= MAX_CLASSES:
                    key = (*per_version, ("class", "other"))
                self.classes[key] = self.classes.get(key, 0) + 1
            return
        values = _histogram(self.values, per_version, VALUE_BUCKETS)
        for v in predictions:
            if isinstance(v, int | float) and not isinstance(v, bool):
                values.observe(float(v))

    def compared(
        self, deployment: str, answered: Target, other: Target, a: list[Any], b: list[Any]
    ) -> None:
        """How another version's answers (``b``: the shadow's, or production's for a
        canary request) differ from the ones returned (``a``) for the same rows."""
        key = (
            ("deployment", deployment),
            ("answered_by", answered.uri),
            ("compared_with", other.uri),
        )
        entry = self.disagreement.setdefault(key, [0.0, 0.0, 0.0])
        for x, y in zip(a, b, strict=False):
            entry[0] += 1
            if x != y:
                entry[1] += 1
            if isinstance(x, int | float) and isinstance(y, int | float):
                entry[2] += abs(float(x) - float(y))

    def failed(self, deployment: str, status: int) -> None:
        key = (("deployment", deployment), ("status", str(status)))
        self.errors[key] = self.errors.get(key, 0) + 1

    def invalid(self, deployment: str, fields: list[str]) -> None:
        for name in fields:
            key = (("deployment", deployment), ("field", name))
            self.invalid_fields[key] = self.invalid_fields.get(key, 0) + 1

    def text(self) -> str:
        lines: list[str] = []
        _counter(lines, "loopml_requests_total", "Predictions answered.", self.requests)
        _counter(
            lines, "loopml_request_errors_total", "Requests answered with an error.", self.errors
        )
        _counter(
            lines,
            "loopml_invalid_fields_total",
            "Input validation failures, per field.",
            self.invalid_fields,
        )
        _histograms(lines, "loopml_predict_seconds", "Model call latency per route.", self.latency)
        _histograms(
            lines,
            "loopml_prediction_value",
            "Distribution of regression outputs, per version.",
            self.values,
        )
        _counter(
            lines,
            "loopml_predicted_class_total",
            "Classifier answers, per version and class.",
            self.classes,
        )
        _histograms(
            lines,
            "loopml_prediction_confidence",
            "Top-class probability of classifier answers, per version.",
            self.confidence,
        )
        lines += [
            "# HELP loopml_shadow_dropped_total Shadow calls dropped: the shadow queue was full.",
            "# TYPE loopml_shadow_dropped_total counter",
            f"loopml_shadow_dropped_total {self.shadow_dropped}",
        ]
        for metric, index, help_text in (
            ("loopml_compared_rows_total", 0, "Rows answered by two versions (shadow, canary)."),
            ("loopml_differing_rows_total", 1, "Compared rows the two versions answered apart."),
            ("loopml_abs_difference_total", 2, "Sum of |other - answer| over compared rows."),
        ):
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
            lines += [
                f"{metric}{_labels(k)} {v[index]:g}" for k, v in sorted(self.disagreement.items())
            ]
        lines += [
            "# HELP loopml_model_calls_total Model calls, by how many requests they answered.",
            "# TYPE loopml_model_calls_total counter",
        ]
        lines += [
            f'loopml_model_calls_total{{requests="{n}"}} {calls}'
            for n, calls in sorted(self.batch_sizes.items())
        ]
        for name, read in sorted(self.gauges.items()):
            kind = "counter" if name.endswith("_total") else "gauge"
            value = float(read())
            lines += [f"# TYPE {name} {kind}", f"{name} {'NaN' if math.isnan(value) else value}"]
        return "\n".join(lines) + "\n"


def _histogram(table: dict[Labels, Histogram], key: Labels, bounds: tuple[float, ...]) -> Histogram:
    found = table.get(key)
    if found is None:
        found = table[key] = Histogram(bounds)
    return found


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _counter(lines: list[str], name: str, help_text: str, values: dict[Labels, int]) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    lines += [f"{name}{_labels(k)} {v}" for k, v in sorted(values.items())]


def _histograms(
    lines: list[str], name: str, help_text: str, values: dict[Labels, Histogram]
) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    for labels, h in sorted(values.items()):
        running = 0
        for bound, count in zip((*h.bounds, float("inf")), h.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            bucket = _labels(labels, 'le="' + le + '"')
            lines.append(f"{name}_bucket{bucket} {running}")
        lines.append(f"{name}_sum{_labels(labels)} {h.total}")
        lines.append(f"{name}_count{_labels(labels)} {h.n}")
