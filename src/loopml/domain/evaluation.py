"""The evaluation of a model on labelled rows, and the names gates use for its metrics.

An :class:`Evaluation` is a frozen value: overall metrics, the same metrics per slice,
fairness gaps across sensitive columns, and what the report draws (reliability bins, a
ROC curve, a confusion matrix, a residual histogram, permutation importance).
``loopml.stats.evaluation`` computes it; gates read it; the HTML adapter draws it.

**Metric names** (stable: gate policies name metrics this way)::

    accuracy                               overall
    slice:region=north/recall              in the slice of rows where column region is north
    slice:weekend/rmse                     in a slice the caller named with a boolean mask
    fairness:sex/equalized_odds_difference a gap across the groups of a sensitive column

``metric_name(metric, slice=..., fairness=...)`` builds a name, ``parse_metric_name``
splits one (the metric is the part after the last ``/``; metric names are lowercase
letters, digits and ``_``), and ``Evaluation.metric(name)`` or
``Evaluation.metric("recall", slice="region=north")`` looks one up. A slice name is
``<column>=<value>`` (the value as text: ``true``/``false`` for booleans, ``<null>`` for
missing values) or the name of a mask. Slice and group values are data: they may hold any
character, so these names are lookup keys, not tracking metric keys.

- Classification, every task: ``accuracy``, ``balanced_accuracy``, ``precision_macro``,
  ``recall_macro``, ``f1_macro`` (unweighted means over the classes present in the truth
  or the predictions, as scikit-learn's ``average="macro"``), and with scores
  ``roc_auc``, ``pr_auc`` (average precision) and ``log_loss``; for more than two classes
  the two AUCs are one-vs-rest macro means over the classes with both outcomes present.
- Binary only: ``precision``, ``recall``, ``f1`` (of ``positive_label``),
  ``positive_rate`` (share predicted positive) and with scores ``brier`` and ``ece``.
- Regression: ``mae``, ``mse``, ``rmse``, ``r2``, ``mape`` (a fraction, rows whose target
  is 0 left out and counted in the notes) and ``bias`` (mean residual).
- Fairness: ``demographic_parity_difference`` (max - min share predicted positive),
  ``equalized_odds_difference`` (the larger of the TPR and FPR max - min gaps) and
  ``accuracy_difference``; for regression ``mean_prediction_difference`` and
  ``mae_difference``. Each group's own values (``positive_rate``, ``tpr``, ``fpr``,
  ``accuracy``; ``mean_prediction``, ``mae``) are in ``FairnessResult.groups``.

``Evaluation.flat_metrics()`` lists every name with its value (overall, then slices, then
fairness): the one mapping a gate check or a model version's metrics can take whole.

**Undefined is NaN.** A metric that needs something the rows lack (ROC AUC with one class,
R2 of one row) is NaN, never left out: a gate must treat NaN as failing. Metrics that need
scores are absent when no scores were given. Where scikit-learn defines a value by
convention (precision with nothing predicted positive is 0.0; R2 of a constant target is
1.0 for perfect predictions, else 0.0) the same convention is kept.

**JSON.** ``to_dict`` returns plain JSON types; a non-finite float is the string
``"nan"``, ``"inf"`` or ``"-inf"``. ``Evaluation.from_dict(json.loads(json.dumps(d)))``
equals the original: every NaN is stored as :data:`math.nan` itself, so equality holds.
Standard library only, no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple, get_args

from loopml.domain.errors import InvalidInput, NotFound
from loopml.domain.evaluation_parts import (
    Calibration,
    ConfusionMatrix,
    Curve,
    FairnessResult,
    FeatureImportance,
    PermutationImportance,
    ReliabilityBin,
    ResidualSummary,
    SliceResult,
    check_metric,
    checked_int,
    checked_metrics,
    checked_texts,
    decode_metrics,
    encode_metrics,
    set_field,
)

__all__ = [
    "FORMAT",
    "NULL_VALUE",
    "Calibration",
    "ConfusionMatrix",
    "Curve",
    "Evaluation",
    "FairnessResult",
    "FeatureImportance",
    "MetricName",
    "PermutationImportance",
    "ReliabilityBin",
    "ResidualSummary",
    "Scope",
    "SliceResult",
    "Task",
    "metric_name",
    "parse_metric_name",
]

FORMAT = 1
Task = Literal["classification", "regression"]
Scope = Literal["overall", "slice", "fairness"]
NULL_VALUE = "<null>"  # the slice value text of missing values
_TASKS = frozenset(get_args(Task))


class MetricName(NamedTuple):
    """A metric name split into its parts: ``slice:region=north/recall`` is
    ``MetricName("slice", "region=north", "recall")``."""

    scope: Scope
    group: str | None  # the slice name or the sensitive column; None when overall
    metric: str


def metric_name(metric: str, *, slice: str | None = None, fairness: str | None = None) -> str:
    """The name of ``metric`` overall, in a slice, or across a sensitive column."""
    check_metric(metric)
    if slice is not None and fairness is not None:
        raise InvalidInput(
            f"metric {metric!r}: give a slice ({slice!r}) or a fairness column ({fairness!r}), "
            "not both"
        )
    if slice is not None:
        return f"slice:{slice}/{metric}"
    if fairness is not None:
        return f"fairness:{fairness}/{metric}"
    return metric


def parse_metric_name(name: str) -> MetricName:
    """Split a metric name (see the module docstring) into scope, group and metric."""
    if not isinstance(name, str):
        raise InvalidInput(f"a metric name must be text, got {type(name).__name__} {name!r}")
    scopes: tuple[Scope, ...] = ("slice", "fairness")
    for scope in scopes:
        prefix = f"{scope}:"
        if name.startswith(prefix):
            group, sep, metric = name[len(prefix) :].rpartition("/")
            if not sep or not group:
                raise InvalidInput(
                    f"metric name {name!r} has no group: expected '{prefix}<name>/<metric>', "
                    f"e.g. '{prefix}region=north/accuracy'"
                )
            check_metric(metric, name)
            return MetricName(scope, group, metric)
    check_metric(name)
    return MetricName("overall", None, name)


_PARTS: dict[str, Any] = {
    "calibration": Calibration,
    "confusion": ConfusionMatrix,
    "roc": Curve,
    "residuals": ResidualSummary,
    "importance": PermutationImportance,
}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A model evaluated on ``rows`` labelled rows (see the module docstring for names).

    ``labels`` are the classes as text (in the order of the confusion matrix) and
    ``positive_label`` the class binary metrics are about; both are empty for regression.
    ``notes`` say what was left out and why (capped slices, zero targets, skipped parts).
    """

    task: Task
    label: str  # the name of the label column
    rows: int
    metrics: dict[str, float]
    labels: tuple[str, ...] = ()
    positive_label: str | None = None
    slices: tuple[SliceResult, ...] = ()
    fairness: tuple[FairnessResult, ...] = ()
    calibration: Calibration | None = None
    confusion: ConfusionMatrix | None = None
    roc: Curve | None = None
    residuals: ResidualSummary | None = None
    importance: PermutationImportance | None = None
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.task not in _TASKS:
            raise InvalidInput(
                f"evaluation task {self.task!r} is unknown; expected one of {sorted(_TASKS)}"
            )
        set_field(self, "rows", checked_int(self.rows, "rows"))
        set_field(self, "metrics", checked_metrics(self.metrics))
        set_field(self, "labels", checked_texts(self.labels, "labels"))
        set_field(self, "slices", tuple(self.slices))
        set_field(self, "fairness", tuple(self.fairness))
        set_field(self, "notes", checked_texts(self.notes, "notes"))
        if self.positive_label is not None and self.positive_label not in self.labels:
            raise InvalidInput(
                f"positive_label {self.positive_label!r} is not one of the labels "
                f"{list(self.labels)[:20]}; name one of the classes"
            )
        for kind, names in (
            ("slice", [s.name for s in self.slices]),
            ("fairness column", [f.column for f in self.fairness]),
        ):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise InvalidInput(
                    f"{kind} names must be unique, got {twice} more than once; rename the "
                    "masks or columns so every slice has its own name"
                )

    def with_importance(self, importance: PermutationImportance) -> Evaluation:
        """A copy that carries ``importance`` (computed apart, as it calls the model)."""
        return replace(self, importance=importance)

    def metric(self, name: str, *, slice: str | None = None, fairness: str | None = None) -> float:
        """The value of a metric by its full name, or by its short name and group.

        Raises:
            NotFound: no such metric; the message lists close names.
        """
        grouped = slice is not None or fairness is not None
        full = metric_name(name, slice=slice, fairness=fairness) if grouped else name
        parsed = parse_metric_name(full)
        table = self.metrics
        if parsed.scope == "slice":
            table = next((s.metrics for s in self.slices if s.name == parsed.group), {})
        elif parsed.scope == "fairness":
            table = next((f.metrics for f in self.fairness if f.column == parsed.group), {})
        if parsed.metric in table:
            return table[parsed.metric]
        known = list(self.flat_metrics())
        close = difflib.get_close_matches(full, known, n=3, cutoff=0.5) or known[:5]
        raise NotFound(
            f"this {self.task} evaluation has no metric {full!r}; close names: {close}. "
            "Metric names are listed by Evaluation.flat_metrics()"
        )

    def flat_metrics(self) -> dict[str, float]:
        """Every metric by its full name: overall, then slices, then fairness."""
        out = dict(self.metrics)
        for s in self.slices:
            out.update({f"slice:{s.name}/{k}": v for k, v in s.metrics.items()})
        for f in self.fairness:
            out.update({f"fairness:{f.column}/{k}": v for k, v in f.metrics.items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        parts = {key: getattr(self, key) for key in _PARTS}
        return {
            "format": FORMAT,
            "task": self.task,
            "label": self.label,
            "rows": self.rows,
            "labels": list(self.labels),
            "positive_label": self.positive_label,
            "metrics": encode_metrics(self.metrics),
            "slices": [s.to_dict() for s in self.slices],
            "fairness": [f.to_dict() for f in self.fairness],
            **{key: None if part is None else part.to_dict() for key, part in parts.items()},
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise InvalidInput(
                f"an evaluation dict must have format {FORMAT}, got {found!r}; expected the "
                "output of Evaluation.to_dict() (a newer loopml may be needed to read it)"
            )
        try:
            parts = {
                key: None if data[key] is None else kind.from_dict(data[key])
                for key, kind in _PARTS.items()
            }
            return cls(
                task=data["task"],
                label=data["label"],
                rows=data["rows"],
                metrics=decode_metrics(data["metrics"]),
                labels=tuple(data["labels"]),
                positive_label=data["positive_label"],
                slices=tuple(SliceResult.from_dict(s) for s in data["slices"]),
                fairness=tuple(FairnessResult.from_dict(f) for f in data["fairness"]),
                notes=tuple(data["notes"]),
                **parts,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput(
                f"the evaluation dict is malformed ({type(exc).__name__}: {exc}); expected the "
                "output of Evaluation.to_dict()"
            ) from exc
