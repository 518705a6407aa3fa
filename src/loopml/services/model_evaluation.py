"""Evaluating a registered model version and storing the result with it.

``evaluate`` loads the version, predicts on labelled rows (a stored dataset version or a
table), computes the evaluation (:mod:`loopml.stats.evaluation`), optionally validates the
evaluation data and the version's training data against a schema, measures the predict
latency p99 on single rows, and stores the evaluation as JSON and as an offline HTML
report in the blob store, with a small record the gates read (:class:`ModelEvaluation`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from loopml.domain.check_summary import CheckSummary
from loopml.domain.data_schema import DataSchema
from loopml.domain.errors import InvalidInput
from loopml.domain.evaluation import Evaluation
from loopml.domain.gates import EVALUATION, TRAINING
from loopml.domain.lifecycle import Stage
from loopml.domain.model_evaluation import ModelEvaluation, evaluation_recorded, no_evaluation
from loopml.domain.registry import ModelVersion
from loopml.domain.validation_report import ValidationReport
from loopml.ports import BlobStore, Clock, EvaluationStore
from loopml.services.datasets import DatasetService
from loopml.services.registry import RegistryService
from loopml.stats.evaluation import evaluate_classification, evaluate_regression
from loopml.stats.importance import permutation_importance
from loopml.stats.validate import validate

LATENCY_ROWS = 200
Renderer = Callable[[Evaluation, str], str]


@dataclass(frozen=True)
class EvaluationResult:
    record: ModelEvaluation
    evaluation: Evaluation
    validation: dict[str, ValidationReport]


class EvaluationService:
    def __init__(
        self,
        registry: RegistryService,
        store: EvaluationStore,
        blobs: BlobStore,
        datasets: DatasetService,
        render: Renderer,
        clock: Clock,
    ) -> None:
        self.registry = registry
        self.store = store
        self.blobs = blobs
        self.datasets = datasets
        self.render = render
        self.clock = clock

    def evaluate(
        self,
        uri: str,
        data: str | Any,
        *,
        label: str,
        actor: str,
        slices: Sequence[str] = (),
        sensitive: Sequence[str] = (),
        schema: DataSchema | None = None,
        importance_metric: str | None = None,
        latency_rows: int = LATENCY_ROWS,
        trusted: bool = False,
    ) -> EvaluationResult:
        """Evaluate the version ``uri`` names on ``data`` (a dataset reference such as
        ``bikes@3``, or a pandas DataFrame / Arrow table) and store the result."""
        mv = self.registry.resolve(uri)
        model = self.registry.load(mv.uri, trusted=trusted)
        dataset = None
        if isinstance(data, str):
            version = self.datasets.get(data)
            dataset = f"{version.name}@{version.version}"
            table = self.datasets.read(dataset)
        else:
            table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data)
        frame = table.to_pandas()
        if label not in frame.columns:
            raise InvalidInput(
                f"label column {label!r} is not in the evaluation data; its columns are: "
                f"{', '.join(map(str, frame.columns))}"
            )
        features = _features(mv, frame, label)
        x = frame[features]
        y = frame[label].to_numpy()
        is_classifier = hasattr(model, "predict_proba")
        predict = model.predict  # type: ignore[attr-defined]
        y_pred = predict(x)
        if is_classifier:
            proba = model.predict_proba(x)  # type: ignore[attr-defined]
            classes = list(getattr(model, "classes_", []))
            scores = proba[:, 1] if proba.shape[1] == 2 else proba
            evaluation = evaluate_classification(
                y,
                y_pred,
                scores,
                labels=classes or None,
                data=frame,
                slices=list(slices),
                sensitive=list(sensitive),
                label_name=label,
            )
        else:
            evaluation = evaluate_regression(
                y,
                y_pred,
                data=frame,
                slices=list(slices),
                sensitive=list(sensitive),
                label_name=label,
            )
        if importance_metric is not None:
            evaluation = evaluation.with_importance(
                permutation_importance(predict, x, y, metric=importance_metric)
            )
        validation = self._validate(mv, table, schema)
        record = self.record(
            mv,
            evaluation,
            actor,
            dataset=dataset,
            data_validation={role: r.ok for role, r in validation.items()},
            latency_p99_ms=measure_latency_p99_ms(predict, x, latency_rows),
        )
        return EvaluationResult(record, evaluation, validation)

    def record(
        self,
        mv: ModelVersion,
        evaluation: Evaluation,
        actor: str,
        *,
        dataset: str | None = None,
        data_validation: Mapping[str, bool | None] | None = None,
        latency_p99_ms: float | None = None,
    ) -> ModelEvaluation:
        """Store an evaluation computed elsewhere (in a pipeline step, say) with ``mv``."""
        title = f"{mv.uri} on {dataset or 'held-out data'}"
        document = json.dumps(evaluation.to_dict(), sort_keys=True).encode()
        evaluation_digest, _ = self.blobs.store_bytes(document)
        report_digest, _ = self.blobs.store_bytes(self.render(evaluation, title).encode())
        record = ModelEvaluation(
            model=mv.model,
            version=mv.version,
            created_ms=self.clock.now_ms(),
            actor=actor,
            task=evaluation.task,
            rows=evaluation.rows,
            metrics=evaluation.flat_metrics(),
            evaluation=evaluation_digest,
            report=report_digest,
            dataset=dataset,
            data_validation=dict(data_validation or {}),
            latency_p99_ms=latency_p99_ms,
        )
        self.store.add_evaluation(record, evaluation_recorded(record))
        return record

    def latest(self, uri: str) -> ModelEvaluation:
        mv = self.registry.resolve(uri)
        record = self.store.latest_evaluation(mv.model, mv.version)
        if record is None:
            raise no_evaluation(mv)
        return record

    def load(self, record: ModelEvaluation) -> Evaluation:
        return Evaluation.from_dict(json.loads(self.blobs.get_bytes(record.evaluation)))

    def report_html(self, record: ModelEvaluation) -> str:
        return self.blobs.get_bytes(record.report).decode()

    def _validate(
        self, mv: ModelVersion, table: pa.Table, schema: DataSchema | None
    ) -> dict[str, ValidationReport]:
        if schema is None:
            return {}
        reports = {EVALUATION: validate(iter(table.to_batches()), schema)}
        training = mv.inputs
        if training:
            # Every training input must pass; the first failing report is the one kept.
            chosen: ValidationReport | None = None
            for ref in training:
                version = self.datasets.get(f"{ref.name}@{ref.version}")
                report = validate(self.datasets.batches(version), schema)
                if chosen is None or (chosen.ok and not report.ok):
                    chosen = report
            assert chosen is not None
            reports[TRAINING] = chosen
        return reports


def _features(mv: ModelVersion, frame: Any, label: str) -> list[str]:
    if mv.signature is not None and mv.signature.inputs:
        wanted = [c.name for c in mv.signature.inputs]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise InvalidInput(
                f"{mv.uri} needs input columns {missing} that the evaluation data lacks; "
                "evaluate on data with the model's input columns"
            )
        return wanted
    return [str(c) for c in frame.columns if c != label]


def measure_latency_p99_ms(predict: Callable[[Any], Any], x: Any, rows: int) -> float | None:
    """The 99th percentile of one-row predict latency over the first ``rows`` rows."""
    n = min(rows, len(x))
    if n == 0:
        return None
    timings = np.empty(n)
    for i in range(n):
        one = x.iloc[i : i + 1]
        started = time.perf_counter()
        predict(one)
        timings[i] = time.perf_counter() - started
    return float(np.percentile(timings, 99) * 1000)


def check(
    service: EvaluationService,
    uri: str,
    stage: Stage | str,
    data: str | Any | None,
    **evaluate: Any,
) -> CheckSummary:
    """Validate, evaluate and run the gates of ``stage`` on the version ``uri`` names:
    the verdict of ``loopml check``. Without ``data``, the newest stored evaluation is
    judged instead (and no validation runs)."""
    mv = service.registry.resolve(uri)
    if data is None:
        record, validation = service.latest(mv.uri), {}
    else:
        result = service.evaluate(mv.uri, data, **evaluate)
        record, validation = result.record, result.validation
    report = service.registry.gate_report(mv.model, mv.version, stage)
    return CheckSummary(mv.uri, record, report, validation)
