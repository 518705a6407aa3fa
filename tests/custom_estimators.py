"""A scikit-learn estimator defined outside scikit-learn, for the tests of trust: skops does
not trust its type by default (imported by name: pytest puts ``tests/`` on the path for the
suite's conftest)."""

from __future__ import annotations

import threading
import time

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


class SlowMean(RegressorMixin, BaseEstimator):
    """Predicts the training mean after ``seconds`` of sleep (which releases the GIL, as a
    model's compiled code does), counting how many of its predictions run at once."""

    running = 0
    most_at_once = 0
    _lock = threading.Lock()

    def __init__(self, seconds: float = 0.02) -> None:
        self.seconds = seconds

    def fit(self, x: np.ndarray, y: np.ndarray) -> SlowMean:
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        cls = type(self)
        with cls._lock:
            cls.running += 1
            cls.most_at_once = max(cls.most_at_once, cls.running)
        time.sleep(self.seconds)
        with cls._lock:
            cls.running -= 1
        return np.full(len(x), self.mean_)
