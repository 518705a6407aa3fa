"""Classification metrics for many groups of rows at once, from class codes and scores.

:class:`ClassificationRows` holds the checked rows and what every grouping reuses (each
row's log loss, its calibration bin, the rows sorted by score). ``metrics(codes, groups)``
then computes the metrics of every group in a few vectorised passes: one ``bincount`` of
``(group, true, predicted)`` gives every group's confusion matrix, from which accuracy,
precision, recall and F1 follow; weighted ``bincount`` s give log loss, Brier score and
calibration sums; :mod:`loopml.stats.ranking` gives ROC AUC and average precision. The
overall metrics are the same computation with one group, so a slice's metrics equal the
overall metrics of its rows.

Conventions follow scikit-learn: precision, recall or F1 with a zero denominator are 0.0;
macro means run over the classes present in the group's truth or predictions;
``balanced_accuracy`` over the classes present in its truth; log loss clips probabilities
to ``[eps, 1 - eps]`` (float64 eps); reliability bins are ``(lower, upper]`` (the first
includes 0), as ``calibration_curve``'s ``searchsorted``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loopml.domain.evaluation import Calibration, ReliabilityBin
from loopml.stats.evaluation_inputs import Classes
from loopml.stats.ranking import grouped_ranking, roc_curve

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Metrics = dict[str, float]
CALIBRATION_BINS = 10
_EPS = float(np.finfo(np.float64).eps)
_EDGES = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)


@dataclass(frozen=True, slots=True)
class _Ranked:
    """One ranking problem (the positive class, or one class against the rest), sorted."""

    order: Ints  # row indices in ascending score order
    positive: npt.NDArray[np.bool_]  # in that order
    scores: Floats  # in that order


@dataclass(frozen=True, slots=True)
class _Binary:
    """Binary scores as Brier score and calibration use them."""

    scores: Floats  # the positive class's probability
    is_pos: Floats  # 1.0 where the truth is the positive class
    bins: Ints  # each row's calibration bin


@dataclass(frozen=True, slots=True)
class _Scored:
    """What the score metrics of every grouping reuse."""

    loss: Floats  # each row's log loss
    ranked: list[_Ranked]  # the positive class, or each class against the rest
    binary: _Binary | None = None


class ClassificationRows:
    """Checked rows of a classifier's evaluation, ready to be grouped."""

    def __init__(self, classes: Classes, scores: Floats | None) -> None:
        self.classes = classes
        self.k = len(classes.names)
        self.n = classes.true.size
        self._scored = None if scores is None else _prepare(classes, scores)

    def confusion(self, codes: Ints, groups: int) -> Ints:
        """Confusion matrices ``(groups, true, predicted)``; rows with code ``groups`` are
        in no group and left out."""
        k = self.k
        key = (codes * k + self.classes.true) * k + self.classes.pred
        counts = np.bincount(key, minlength=(groups + 1) * k * k)
        return counts[: groups * k * k].reshape(groups, k, k)

    def metrics(self, codes: Ints, groups: int) -> list[Metrics]:
        """The metrics of each group (see :mod:`loopml.domain.evaluation` for the names)."""
        cm = self.confusion(codes, groups)
        rows = cm.sum(axis=(1, 2))
        columns = _label_metrics(cm, self.classes.positive)
        if self._scored is not None:
            # A slot for the rows in no group, when there are any.
            slots = groups + 1 if bool((codes == groups).any()) else groups
            columns.update(_score_metrics(self._scored, codes, groups, slots, rows))
        return [
            {name: float(v[g]) if rows[g] else math.nan for name, v in columns.items()}
            for g in range(groups)
        ]

    def calibration(self) -> Calibration | None:
        """The reliability curve and ECE of all rows; None without binary scores."""
        binary = self._scored.binary if self._scored is not None else None
        if binary is None:
            return None
        sums = _bin_sums(binary, np.zeros(self.n, np.int64), 1)
        count, predicted, observed = (a[0] for a in sums)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_predicted, share = predicted / count, observed / count
        bins = tuple(
            ReliabilityBin(
                float(_EDGES[b]),
                float(_EDGES[b + 1]),
                int(count[b]),
                float(mean_predicted[b]),
                float(share[b]),
            )
            for b in range(CALIBRATION_BINS)
        )
        return Calibration(bins, float(np.abs(observed - predicted).sum() / self.n))

    def roc(self) -> tuple[Floats, Floats] | None:
        """The ROC curve of binary scores (thinned); None without them or one outcome."""
        scored = self._scored
        if scored is None or scored.binary is None:
            return None
        return roc_curve(scored.ranked[0].positive, scored.ranked[0].scores)


def _prepare(classes: Classes, scores: Floats) -> _Scored:
    true = classes.true
    if classes.positive is None:
        p_true = scores[np.arange(true.size), true]
        ranked = [_rank(true == c, scores[:, c]) for c in range(len(classes.names))]
        return _Scored(-np.log(np.clip(p_true, _EPS, 1.0 - _EPS)), ranked)
    is_pos = true == classes.positive
    p_true = np.where(is_pos, scores, 1.0 - scores)
    return _Scored(
        loss=-np.log(np.clip(p_true, _EPS, 1.0 - _EPS)),
        ranked=[_rank(is_pos, scores)],
        binary=_Binary(
            scores,
            is_pos.astype(np.float64),
            np.searchsorted(_EDGES[1:-1], scores).astype(np.int64),
        ),
    )


def _rank(is_pos: npt.NDArray[np.bool_], scores: Floats) -> _Ranked:
    order = np.argsort(scores).astype(np.int64)
    return _Ranked(order, is_pos[order], scores[order])


def _score_metrics(
    scored: _Scored, codes: Ints, groups: int, slots: int, rows: Ints
) -> dict[str, Floats]:
    out: dict[str, Floats] = {}
    ranked = [_grouped(r, codes, slots) for r in scored.ranked]
    out["roc_auc"] = _mean_defined(np.array([auc[:groups] for auc, _ in ranked]))
    out["pr_auc"] = _mean_defined(np.array([ap[:groups] for _, ap in ranked]))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["log_loss"] = _sums(codes, scored.loss, slots)[:groups] / rows
        if scored.binary is not None:
            error = (scored.binary.scores - scored.binary.is_pos) ** 2
            out["brier"] = _sums(codes, error, slots)[:groups] / rows
            _, predicted, observed = _bin_sums(scored.binary, codes, groups)
            out["ece"] = np.abs(observed - predicted).sum(axis=1) / rows
    return out


def _bin_sums(binary: _Binary, codes: Ints, groups: int) -> tuple[Floats, Floats, Floats]:
    """Per group and calibration bin: rows, sum of scores, sum of positives."""
    key = codes * CALIBRATION_BINS + binary.bins
    size = (groups + 1) * CALIBRATION_BINS
    shape = (groups + 1, CALIBRATION_BINS)
    count = np.bincount(key, minlength=size).astype(np.float64).reshape(shape)
    predicted = _sums(key, binary.scores, size).reshape(shape)
    observed = _sums(key, binary.is_pos, size).reshape(shape)
    return count[:groups], predicted[:groups], observed[:groups]


def _sums(codes: Ints, weights: Floats, size: int) -> Floats:
    """The sum of ``weights`` per code, for codes 0 to ``size - 1``."""
    return np.asarray(np.bincount(codes, weights, size), dtype=np.float64)


def _grouped(ranked: _Ranked, codes: Ints, groups: int) -> tuple[Floats, Floats]:
    return grouped_ranking(ranked.positive, ranked.scores, codes[ranked.order], groups)


def _mean_defined(values: Floats) -> Floats:
    """Mean over the first axis of the defined (not NaN) values; NaN where none is."""
    if values.shape[0] == 1:
        return np.asarray(values[0], dtype=np.float64)
    defined = ~np.isnan(values)
    count = defined.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, np.where(defined, values, 0.0).sum(axis=0) / count, np.nan)


def _ratio(top: Floats, bottom: Floats) -> Floats:
    """``top / bottom``, 0.0 where ``bottom`` is 0 (scikit-learn's zero_division)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), 0.0)


def _label_metrics(cm: Ints, positive: int | None) -> dict[str, Floats]:
    """Metrics from each group's confusion matrix ``cm[g, true, predicted]``."""
    counts = cm.astype(np.float64)
    rows = counts.sum(axis=(1, 2))
    hit = np.diagonal(counts, axis1=1, axis2=2)  # (groups, classes)
    true_n = counts.sum(axis=2)
    pred_n = counts.sum(axis=1)
    precision = _ratio(hit, pred_n)
    recall = _ratio(hit, true_n)
    f1 = _ratio(2 * hit, true_n + pred_n)
    present = (true_n + pred_n) > 0
    in_truth = true_n > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "accuracy": hit.sum(axis=1) / rows,
            "balanced_accuracy": (recall * in_truth).sum(axis=1) / in_truth.sum(axis=1),
            "precision_macro": (precision * present).sum(axis=1) / present.sum(axis=1),
            "recall_macro": (recall * present).sum(axis=1) / present.sum(axis=1),
            "f1_macro": (f1 * present).sum(axis=1) / present.sum(axis=1),
        }
    if positive is not None:
        out["precision"] = precision[:, positive]
        out["recall"] = recall[:, positive]
        out["f1"] = f1[:, positive]
        out["positive_rate"] = _ratio(pred_n[:, positive], rows)
    return out


def group_rates(cm: Ints, positive: int | None) -> dict[str, Floats]:
    """What fairness compares per group: accuracy, and for binary tasks the share predicted
    positive, the true positive rate and the false positive rate (NaN when undefined)."""
    counts = cm.astype(np.float64)
    rows = counts.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {"accuracy": np.diagonal(counts, axis1=1, axis2=2).sum(axis=1) / rows}
        if positive is None:
            return out
        tp = counts[:, positive, positive]
        actual_pos = counts[:, positive, :].sum(axis=1)
        predicted_pos = counts[:, :, positive].sum(axis=1)
        fp = predicted_pos - tp
        actual_neg = rows - actual_pos
        out["positive_rate"] = predicted_pos / rows
        out["tpr"] = np.where(actual_pos > 0, tp / actual_pos, np.nan)
        out["fpr"] = np.where(actual_neg > 0, fp / actual_neg, np.nan)
    return out
