"""What the server records about every prediction, and the feedback that joins it later.

A :class:`PredictionRecord` is one request answered by one model version: its request id,
time, deployment, the version and the route that answered (``production``, ``canary``,
or ``shadow`` for the copy whose answer was logged and never returned), the inputs and
outputs as columns (``{"temp": [0.3, 0.4], ...}``), the number of rows and the latency.
A :class:`Feedback` is the ground truth of a request, arriving later, joined by request
id. Standard library only, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from loopml.domain.errors import InvalidInput


class Route(StrEnum):
    PRODUCTION = "production"
    CANARY = "canary"
    SHADOW = "shadow"


Columns = Mapping[str, Sequence[Any]]


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    request_id: str
    time_ms: int
    deployment: str
    model: str
    version: int
    route: Route
    inputs: Columns
    outputs: Columns
    latency_ms: float
    rows: int = field(default=0)

    def __post_init__(self) -> None:
        if not self.request_id:
            raise InvalidInput("a prediction record needs a request id")
        if not self.rows:
            first = next(iter(self.inputs.values()), ())
            object.__setattr__(self, "rows", len(first))


@dataclass(frozen=True, slots=True)
class Feedback:
    """The true outcome of a request (``label`` as JSON data), and when it was known."""

    request_id: str
    time_ms: int
    label: Any

    def __post_init__(self) -> None:
        if not isinstance(self.request_id, str) or not self.request_id:
            raise InvalidInput(
                f"feedback needs the request id the server returned, got {self.request_id!r}"
            )
