"""The row form of monitoring values, shared by the SQL stores and their memory twins.

Monitoring windows, references, review items and loop runs keep their structured parts
as canonical JSON text (decision 5 of docs/architecture.md). The memory stores keep the
same text rather than the objects, so both backends accept and return exactly the same
values: a tuple comes back as a list, a value JSON cannot hold is refused with
:class:`InvalidInput` before anything is written, and a damaged row is reported the same
way, as :class:`StorageError` naming the row, by every backend.

``score_column`` is the one number of a window that SQL can filter and sort on. JSON has
no infinity, and a window whose reference column had no spread scores infinite, so the
column holds the largest float instead (ordering is kept) and NULL for NaN; reads never
use it: they rebuild the score from the report.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from loopml.domain.audit import canonical_json
from loopml.domain.errors import (
    AlreadyExists,
    ConcurrentModification,
    InvalidInput,
    InvalidState,
    NotFound,
    StorageError,
)
from loopml.domain.loop import JobRun, JobState, LoopRun
from loopml.domain.monitoring import WindowReport
from loopml.domain.review import ReviewItem, ReviewStatus

T = TypeVar("T")

# Longest text each key column holds (PostgreSQL enforces them, SQLite does not: both
# backends check here so that the same value fails the same way everywhere).
DEPLOYMENT_LEN = 128
WINDOW_KEY_LEN = 256
REFERENCE_KEY_LEN = 256
REQUEST_ID_LEN = 128
REVIEWER_LEN = 256
LOOP_ID_LEN = 64
JOB_LEN = 128

_DAMAGED = (
    "the metadata database is damaged or was edited outside loopml; restore it from a "
    "backup, or delete that row"
)


def fits(what: str, value: str, limit: int) -> str:
    """``value`` if it is a non-empty string of at most ``limit`` characters."""
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidInput(
            f"{what} must be a non-empty string of at most {limit} characters, got {value!r:.80}"
        )
    return value


def to_json(what: str, value: object) -> str:
    """Canonical JSON text of ``value``; :class:`InvalidInput` naming ``what`` if JSON
    cannot hold it (a set, bytes, an object, a dict with keys of mixed types...)."""
    try:
        return canonical_json(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{what} must be plain JSON data (strings, numbers, booleans, None, lists and "
            f"dicts with string keys); {exc}. Convert it before storing it"
        ) from exc


def from_json(what: str, text: str | None, build: Callable[[Any], T]) -> T:
    """``build(parsed text)``; :class:`StorageError` naming ``what`` if either step fails."""
    try:
        if text is None:
            raise ValueError("the stored text is missing")
        return build(json.loads(text))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # InvalidInput too
        raise StorageError(f"{what} cannot be read ({exc}); {_DAMAGED}") from exc


def score_column(score: float) -> float | None:
    if math.isnan(score):
        return None
    return max(-sys.float_info.max, min(score, sys.float_info.max))


# monitoring windows and references ---------------------------------------------------------
def window_row(report: WindowReport) -> dict[str, Any]:
    fits("deployment name", report.deployment, DEPLOYMENT_LEN)
    fits("window key", report.window_key, WINDOW_KEY_LEN)
    return {
        "deployment": report.deployment,
        "window_key": report.window_key,
        "start_ms": report.start_ms,
        "end_ms": report.end_ms,
        "rows": report.rows,
        "score": score_column(report.score),
        "created_ms": report.created_ms,
        "report": to_json(f"monitoring window {report.window_key!r}", report.to_dict()),
    }


def no_window(report: WindowReport) -> NotFound:
    return NotFound(
        f"monitoring window {report.window_key!r} of {report.deployment!r} is not stored; "
        "windows are stored by the monitor (loopml monitor run) before they are updated"
    )


def window_from_text(deployment: str, window_key: str, text: str | None) -> WindowReport:
    return from_json(
        f"monitoring window {window_key!r} of {deployment!r}", text, WindowReport.from_dict
    )


def reference_from_text(key: str, text: str | None) -> dict[str, Any]:
    return from_json(f"monitoring reference {key!r}", text, _object)


# review items ------------------------------------------------------------------------------
def review_row(item: ReviewItem) -> dict[str, Any]:
    """The columns of a newly queued item (the store gives the id)."""
    if item.status is not ReviewStatus.OPEN:
        raise InvalidInput(
            f"review item {item.request_id}/{item.row} is {item.status.value}; items are "
            "queued open and answered with label_item"
        )
    fits("deployment name", item.deployment, DEPLOYMENT_LEN)
    fits("request id", item.request_id, REQUEST_ID_LEN)
    where = f"review item {item.request_id}/{item.row}"
    return {
        "deployment": item.deployment,
        "request_id": item.request_id,
        "row": item.row,
        "request_rows": item.request_rows,
        "model": item.model,
        "version": item.version,
        "time_ms": item.time_ms,
        "inputs": to_json(f"the inputs of {where}", dict(item.inputs)),
        "output": to_json(f"the output of {where}", item.output),
        "confidence": float(item.confidence),
        "status": ReviewStatus.OPEN.value,
        "label": None,
        "reviewer": None,
        "labelled_ms": None,
        "agrees": None,
    }


def review_from_row(row: Mapping[Any, Any]) -> ReviewItem:
    """The item of a row (a SQL row mapping, or the memory store's dict of the same keys)."""
    where = f"review item {row['id']}"
    label = row["label"]
    try:
        status = ReviewStatus(row["status"])
    except ValueError as exc:
        raise StorageError(f"{where} has an unknown status {row['status']!r}; {_DAMAGED}") from exc
    return ReviewItem(
        deployment=row["deployment"],
        request_id=row["request_id"],
        row=int(row["row"]),
        model=row["model"],
        version=int(row["version"]),
        time_ms=int(row["time_ms"]),
        inputs=from_json(f"the inputs of {where}", row["inputs"], _object),
        output=from_json(f"the output of {where}", row["output"], _same),
        confidence=float(row["confidence"]),
        request_rows=int(row["request_rows"]),
        id=int(row["id"]),
        status=status,
        label=None if label is None else from_json(f"the label of {where}", label, _same),
        reviewer=row["reviewer"],
        labelled_ms=None if row["labelled_ms"] is None else int(row["labelled_ms"]),
        agrees=None if row["agrees"] is None else bool(row["agrees"]),
    )


def label_columns(
    item_id: int, label: Any, reviewer: str, time_ms: int, agrees: bool
) -> dict[str, Any]:
    """The columns an answer changes."""
    if not isinstance(reviewer, str) or not reviewer:
        raise InvalidInput(f"an answer to review item {item_id} needs a reviewer, got {reviewer!r}")
    fits("reviewer", reviewer, REVIEWER_LEN)
    return {
        "status": ReviewStatus.LABELLED.value,
        "label": to_json(f"the label of review item {item_id}", label),
        "reviewer": reviewer,
        "labelled_ms": time_ms,
        "agrees": bool(agrees),
    }


# loop runs ---------------------------------------------------------------------------------
def loop_row(run: LoopRun) -> dict[str, Any]:
    fits("loop run id", run.id, LOOP_ID_LEN)
    fits("deployment name", run.deployment, DEPLOYMENT_LEN)
    return {
        "id": run.id,
        "deployment": run.deployment,
        "state": run.state.value,
        "revision": run.revision,
        "created_ms": run.created_ms,
        "updated_ms": run.updated_ms,
        "data": to_json(f"loop run {run.id!r}", run.to_dict()),
    }


def loop_from_text(loop_id: str, text: str | None) -> LoopRun:
    return from_json(f"loop run {loop_id!r}", text, LoopRun.from_dict)


# agent jobs --------------------------------------------------------------------------------
def job_from_row(row: Mapping[Any, Any]) -> JobRun:
    try:
        state = JobState(row["state"])
    except ValueError as exc:
        raise StorageError(
            f"job {row['job']!r} at slot {row['due_ms']} has an unknown state "
            f"{row['state']!r}; {_DAMAGED}"
        ) from exc
    return JobRun(
        job=row["job"],
        due_ms=int(row["due_ms"]),
        started_ms=int(row["started_ms"]),
        state=state,
        finished_ms=None if row["finished_ms"] is None else int(row["finished_ms"]),
        detail=row["detail"],
    )


def check_finished(job: str, state: JobState) -> None:
    if state is JobState.RUNNING:
        raise InvalidInput(
            f"finish_job of {job!r} needs the final state "
            f"({JobState.DONE.value} or {JobState.FAILED.value}), got {state.value}"
        )


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive integer, got {limit!r}")
    return limit


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, found {type(data).__name__}")
    return data


def _same(data: Any) -> Any:
    return data


# errors both backends raise with the same words ---------------------------------------------
def no_review_item(item_id: int) -> NotFound:
    return NotFound(
        f"review item {item_id} does not exist; item ids are shown by `loopml review next`"
    )


def answered_already(item: ReviewItem) -> InvalidState:
    return InvalidState(
        f"review item {item.id} ({item.request_id}/{item.row}) was answered already by "
        f"{item.reviewer!r} at {item.labelled_ms} with {item.label!r}; an answer is final, "
        "take the next open item instead"
    )


def no_loop(loop_id: str) -> NotFound:
    return NotFound(
        f"loop run {loop_id!r} does not exist; list a deployment's loop runs to find its id"
    )


def loop_changed_meanwhile(run: LoopRun, stored_revision: int) -> ConcurrentModification:
    return ConcurrentModification(
        f"loop run {run.id!r} of {run.deployment!r} is at revision {stored_revision}, but this "
        f"change was made from revision {run.revision - 1}: someone else changed it meanwhile "
        "(another agent?); read it again and redo the step only if it is still needed"
    )


def loop_exists(run: LoopRun) -> AlreadyExists:
    return AlreadyExists(
        f"loop run {run.id!r} already exists; loop run ids are unique, generate a new one"
    )


def no_job_slot(job: str, due_ms: int) -> NotFound:
    return NotFound(
        f"job {job!r} has no claimed slot due at {due_ms}; claim_job records a slot before "
        "it runs, finish_job closes it"
    )


def job_finished_already(run: JobRun) -> InvalidState:
    return InvalidState(
        f"job {run.job!r} at slot {run.due_ms} finished already ({run.state.value} at "
        f"{run.finished_ms}: {run.detail!r}); a slot is finished once"
    )
