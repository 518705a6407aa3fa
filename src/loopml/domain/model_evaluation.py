"""A stored evaluation of a model version: what the gates, ``loopml check`` and cards read.

A :class:`ModelEvaluation` records that a model version was evaluated on some data: the
flat metrics (overall, slices, fairness; see :mod:`loopml.domain.evaluation`), the digests
of the full evaluation (JSON) and its offline HTML report in the blob store, the outcome of
data validation per data role (``training``, ``evaluation``), the predict latency p99 on a
sample and the dataset it was evaluated on. A version may be evaluated many times; the
newest record is the one that counts. Standard library only, no I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loopml.domain.artifacts import Digest
from loopml.domain.audit import AuditRecord
from loopml.domain.errors import InvalidInput, NotFound
from loopml.domain.evaluation_parts import decode_metrics, encode_metrics
from loopml.domain.gate_checks import ModelFacts
from loopml.domain.gates import DATA_ROLES
from loopml.domain.registry import ModelVersion


@dataclass(frozen=True, slots=True)
class ModelEvaluation:
    model: str
    version: int
    created_ms: int
    actor: str
    task: str
    rows: int
    metrics: Mapping[str, float]
    evaluation: Digest  # Evaluation.to_dict() as JSON
    report: Digest  # the self-contained HTML page
    dataset: str | None = None  # ``name@version`` when evaluated on a stored dataset
    data_validation: Mapping[str, bool | None] = field(default_factory=dict)
    latency_p99_ms: float | None = None

    def __post_init__(self) -> None:
        for role, passed in self.data_validation.items():
            if role not in DATA_ROLES or (passed is not None and not isinstance(passed, bool)):
                raise InvalidInput(
                    f"data_validation must map {' / '.join(DATA_ROLES)} to true, false or "
                    f"None, got {role!r}: {passed!r}"
                )
        latency = self.latency_p99_ms
        if latency is not None and not (math.isfinite(latency) and latency >= 0):
            raise InvalidInput(f"latency_p99_ms must be a finite number >= 0, got {latency!r}")

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"

    def facts(self, registered: Mapping[str, float], size_bytes: int | None) -> ModelFacts:
        """The gate facts of the version: its registered metrics, overridden by this
        evaluation's (newer and measured on held-out data), plus validation and latency."""
        return ModelFacts.from_flat_metrics(
            {**registered, **self.metrics},
            data_validation=self.data_validation,
            latency_p99_ms=self.latency_p99_ms,
            model_size_bytes=size_bytes,
            version=self.version,
        )

    def facts_json(self) -> str:
        """The small facts stored in the row (metrics, validation, latency) as JSON."""
        return json.dumps(
            {
                "task": self.task,
                "rows": self.rows,
                "metrics": encode_metrics(self.metrics),
                "data_validation": dict(self.data_validation),
                "latency_p99_ms": self.latency_p99_ms,
            },
            sort_keys=True,
        )


def evaluation_from_row(
    model: str,
    version: int,
    created_ms: int,
    actor: str,
    evaluation: str,
    report: str,
    dataset: str | None,
    facts: str,
) -> ModelEvaluation:
    data: dict[str, Any] = json.loads(facts)
    return ModelEvaluation(
        model=model,
        version=version,
        created_ms=created_ms,
        actor=actor,
        task=data["task"],
        rows=data["rows"],
        metrics=decode_metrics(data["metrics"]),
        evaluation=Digest.parse(evaluation),
        report=Digest.parse(report),
        dataset=dataset,
        data_validation=data["data_validation"],
        latency_p99_ms=data["latency_p99_ms"],
    )


def evaluation_recorded(record: ModelEvaluation) -> AuditRecord:
    return AuditRecord(
        "model_version.evaluate",
        "model_version",
        record.uri,
        record.actor,
        None,
        {
            "evaluation": str(record.evaluation),
            "report": str(record.report),
            "dataset": record.dataset,
            "rows": record.rows,
            "data_validation": dict(record.data_validation),
            "latency_p99_ms": record.latency_p99_ms,
        },
    )


def no_evaluation(mv: ModelVersion) -> NotFound:
    return NotFound(
        f"{mv.uri} has not been evaluated; run `loopml evaluate {mv.uri} --data NAME@VERSION "
        "--label COLUMN` (or `loopml check`) first"
    )
