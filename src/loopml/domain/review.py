"""Human review: predictions the model was unsure of, waiting for a person's answer.

A deployment with ``review_below`` in its monitor sends every predicted row whose
confidence is under it to a queue (classifiers: the top class's probability; otherwise a
user function's score). Items are taken from the prediction log off the request path, so
serving never waits on the queue; each ``(request_id, row)`` enters at most once. A
person answers with ``loopml review label`` or ``POST /review``; the answer is stored on
the item *and* as feedback of the request, so it joins the prediction log like any
other label and feeds retraining. Agreement between model and reviewers (the share of
answers equal to the model's output; for numbers, within ``tolerance``) is tracked.

Standard library only, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from loopml.domain.errors import InvalidInput


class ReviewStatus(StrEnum):
    OPEN = "open"
    LABELLED = "labelled"


@dataclass(frozen=True, slots=True)
class ReviewItem:
    deployment: str
    request_id: str
    row: int  # which row of the request
    model: str
    version: int
    time_ms: int  # when the prediction was made
    inputs: Mapping[str, Any]
    output: Any  # the model's answer for the row
    confidence: float
    request_rows: int = 1  # rows of the request (feedback of a request labels all of them)
    id: int = 0  # given by the store
    status: ReviewStatus = ReviewStatus.OPEN
    label: Any = None
    reviewer: str | None = None
    labelled_ms: int | None = None
    agrees: bool | None = None  # the reviewer's label equals the model's output

    def __post_init__(self) -> None:
        if not self.request_id:
            raise InvalidInput("a review item needs the request id of its prediction")
        if not isinstance(self.confidence, int | float) or math.isnan(self.confidence):
            raise InvalidInput(
                f"review item {self.request_id}/{self.row}: confidence must be a number, "
                f"got {self.confidence!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The item as plain JSON data (for ``--json`` and ``GET /review``)."""
        return {
            "id": self.id,
            "deployment": self.deployment,
            "request_id": self.request_id,
            "row": self.row,
            "request_rows": self.request_rows,
            "model": self.model,
            "version": self.version,
            "time_ms": self.time_ms,
            "inputs": dict(self.inputs),
            "output": self.output,
            "confidence": self.confidence,
            "status": self.status.value,
            "label": self.label,
            "reviewer": self.reviewer,
            "labelled_ms": self.labelled_ms,
            "agrees": self.agrees,
        }


@dataclass(frozen=True, slots=True)
class Agreement:
    answered: int
    agreed: int
    by_version: Mapping[int, tuple[int, int]] = field(default_factory=dict)  # (answered, agreed)
    by_day: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # UTC "YYYY-MM-DD"

    @property
    def rate(self) -> float | None:
        return self.agreed / self.answered if self.answered else None


def agrees(output: Any, label: Any, tolerance: float = 0.0) -> bool:
    """Whether a reviewer's label confirms the model's output. Numbers agree within
    ``tolerance`` (relative to the label's size, at least 1 unit); anything else must be equal."""
    numbers = (int, float)
    if isinstance(output, numbers) and isinstance(label, numbers):
        if isinstance(output, bool) or isinstance(label, bool):
            return output == label
        return abs(float(output) - float(label)) <= tolerance * max(1.0, abs(float(label)))
    return bool(output == label)


def agreement(items: Sequence[ReviewItem]) -> Agreement:
    """How often reviewers confirmed the model: overall, per model version, and per day
    the answers were given (UTC), so a change over time shows."""
    answered = [i for i in items if i.status is ReviewStatus.LABELLED and i.agrees is not None]
    by_version: dict[int, tuple[int, int]] = {}
    by_day: dict[str, tuple[int, int]] = {}
    for item in answered:
        ok = int(bool(item.agrees))
        n, k = by_version.get(item.version, (0, 0))
        by_version[item.version] = (n + 1, k + ok)
        day = _day(item.labelled_ms if item.labelled_ms is not None else item.time_ms)
        n, k = by_day.get(day, (0, 0))
        by_day[day] = (n + 1, k + ok)
    return Agreement(
        len(answered),
        sum(1 for i in answered if i.agrees),
        by_version,
        dict(sorted(by_day.items())),
    )


def _day(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%d")
