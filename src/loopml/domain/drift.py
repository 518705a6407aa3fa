"""The verdict on one column of one monitoring window: how far it moved from the reference.

A :class:`FeatureDrift` is what a monitor stores per feature (and per model output) and
per window; :mod:`loopml.stats.drift` computes it. ``score`` is the effect size of the
column's deciding measure, on its own scale (``method`` names it), and ``drifted`` says
whether it crossed ``threshold`` *and* is more than sampling noise at this window size
(``p_value``, where one applies). ``measures`` keeps every measure computed for the column
(e.g. ``{"wasserstein": 0.31, "psi": 0.42, "missing_delta": 0.0}``), so a report can show
more than the deciding one. ``severity`` is ``score / threshold``: 1.0 is the line, so
columns measured on different scales compare. ``level`` is the severity of a drifted
column, and at most 0.99 for one that did not drift (a large effect on a small window
may be noise); the dataset-level score of a window is the largest level, so one strongly
drifted feature is never averaged away and a score of 1.0 or more means drift.

Standard library only, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from loopml.domain.errors import InvalidInput
from loopml.domain.json_numbers import decode_number, encode_number

BELOW_LINE = 0.99  # the highest level of a column that did not drift


class DriftMethod(StrEnum):
    WASSERSTEIN = "wasserstein"  # Wasserstein-1 / reference std (numbers, datetimes)
    PSI = "psi"  # population stability index on reference-quantile bins
    JENSEN_SHANNON = "jensen_shannon"  # Jensen-Shannon distance, base 2 (categories)
    MISSING = "missing_rate"  # absolute change in the share of missing values
    UNSEEN = "unseen_categories"  # share of values never seen in the reference
    NONE = "none"  # nothing to compare (no rows, or no reference values)


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    column: str
    kind: str  # numeric, datetime, categorical, boolean
    rows: int  # rows of the window for this column (values and missing)
    method: DriftMethod
    score: float
    threshold: float
    drifted: bool
    p_value: float | None = None
    measures: Mapping[str, float] = field(default_factory=dict)
    detail: str = ""  # for people: "mean 0.31 -> 0.52", "'snow' 2% -> 21%"

    def __post_init__(self) -> None:
        if not self.column:
            raise InvalidInput("a drift result needs a column name")
        if not (self.threshold > 0 and math.isfinite(self.threshold)):
            raise InvalidInput(
                f"drift threshold of {self.column!r} must be a positive number, "
                f"got {self.threshold!r}"
            )

    @property
    def severity(self) -> float:
        """``score / threshold``: at or above 1.0 the effect crossed its line."""
        return self.score / self.threshold

    @property
    def level(self) -> float:
        """The severity as alerts see it: a column that did not drift stays below 1.0,
        however large its effect, because on a small window a large effect may be
        sampling noise (``drifted`` needs significance too)."""
        return self.severity if self.drifted else min(self.severity, BELOW_LINE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "rows": self.rows,
            "method": self.method.value,
            "score": _number(self.score),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "p_value": self.p_value,
            "measures": {k: _number(v) for k, v in self.measures.items()},
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureDrift:
        try:
            return cls(
                column=data["column"],
                kind=data["kind"],
                rows=int(data["rows"]),
                method=DriftMethod(data["method"]),
                score=_float(data["score"]),
                threshold=float(data["threshold"]),
                drifted=bool(data["drifted"]),
                p_value=data.get("p_value"),
                measures={k: _float(v) for k, v in data.get("measures", {}).items()},
                detail=data.get("detail", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(
                f"stored drift result is damaged ({exc!r}): {dict(data)!r:.200}; "
                "expected a dict made by FeatureDrift.to_dict()"
            ) from exc


def dataset_score(columns: tuple[FeatureDrift, ...] | list[FeatureDrift]) -> float:
    """The window's score: the largest :attr:`~FeatureDrift.level`, so one drifted feature
    is never averaged away, and a window scores 1.0 or more exactly when a column drifted."""
    return max((c.level for c in columns), default=0.0)


def _number(value: float) -> object:
    # JSON has no infinity: a column whose reference has no spread moves "infinitely".
    return encode_number(value)


def _float(value: object) -> float:
    number = decode_number(value, "a drift figure")
    if not isinstance(number, int | float):
        raise TypeError(f"a drift figure must be a number, got {number!r}")
    return float(number)
