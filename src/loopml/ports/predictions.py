"""Ports of the prediction log: where the server sends every answer, and how the log and
its feedback are read back (see :mod:`loopml.adapters.prediction_log` and docs/serving.md)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only
    from loopml.domain.predictions import Feedback, PredictionRecord


@dataclass(frozen=True, slots=True)
class DeploymentLogStats:
    """What the prediction log holds for one deployment."""

    deployment: str
    segments: int
    records: int  # requests
    rows: int  # predicted rows (a request may carry several)
    bytes: int
    first_ms: int | None
    last_ms: int | None


@dataclass(frozen=True, slots=True)
class PredictionLogStats:
    """The prediction log as a whole, with the losses every writer recorded."""

    deployments: list[DeploymentLogStats]
    feedback_segments: int
    feedback_rows: int
    dropped: int  # overflow + rejected + lost: records that will never be written
    overflow: int  # submitted while the queue was full
    rejected: int  # records the writer could not store (bad name, ragged columns)
    lost: int  # still unwritten when a writer closed (its disk failing)
    write_errors: int  # failed segment writes (each retried)
    last_error: str
    temporaries: int  # half-written files of killed writers: never read, safe to delete


class PredictionSink(Protocol):
    """Where the server sends every answered request, off the request path. Durability
    contract: ``adapters/prediction_log.py`` and docs/serving.md#prediction-log."""

    def submit(self, record: PredictionRecord) -> bool:
        """Queue ``record`` without blocking; False when the queue is full and the record
        was dropped (and counted in :attr:`dropped`)."""
        ...

    @property
    def dropped(self) -> int: ...
    @property
    def queue_depth(self) -> int: ...
    @property
    def write_errors(self) -> int: ...
    def flush(self, timeout_s: float = 10.0) -> bool:
        """True once everything submitted before the call is durable."""
        ...

    def close(self, timeout_s: float = 10.0) -> None: ...


class PredictionReader(Protocol):
    """The logged predictions and their feedback. Tables and batches are pyarrow objects
    (typed ``Any`` to keep this module free of pyarrow); windows are
    ``since_ms <= time_ms < until_ms``, either end open when None."""

    def deployments(self) -> list[str]: ...
    def tail(self, deployment: str | None, n: int) -> list[PredictionRecord]:
        """The newest ``n`` records, oldest first (every deployment when None)."""
        ...

    def scan(
        self, deployment: str | None, since_ms: int | None = None, until_ms: int | None = None
    ) -> Iterator[Any]:
        """Record batches segment by segment, oldest first; columns may differ between
        segments (one column per input ``in.<name>`` and output ``out.<name>``)."""
        ...

    def read(
        self, deployment: str | None, since_ms: int | None = None, until_ms: int | None = None
    ) -> Any:
        """The window as one table with one schema."""
        ...

    def known_request_ids(self, request_ids: Sequence[str]) -> set[str]: ...
    def add_feedback(self, items: Sequence[Feedback]) -> int:
        """Store ground truth durably; return how many items were stored."""
        ...

    def joined(
        self, deployment: str | None, since_ms: int | None = None, until_ms: int | None = None
    ) -> Any:
        """Prediction rows with ``label`` and ``feedback_time_ms``: a left join by request
        id, the newest feedback of a request winning."""
        ...

    def export(
        self,
        path: Path,
        deployment: str | None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        *,
        with_feedback: bool = False,
    ) -> int:
        """Write the window to a .parquet or .csv file atomically; return the rows."""
        ...

    def stats(self) -> PredictionLogStats: ...
