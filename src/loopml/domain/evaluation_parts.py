"""The parts of an evaluation, as frozen values with exact JSON forms.

A ROC :class:`Curve`, the :class:`Calibration` of binary scores (its
:class:`ReliabilityBin` s), a :class:`ConfusionMatrix`, the :class:`ResidualSummary` of a
regression, the metrics of one :class:`SliceResult`, the gaps of one
:class:`FairnessResult` and a :class:`PermutationImportance`. :mod:`loopml.domain.evaluation`
assembles them into an ``Evaluation`` and documents the metric names and the JSON rules
(non-finite floats are the strings ``"nan"``, ``"inf"``, ``"-inf"``; every NaN is
:data:`math.nan` itself, so values equal their round trip). The helpers at the end are
that codec, shared with the ``Evaluation`` itself. Standard library only, no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from loopml.domain.errors import InvalidInput
from loopml.domain.json_numbers import decode_number, encode_number

__all__ = [
    "Calibration",
    "ConfusionMatrix",
    "Curve",
    "FairnessResult",
    "FeatureImportance",
    "PermutationImportance",
    "ReliabilityBin",
    "ResidualSummary",
    "SliceResult",
]

_METRIC = re.compile(r"^[a-z][a-z0-9_]*$")


def check_metric(metric: object, full: object = None) -> None:
    if not isinstance(metric, str) or not _METRIC.match(metric):
        where = f" in {full!r}" if full is not None else ""
        raise InvalidInput(
            f"metric {metric!r}{where} is not a metric name: expected lowercase letters, digits "
            "and '_' (e.g. 'f1_macro'), optionally after 'slice:<name>/' or 'fairness:<column>/'"
        )


@dataclass(frozen=True, slots=True)
class Curve:
    """A curve as points ``(x[i], y[i])``: a ROC curve has FPR on x and TPR on y."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    area: float  # under the curve, from every point (not only the stored ones)

    def __post_init__(self) -> None:
        set_field(self, "x", _floats(self.x))
        set_field(self, "y", _floats(self.y))
        set_field(self, "area", _float(self.area))
        if len(self.x) != len(self.y):
            raise InvalidInput(f"a curve needs as many x as y, got {len(self.x)} and {len(self.y)}")

    def to_dict(self) -> dict[str, Any]:
        return {"x": _encode_all(self.x), "y": _encode_all(self.y), "area": _encode(self.area)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Curve:
        return cls(_decode_all(data["x"]), _decode_all(data["y"]), _decode(data["area"]))


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """Predictions with ``lower < p <= upper`` (the first bin includes 0.0), as
    scikit-learn's ``calibration_curve`` bins them.

    ``mean_predicted`` and ``observed`` (share of positives) are NaN when ``count`` is 0.
    """

    lower: float
    upper: float
    count: int
    mean_predicted: float
    observed: float

    def __post_init__(self) -> None:
        for name in ("lower", "upper", "mean_predicted", "observed"):
            set_field(self, name, _float(getattr(self, name)))
        set_field(self, "count", checked_int(self.count, "count"))

    @property
    def means(self) -> tuple[float, float]:
        """``(mean_predicted, observed)``: a point of the reliability diagram."""
        return self.mean_predicted, self.observed


@dataclass(frozen=True, slots=True)
class Calibration:
    """The reliability curve of binary scores (equal-width bins) and its expected
    calibration error: ``sum(count / rows * |observed - mean_predicted|)``."""

    bins: tuple[ReliabilityBin, ...]
    ece: float

    def __post_init__(self) -> None:
        set_field(self, "bins", tuple(self.bins))
        set_field(self, "ece", _float(self.ece))

    def to_dict(self) -> dict[str, Any]:
        return {
            "bins": [
                [_encode(b.lower), _encode(b.upper), b.count, *_encode_all(b.means)]
                for b in self.bins
            ],
            "ece": _encode(self.ece),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        bins = tuple(
            ReliabilityBin(_decode(lo), _decode(hi), n, _decode(mean), _decode(seen))
            for lo, hi, n, mean, seen in data["bins"]
        )
        return cls(bins, _decode(data["ece"]))


@dataclass(frozen=True, slots=True)
class ConfusionMatrix:
    """``counts[i][j]``: rows whose true class is ``labels[i]`` predicted as ``labels[j]``."""

    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        set_field(self, "labels", checked_texts(self.labels, "labels"))
        set_field(
            self,
            "counts",
            tuple(tuple(checked_int(n, "count") for n in row) for row in self.counts),
        )
        k = len(self.labels)
        if len(self.counts) != k or any(len(row) != k for row in self.counts):
            raise InvalidInput(
                f"a confusion matrix of {k} labels needs {k} rows of {k} counts, got rows of "
                f"{[len(row) for row in self.counts]}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "counts": [list(row) for row in self.counts]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfusionMatrix:
        return cls(tuple(data["labels"]), tuple(tuple(row) for row in data["counts"]))


@dataclass(frozen=True, slots=True)
class ResidualSummary:
    """Residuals ``y_true - y_pred`` of a regression.

    ``quantiles`` pairs each level (0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1) with its
    value (linear interpolation). The histogram has equal-width bins between the 1st and
    99th percentiles; the outer bins are open, so ``sum(bin_counts)`` is every row.
    ``zero_targets`` counts rows left out of MAPE because their target is 0.
    """

    mean: float
    std: float  # population standard deviation
    quantiles: tuple[tuple[float, float], ...]
    bin_edges: tuple[float, ...]
    bin_counts: tuple[int, ...]
    zero_targets: int = 0

    def __post_init__(self) -> None:
        set_field(self, "mean", _float(self.mean))
        set_field(self, "std", _float(self.std))
        set_field(self, "quantiles", tuple((_float(q), _float(v)) for q, v in self.quantiles))
        set_field(self, "bin_edges", _floats(self.bin_edges))
        set_field(self, "bin_counts", tuple(checked_int(n, "bin count") for n in self.bin_counts))
        set_field(self, "zero_targets", checked_int(self.zero_targets, "zero_targets"))
        if self.bin_counts and len(self.bin_edges) != len(self.bin_counts) + 1:
            raise InvalidInput(
                f"a histogram of {len(self.bin_counts)} bins needs {len(self.bin_counts) + 1} "
                f"edges, got {len(self.bin_edges)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": _encode(self.mean),
            "std": _encode(self.std),
            "quantiles": [[_encode(q), _encode(v)] for q, v in self.quantiles],
            "bin_edges": _encode_all(self.bin_edges),
            "bin_counts": list(self.bin_counts),
            "zero_targets": self.zero_targets,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResidualSummary:
        return cls(
            mean=_decode(data["mean"]),
            std=_decode(data["std"]),
            quantiles=tuple((_decode(q), _decode(v)) for q, v in data["quantiles"]),
            bin_edges=_decode_all(data["bin_edges"]),
            bin_counts=tuple(data["bin_counts"]),
            zero_targets=data["zero_targets"],
        )


@dataclass(frozen=True, slots=True)
class SliceResult:
    """The metrics of one slice: rows where ``column`` equals ``value``, or a named mask
    (``column`` and ``value`` are then ``None`` and ``name`` is the mask's name)."""

    name: str
    rows: int
    metrics: dict[str, float]
    column: str | None = None
    value: str | None = None

    def __post_init__(self) -> None:
        set_field(self, "name", _text(self.name, "slice name"))
        set_field(self, "rows", checked_int(self.rows, "rows"))
        set_field(self, "metrics", checked_metrics(self.metrics))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "column": self.column,
            "value": self.value,
            "rows": self.rows,
            "metrics": encode_metrics(self.metrics),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SliceResult:
        return cls(
            name=data["name"],
            rows=data["rows"],
            metrics=decode_metrics(data["metrics"]),
            column=data["column"],
            value=data["value"],
        )


@dataclass(frozen=True, slots=True)
class FairnessResult:
    """Gaps across the groups of one sensitive column (``metrics``) and the per-group
    values they come from (``groups``: value, rows and metrics such as ``tpr``)."""

    column: str
    metrics: dict[str, float]
    groups: tuple[SliceResult, ...]

    def __post_init__(self) -> None:
        set_field(self, "column", _text(self.column, "sensitive column"))
        set_field(self, "metrics", checked_metrics(self.metrics))
        set_field(self, "groups", tuple(self.groups))

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "metrics": encode_metrics(self.metrics),
            "groups": [g.to_dict() for g in self.groups],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FairnessResult:
        groups = tuple(SliceResult.from_dict(g) for g in data["groups"])
        return cls(data["column"], decode_metrics(data["metrics"]), groups)


@dataclass(frozen=True, slots=True)
class FeatureImportance:
    """How much worse ``metric`` got when one feature was shuffled: mean and std over
    repeats, positive when the model relies on the feature."""

    feature: str
    mean: float
    std: float

    def __post_init__(self) -> None:
        set_field(self, "feature", _text(self.feature, "feature"))
        set_field(self, "mean", _float(self.mean))
        set_field(self, "std", _float(self.std))


@dataclass(frozen=True, slots=True)
class PermutationImportance:
    """Permutation importance of each feature, most important first."""

    metric: str
    baseline: float  # the metric on the unshuffled sample
    n_repeats: int
    rows: int  # rows of the sample the model was scored on
    seed: int
    features: tuple[FeatureImportance, ...]

    def __post_init__(self) -> None:
        check_metric(self.metric)
        set_field(self, "baseline", _float(self.baseline))
        for name in ("n_repeats", "rows", "seed"):
            set_field(self, name, checked_int(getattr(self, name), name))
        set_field(self, "features", tuple(self.features))

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "baseline": _encode(self.baseline),
            "n_repeats": self.n_repeats,
            "rows": self.rows,
            "seed": self.seed,
            "features": [[f.feature, _encode(f.mean), _encode(f.std)] for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PermutationImportance:
        features = tuple(
            FeatureImportance(name, _decode(mean), _decode(std))
            for name, mean, std in data["features"]
        )
        return cls(
            metric=data["metric"],
            baseline=_decode(data["baseline"]),
            n_repeats=data["n_repeats"],
            rows=data["rows"],
            seed=data["seed"],
            features=features,
        )


def set_field(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalising fields of a frozen dataclass


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"expected a number, got {type(value).__name__} {value!r:.80}")
    number = float(value)
    return math.nan if math.isnan(number) else number  # one NaN object: equality holds


def _floats(values: Iterable[object]) -> tuple[float, ...]:
    return tuple(_float(v) for v in values)


def checked_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an integer, got {type(value).__name__} {value!r:.80}")
    return int(value)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text, got {type(value).__name__} {value!r:.80}")
    return value


def checked_texts(values: Iterable[object], what: str) -> tuple[str, ...]:
    return tuple(_text(v, what) for v in values)


def checked_metrics(values: Mapping[str, object]) -> dict[str, float]:
    for key in values:
        check_metric(key)
    return {key: _float(v) for key, v in values.items()}


def _encode(value: float) -> float | str:
    return encode_number(value)  # type: ignore[return-value]  # a float or its string


def _encode_all(values: Iterable[float]) -> list[float | str]:
    return [_encode(v) for v in values]


def encode_metrics(values: Mapping[str, float]) -> dict[str, float | str]:
    return {key: _encode(v) for key, v in values.items()}


def _decode(value: object) -> float:
    return _float(decode_number(value, "an evaluation number"))


def _decode_all(values: Iterable[object]) -> tuple[float, ...]:
    return tuple(_decode(v) for v in values)


def decode_metrics(values: Mapping[str, object]) -> dict[str, float]:
    return {key: _decode(v) for key, v in values.items()}
