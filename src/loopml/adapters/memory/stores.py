"""In-memory metadata stores: tracking, registry and audit log over one shared state.

A :class:`MemoryDatabase` holds what the three stores share and one re-entrant lock; every
store call holds the lock from start to end, so a call is one transaction, as on SQL. A
write checks everything before it changes anything (stage moves are applied to a copy and
committed only when every check passed), so a refused call leaves no trace, exactly like a
rolled-back SQL transaction, and a model change and its audit event land together.

The SQL adapter (:mod:`loopml.adapters.sql`) is the reference for behaviour: the same
errors, orderings, paging tokens, latest-metric rule and search semantics (the last via
:mod:`loopml.domain.search_eval`). ``tests/contract`` runs one suite against both.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from loopml.domain.audit import GENESIS_HASH, AuditEvent, AuditRecord, seal
from loopml.domain.errors import AlreadyExists, ConcurrentModification, NotFound
from loopml.domain.lifecycle import Stage
from loopml.domain.paging import Page, decode_token, encode_token, query_fingerprint
from loopml.domain.registry import Model, ModelVersion
from loopml.domain.registry_events import model_created, version_created
from loopml.domain.search import parse_filter, parse_order_by
from loopml.domain.search_eval import matches, sort_runs
from loopml.domain.tracking import (
    DatasetRef,
    Experiment,
    Metric,
    Run,
    RunStatus,
    check_params_unchanged,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from loopml.domain.approvals import ApprovalRequest
    from loopml.domain.artifacts import ArtifactRef
    from loopml.domain.datasets import DatasetVersion
    from loopml.domain.deployments import Revision
    from loopml.domain.loop import JobRun
    from loopml.domain.model_evaluation import ModelEvaluation
    from loopml.domain.step_cache import StepRecord
    from loopml.ports import Clock, NewModelVersion, NewRun, StageChange

T = TypeVar("T")


@dataclass
class _RunState:
    header: Run  # the run without its records; replaced, never mutated
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[Metric]] = field(default_factory=dict)  # in logging order
    latest: dict[str, Metric] = field(default_factory=dict)
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)
    inputs: dict[tuple[str, int], DatasetRef] = field(default_factory=dict)

    def snapshot(self) -> Run:
        return dataclasses.replace(
            self.header,
            params=dict(self.params),
            metrics={k: m.value for k, m in self.latest.items()},
            tags=dict(self.tags),
            artifacts=tuple(self.artifacts[k] for k in sorted(self.artifacts)),
            inputs=tuple(self.inputs[k] for k in sorted(self.inputs)),
        )


@dataclass
class _ModelState:
    name: str
    created_ms: int
    description: str
    latest_version: int = 0
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> Model:
        return Model(
            self.name, self.created_ms, self.description, self.latest_version, dict(self.aliases)
        )

    def version_view(self, mv: ModelVersion) -> ModelVersion:
        names = tuple(sorted(a for a, v in self.aliases.items() if v == mv.version))
        return dataclasses.replace(
            mv, metrics=dict(mv.metrics), flavor_info=dict(mv.flavor_info), aliases=names
        )


class MemoryDatabase:
    """The state the in-memory stores share, guarded by one lock. Lost at process end.

    ``events`` and ``head`` are public so a test can tamper with the audit trail and watch
    verification fail, as it would on a database edited behind loopml's back.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.experiments: dict[str, Experiment] = {}
        self.runs: dict[str, _RunState] = {}  # in creation order
        self.models: dict[str, _ModelState] = {}
        self.datasets: dict[str, list[DatasetVersion]] = {}  # versions in order
        self.approvals: dict[str, ApprovalRequest] = {}  # in creation order
        self.evaluations: list[ModelEvaluation] = []  # in creation order
        self.steps: dict[tuple[str, str, str], StepRecord] = {}
        self.deployments: dict[str, list[Revision]] = {}  # each deployment's history
        # monitoring keeps the rows of the SQL tables, JSON text included (monitoring.py)
        self.windows: dict[tuple[str, str], dict[str, Any]] = {}  # in creation order
        self.references: dict[str, str] = {}
        self.review_items: dict[int, dict[str, Any]] = {}  # by id, in creation order
        self.review_cursors: dict[str, int] = {}
        self.loops: dict[str, dict[str, Any]] = {}
        self.jobs: dict[tuple[str, int], JobRun] = {}
        self.alerts: dict[str, dict[str, Any]] = {}  # rows of the SQL table, by id
        self.events: list[AuditEvent] = []
        self.head: tuple[int, str] | None = None

    def __repr__(self) -> str:
        return f"MemoryDatabase({len(self.runs)} runs, {len(self.models)} models)"

    def append_event(self, record: AuditRecord, time_ms: int) -> AuditEvent:
        """Seal ``record`` onto the chain; the caller holds the lock."""
        seq, prev_hash = self.head if self.head is not None else (0, GENESIS_HASH)
        event = seal(record, seq + 1, time_ms, prev_hash)
        self.events.append(event)
        self.head = (event.seq, event.hash)
        return event

    def run(self, run_id: str) -> _RunState:
        found = self.runs.get(run_id)
        if found is None:
            raise NotFound(f"run {run_id!r} does not exist; find run ids with `loopml runs list`")
        return found

    def model(self, name: str) -> _ModelState:
        found = self.models.get(name)
        if found is None:
            raise NotFound(f"model {name!r} does not exist; list models with `loopml models list`")
        return found


def page_of(items: Sequence[T], page_size: int, offset: int, fingerprint: str) -> Page[T]:
    more = len(items) > offset + page_size
    return Page(
        list(items[offset : offset + page_size]),
        encode_token(offset + page_size, fingerprint) if more else None,
    )


class MemoryTrackingStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    # experiments -------------------------------------------------------------------------
    def create_experiment(self, name: str, now_ms: int) -> Experiment:
        with self.db.lock:
            if name in self.db.experiments:
                raise AlreadyExists(
                    f"experiment {name!r} already exists; use it, or pick another name"
                )
            return self._add_experiment(name, now_ms)

    def _add_experiment(self, name: str, now_ms: int) -> Experiment:
        experiment = Experiment(len(self.db.experiments) + 1, name, now_ms)
        self.db.experiments[name] = experiment
        return experiment

    def find_experiment(self, name: str) -> Experiment | None:
        with self.db.lock:
            return self.db.experiments.get(name)

    def get_experiment(self, name: str) -> Experiment:
        found = self.find_experiment(name)
        if found is None:
            raise NotFound(
                f"experiment {name!r} does not exist; list them with `loopml experiments list`"
            )
        return found

    def list_experiments(self, page_size: int, page_token: str | None) -> Page[Experiment]:
        with self.db.lock:
            fp = query_fingerprint("experiments")
            offset = decode_token(page_token, fp)
            items = [self.db.experiments[n] for n in sorted(self.db.experiments)]
            return page_of(items, page_size, offset, fp)

    # runs --------------------------------------------------------------------------------
    def create_run(self, run: NewRun) -> None:
        with self.db.lock:
            if run.id in self.db.runs:
                raise AlreadyExists(
                    f"run {run.id!r} already exists; run ids are unique, generate a new one"
                )
            if run.parent_id is not None:
                self.db.run(run.parent_id)
            if run.experiment not in self.db.experiments:
                self._add_experiment(run.experiment, run.start_ms)
            header = Run(
                run.id,
                run.experiment,
                run.name,
                RunStatus.RUNNING,
                run.start_ms,
                parent_id=run.parent_id,
                code=run.code,
                environment=run.environment,
            )
            self.db.runs[run.id] = _RunState(header, tags=dict(run.tags))

    def finish_run(self, run_id: str, status: RunStatus, end_ms: int) -> None:
        with self.db.lock:
            state = self.db.run(run_id)
            state.header = dataclasses.replace(state.header, status=status, end_ms=end_ms)

    def find_run(self, run_id: str) -> Run | None:
        with self.db.lock:
            state = self.db.runs.get(run_id)
            return None if state is None else state.snapshot()

    def get_run(self, run_id: str) -> Run:
        with self.db.lock:
            return self.db.run(run_id).snapshot()

    # records -----------------------------------------------------------------------------
    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        with self.db.lock:
            stored = self.db.run(run_id).params
            check_params_unchanged(run_id, stored, params)
            stored.update(params)

    def log_metrics(self, batches: Sequence[tuple[str, Sequence[Metric]]]) -> None:
        with self.db.lock:
            states = [self.db.run(run_id) for run_id, _ in batches]  # all or nothing
            for state, (_, points) in zip(states, batches, strict=True):
                for m in points:
                    state.history.setdefault(m.key, []).append(m)
                    best = state.latest.get(m.key)
                    # ">=": of two points at the same (step, time) the later logged wins
                    if best is None or (m.step, m.timestamp_ms) >= (best.step, best.timestamp_ms):
                        state.latest[m.key] = m

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        with self.db.lock:
            self.db.run(run_id).tags.update(tags)

    def add_artifacts(self, run_id: str, artifacts: Sequence[ArtifactRef]) -> None:
        with self.db.lock:
            self.db.run(run_id).artifacts.update((a.name, a) for a in artifacts)

    def add_inputs(self, run_id: str, inputs: Sequence[DatasetRef]) -> None:
        with self.db.lock:
            self.db.run(run_id).inputs.update(((i.name, i.version), i) for i in inputs)

    def referenced_digests(self) -> set[str]:
        with self.db.lock:
            return {
                str(a.digest) for state in self.db.runs.values() for a in state.artifacts.values()
            }

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        with self.db.lock:
            points = list(self.db.run(run_id).history.get(key, ()))
            points.sort(key=lambda m: (m.step, m.timestamp_ms))  # stable: then logging order
            return points

    # search ------------------------------------------------------------------------------
    def search_runs(
        self,
        experiments: Sequence[str],
        filter_text: str | None,
        order_by: Sequence[str],
        page_size: int,
        page_token: str | None,
    ) -> Page[Run]:
        expr = parse_filter(filter_text)
        order = parse_order_by(order_by)
        fp = query_fingerprint("runs", tuple(experiments), filter_text, tuple(order_by))
        offset = decode_token(page_token, fp)
        with self.db.lock:
            missing = [e for e in experiments if e not in self.db.experiments]
            if missing:
                raise NotFound(f"experiments not found: {', '.join(missing)}")
            runs = [
                s.snapshot()
                for s in self.db.runs.values()
                if not experiments or s.header.experiment in experiments
            ]
        if expr is not None:
            runs = [r for r in runs if matches(expr, r)]
        return page_of(sort_runs(runs, order), page_size, offset, fp)


class MemoryRegistryStore:
    def __init__(self, db: MemoryDatabase, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def create_model(self, name: str, description: str, now_ms: int, actor: str) -> Model:
        with self.db.lock:
            if name in self.db.models:
                raise AlreadyExists(
                    f"model {name!r} already exists; register a new version of it instead"
                )
            return self._add_model(name, description, now_ms, actor).snapshot()

    def _add_model(self, name: str, description: str, now_ms: int, actor: str) -> _ModelState:
        state = self.db.models[name] = _ModelState(name, now_ms, description)
        self.db.append_event(model_created(name, description, actor), now_ms)
        return state

    def find_model(self, name: str) -> Model | None:
        with self.db.lock:
            state = self.db.models.get(name)
            return None if state is None else state.snapshot()

    def get_model(self, name: str) -> Model:
        with self.db.lock:
            return self.db.model(name).snapshot()

    def list_models(self, page_size: int, page_token: str | None) -> Page[Model]:
        with self.db.lock:
            fp = query_fingerprint("models")
            offset = decode_token(page_token, fp)
            items = [self.db.models[n].snapshot() for n in sorted(self.db.models)]
            return page_of(items, page_size, offset, fp)

    def create_version(self, new: NewModelVersion, actor: str) -> ModelVersion:
        with self.db.lock:
            if new.run_id is not None:
                self.db.run(new.run_id)
            state = self.db.models.get(new.model)
            if state is None:
                state = self._add_model(new.model, "", new.created_ms, actor)
            state.latest_version += 1
            mv = new.to_version(state.latest_version)
            state.versions[mv.version] = mv
            self.db.append_event(version_created(mv, actor), new.created_ms)
            return state.version_view(mv)

    def referenced_digests(self) -> set[str]:
        with self.db.lock:
            return {
                str(mv.artifact.digest)
                for state in self.db.models.values()
                for mv in state.versions.values()
            }

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self.db.lock:
            state = self.db.model(name)
            mv = state.versions.get(version)
            if mv is None:
                raise NotFound(
                    f"model {name!r} has no version {version}; list its versions "
                    f"with `loopml models show {name}`"
                )
            return state.version_view(mv)

    def list_versions(
        self, name: str, stage: Stage | None, page_size: int, page_token: str | None
    ) -> Page[ModelVersion]:
        fp = query_fingerprint("versions", name, stage)
        offset = decode_token(page_token, fp)
        with self.db.lock:
            state = self.db.model(name)
            items = [
                state.version_view(state.versions[v])
                for v in sorted(state.versions, reverse=True)
                if stage is None or state.versions[v].stage is stage
            ]
        return page_of(items, page_size, offset, fp)

    def set_stages(
        self,
        name: str,
        changes: Sequence[StageChange],
        exclusive: Stage | None,
        audits: Sequence[AuditRecord],
    ) -> None:
        with self.db.lock:
            state = self.db.model(name)
            versions = dict(state.versions)  # changed copy, committed if every check passes
            for change in changes:
                current = versions.get(change.version)
                if current is None or current.stage is not change.expected:
                    raise ConcurrentModification(
                        f"models:/{name}/{change.version} is no longer in "
                        f"{change.expected.value} (someone changed it meanwhile); "
                        "look at it again and retry"
                    )
                versions[change.version] = dataclasses.replace(current, stage=change.target)
            if exclusive is not None:
                count = sum(1 for mv in versions.values() if mv.stage is exclusive)
                if count > 1:
                    raise ConcurrentModification(
                        f"model {name!r} would have {count} versions in {exclusive.value}; "
                        "another promotion happened meanwhile. Look again and retry"
                    )
            state.versions = versions
            for record in audits:
                self.db.append_event(record, self.clock.now_ms())

    def set_alias(self, name: str, alias: str, version: int, audit: AuditRecord) -> None:
        with self.db.lock:
            self.db.model(name).aliases[alias] = version
            self.db.append_event(audit, self.clock.now_ms())

    def delete_alias(self, name: str, alias: str, audit: AuditRecord) -> None:
        with self.db.lock:
            aliases = self.db.model(name).aliases
            if alias not in aliases:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            del aliases[alias]
            self.db.append_event(audit, self.clock.now_ms())


class MemoryAuditLog:
    def __init__(self, db: MemoryDatabase, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def append(self, record: AuditRecord) -> AuditEvent:
        with self.db.lock:
            return self.db.append_event(record, self.clock.now_ms())

    def list_events(
        self, object_id: str | None, page_size: int, page_token: str | None
    ) -> Page[AuditEvent]:
        fp = query_fingerprint("audit", object_id)
        offset = decode_token(page_token, fp)
        with self.db.lock:
            events = self.db.events[::-1]
        if object_id:
            prefixes = (object_id + "/", object_id + "@")
            events = [
                e for e in events if e.object_id == object_id or e.object_id.startswith(prefixes)
            ]
        return page_of(events, page_size, offset, fp)

    def iter_events(self, until_seq: int | None = None) -> Iterator[AuditEvent]:
        with self.db.lock:
            events = list(self.db.events)
        for event in events:
            if until_seq is not None and event.seq > until_seq:
                return
            yield event

    def head(self) -> tuple[int, str] | None:
        with self.db.lock:
            return self.db.head
