"""Running a pipeline: content-keyed caching, nested runs, failure isolation and resume.

For each step, in topological order, the runner computes the step's cache key (code,
params, inputs, declared library versions). A key with a cache record whose outputs are
still stored is a **hit**: nothing runs, the outputs are reused (and read only if a later
step runs and needs them). Otherwise the step **runs**, and the runner says exactly what
changed since the step's last record. Every step, hit or not, is a tracked run nested
under the pipeline's run, tagged with its cache key and the reason.

A step that raises stops the steps that depend on it (``skipped``); independent steps go
on, every finished step's outputs are kept, and the pipeline run ends ``failed``.
``resume=True`` continues the newest failed run of the pipeline: steps that finished in
it are taken as they are (even ``cache=False`` ones); the rest run.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from loopml.domain.datasets import DatasetVersion
from loopml.domain.errors import InvalidInput, InvalidState, LoopmlError, NotFound
from loopml.domain.pipelines import Pipeline, Wiring
from loopml.domain.step_cache import (
    InputPrint,
    StepKey,
    StepRecord,
    StoredOutput,
    explain_change,
)
from loopml.domain.tracking import DatasetRef, RunStatus
from loopml.ports import BlobStore, Clock, CodeDigester, OutputCodec, StepCache
from loopml.services.tracking import TrackingService

_PACKAGE = Path(__file__).resolve().parents[1]
TAG_PIPELINE = "loopml.pipeline"
TAG_SOURCE = "loopml.pipeline_source"
TAG_ROLE = "loopml.role"  # "pipeline" on a pipeline's own run
TAG_PIPELINE_RUN = "loopml.pipeline_run"
TAG_STEP = "loopml.step"
TAG_CACHE = "loopml.cache"
TAG_KEY = "loopml.cache_key"
TAG_REASON = "loopml.cache_reason"
TAG_CACHED_FROM = "loopml.cached_from"
TAG_RESUMED_FROM = "loopml.resumed_from"
TAG_REPRO_OF = "loopml.repro_of"


class Status(StrEnum):
    HIT = "hit"  # outputs reused from the cache
    RESUMED = "resumed"  # finished in the failed run being resumed
    RAN = "ran"
    FAILED = "failed"
    SKIPPED = "skipped"  # an upstream step failed


@dataclass
class StepOutcome:
    step: str
    status: Status
    reasons: list[str]
    run_id: str | None = None
    key: str | None = None
    duration_ms: int = 0
    error: str | None = None
    record: StepRecord | None = None


@dataclass
class PipelineResult:
    pipeline: str
    run_id: str
    outcomes: list[StepOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.status not in (Status.FAILED, Status.SKIPPED) for o in self.outcomes)

    @property
    def all_hits(self) -> bool:
        return all(o.status in (Status.HIT, Status.RESUMED) for o in self.outcomes)

    def outcome(self, step: str) -> StepOutcome:
        return next(o for o in self.outcomes if o.step == step)


class StepRuns(Protocol):
    """How the runner opens, activates and closes tracked runs. The client supplies one
    that also makes the run active for ``loopml.log_metric`` inside a step."""

    def start(self, experiment: str, name: str, parent: str | None, tags: dict[str, str]) -> str:
        """Start a run; its id."""
        ...

    def active(self, run_id: str) -> AbstractContextManager[object]: ...
    def finish(self, run_id: str, status: RunStatus) -> None: ...


class ServiceRuns:
    """Plain :class:`StepRuns` on the tracking service (no active-run context)."""

    def __init__(self, tracking: TrackingService) -> None:
        self.tracking = tracking

    def start(self, experiment: str, name: str, parent: str | None, tags: dict[str, str]) -> str:
        return self.tracking.start_run(experiment, name, parent, tags).id

    def active(self, run_id: str) -> AbstractContextManager[object]:
        return nullcontext()

    def finish(self, run_id: str, status: RunStatus) -> None:
        self.tracking.end_run(run_id, status)


class Observer(Protocol):
    def step_started(self, wiring: Wiring, index: int, total: int) -> None: ...
    def step_finished(self, outcome: StepOutcome, index: int, total: int) -> None: ...


class _Quiet:
    def step_started(self, wiring: Wiring, index: int, total: int) -> None:
        pass

    def step_finished(self, outcome: StepOutcome, index: int, total: int) -> None:
        pass


class DatasetSource(Protocol):
    def get(self, ref: str) -> DatasetVersion: ...
    def read(self, ref: str) -> Any: ...


class PipelineService:
    def __init__(
        self,
        tracking: TrackingService,
        cache: StepCache,
        blobs: BlobStore,
        codec: OutputCodec,
        code: CodeDigester,
        datasets: DatasetSource,
        clock: Clock,
    ) -> None:
        self.tracking = tracking
        self.cache = cache
        self.blobs = blobs
        self.codec = codec
        self.code = code
        self.datasets = datasets
        self.clock = clock

    def run(
        self,
        pipeline: Pipeline,
        *,
        runs: StepRuns | None = None,
        observer: Observer | None = None,
        resume: bool = False,
        source: str | None = None,
        only: str | None = None,
        use_cache: bool = True,
        write_cache: bool = True,
        tags: Mapping[str, str] | None = None,
    ) -> PipelineResult:
        """Run ``pipeline`` (or, with ``only``, the steps ``only`` depends on, and it).

        ``use_cache=False`` runs every step; ``write_cache=False`` leaves the cache as it
        was (``repro`` uses both to check a lineage without changing it).
        """
        runs = runs or ServiceRuns(self.tracking)
        observer = observer or _Quiet()
        order = list(pipeline.order)
        if only is not None:
            order = [*pipeline.upstream_of(only), only]
        resumed = self._resumable(pipeline) if resume else None
        run_tags = {TAG_PIPELINE: pipeline.name, TAG_ROLE: "pipeline", **(tags or {})}
        if source:
            run_tags[TAG_SOURCE] = source
        if resumed is not None:
            run_tags[TAG_RESUMED_FROM] = resumed[0]
        parent = runs.start(pipeline.name, pipeline.name, None, run_tags)
        result = PipelineResult(pipeline.name, parent)
        ctx = _RunContext(pipeline, self, runs, parent, use_cache, write_cache)
        try:
            for index, name in enumerate(order):
                wiring = pipeline.step(name)
                observer.step_started(wiring, index, len(order))
                outcome = ctx.step(wiring, resumed[1] if resumed else {})
                result.outcomes.append(outcome)
                observer.step_finished(outcome, index, len(order))
        except BaseException:
            runs.finish(parent, RunStatus.KILLED)
            raise
        runs.finish(parent, RunStatus.FINISHED if result.ok else RunStatus.FAILED)
        return result

    def load_output(self, stored: StoredOutput, *, allow_pickle: bool = False) -> object:
        return self.codec.decode(
            stored.codec, self.blobs.get_bytes(stored.digest), allow_pickle=allow_pickle
        )

    def key_of(self, wiring: Wiring, inputs: Mapping[str, InputPrint]) -> StepKey:
        s = wiring.step
        return StepKey(
            code=self.code.digest(s.func),
            params=dict(wiring.params),
            inputs=dict(inputs),
            libraries={lib: self.code.library_version(lib) for lib in s.libraries},
        )

    def _resumable(self, pipeline: Pipeline) -> tuple[str, dict[str, StepRecord]]:
        """The newest run of ``pipeline`` if it failed, with the records of its finished
        steps by step name."""
        try:
            page = self.tracking.search_runs(
                [pipeline.name],
                f"tags.`{TAG_PIPELINE}` = '{pipeline.name}' and tags.`{TAG_ROLE}` = 'pipeline'",
                ["start_time DESC"],
                page_size=1,
            )
            last = next(iter(page.items), None)
        except NotFound:  # not even its experiment exists yet
            last = None
        if last is None:
            raise NotFound(
                f"pipeline {pipeline.name!r} has never run, so there is nothing to resume; "
                "run it without --resume"
            )
        if last.status is not RunStatus.FAILED:
            raise InvalidState(
                f"the newest run of pipeline {pipeline.name!r} ({last.id}) is "
                f"{last.status.value}, not failed: nothing to resume; run without --resume"
            )
        return last.id, self.step_records(pipeline.name, last.id)

    def step_records(self, pipeline: str, run_id: str) -> dict[str, StepRecord]:
        """The records of the steps that finished in pipeline run ``run_id``, by step."""
        found: dict[str, StepRecord] = {}
        children = self.tracking.search_runs(
            [pipeline], f"tags.`{TAG_PIPELINE_RUN}` = '{run_id}'", page_size=1000
        )
        for child in children.items:
            step_name, key = child.tags.get(TAG_STEP), child.tags.get(TAG_KEY)
            if child.status is RunStatus.FINISHED and step_name and key:
                record = self.cache.find_step(pipeline, step_name, key)
                if record is not None:
                    found[step_name] = record
        return found


class _RunContext:
    """The state of one pipeline run: the outputs so far, and which steps failed."""

    def __init__(
        self,
        pipeline: Pipeline,
        service: PipelineService,
        runs: StepRuns,
        parent: str,
        use_cache: bool,
        write_cache: bool,
    ) -> None:
        self.pipeline = pipeline
        self.service = service
        self.runs = runs
        self.parent = parent
        self.use_cache = use_cache
        self.write_cache = write_cache
        self.outputs: dict[str, tuple[str, StoredOutput]] = {}  # output -> (step, stored)
        self.loaded: dict[str, object] = {}
        self.failed: set[str] = set()
        self.datasets: dict[str, DatasetVersion] = {}
        self.lineage: dict[str, list[DatasetRef]] = {}  # step -> datasets upstream of it

    def step(self, wiring: Wiring, resumable: Mapping[str, StepRecord]) -> StepOutcome:
        name = wiring.name
        broken = [up for up in wiring.upstream if up in self.failed]
        if broken:
            self.failed.add(name)
            return StepOutcome(
                name, Status.SKIPPED, [f"upstream step {', '.join(broken)} did not finish"]
            )
        try:
            inputs = self._fingerprints(wiring)
            key = self.service.key_of(wiring, inputs)
        except LoopmlError as exc:
            self.failed.add(name)
            return StepOutcome(name, Status.FAILED, [str(exc)], error=str(exc))
        digest = key.digest()
        tags = {
            TAG_PIPELINE: self.pipeline.name,
            TAG_PIPELINE_RUN: self.parent,
            TAG_STEP: name,
            TAG_KEY: digest,
        }
        reused = resumable.get(name)
        if reused is not None and self._stored(reused):
            reasons = [f"finished in the resumed run (run {reused.run_id})"]
            if reused.key_digest != digest:
                reasons.append(
                    "warning: its cache key has changed since: "
                    + "; ".join(explain_change(name, reused.key, key))
                )
            return self._reuse(wiring, reused, Status.RESUMED, reasons, tags)
        cache = self.service.cache
        if self.use_cache and wiring.step.cache:
            hit = cache.find_step(self.pipeline.name, name, digest)
            if hit is not None and self._stored(hit):
                reasons = [f"same code, params, inputs and libraries as run {hit.run_id}"]
                return self._reuse(wiring, hit, Status.HIT, reasons, tags)
            if hit is not None:
                reasons = ["its cached outputs are gone from the artifact store (gc?)"]
            else:
                last = cache.latest_step(self.pipeline.name, name)
                reasons = explain_change(name, None if last is None else last.key, key)
        elif not wiring.step.cache:
            reasons = [f"step {name} is marked cache=False: it runs every time"]
        else:
            reasons = ["run again without the cache (repro)"]
        return self._execute(wiring, key, reasons, tags)

    # -------------------------------------------------------------------------------------
    def _fingerprints(self, wiring: Wiring) -> dict[str, InputPrint]:
        prints: dict[str, InputPrint] = {}
        refs: dict[tuple[str, int], DatasetRef] = {}
        for param, ref in wiring.datasets.items():
            version = self._dataset(ref)
            prints[param] = InputPrint(f"{version.name}@{version.version}", version.digest)
            refs[(version.name, version.version)] = DatasetRef(
                version.name, version.version, version.digest
            )
        for param in wiring.inputs:
            producer, stored = self.outputs[param]
            label = producer if producer == param else f"{producer}.{param}"
            prints[param] = InputPrint(label, str(stored.digest))
        for up in wiring.upstream:
            refs.update({(r.name, r.version): r for r in self.lineage.get(up, [])})
        self.lineage[wiring.name] = list(refs.values())
        return prints

    def _dataset(self, ref: str) -> DatasetVersion:
        if ref not in self.datasets:  # one resolution per run: `latest` cannot move midway
            self.datasets[ref] = self.service.datasets.get(ref)
        return self.datasets[ref]

    def _stored(self, record: StepRecord) -> bool:
        blobs = self.service.blobs
        return set(record.outputs) >= set(self._wired_outputs(record.step)) and all(
            blobs.exists(o.digest) for o in record.outputs.values()
        )

    def _wired_outputs(self, step: str) -> tuple[str, ...]:
        return self.pipeline.step(step).step.outputs

    def _reuse(
        self,
        wiring: Wiring,
        record: StepRecord,
        status: Status,
        reasons: list[str],
        tags: dict[str, str],
    ) -> StepOutcome:
        tags = {**tags, TAG_CACHE: status.value, TAG_CACHED_FROM: record.run_id}
        tags[TAG_REASON] = "; ".join(reasons)[:4000]
        run = self.runs.start(self.pipeline.name, wiring.name, self.parent, tags)
        try:
            self._log_run_facts(run, wiring)
        finally:
            self.runs.finish(run, RunStatus.FINISHED)
        for out in wiring.step.outputs:
            self.outputs[out] = (wiring.name, record.outputs[out])
        return StepOutcome(wiring.name, status, reasons, run, record.key_digest, record=record)

    def _execute(
        self, wiring: Wiring, key: StepKey, reasons: list[str], tags: dict[str, str]
    ) -> StepOutcome:
        name = wiring.name
        tags = {**tags, TAG_CACHE: "miss", TAG_REASON: "; ".join(reasons)[:4000]}
        run = self.runs.start(self.pipeline.name, name, self.parent, tags)
        started = time.perf_counter()
        status = RunStatus.FAILED
        try:
            self._log_run_facts(run, wiring)
            kwargs = self._arguments(wiring)
            with self.runs.active(run):
                value = wiring.step.func(**kwargs)
            stored, fresh = self._store(wiring, value)
            status = RunStatus.FINISHED
        except Exception as exc:
            self.failed.add(name)
            message = f"{type(exc).__name__}: {exc}"
            where = _user_frame(exc)
            error = f"step {name} raised {message}" + (f" (at {where})" if where else "")
            return StepOutcome(
                name,
                Status.FAILED,
                reasons,
                run,
                key.digest(),
                _ms(started),
                error=error,
            )
        finally:
            self.runs.finish(run, status)
        duration = _ms(started)
        record = StepRecord(
            pipeline=self.pipeline.name,
            step=name,
            key=key,
            outputs=stored,
            run_id=run,
            created_ms=self.service.clock.now_ms(),
            duration_ms=duration,
        )
        if self.write_cache:
            self.service.cache.put_step(record)
        self.outputs.update({out: (name, s) for out, s in stored.items()})
        # Downstream steps get data values as they are, not re-read; a model is read back
        # from its stored form, so that a later cache hit hands over the same kind of object.
        self.loaded.update(
            {out: v for out, v in fresh.items() if not stored[out].codec.startswith("model:")}
        )
        return StepOutcome(
            name, Status.RAN, reasons, run, record.key_digest, duration, record=record
        )

    def _log_run_facts(self, run_id: str, wiring: Wiring) -> None:
        tracking = self.service.tracking
        if wiring.params:
            tracking.log_params(run_id, {k: _param(v) for k, v in wiring.params.items()})
        if self.lineage.get(wiring.name):
            tracking.log_inputs(run_id, self.lineage[wiring.name])

    def _arguments(self, wiring: Wiring) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(wiring.params)
        for param, ref in wiring.datasets.items():
            version = self._dataset(ref)
            table = self.service.datasets.read(f"{version.name}@{version.version}")
            kwargs[param] = table.to_pandas()  # steps get a DataFrame, as users expect
        for param in wiring.inputs:
            kwargs[param] = self._value(param)
        return kwargs

    def _value(self, output: str) -> object:
        if output not in self.loaded:
            producer, stored = self.outputs[output]
            allow = self.pipeline.step(producer).step.pickle
            self.loaded[output] = self.service.load_output(stored, allow_pickle=allow)
        return self.loaded[output]

    def _store(
        self, wiring: Wiring, value: object
    ) -> tuple[dict[str, StoredOutput], dict[str, object]]:
        s = wiring.step
        values = _split_outputs(s.name, s.outputs, value)
        stored: dict[str, StoredOutput] = {}
        for out, v in values.items():
            try:
                codec, data = self.service.codec.encode(v, allow_pickle=s.pickle)
            except InvalidInput as exc:
                raise InvalidInput(f"output {out!r} of step {s.name!r}: {exc}") from exc
            digest, _ = self.service.blobs.store_bytes(data)
            stored[out] = StoredOutput(codec, digest, len(data))
        return stored, values


def _split_outputs(step: str, outputs: tuple[str, ...], value: object) -> dict[str, object]:
    if len(outputs) == 1:
        return {outputs[0]: value}
    if isinstance(value, Mapping):
        if set(value) != set(outputs):
            raise InvalidInput(
                f"step {step!r} returned a dict with keys {sorted(map(str, value))}, but it "
                f"declares outputs {list(outputs)}; return exactly those keys"
            )
        return {o: value[o] for o in outputs}
    if isinstance(value, tuple) and len(value) == len(outputs):
        return dict(zip(outputs, value, strict=True))
    got = f"a tuple of {len(value)}" if isinstance(value, tuple) else type(value).__name__
    raise InvalidInput(
        f"step {step!r} declares outputs {list(outputs)} but returned {got}; return a "
        f"tuple of {len(outputs)} values in that order, or a dict with those keys"
    )


def _param(value: object) -> object:
    return value if isinstance(value, str | int | float | bool) else repr(value)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _user_frame(exc: BaseException) -> str | None:
    """``file:line`` of the innermost frame outside loopml, where the step failed."""
    frames: Iterator[traceback.FrameSummary] = reversed(traceback.extract_tb(exc.__traceback__))
    for frame in frames:
        if not Path(frame.filename).resolve().is_relative_to(_PACKAGE):
            return f"{frame.filename}:{frame.lineno}"
    return None


def outputs_of(result: PipelineResult, step: str) -> Mapping[str, StoredOutput]:
    record = result.outcome(step).record
    if record is None:
        raise InvalidState(f"step {step} did not finish, so it has no outputs")
    return record.outputs
