"""A scikit-learn estimator defined outside scikit-learn, for the tests of trust: skops does
not trust its type by default (imported by name: pytest puts ``tests/`` on the path for the
suite's conftest)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin


class ShiftedMean(RegressorMixin, BaseEstimator):
    """Predicts the training mean plus ``shift``."""

    def __init__(self, shift: float = 1.0) -> None:
        self.shift = shift

    def fit(self, x: np.ndarray, y: np.ndarray) -> ShiftedMean:
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.mean_ + self.shift)
