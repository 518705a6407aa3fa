"""The arithmetic of drift: how far two distributions are apart, and whether noise explains it.

Each monitored column yields a few :class:`Finding` values, one per measure: an effect size
on the measure's own scale and the p-value of a test of "the window and the reference come
from the same distribution". :mod:`loopml.stats.drift` weighs them against thresholds.

Effect sizes:

- :func:`population_stability` (PSI): ``sum((w - r) * ln(w / r))`` over bins, shares
  clipped at ``PSI_EPSILON`` so an empty bin gives a large, finite value.
- :func:`jensen_shannon`: the Jensen-Shannon *distance* in base 2 (the square root of the
  divergence): 0 for equal shares, 1 for disjoint ones; equals
  ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.

Tests, all two-sample (the reference is a sample too, so a small training set does not
make every window look significant):

- :func:`chi_square`: Pearson's chi-square test of homogeneity on a 2 x k table (reference
  counts, window counts), after pooling cells until every expected count is at least 5
  (adjacent cells for histogram bins, the rarest cells together for categories): without
  pooling, a 50-row window spread over 20 bins would test mostly empty cells. The statistic
  and p-value equal ``scipy.stats.chi2_contingency(table, correction=False)`` on the pooled
  table.
- :func:`two_proportions`: for the share of missing values: the same chi-square on the
  2 x 2 table, or Fisher's exact test (two-sided, as ``scipy.stats.fisher_exact``) when an
  expected count is below 5.
- :func:`unseen_p_value`: for values whose category the reference never saw: the
  probability of at least this many under a binomial whose rate is the Good-Turing estimate
  of the reference's unseen mass (its categories seen once, at least one, over its values).

``scipy.special`` supplies the distribution tails (``scipy.stats`` takes 0.8 s to import).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special  # type: ignore[import-untyped]  # scipy ships no type hints

from loopml.domain.drift import DriftMethod

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

PSI_EPSILON = 1e-4  # share given to an empty bin: a bin emptied by drift still scores finite
MIN_EXPECTED = 5.0  # Cochran's rule: chi-square is trusted when every expected count is >= 5


@dataclass(frozen=True, slots=True)
class Finding:
    """One measure of one column: its effect size, the p-value of its test, and words."""

    method: DriftMethod
    value: float
    p_value: float
    detail: str


def population_stability(reference: Any, window: Any) -> float:
    """PSI between two count (or share) vectors over the same bins."""
    r = _shares(reference)
    w = _shares(window)
    r = np.maximum(r, PSI_EPSILON)
    w = np.maximum(w, PSI_EPSILON)
    return float(np.sum((w - r) * np.log(w / r)))


def jensen_shannon(reference: Any, window: Any) -> float:
    """Jensen-Shannon distance (base 2) between two count (or share) vectors."""
    p = _shares(reference)
    q = _shares(window)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / m), 0.0)
        right = np.where(q > 0, q * np.log2(q / m), 0.0)
    divergence = float(left.sum() + right.sum()) / 2
    return math.sqrt(max(divergence, 0.0))


def chi_square(reference: Any, window: Any, adjacent: bool = True) -> float:
    """p-value of the chi-square test of homogeneity of two count vectors (see module doc).

    ``adjacent``: pool neighbouring cells (ordered bins); otherwise pool the rarest cells.
    With fewer than two pooled cells (or an empty side) there is nothing to test: 1.0.
    """
    table = pooled_table(reference, window, adjacent)
    if table.shape[1] < 2:
        return 1.0
    statistic = _pearson(table)
    return float(special.chdtrc(table.shape[1] - 1, statistic))


def pooled_table(reference: Any, window: Any, adjacent: bool = True) -> Floats:
    """The 2 x k table the chi-square test uses: cells merged until each expected >= 5."""
    ref = np.asarray(reference, dtype=np.float64)
    win = np.asarray(window, dtype=np.float64)
    rows = min(ref.sum(), win.sum())
    if rows <= 0:
        return np.zeros((2, 0))
    totals = ref + win
    keep = totals > 0
    ref, win, totals = ref[keep], win[keep], totals[keep]
    if not adjacent:
        order = np.argsort(-totals, kind="stable")
        ref, win, totals = ref[order], win[order], totals[order]
    # Expected count of cell j in the smaller row: rows * total_j / grand >= 5.
    needed = MIN_EXPECTED * (ref.sum() + win.sum()) / rows
    groups: list[int] = []  # index of the last cell of each closed group
    running = 0.0
    for j, total in enumerate(totals.tolist()):
        running += total
        if running >= needed:
            groups.append(j)
            running = 0.0
    if not groups:
        return np.zeros((2, 0))
    groups[-1] = totals.size - 1  # a short remainder joins the last group
    starts = np.concatenate(([0], np.asarray(groups[:-1], dtype=np.int64) + 1))
    return np.vstack((np.add.reduceat(ref, starts), np.add.reduceat(win, starts)))


def two_proportions(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """p-value that two samples share one rate (e.g. of missing values); 1.0 if one is empty."""
    if n_a <= 0 or n_b <= 0:
        return 1.0
    table = np.array([[hits_a, n_a - hits_a], [hits_b, n_b - hits_b]], dtype=np.float64)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    if expected.min() <= 0:
        return 1.0  # nobody (or everybody) has it in both samples
    if expected.min() >= MIN_EXPECTED:
        return float(special.chdtrc(1, _pearson(table)))
    return fisher_exact(hits_a, n_a - hits_a, hits_b, n_b - hits_b)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test on ``[[a, b], [c, d]]`` (as scipy's).

    Sums the hypergeometric probabilities of every table with the same margins that is no
    more likely than the one observed (with scipy's relative tolerance of 1e-7).
    """
    row, col, n = a + b, a + c, a + b + c + d
    low, high = max(0, col - (n - row)), min(row, col)
    x = np.arange(low, high + 1, dtype=np.float64)
    log_pmf = _log_choose(row, x) + _log_choose(n - row, col - x) - float(_log_choose(n, col))
    observed = log_pmf[a - low]
    p = float(np.exp(log_pmf[log_pmf <= observed + math.log1p(1e-7)]).sum())
    return min(p, 1.0)


def unseen_p_value(unseen: int, values: int, singletons: int, reference_values: int) -> float:
    """P(at least ``unseen`` of ``values`` fall outside the reference's categories by chance)."""
    if unseen <= 0 or values <= 0:
        return 1.0
    if reference_values <= 0:
        return 1.0  # no reference values: every category is new, nothing to test
    rate = min(max(singletons, 1) / reference_values, 1.0)
    return float(special.bdtrc(unseen - 1, values, rate))


def missing_finding(
    ref_rows: int, ref_missing: int, rows: int, missing: int, measures: dict[str, float]
) -> Finding:
    """The change in the share of missing values, with its two-proportion test.

    Records ``missing_delta`` and ``p_missing`` in ``measures``.
    """
    before = ref_missing / ref_rows if ref_rows else 0.0
    after = missing / rows if rows else 0.0
    delta = abs(after - before)
    p_value = two_proportions(ref_missing, ref_rows, missing, rows)
    measures["missing_delta"] = delta
    measures["p_missing"] = p_value
    return Finding(DriftMethod.MISSING, delta, p_value, f"missing {before:.1%} -> {after:.1%}")


def _pearson(table: Floats) -> float:
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    return float(np.sum((table - expected) ** 2 / expected))


def _log_choose(n: float, k: Any) -> Any:
    return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)


def _shares(counts: Any) -> Floats:
    values = np.asarray(counts, dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else values
