"""How far each column's statistics moved between two stored profiles.

Used by ``loopml data diff`` to rank columns; read from the profiles alone, so it costs
nothing however large the versions are. One score per column, the largest of:

* numbers and datetimes: the Wasserstein-1 distance between the two distributions,
  approximated from the 101 stored quantiles (mean absolute difference of matching
  quantiles) and divided by the first version's standard deviation, so 0.5 reads "the
  distribution moved by about half a standard deviation";
* categories and booleans: the total variation distance between the category shares
  (half the sum of absolute differences; 0 same, 1 disjoint), values outside the stored
  top categories pooled as one;
* any column: the change in the share of missing values.

Profiles stay the reference: the monitoring part of loopml applies sharper, sample-size
aware tests to live traffic; this ranking is a quick look at what changed in a dataset.
"""

from __future__ import annotations

import math

import numpy as np

from loopml.domain.data_diff import StatMove
from loopml.stats.profile import ColumnProfile, TableProfile


def column_moves(before: TableProfile, after: TableProfile, limit: int = 10) -> list[StatMove]:
    """The columns of both profiles whose statistics moved, largest first, at most ``limit``."""
    old = {c.name: c for c in before.columns}
    moves = [
        move
        for new in after.columns
        if new.name in old and (move := _move(old[new.name], new)) is not None
    ]
    moves.sort(key=lambda m: -m.score)
    return moves[:limit]


def _move(a: ColumnProfile, b: ColumnProfile) -> StatMove | None:
    candidates: list[StatMove] = []
    nulls = abs(b.null_fraction - a.null_fraction)
    if nulls > 0:
        candidates.append(
            StatMove(
                a.name,
                nulls,
                "missing share change",
                f"missing {a.null_fraction:.1%} -> {b.null_fraction:.1%}",
            )
        )
    if a.kind == b.kind and a.kind in ("numeric", "datetime"):
        shift = _wasserstein(a, b)
        if shift is not None and shift > 0:
            candidates.append(
                StatMove(
                    a.name,
                    shift,
                    "Wasserstein / std",
                    f"mean {_fmt(a.mean)} -> {_fmt(b.mean)}, std {_fmt(a.std)} -> {_fmt(b.std)}",
                )
            )
    elif a.kind == b.kind and a.kind in ("categorical", "boolean"):
        distance, detail = _total_variation(a, b)
        if distance > 0:
            candidates.append(StatMove(a.name, distance, "total variation", detail))
    return max(candidates, key=lambda m: m.score) if candidates else None


def _wasserstein(a: ColumnProfile, b: ColumnProfile) -> float | None:
    if len(a.quantiles) != len(b.quantiles) or not a.quantiles:
        return None
    qa = np.asarray(a.quantiles, dtype=float)
    qb = np.asarray(b.quantiles, dtype=float)
    finite = np.isfinite(qa) & np.isfinite(qb)
    if not finite.any():
        return None
    distance = float(np.mean(np.abs(qa[finite] - qb[finite])))
    spread = a.std if a.std else _iqr(qa)
    if not spread or not math.isfinite(spread):
        return None if distance == 0 else math.inf
    return distance / spread


def _iqr(quantiles: np.ndarray) -> float:
    return float(quantiles[75] - quantiles[25]) if quantiles.size == 101 else 0.0


def _total_variation(a: ColumnProfile, b: ColumnProfile) -> tuple[float, str]:
    if a.kind == "boolean":
        pa_, pb = a.mean or 0.0, b.mean or 0.0
        return abs(pa_ - pb), f"true {pa_:.1%} -> {pb:.1%}"
    shares_a, shares_b = _shares(a), _shares(b)
    keys = shares_a.keys() | shares_b.keys()
    distance = 0.5 * sum(abs(shares_a.get(k, 0.0) - shares_b.get(k, 0.0)) for k in keys)
    biggest = max(keys, key=lambda k: abs(shares_a.get(k, 0.0) - shares_b.get(k, 0.0)))
    detail = f"{biggest!r} {shares_a.get(biggest, 0.0):.1%} -> {shares_b.get(biggest, 0.0):.1%}"
    return distance, detail


def _shares(c: ColumnProfile) -> dict[str | None, float]:
    if not c.count:
        return {}
    shares: dict[str | None, float] = {k: n / c.count for k, n in c.top}
    if c.other_count:
        shares[None] = c.other_count / c.count  # every category outside the stored top
    return shares


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
