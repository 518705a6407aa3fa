"""Evaluate a model's predictions: overall, per slice, across sensitive groups.

::

    evaluation = evaluate_classification(
        y_true, y_pred, y_score,                 # y_score: probabilities (optional)
        data=features,                           # a Table, DataFrame or dict of columns
        slices=["region", "device"],             # one slice per distinct value
        masks={"weekend": features["day"] >= 5}, # named slices of the caller's choice
        sensitive=["sex"],                       # fairness gaps across its groups
        label_name="churned",
    )
    evaluation.metric("recall", slice="region=north")

``evaluate_regression(y_true, y_pred, ...)`` takes the same slicing arguments. Both return
a frozen :class:`~loopml.domain.evaluation.Evaluation` (metric names and conventions are
documented there); permutation importance calls the model, so it is computed apart by
:func:`loopml.stats.importance.permutation_importance` and attached with
``evaluation.with_importance(...)``.

Every grouping (overall, each slice column, each mask, each sensitive column) is one
vectorised pass over the rows; the scores are sorted once for all of them. A column with
more than ``max_slice_values`` distinct values keeps its most frequent values, and the
evaluation's notes say so. Pure computation, no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from loopml.domain.errors import InvalidInput
from loopml.domain.evaluation import (
    ConfusionMatrix,
    Curve,
    Evaluation,
    FairnessResult,
    SliceResult,
)
from loopml.stats import classification
from loopml.stats.classification import ClassificationRows
from loopml.stats.evaluation_inputs import (
    Floats,
    Grouping,
    Ints,
    check_numbers,
    check_scores,
    encode_classes,
    group_all,
    group_by_column,
    group_by_mask,
)
from loopml.stats.fairness import fairness_gaps
from loopml.stats.regression import RegressionRows

__all__ = ["MAX_SLICE_VALUES", "evaluate_classification", "evaluate_regression"]

MAX_SLICE_VALUES = 50
_SLICE_COLUMN = "slice column"
_SENSITIVE_COLUMN = "sensitive column"


def evaluate_classification(
    y_true: Any,
    y_pred: Any,
    y_score: Any = None,
    *,
    labels: Sequence[Any] | None = None,
    positive_label: Any = None,
    data: Any = None,
    slices: str | Sequence[str] = (),
    masks: Mapping[str, Any] | None = None,
    sensitive: str | Sequence[str] = (),
    label_name: str = "label",
    max_slice_values: int = MAX_SLICE_VALUES,
) -> Evaluation:
    """Evaluate a classifier's predicted labels (and, optionally, probabilities).

    Args:
        y_true: the true class of each row (numbers, booleans or text; no missing values).
        y_pred: the predicted class of each row, of the same kind.
        y_score: probabilities: for two classes, of the positive class per row (or
            ``predict_proba``'s two columns); otherwise one column per class in the order
            of ``labels``. Without it, ranking, log loss and calibration are left out.
        labels: the classes in display order; default: every value seen, sorted.
        positive_label: the class binary metrics are about; default: the last label (1 of
            0/1, True of False/True).
        data: the columns named by ``slices`` and ``sensitive``, one row per label.
        slices: columns of ``data`` whose every value is a slice ``column=value``.
        masks: named boolean arrays, each a slice of the rows where it is true.
        sensitive: columns of ``data`` to compute fairness gaps across.
        label_name: the name of the label column, recorded in the evaluation.
        max_slice_values: at most this many values of a column become slices.

    Raises:
        InvalidInput: mismatched lengths, missing labels, scores that are not
            probabilities, unknown columns or malformed masks.
    """
    classes = encode_classes(y_true, y_pred, labels, positive_label)
    n = classes.true.size
    scores = None
    if y_score is not None:
        scores = check_scores(y_score, n, len(classes.names), classes.positive)
    slice_groups, fair_groups = _groupings(data, slices, masks, sensitive, n, max_slice_values)
    rows = ClassificationRows(classes, scores)
    overall = group_all(n)
    metrics = rows.metrics(overall.codes, 1)[0]
    notes = [g.note for g in (*slice_groups, *fair_groups) if g.note]
    slice_results = _slices(slice_groups, rows.metrics, notes)
    fairness = tuple(
        _fairness(
            grouping,
            classification.group_rates(
                rows.confusion(grouping.codes, grouping.size), classes.positive
            ),
            notes,
        )
        for grouping in fair_groups
    )
    curve = rows.roc()
    if scores is None:
        notes.append(
            "no y_score: roc_auc, pr_auc, log_loss, calibration and the ROC curve need "
            "predicted probabilities"
        )
    elif classes.positive is None:
        notes.append("calibration and the ROC curve are drawn for two classes only")
    elif curve is None:
        notes.append("the ROC curve needs both classes in y_true; only one is present")
    roc = None
    if curve is not None:
        roc = Curve(tuple(curve[0].tolist()), tuple(curve[1].tolist()), metrics["roc_auc"])
    counts = rows.confusion(overall.codes, 1)[0].tolist()
    return Evaluation(
        task="classification",
        label=label_name,
        rows=n,
        metrics=metrics,
        labels=classes.names,
        positive_label=None if classes.positive is None else classes.names[classes.positive],
        slices=slice_results,
        fairness=fairness,
        calibration=rows.calibration(),
        confusion=ConfusionMatrix(classes.names, tuple(tuple(row) for row in counts)),
        roc=roc,
        notes=tuple(notes),
    )


def evaluate_regression(
    y_true: Any,
    y_pred: Any,
    *,
    data: Any = None,
    slices: str | Sequence[str] = (),
    masks: Mapping[str, Any] | None = None,
    sensitive: str | Sequence[str] = (),
    label_name: str = "label",
    max_slice_values: int = MAX_SLICE_VALUES,
) -> Evaluation:
    """Evaluate a regressor's predictions; the slicing arguments are those of
    :func:`evaluate_classification`.

    Raises:
        InvalidInput: mismatched lengths, missing or infinite numbers, unknown columns or
            malformed masks.
    """
    target = check_numbers(y_true, None, "y_true")
    n = target.size
    predicted = check_numbers(y_pred, n, "y_pred")
    slice_groups, fair_groups = _groupings(data, slices, masks, sensitive, n, max_slice_values)
    rows = RegressionRows(target, predicted)
    metrics = rows.metrics(group_all(n).codes, 1)[0]
    notes = [g.note for g in (*slice_groups, *fair_groups) if g.note]
    if rows.zero_targets:
        notes.append(f"mape leaves out the {rows.zero_targets:,} rows whose target is 0 (of {n:,})")
    slice_results = _slices(slice_groups, rows.metrics, notes)
    fairness = tuple(
        _fairness(grouping, rows.group_rates(grouping.codes, grouping.size), notes)
        for grouping in fair_groups
    )
    return Evaluation(
        task="regression",
        label=label_name,
        rows=n,
        metrics=metrics,
        slices=slice_results,
        fairness=fairness,
        residuals=rows.residual_summary(),
        notes=tuple(notes),
    )


def _names(value: str | Sequence[str], what: str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    bad = [v for v in names if not isinstance(v, str) or not v]
    if bad:
        raise InvalidInput(f"{what}s must be column names (text), got {bad[0]!r}")
    if len(set(names)) != len(names):
        raise InvalidInput(f"{what}s {list(names)} name a column twice; list each once")
    return names


def _groupings(
    data: Any,
    slices: str | Sequence[str],
    masks: Mapping[str, Any] | None,
    sensitive: str | Sequence[str],
    n: int,
    max_values: int,
) -> tuple[list[Grouping], list[Grouping]]:
    """Every slice and sensitive grouping, checked before any metric is computed."""
    if isinstance(max_values, bool) or not isinstance(max_values, int) or max_values < 1:
        raise InvalidInput(
            f"max_slice_values must be a positive integer, got {max_values!r}; e.g. 50"
        )
    if masks is not None and not isinstance(masks, Mapping):
        raise InvalidInput(
            f"masks must map a slice name to a boolean array, got {type(masks).__name__}; "
            "e.g. masks={'weekend': df['day'] >= 5}"
        )
    slice_groups = [
        group_by_column(data, column, n, max_values, _SLICE_COLUMN)
        for column in _names(slices, _SLICE_COLUMN)
    ]
    slice_groups += [group_by_mask(name, mask, n) for name, mask in (masks or {}).items()]
    fair_groups = [
        group_by_column(data, column, n, max_values, _SENSITIVE_COLUMN)
        for column in _names(sensitive, _SENSITIVE_COLUMN)
    ]
    counts = Counter(name for g in slice_groups for name in g.names)
    twice = sorted(name for name, count in counts.items() if count > 1)
    if twice:
        raise InvalidInput(
            f"slice names {twice} occur twice (a mask named like a column's value?); give "
            "every mask a name of its own"
        )
    return slice_groups, fair_groups


def _slices(
    groupings: list[Grouping],
    compute: Callable[[Ints, int], list[dict[str, float]]],
    notes: list[str],
) -> tuple[SliceResult, ...]:
    out = []
    for grouping in groupings:
        rows = np.bincount(grouping.codes, minlength=grouping.size + 1)
        if grouping.column is None and rows[0] == 0:
            notes.append(f"mask {grouping.names[0]!r} selects no rows: its metrics are NaN")
        for g, metrics in enumerate(compute(grouping.codes, grouping.size)):
            out.append(
                SliceResult(
                    name=grouping.names[g],
                    rows=int(rows[g]),
                    metrics=metrics,
                    column=grouping.column,
                    value=grouping.values[g],
                )
            )
    return tuple(out)


def _fairness(grouping: Grouping, rates: dict[str, Floats], notes: list[str]) -> FairnessResult:
    column = grouping.column or ""
    rows = np.bincount(grouping.codes, minlength=grouping.size + 1)
    if grouping.size < 2:
        notes.append(
            f"sensitive column {column!r} has {grouping.size} group(s): its fairness gaps "
            "need at least two and are NaN"
        )
    groups = tuple(
        SliceResult(
            name=grouping.names[g],
            rows=int(rows[g]),
            metrics={key: float(values[g]) for key, values in rates.items()},
            column=column,
            value=grouping.values[g],
        )
        for g in range(grouping.size)
    )
    return FairnessResult(column, fairness_gaps(rates), groups)
