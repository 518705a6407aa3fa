"""The pipeline step cache in SQL: one row per (pipeline, step, cache key)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Row, delete, select

from loopml.adapters.sql import schema as t
from loopml.adapters.sql.database import SqlDatabase
from loopml.domain.step_cache import StepKey, StepRecord, outputs_from_json

_s = t.step_cache.c


class SqlStepCache:
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def find_step(self, pipeline: str, step: str, key_digest: str) -> StepRecord | None:
        return self._one((_s.pipeline == pipeline, _s.step == step, _s.key_digest == key_digest))

    def latest_step(self, pipeline: str, step: str) -> StepRecord | None:
        return self._one((_s.pipeline == pipeline, _s.step == step))

    def find_by_run(self, run_id: str) -> StepRecord | None:
        return self._one((_s.run_id == run_id,))

    def put_step(self, record: StepRecord) -> None:
        where = (
            _s.pipeline == record.pipeline,
            _s.step == record.step,
            _s.key_digest == record.key_digest,
        )
        with self.db.write() as conn:
            conn.execute(delete(t.step_cache).where(*where))
            conn.execute(
                t.step_cache.insert().values(
                    pipeline=record.pipeline,
                    step=record.step,
                    key_digest=record.key_digest,
                    key=json.dumps(record.key.to_dict(), sort_keys=True),
                    outputs=record.outputs_json(),
                    run_id=record.run_id,
                    created_ms=record.created_ms,
                    duration_ms=record.duration_ms,
                )
            )

    def step_blobs(self) -> set[str]:
        with self.db.read() as conn:
            rows = conn.execute(select(_s.outputs)).scalars().all()
        return {str(o.digest) for text in rows for o in outputs_from_json(text).values()}

    def _one(self, where: tuple[Any, ...]) -> StepRecord | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(t.step_cache).where(*where).order_by(_s.created_ms.desc()).limit(1)
            ).first()
        return None if row is None else _record(row)


def _record(row: Row[Any]) -> StepRecord:
    return StepRecord(
        pipeline=row.pipeline,
        step=row.step,
        key=StepKey.from_dict(json.loads(row.key)),
        outputs=outputs_from_json(row.outputs),
        run_id=row.run_id,
        created_ms=int(row.created_ms),
        duration_ms=int(row.duration_ms),
        key_digest=row.key_digest,
    )
