"""The handle on one run being logged: what ``Client.start_run`` and ``loopml.start_run``
give out. Every call goes through its :class:`~loopml.client.Client`; used as a context
manager it ends the run as finished, failed (the block raised) or killed (Ctrl-C)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from loopml.domain.artifacts import ArtifactRef
from loopml.domain.datasets import DatasetVersion
from loopml.domain.tracking import DatasetRef, Run, RunStatus

if TYPE_CHECKING:
    from loopml.client import Client


class ActiveRun:
    """Handle on a run being logged. Use as a context manager to end it automatically."""

    def __init__(self, client: Client, run: Run) -> None:
        self.client = client
        self.id = run.id
        self.name = run.name
        self.experiment = run.experiment

    def log_param(self, key: str, value: object) -> None:
        self.client.log_params(self.id, {key: value})

    def log_params(self, params: Mapping[str, object]) -> None:
        self.client.log_params(self.id, params)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.client.log_metric(self.id, key, value, step)

    def log_metrics(self, values: Mapping[str, object], step: int | None = None) -> None:
        self.client.log_metrics(self.id, values, step)

    def set_tag(self, key: str, value: object) -> None:
        self.client.set_tags(self.id, {key: value})

    def set_tags(self, tags: Mapping[str, object]) -> None:
        self.client.set_tags(self.id, tags)

    def log_artifact(self, source: str | Path | bytes, name: str | None = None) -> ArtifactRef:
        return self.client.log_artifact(self.id, source, name)

    def log_inputs(self, inputs: Sequence[DatasetRef]) -> None:
        self.client.log_inputs(self.id, inputs)

    def log_dataset(self, name: str, data: object, message: str = "") -> DatasetVersion:
        return self.client.log_dataset(self.id, name, data, message)

    def flush(self) -> None:
        self.client._buffer.flush(self.id)

    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> None:
        self.client.end_run(self.id, status)

    def info(self) -> Run:
        return self.client.get_run(self.id)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        self.end(status)

    def __repr__(self) -> str:
        return f"<ActiveRun {self.id} {self.name!r} experiment={self.experiment!r}>"
