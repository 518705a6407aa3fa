"""Regression metrics for many groups of rows at once, and the residual summary.

:class:`RegressionRows` holds checked targets and predictions and each row's residual
``y_true - y_pred``; ``metrics(codes, groups)`` computes every group's metrics with weighted
``bincount`` s (two passes: the group means, then squared deviations from them).

Conventions follow scikit-learn: ``r2`` is NaN with fewer than two rows; for a constant
target it is 1.0 when every prediction is exact, else 0.0 (``force_finite``). ``mape`` is a
fraction, like ``mean_absolute_percentage_error``, but rows whose target is 0 are left out
(scikit-learn divides by machine epsilon instead, which makes the value meaningless);
``zero_targets`` counts them. ``bias`` is the mean residual: positive when the model
predicts too low.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from loopml.domain.evaluation import ResidualSummary

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Metrics = dict[str, float]
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
HISTOGRAM_BINS = 30


class RegressionRows:
    """Checked rows of a regression's evaluation, ready to be grouped."""

    def __init__(self, y_true: Floats, y_pred: Floats) -> None:
        self.y_true = y_true
        self.y_pred = y_pred
        self.n = y_true.size
        self.residual = y_true - y_pred
        self.nonzero = y_true != 0
        self.zero_targets = int(self.n - np.count_nonzero(self.nonzero))
        with np.errstate(divide="ignore", invalid="ignore"):
            self._ape = np.where(self.nonzero, np.abs(self.residual) / np.abs(y_true), 0.0)

    def metrics(self, codes: Ints, groups: int) -> list[Metrics]:
        """The metrics of each group; rows with code ``groups`` are in no group."""
        slots = groups + 1

        def total(weights: Floats) -> Floats:
            return _sums(codes, weights, slots)[:groups]

        rows = np.bincount(codes, None, slots)[:groups].astype(np.float64)
        y, r = self.y_true, self.residual
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_y = _sums(codes, y, slots) / np.bincount(codes, None, slots)
            # Exactly constant groups have no spread, whatever the rounding of their mean.
            first = np.zeros(slots)
            first[codes] = y  # any one value of each group
            constant = total(np.abs(y - first[codes])) == 0
            ss_tot = np.where(constant, 0.0, total((y - mean_y[codes]) ** 2))
            ss_res = total(r * r)
            r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
            mse = ss_res / rows
            out = {
                "mae": total(np.abs(r)) / rows,
                "mse": mse,
                "rmse": np.sqrt(mse),
                "r2": np.where(rows >= 2, r2, np.nan),
                "mape": total(self._ape) / total(self.nonzero.astype(np.float64)),
                "bias": total(r) / rows,
            }
        return [{name: float(v[g]) for name, v in out.items()} for g in range(groups)]

    def group_rates(self, codes: Ints, groups: int) -> dict[str, Floats]:
        """What fairness compares per group: the mean prediction and the MAE."""
        slots = groups + 1
        with np.errstate(divide="ignore", invalid="ignore"):
            rows = np.bincount(codes, None, slots)[:groups]
            return {
                "mean_prediction": _sums(codes, self.y_pred, slots)[:groups] / rows,
                "mae": _sums(codes, np.abs(self.residual), slots)[:groups] / rows,
            }

    def residual_summary(self) -> ResidualSummary:
        """Mean, spread, quantiles and a histogram of all residuals."""
        r = self.residual
        levels = np.quantile(r, QUANTILES)
        low, high = float(levels[1]), float(levels[-2])  # 1st and 99th percentiles
        if high > low:
            edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
            # Interior edges only: the outer bins are open and take the tails.
            counts = np.bincount(
                np.searchsorted(edges[1:-1], r, side="right"), minlength=HISTOGRAM_BINS
            )
        else:
            lo, hi = float(r.min()), float(r.max())
            edges = np.array([lo, hi] if hi > lo else [lo - 0.5, lo + 0.5])
            counts = np.array([r.size])
        return ResidualSummary(
            mean=float(r.mean()),
            std=float(r.std()),
            quantiles=tuple((q, float(v)) for q, v in zip(QUANTILES, levels, strict=True)),
            bin_edges=tuple(float(e) for e in edges),
            bin_counts=tuple(int(c) for c in counts),
            zero_targets=self.zero_targets,
        )


def _sums(codes: Ints, weights: Floats, size: int) -> Floats:
    """The sum of ``weights`` per code, for codes 0 to ``size - 1``."""
    return np.asarray(np.bincount(codes, weights, size), dtype=np.float64)
