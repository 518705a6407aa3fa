"""Retrain loop runs and the agent's job ledger in SQL.

A loop run is stored whole as JSON, with its state and revision in columns beside it: a
change is a compare-and-set on the revision (``run.revision - 1`` must be stored), written
with its audit event in one transaction, so an agent that resumes a run after a crash,
racing another agent, cannot apply a stage twice.

Claiming a job slot is one insert that does nothing on the ``(job, due_ms)`` primary
key: the database decides which of two racing agents (or one agent before and after a
restart) runs the slot, and the loser learns it from the result.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from loopml.adapters.monitor_rows import (
    JOB_LEN,
    check_finished,
    check_limit,
    fits,
    job_finished_already,
    job_from_row,
    loop_changed_meanwhile,
    loop_exists,
    loop_from_text,
    loop_row,
    no_job_slot,
    no_loop,
)
from loopml.adapters.sql import schema as t
from loopml.adapters.sql.audit import append_event
from loopml.adapters.sql.database import SqlDatabase
from loopml.domain.audit import AuditRecord
from loopml.domain.loop import JobRun, JobState, LoopRun

_l = t.loop_runs.c
_j = t.agent_jobs.c


class SqlLoopStore:
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def create_loop(self, run: LoopRun, audit: AuditRecord) -> None:
        row = loop_row(run)
        try:
            with self.db.write() as conn:
                conn.execute(t.loop_runs.insert().values(**row))
                append_event(conn, audit, run.created_ms)
        except SqlIntegrityError as exc:
            raise loop_exists(run) from exc

    def update_loop(self, run: LoopRun, audit: AuditRecord) -> None:
        row = loop_row(run)
        with self.db.write() as conn:
            done = conn.execute(
                update(t.loop_runs)
                .where(_l.id == run.id, _l.revision == run.revision - 1)
                .values(
                    state=row["state"],
                    revision=row["revision"],
                    updated_ms=row["updated_ms"],
                    data=row["data"],
                )
            )
            if done.rowcount != 1:
                stored = conn.execute(select(_l.revision).where(_l.id == run.id)).scalar()
                if stored is None:
                    raise no_loop(run.id)
                raise loop_changed_meanwhile(run, int(stored))
            append_event(conn, audit, run.updated_ms)

    def get_loop(self, loop_id: str) -> LoopRun:
        with self.db.read() as conn:
            text = conn.execute(select(_l.data).where(_l.id == loop_id)).scalar()
        if text is None:
            raise no_loop(loop_id)
        return loop_from_text(loop_id, text)

    def list_loops(self, deployment: str | None, limit: int = 50) -> list[LoopRun]:
        query = (
            select(_l.id, _l.data)
            .order_by(_l.created_ms.desc(), _l.id.desc())
            .limit(check_limit(limit))
        )
        if deployment is not None:
            query = query.where(_l.deployment == deployment)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [loop_from_text(loop_id, text) for loop_id, text in rows]

    def claim_job(self, job: str, due_ms: int, now_ms: int) -> bool:
        fits("job name", job, JOB_LEN)
        with self.db.write() as conn:
            done = conn.execute(
                self.db.upsert(t.agent_jobs)
                .values(
                    job=job,
                    due_ms=due_ms,
                    state=JobState.RUNNING.value,
                    started_ms=now_ms,
                    finished_ms=None,
                    detail="",
                )
                .on_conflict_do_nothing(index_elements=["job", "due_ms"])
                .returning(_j.due_ms)  # rowcount is -1 for this insert on PostgreSQL
            ).first()
        return done is not None

    def finish_job(self, job: str, due_ms: int, state: JobState, now_ms: int, detail: str) -> None:
        check_finished(job, state)
        with self.db.write() as conn:
            done = conn.execute(
                update(t.agent_jobs)
                .where(_j.job == job, _j.due_ms == due_ms, _j.state == JobState.RUNNING.value)
                .values(state=JobState(state).value, finished_ms=now_ms, detail=detail)
            )
            if done.rowcount != 1:
                found = self._job(conn, job, due_ms)
                if found is None:
                    raise no_job_slot(job, due_ms)
                raise job_finished_already(found)

    def last_job(self, job: str) -> JobRun | None:
        with self.db.read() as conn:
            row = (
                conn.execute(
                    select(t.agent_jobs).where(_j.job == job).order_by(_j.due_ms.desc()).limit(1)
                )
                .mappings()
                .first()
            )
        return None if row is None else job_from_row(row)

    @staticmethod
    def _job(conn: Connection, job: str, due_ms: int) -> JobRun | None:
        row = (
            conn.execute(select(t.agent_jobs).where(_j.job == job, _j.due_ms == due_ms))
            .mappings()
            .first()
        )
        return None if row is None else job_from_row(row)
