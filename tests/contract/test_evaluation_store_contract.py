"""The EvaluationStore contract, run against memory, SQLite and PostgreSQL.

An evaluation reads back whole (non-finite metrics included), the newest evaluation of a
version is the one that counts, ``evaluation_blobs`` names the blobs of every evaluation
(what gc must keep), and every evaluation leaves its ``model_version.evaluate`` event on
the audit chain in the same call.
"""

from __future__ import annotations

import math

import blake3

from loopml.domain.artifacts import Digest
from loopml.domain.audit import verify_chain
from loopml.domain.model_evaluation import ModelEvaluation, evaluation_recorded
from loopml.ports import AuditLog, EvaluationStore


def blob(content: str) -> Digest:
    return Digest("blake3", blake3.blake3(content.encode()).hexdigest())


def evaluation(
    model: str = "bikes",
    version: int = 1,
    created: int = 5_000,
    tag: str = "a",
    **overrides: object,
) -> ModelEvaluation:
    fields: dict[str, object] = {
        "model": model,
        "version": version,
        "created_ms": created,
        "actor": "ana",
        "task": "regression",
        "rows": 1_200,
        "metrics": {"rmse": 3.25, "r2": 0.81, "slice.weekend.rmse": 4.5},
        "evaluation": blob(f"evaluation-{model}-{version}-{tag}"),
        "report": blob(f"report-{model}-{version}-{tag}"),
        "dataset": "bikes-eval@2",
        "data_validation": {"training": True, "evaluation": None},
        "latency_p99_ms": 1.75,
    }
    fields.update(overrides)
    return ModelEvaluation(**fields)  # type: ignore[arg-type]


def add(evaluations: EvaluationStore, record: ModelEvaluation) -> ModelEvaluation:
    evaluations.add_evaluation(record, evaluation_recorded(record))
    return record


def test_an_evaluation_reads_back_whole(evaluations: EvaluationStore) -> None:
    record = add(evaluations, evaluation())
    assert evaluations.latest_evaluation("bikes", 1) == record


def test_optional_fields_left_out_read_back_empty(evaluations: EvaluationStore) -> None:
    record = add(
        evaluations,
        evaluation(dataset=None, data_validation={}, latency_p99_ms=None, task="classification"),
    )
    assert evaluations.latest_evaluation("bikes", 1) == record


def test_non_finite_metrics_read_back_as_they_were(evaluations: EvaluationStore) -> None:
    add(evaluations, evaluation(metrics={"r2": math.nan, "log_loss": math.inf, "skew": -math.inf}))
    found = evaluations.latest_evaluation("bikes", 1)
    assert found is not None
    assert set(found.metrics) == {"r2", "log_loss", "skew"}
    assert math.isnan(found.metrics["r2"])
    assert found.metrics["log_loss"] == math.inf and found.metrics["skew"] == -math.inf


def test_the_newest_evaluation_of_a_version_counts(evaluations: EvaluationStore) -> None:
    assert evaluations.latest_evaluation("bikes", 1) is None
    first = add(evaluations, evaluation(created=5_000, tag="first"))
    other_version = add(evaluations, evaluation(version=2, created=6_000))
    other_model = add(evaluations, evaluation(model="taxis", created=7_000))
    second = add(evaluations, evaluation(created=8_000, tag="second", metrics={"rmse": 2.0}))
    assert evaluations.latest_evaluation("bikes", 1) == second != first
    assert evaluations.latest_evaluation("bikes", 2) == other_version
    assert evaluations.latest_evaluation("taxis", 1) == other_model
    assert evaluations.latest_evaluation("bikes", 3) is None
    assert evaluations.latest_evaluation("bike", 1) is None  # exact names, no prefixes


def test_evaluation_blobs_are_those_of_every_evaluation(evaluations: EvaluationStore) -> None:
    assert evaluations.evaluation_blobs() == set()
    first = add(evaluations, evaluation(tag="first"))
    second = add(evaluations, evaluation(created=6_000, tag="second"))
    third = add(evaluations, evaluation(version=2, created=7_000))
    # the older evaluation of v1 is superseded but still referenced
    assert evaluations.evaluation_blobs() == {
        str(d) for r in (first, second, third) for d in (r.evaluation, r.report)
    }


def test_each_evaluation_appends_its_audit_event_in_the_same_call(
    evaluations: EvaluationStore, audit: AuditLog
) -> None:
    assert audit.head() is None or audit.head()[0] == 0
    record = add(evaluations, evaluation())
    [event] = audit.list_events("models:/bikes/1", 10, None)
    assert (event.action, event.object_type, event.object_id) == (
        "model_version.evaluate",
        "model_version",
        "models:/bikes/1",
    )
    assert (event.actor, event.time_ms) == ("ana", 5_000)
    assert event.after is not None
    assert event.after["evaluation"] == str(record.evaluation)
    assert event.after["report"] == str(record.report)
    assert event.after["dataset"] == "bikes-eval@2"
    assert audit.head() == (event.seq, event.hash)


def test_evaluation_events_chain_and_list_with_their_model(
    evaluations: EvaluationStore, audit: AuditLog
) -> None:
    add(evaluations, evaluation(version=1, created=5_000))
    add(evaluations, evaluation(version=2, created=6_000))
    add(evaluations, evaluation(version=1, created=7_000, tag="again"))
    add(evaluations, evaluation(model="taxis", created=8_000))
    events = list(audit.iter_events())
    assert [e.action for e in events] == ["model_version.evaluate"] * 4
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert verify_chain(events, audit.head()).ok
    newest_first = [e.object_id for e in audit.list_events("models:/bikes", 10, None)]
    assert newest_first == ["models:/bikes/1", "models:/bikes/2", "models:/bikes/1"]
    assert len(list(audit.list_events("models:/bikes/1", 10, None))) == 2
