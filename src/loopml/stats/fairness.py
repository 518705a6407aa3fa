"""Fairness gaps: how far apart the groups of a sensitive column are.

Each gap is the largest value minus the smallest over the groups where the rate is defined
(a group without positives has no true positive rate), as fairlearn's ``difference``:

- ``demographic_parity_difference``: of the share predicted positive;
- ``equalized_odds_difference``: the larger of the true positive rate gap and the false
  positive rate gap;
- ``accuracy_difference``: of the accuracy (every classification task);
- ``mean_prediction_difference`` and ``mae_difference`` for regression.

With fewer than two groups defining a rate, its gap is NaN: there is nothing to compare,
and a gate must not read that as fair.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

GAPS = {
    "demographic_parity_difference": ("positive_rate",),
    "equalized_odds_difference": ("tpr", "fpr"),
    "accuracy_difference": ("accuracy",),
    "mean_prediction_difference": ("mean_prediction",),
    "mae_difference": ("mae",),
}


def spread(values: Floats) -> float:
    """Largest minus smallest defined value; NaN with fewer than two."""
    defined = values[~np.isnan(values)]
    if defined.size < 2:
        return float("nan")
    return float(defined.max() - defined.min())


def fairness_gaps(rates: dict[str, Floats]) -> dict[str, float]:
    """The gaps computable from per-group ``rates`` (keys as in :data:`GAPS`)."""
    out: dict[str, float] = {}
    for gap, needs in GAPS.items():
        if all(rate in rates for rate in needs):
            parts = [spread(rates[rate]) for rate in needs]
            defined = [p for p in parts if not np.isnan(p)]
            out[gap] = max(defined) if defined else float("nan")
    return out
