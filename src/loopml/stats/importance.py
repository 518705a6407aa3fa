"""Permutation importance: how much worse a model scores when one feature is shuffled.

::

    importance = permutation_importance(
        model.predict, features, y, metric="f1_macro", n_repeats=5, sample_size=10_000
    )
    evaluation = evaluation.with_importance(importance)

The model is scored on a sample of at most ``sample_size`` rows (drawn without replacement
when the table is larger). For each feature the sample is stacked ``n_repeats`` times, the
feature's column shuffled independently in each copy, and the model called **once** on the
stack; each copy is scored with the evaluation's own metric code (each copy is a group), so
the metric means exactly what it means in an evaluation. Importance is the loss of score:
``baseline - shuffled`` for metrics where higher is better, ``shuffled - baseline`` for
errors, so a positive value always means the model relies on the feature. Mean and
population standard deviation run over the repeats.

Reproducible: one ``numpy.random.default_rng(seed)`` draws the sample rows first (only when
sampling), then one ``permuted`` matrix of shape ``(n_repeats, rows)`` per feature, in
column order. The features are a pyarrow Table or a pandas DataFrame, and ``predict``
receives the same kind of table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.errors import InvalidInput
from loopml.domain.evaluation import FeatureImportance, PermutationImportance
from loopml.stats.classification import ClassificationRows
from loopml.stats.evaluation_inputs import (
    check_numbers,
    column_names,
    encode_classes,
    to_arrow,
)
from loopml.stats.regression import RegressionRows

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CLASSIFICATION_SCORES", "REGRESSION_SCORES", "permutation_importance"]

# Metric -> whether higher is better.
CLASSIFICATION_SCORES = {
    "accuracy": True,
    "balanced_accuracy": True,
    "precision_macro": True,
    "recall_macro": True,
    "f1_macro": True,
    "precision": True,  # binary tasks: of the positive label
    "recall": True,
    "f1": True,
}
REGRESSION_SCORES = {"mae": False, "mse": False, "rmse": False, "r2": True, "mape": False}
_BINARY_ONLY = frozenset({"precision", "recall", "f1"})
DEFAULT_SAMPLE = 10_000


def permutation_importance(
    predict: Callable[[Any], Any],
    features: pa.Table | pd.DataFrame,
    y: Any,
    *,
    metric: str,
    columns: Sequence[str] | None = None,
    n_repeats: int = 5,
    sample_size: int | None = DEFAULT_SAMPLE,
    seed: int = 0,
    labels: Sequence[Any] | None = None,
    positive_label: Any = None,
) -> PermutationImportance:
    """The permutation importance of each feature for ``metric``, most important first.

    Args:
        predict: the model's predict function: a table of features in, one prediction
            (a class, or a number for regression) per row out.
        features: the features, a pyarrow Table or a pandas DataFrame.
        y: the true label or target of each row.
        metric: a classification metric (:data:`CLASSIFICATION_SCORES`) or a regression
            metric (:data:`REGRESSION_SCORES`); it also says which task this is.
        columns: the features to shuffle, one at a time; default: every column.
        n_repeats: shuffles per feature.
        sample_size: score on at most this many rows (``None``: every row).
        seed: seeds the sample and the shuffles.
        labels, positive_label: as for ``evaluate_classification``; by default every
            class seen in ``y`` or in any prediction, and the last of them.

    Raises:
        InvalidInput: an unknown metric or column, bad counts, a table that is neither
            Arrow nor pandas, or predictions of the wrong length.
    """
    if metric not in CLASSIFICATION_SCORES and metric not in REGRESSION_SCORES:
        known = [*CLASSIFICATION_SCORES, *REGRESSION_SCORES]
        raise InvalidInput(
            f"permutation importance metric {metric!r} is unknown; use one of {known}"
        )
    _check_count(n_repeats, "n_repeats")
    if sample_size is not None:
        _check_count(sample_size, "sample_size")
    table = _Table(features)
    names = column_names(features)
    chosen = list(names if columns is None else columns)
    unknown = [c for c in chosen if c not in names]
    if unknown or not chosen:
        raise InvalidInput(
            f"columns {unknown or chosen!r} are not features of the table; its columns are "
            f"{names[:20]}"
        )
    target = to_arrow(y, "y")
    if len(target) != table.rows:
        raise InvalidInput(
            f"y has {len(target):,} rows but the features table has {table.rows:,}; expected "
            "one label per row of the features, in the same order"
        )
    rng = np.random.default_rng(seed)
    rows = table.rows if sample_size is None else min(sample_size, table.rows)
    picked = np.arange(rows)
    if rows < table.rows:
        picked = np.sort(rng.choice(table.rows, size=rows, replace=False))
    sample = table.take(picked)
    truth = target.take(pa.array(picked))
    baseline_prediction = _predict(predict, sample.data, rows)
    stacked = sample.take(np.tile(np.arange(rows), n_repeats))
    shuffled = []
    for name in chosen:
        order = rng.permuted(np.tile(np.arange(rows), (n_repeats, 1)), axis=1).ravel()
        shuffled.append(_predict(predict, stacked.replace(name, sample, order), rows * n_repeats))
    score = _scorer(metric, truth, [baseline_prediction, *shuffled], labels, positive_label)
    baseline = float(score(truth, baseline_prediction, 1)[0])
    sign = 1.0 if _higher_is_better(metric) else -1.0
    repeated_truth = truth.take(pa.array(np.tile(np.arange(rows), n_repeats)))
    results = []
    for name, prediction in zip(chosen, shuffled, strict=True):
        drops = sign * (baseline - score(repeated_truth, prediction, n_repeats))
        results.append(FeatureImportance(name, float(drops.mean()), float(drops.std())))
    results.sort(key=lambda f: -f.mean if f.mean == f.mean else np.inf)
    return PermutationImportance(metric, baseline, n_repeats, rows, seed, tuple(results))


def _check_count(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{what} must be a positive integer, got {value!r}")


def _higher_is_better(metric: str) -> bool:
    return {**CLASSIFICATION_SCORES, **REGRESSION_SCORES}[metric]


def _predict(predict: Callable[[Any], Any], table: Any, rows: int) -> pa.Array:
    prediction = predict(table)
    values = np.asarray(prediction)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values.ravel()
    if values.shape != (rows,):
        raise InvalidInput(
            f"predict returned shape {values.shape} for {rows:,} rows; expected one prediction "
            "per row (a class or a number, not probabilities)"
        )
    return to_arrow(values, "the predictions")


Score = Callable[[pa.Array, pa.Array, int], np.ndarray[Any, np.dtype[np.float64]]]


def _scorer(
    metric: str,
    truth: pa.Array,
    predictions: list[pa.Array],
    labels: Sequence[Any] | None,
    positive_label: Any,
) -> Score:
    """A function scoring ``repeats`` stacked copies at once: one value per copy."""
    if metric in REGRESSION_SCORES:

        def regression(true: pa.Array, prediction: pa.Array, repeats: int) -> Any:
            rows = RegressionRows(
                check_numbers(true, None, "y"), check_numbers(prediction, len(true), "prediction")
            )
            codes = np.repeat(np.arange(repeats), len(true) // repeats)
            return np.array([m[metric] for m in rows.metrics(codes, repeats)])

        return regression
    if labels is None:  # every class seen anywhere, so every call encodes alike
        seen = pc.unique(pa.concat_arrays([pc.unique(a) for a in (truth, *predictions)]))
        labels = seen.take(pc.array_sort_indices(seen)).to_pylist()

    def classification(true: pa.Array, prediction: pa.Array, repeats: int) -> Any:
        classes = encode_classes(true, prediction, labels, positive_label)
        if metric in _BINARY_ONLY and classes.positive is None:
            raise InvalidInput(
                f"metric {metric!r} is for two classes, but there are {len(classes.names)} "
                f"({list(classes.names)[:10]}); use {metric}_macro"
            )
        codes = np.repeat(np.arange(repeats), len(true) // repeats)
        return np.array(
            [m[metric] for m in ClassificationRows(classes, None).metrics(codes, repeats)]
        )

    return classification


class _Table:
    """A pyarrow Table or a pandas DataFrame, with the few operations shuffling needs."""

    def __init__(self, data: Any) -> None:
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        self.arrow = isinstance(data, pa.Table)
        if not self.arrow and not (hasattr(data, "iloc") and hasattr(data, "columns")):
            raise InvalidInput(
                f"features must be a pyarrow Table or a pandas DataFrame, got "
                f"{type(data).__name__}; build one with pyarrow.table(dict_of_columns)"
            )
        self.data = data
        self.rows = int(data.num_rows if self.arrow else len(data))

    def take(self, rows: np.ndarray[Any, Any]) -> _Table:
        if self.arrow:
            return _Table(self.data.take(pa.array(rows)))
        return _Table(self.data.iloc[rows].reset_index(drop=True))

    def replace(self, name: str, source: _Table, order: np.ndarray[Any, Any]) -> Any:
        """This table with column ``name`` set to ``source``'s column in ``order``."""
        if self.arrow:
            column = source.data.column(name).take(pa.array(order))
            return self.data.set_column(self.data.schema.get_field_index(name), name, column)
        frame = self.data.copy(deep=False)
        frame[name] = source.data[name].array.take(order)
        return frame
