"""In-memory evaluation store and step cache, sharing :class:`MemoryDatabase`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml.adapters.memory.stores import MemoryDatabase

if TYPE_CHECKING:
    from loopml.domain.audit import AuditRecord
    from loopml.domain.model_evaluation import ModelEvaluation
    from loopml.domain.step_cache import StepRecord


class MemoryEvaluationStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    def add_evaluation(self, record: ModelEvaluation, audit: AuditRecord) -> None:
        with self.db.lock:
            self.db.evaluations.append(record)
            self.db.append_event(audit, record.created_ms)

    def latest_evaluation(self, model: str, version: int) -> ModelEvaluation | None:
        with self.db.lock:
            found = [e for e in self.db.evaluations if (e.model, e.version) == (model, version)]
            return found[-1] if found else None

    def evaluation_blobs(self) -> set[str]:
        with self.db.lock:
            return {str(d) for e in self.db.evaluations for d in (e.evaluation, e.report)}


class MemoryStepCache:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    def find_step(self, pipeline: str, step: str, key_digest: str) -> StepRecord | None:
        with self.db.lock:
            return self.db.steps.get((pipeline, step, key_digest))

    def latest_step(self, pipeline: str, step: str) -> StepRecord | None:
        with self.db.lock:
            found = [r for k, r in self.db.steps.items() if k[:2] == (pipeline, step)]
            return max(found, key=lambda r: r.created_ms, default=None)

    def find_by_run(self, run_id: str) -> StepRecord | None:
        with self.db.lock:
            return next((r for r in self.db.steps.values() if r.run_id == run_id), None)

    def put_step(self, record: StepRecord) -> None:
        with self.db.lock:
            key = (record.pipeline, record.step, record.key_digest)
            self.db.steps.pop(key, None)  # re-inserted last: newest wins ties
            self.db.steps[key] = record

    def step_blobs(self) -> set[str]:
        with self.db.lock:
            return {str(o.digest) for r in self.db.steps.values() for o in r.outputs.values()}
