"""ROC AUC, average precision and the ROC curve of scores, for many groups in one pass.

The rows are sorted by score once; a grouping then only needs a stable sort of its small
integer group codes (numpy's radix sort for 8- and 16-bit keys), after which each group's
rows are contiguous and in score order. Rows of one group with the same score form a *tie
block*; with ``pos`` and ``neg`` per block and counts of the blocks below:

- ROC AUC = sum over blocks of ``pos * (neg_below + neg / 2)`` / (P * N): the
  Mann-Whitney statistic, which equals the trapezoidal area under the ROC curve with ties
  counted as half (scikit-learn's ``roc_auc_score``);
- average precision = sum over blocks of ``pos / P * tp / (tp + fp)``, where ``tp`` and
  ``fp`` count the rows scored at or above the block (scikit-learn's
  ``average_precision_score``: precision at each distinct threshold, weighted by the
  recall it adds).

A group without positives (or, for AUC, without negatives) gets NaN.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
MAX_CURVE_POINTS = 200


def _small(codes: Ints, groups: int) -> npt.NDArray[np.integer]:
    """Group codes in the narrowest type, so a stable argsort runs as a radix sort."""
    if groups < 2**8:
        return codes.astype(np.uint8)
    if groups < 2**16:
        return codes.astype(np.uint16)
    return codes


def _blocks(
    positive: Bools, scores: Floats, groups: Ints | None
) -> tuple[Floats, Floats, Ints, Floats]:
    """Tie blocks of rows sorted by (group, score): positives, negatives, group, score."""
    n = scores.size
    new = np.empty(n, dtype=np.bool_)
    new[0] = True
    np.not_equal(scores[1:], scores[:-1], out=new[1:])
    if groups is not None:
        new[1:] |= groups[1:] != groups[:-1]
    starts = np.flatnonzero(new)
    pos = np.add.reduceat(positive.astype(np.float64), starts)
    neg = np.diff(np.append(starts, n)).astype(np.float64) - pos
    block_group = groups[starts] if groups is not None else np.zeros(starts.size, np.int64)
    return pos, neg, block_group.astype(np.int64), scores[starts]


def grouped_ranking(
    positive: Bools, scores: Floats, codes: Ints, groups: int
) -> tuple[Floats, Floats]:
    """ROC AUC and average precision per group.

    ``positive``, ``scores`` and ``codes`` are already in ascending score order; codes run
    from 0 to ``groups - 1``.
    """
    if positive.size == 0:
        empty = np.full(groups, np.nan)
        return empty, empty.copy()
    if groups > 1:
        within = np.argsort(_small(codes, groups), kind="stable")
        positive, scores, codes = positive[within], scores[within], codes[within]
        pos, neg, block_group, _ = _blocks(positive, scores, codes)
    else:
        pos, neg, block_group, _ = _blocks(positive, scores, None)
    total_pos = np.bincount(block_group, pos, minlength=groups)
    total_neg = np.bincount(block_group, neg, minlength=groups)
    # Rows of the same group below each block: a running total minus the groups before.
    pos_below = np.cumsum(pos) - pos - (np.cumsum(total_pos) - total_pos)[block_group]
    neg_below = np.cumsum(neg) - neg - (np.cumsum(total_neg) - total_neg)[block_group]
    auc_sum = np.bincount(block_group, pos * (neg_below + 0.5 * neg), minlength=groups)
    tp = total_pos[block_group] - pos_below
    fp = total_neg[block_group] - neg_below
    ap_sum = np.bincount(block_group, pos * tp / (tp + fp), minlength=groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = np.where((total_pos > 0) & (total_neg > 0), auc_sum / (total_pos * total_neg), np.nan)
        ap = np.where(total_pos > 0, ap_sum / total_pos, np.nan)
    return auc, ap


def roc_curve(
    positive: Bools, scores: Floats, max_points: int = MAX_CURVE_POINTS
) -> tuple[Floats, Floats] | None:
    """FPR and TPR at each distinct threshold (from (0, 0) to (1, 1)), thinned to at most
    ``max_points`` spread evenly along the curve; None without both outcomes.

    ``positive`` and ``scores`` are in ascending score order.
    """
    pos, neg, _, _ = _blocks(positive, scores, None)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos == 0 or total_neg == 0:
        return None
    # Thresholds from the highest score down: the rows at or above each block.
    tpr = np.concatenate(([0.0], np.cumsum(pos[::-1]) / total_pos))
    fpr = np.concatenate(([0.0], np.cumsum(neg[::-1]) / total_neg))
    if tpr.size > max_points:
        # fpr + tpr grows from 0 to 2 along the curve: equal steps of it keep the shape.
        targets = np.linspace(0.0, 2.0, max_points)
        keep = np.unique(np.searchsorted(fpr + tpr, targets).clip(0, tpr.size - 1))
        keep = np.unique(np.concatenate(([0], keep, [tpr.size - 1])))
        fpr, tpr = fpr[keep], tpr[keep]
    return fpr, tpr
