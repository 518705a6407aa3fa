"""Deployments in SQL: the current state and its history, with audit, compare-and-set."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Row, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from loopml.adapters.sql import schema as t
from loopml.adapters.sql.audit import append_event
from loopml.adapters.sql.database import SqlDatabase
from loopml.domain.audit import AuditRecord
from loopml.domain.deployments import Action, Deployment, Revision, no_deployment
from loopml.domain.errors import AlreadyExists, ConcurrentModification

_d = t.deployments.c
_h = t.deployment_history.c


class SqlDeploymentStore:
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def create_deployment(self, entry: Revision, audit: AuditRecord) -> None:
        state = entry.state
        try:
            with self.db.write() as conn:
                conn.execute(
                    t.deployments.insert().values(
                        name=state.name,
                        revision=state.revision,
                        state=_json(state),
                        updated_ms=state.updated_ms,
                    )
                )
                self._record(conn, entry, audit)
        except SqlIntegrityError as exc:
            raise AlreadyExists(
                f"deployment {state.name!r} already exists; change it with `loopml deploy "
                "canary/promote/rollback`, or pick another name (a retired deployment keeps "
                "its name and history)"
            ) from exc

    def update_deployment(self, entry: Revision, audit: AuditRecord) -> None:
        state = entry.state
        with self.db.write() as conn:
            done = conn.execute(
                update(t.deployments)
                .where(_d.name == state.name, _d.revision == state.revision - 1)
                .values(revision=state.revision, state=_json(state), updated_ms=state.updated_ms)
            )
            if done.rowcount != 1:
                if conn.execute(select(_d.name).where(_d.name == state.name)).first() is None:
                    raise no_deployment(state.name)
                raise ConcurrentModification(
                    f"deployment {state.name!r} was changed by someone else meanwhile; look at "
                    f"`loopml deploy show {state.name}` and try again"
                )
            self._record(conn, entry, audit)

    def get_deployment(self, name: str) -> Deployment:
        with self.db.read() as conn:
            text = conn.execute(select(_d.state).where(_d.name == name)).scalar()
        if text is None:
            raise no_deployment(name)
        return Deployment.from_dict(json.loads(text))

    def list_deployments(self) -> list[Deployment]:
        with self.db.read() as conn:
            rows = conn.execute(select(_d.state).order_by(_d.name)).scalars().all()
        return [Deployment.from_dict(json.loads(text)) for text in rows]

    def deployment_history(self, name: str) -> list[Revision]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.deployment_history).where(_h.name == name).order_by(_h.revision)
            ).all()
        if not rows:
            raise no_deployment(name)
        return [_revision(row) for row in rows]

    @staticmethod
    def _record(conn: Connection, entry: Revision, audit: AuditRecord) -> None:
        conn.execute(
            t.deployment_history.insert().values(
                name=entry.deployment,
                revision=entry.revision,
                time_ms=entry.time_ms,
                actor=entry.actor,
                action=entry.action.value,
                state=_json(entry.state),
                reason=entry.reason,
            )
        )
        append_event(conn, audit, entry.time_ms)


def _json(state: Deployment) -> str:
    return json.dumps(state.to_dict(), sort_keys=True)


def _revision(row: Row[Any]) -> Revision:
    return Revision(
        deployment=row.name,
        revision=int(row.revision),
        time_ms=int(row.time_ms),
        actor=row.actor,
        action=Action(row.action),
        state=Deployment.from_dict(json.loads(row.state)),
        reason=row.reason,
    )
