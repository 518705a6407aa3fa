"""Reproducing a model version: re-run the pipeline steps that led to it, with no cache,
and compare each step's outputs and metrics with the recorded ones (``loopml repro``)."""

from __future__ import annotations

from typing import Any

from loopml.domain.errors import InvalidInput
from loopml.domain.pipelines import Pipeline
from loopml.domain.repro import Match, ReproReport, ReproStep, metric_differences
from loopml.domain.step_cache import StepRecord, explain_change
from loopml.domain.tracking import Run
from loopml.services.pipelines import (
    TAG_PIPELINE_RUN,
    TAG_REPRO_OF,
    TAG_STEP,
    Observer,
    PipelineService,
    StepOutcome,
    StepRuns,
)


def reproduce(
    service: PipelineService,
    pipeline: Pipeline,
    step_run: Run,
    uri: str,
    *,
    runs: StepRuns | None = None,
    observer: Observer | None = None,
) -> ReproReport:
    """Re-run the steps that led to ``step_run`` (the step that registered ``uri``) with
    no cache, and compare each step's outputs and metrics with the recorded ones.

    The registering step itself is re-run only when nothing is upstream of it (its side
    effects, such as registering a version, would otherwise repeat)."""
    name = step_run.tags.get(TAG_STEP)
    parent = step_run.tags.get(TAG_PIPELINE_RUN)
    if name is None or parent is None:
        raise InvalidInput(
            f"{uri} was registered by run {step_run.id}, which is not a pipeline step; "
            "repro re-runs versions built by `loopml run`"
        )
    pipeline.step(name)  # the step must still exist
    originals = service.step_records(pipeline.name, parent)
    upstream = pipeline.upstream_of(name)
    last = upstream[-1] if upstream else name
    result = service.run(
        pipeline,
        runs=runs,
        observer=observer,
        only=last,
        use_cache=False,
        write_cache=False,
        tags={TAG_REPRO_OF: uri},
    )
    compared = []
    for outcome in result.outcomes:
        compared.append(_compare(service, outcome, originals.get(outcome.step)))
    return ReproReport(uri, pipeline.name, result.run_id, tuple(compared))


def _compare(
    service: PipelineService, outcome: StepOutcome, original: StepRecord | None
) -> ReproStep:
    step = outcome.step
    if outcome.record is None:
        return ReproStep(step, Match.FAILED, (outcome.error or "; ".join(outcome.reasons),))
    if original is None:
        return ReproStep(step, Match.DIFFERS, ("no record of this step in the original run",))
    notes: list[str] = []
    same_key = original.key_digest == outcome.record.key_digest
    if not same_key:
        notes.append(
            "not an exact re-run: "
            + "; ".join(explain_change(step, original.key, outcome.record.key))
        )
    changed = sorted(
        out
        for out in set(original.outputs) | set(outcome.record.outputs)
        if original.outputs.get(out, _NONE) != outcome.record.outputs.get(out, _NONE)
    )
    if not changed:
        return ReproStep(step, Match.IDENTICAL, tuple(notes))
    notes.append(f"outputs differ: {', '.join(changed)}")
    before = service.tracking.get_run(original.run_id).metrics
    after = service.tracking.get_run(outcome.record.run_id).metrics
    differences = metric_differences(before, after)
    nondeterministic = same_key
    if nondeterministic:
        notes.append(
            "the step is not deterministic: the same code, params, inputs and libraries gave "
            "different outputs (seed its randomness)"
        )
    if before and not differences:
        return ReproStep(step, Match.METRICS_MATCH, tuple(notes), nondeterministic)
    notes.extend(differences)
    return ReproStep(step, Match.DIFFERS, tuple(notes), nondeterministic)


_NONE: Any = object()
