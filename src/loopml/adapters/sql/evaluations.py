"""Evaluations of model versions in SQL, each written with its audit event."""

from __future__ import annotations

from sqlalchemy import select

from loopml.adapters.sql import schema as t
from loopml.adapters.sql.audit import append_event
from loopml.adapters.sql.database import SqlDatabase
from loopml.domain.audit import AuditRecord
from loopml.domain.model_evaluation import ModelEvaluation, evaluation_from_row

_e = t.model_evaluations.c


class SqlEvaluationStore:
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def add_evaluation(self, record: ModelEvaluation, audit: AuditRecord) -> None:
        with self.db.write() as conn:
            conn.execute(
                t.model_evaluations.insert().values(
                    model=record.model,
                    version=record.version,
                    created_ms=record.created_ms,
                    actor=record.actor,
                    evaluation=str(record.evaluation),
                    report=str(record.report),
                    dataset=record.dataset,
                    facts=record.facts_json(),
                )
            )
            append_event(conn, audit, record.created_ms)

    def latest_evaluation(self, model: str, version: int) -> ModelEvaluation | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(
                    _e.model,
                    _e.version,
                    _e.created_ms,
                    _e.actor,
                    _e.evaluation,
                    _e.report,
                    _e.dataset,
                    _e.facts,
                )
                .where(_e.model == model, _e.version == version)
                .order_by(_e.id.desc())
                .limit(1)
            ).first()
        return None if row is None else evaluation_from_row(*row)

    def evaluation_blobs(self) -> set[str]:
        with self.db.read() as conn:
            rows = conn.execute(select(_e.evaluation, _e.report)).all()
        return {digest for row in rows for digest in row}
