"""Experiment tracking: experiments, runs, params, metrics, tags, artifacts and inputs.

The service validates every value at the edge (names, keys, types, sizes), stamps times
from the clock, captures code and environment provenance when a run starts, and leaves
persistence to the :class:`~loopml.ports.TrackingStore`. Metric points reach the store
through a :class:`~loopml.services.metric_buffer.MetricBuffer` owned by the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from loopml.domain.artifacts import ArtifactRef
from loopml.domain.errors import InvalidInput, InvalidState
from loopml.domain.names import validate_artifact_name, validate_identifier
from loopml.domain.paging import Page, check_page_size
from loopml.domain.search import order_items, parse_filter, parse_order_by
from loopml.domain.tracking import (
    DatasetRef,
    Experiment,
    Metric,
    Run,
    RunStatus,
    param_text,
    tag_text,
)
from loopml.ports import BlobStore, Clock, NewRun, ProvenanceProbe, TrackingStore

DEFAULT_EXPERIMENT = "default"


def new_run_id() -> str:
    return uuid.uuid4().hex


class TrackingService:
    def __init__(
        self,
        store: TrackingStore,
        blobs: BlobStore,
        clock: Clock,
        provenance: ProvenanceProbe | None = None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.clock = clock
        self.provenance = provenance

    # experiments -------------------------------------------------------------------------
    def create_experiment(self, name: str) -> Experiment:
        return self.store.create_experiment(
            validate_identifier("experiment name", name), self.clock.now_ms()
        )

    def get_experiment(self, name: str) -> Experiment:
        return self.store.get_experiment(name)

    def list_experiments(
        self, page_size: int = 100, page_token: str | None = None
    ) -> Page[Experiment]:
        return self.store.list_experiments(check_page_size(page_size), page_token)

    # runs --------------------------------------------------------------------------------
    def start_run(
        self,
        experiment: str | None = None,
        name: str | None = None,
        parent_id: str | None = None,
        tags: Mapping[str, object] | None = None,
    ) -> Run:
        experiment = validate_identifier("experiment name", experiment or DEFAULT_EXPERIMENT)
        if parent_id is not None:
            parent = self.store.get_run(parent_id)
            if parent.status.is_terminal:
                raise InvalidState(
                    f"parent run {parent_id} has already ended ({parent.status.value}); "
                    "start nested runs while the parent is running"
                )
        run_id = new_run_id()
        code = env = None
        if self.provenance is not None:
            code = self.provenance.code_version()
            env = self.provenance.environment()
        new = NewRun(
            id=run_id,
            experiment=experiment,
            name=name or _default_run_name(run_id),
            start_ms=self.clock.now_ms(),
            parent_id=parent_id,
            tags={k: tag_text(k, v) for k, v in (tags or {}).items()},
            code=code,
            environment=env,
        )
        self.store.create_run(new)
        return Run(  # everything a new run holds is known here: no read back
            id=new.id,
            experiment=new.experiment,
            name=new.name,
            status=RunStatus.RUNNING,
            start_ms=new.start_ms,
            parent_id=new.parent_id,
            tags=dict(new.tags),
            code=code,
            environment=env,
        )

    def end_run(self, run_id: str, status: RunStatus | str = RunStatus.FINISHED) -> None:
        status = _parse_status(status)
        if not status.is_terminal:
            raise InvalidInput(f"a run ends as finished, failed or killed, not {status.value}")
        self.store.finish_run(run_id, status, self.clock.now_ms())

    def get_run(self, run_id: str) -> Run:
        return self.store.get_run(run_id)

    def log_params(self, run_id: str, params: Mapping[str, object]) -> None:
        if params:
            self.store.log_params(run_id, {k: param_text(k, v) for k, v in params.items()})

    def set_tags(self, run_id: str, tags: Mapping[str, object]) -> None:
        if tags:
            self.store.set_tags(run_id, {k: tag_text(k, v) for k, v in tags.items()})

    def write_metrics(self, batches: Sequence[tuple[str, Sequence[Metric]]]) -> None:
        """Durably write metric points now (the sink of the metric buffer)."""
        self.store.log_metrics(batches)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self.store.get_metric_history(run_id, key)

    def log_artifact(self, run_id: str, name: str, source: bytes | Path) -> ArtifactRef:
        """Store bytes or a file's content under a logical name of the run."""
        validate_artifact_name(name)
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
            ref = ArtifactRef(name, self.blobs.put_bytes(data), len(data))
        else:
            path = Path(source)
            if not path.is_file():
                raise InvalidInput(
                    f"artifact source {str(path)!r} is not a file; "
                    "pass the path of an existing file or the bytes to store"
                )
            digest, size = self.blobs.put_file(path)
            ref = ArtifactRef(name, digest, size)
        self.store.add_artifacts(run_id, [ref])
        return ref

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetRef]) -> None:
        if inputs:
            self.store.add_inputs(run_id, inputs)

    def search_runs(
        self,
        experiments: Sequence[str] = (),
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> Page[Run]:
        parse_filter(filter)  # fail early, with the parser's message, whatever the store
        orders = order_items(order_by)
        parse_order_by(orders)
        return self.store.search_runs(
            list(experiments), filter, orders, check_page_size(page_size), page_token
        )


def _parse_status(status: RunStatus | str) -> RunStatus:
    if isinstance(status, RunStatus):
        return status
    try:
        return RunStatus(str(status).lower())
    except ValueError:
        allowed = ", ".join(s.value for s in RunStatus)
        raise InvalidInput(f"unknown run status {status!r}; expected one of {allowed}") from None


_ADJECTIVES = (
    "brisk",
    "calm",
    "clever",
    "eager",
    "gentle",
    "keen",
    "lucid",
    "nimble",
    "quiet",
    "steady",
    "swift",
    "tidy",
    "vivid",
    "witty",
    "bold",
    "bright",
)
_NOUNS = (
    "otter",
    "heron",
    "lynx",
    "finch",
    "badger",
    "falcon",
    "marten",
    "ibis",
    "panda",
    "wren",
    "yak",
    "koala",
    "newt",
    "orca",
    "quail",
    "seal",
)


def _default_run_name(run_id: str) -> str:
    n = int(run_id[:8], 16)
    return f"{_ADJECTIVES[n % 16]}-{_NOUNS[(n >> 4) % 16]}-{run_id[:4]}"
