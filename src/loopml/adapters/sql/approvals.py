"""Approval requests in SQL, each change written with its audit event.

Opening a request locks its model's row first (``FOR UPDATE`` on PostgreSQL; SQLite's
write transaction already holds the database lock), so two people asking at once cannot
both open a request for one version and stage. A decision is a compare-and-set on the
pending status: of two people deciding at once, the first wins and the second is refused.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from loopml.adapters.sql import schema as t
from loopml.adapters.sql.audit import append_event
from loopml.adapters.sql.database import SqlDatabase
from loopml.domain.approvals import (
    ApprovalRequest,
    ApprovalStatus,
    decided_meanwhile,
    no_approval_request,
    open_request_exists,
)
from loopml.domain.audit import AuditRecord
from loopml.domain.errors import AlreadyExists, InvalidInput, NotFound
from loopml.domain.lifecycle import Stage
from loopml.domain.paging import Page, decode_token, encode_token, query_fingerprint

_a = t.approval_requests.c
_m = t.models.c


class SqlApprovalStore:
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def create(self, request: ApprovalRequest, audit: AuditRecord) -> None:
        if not request.is_open:
            raise InvalidInput(
                f"a new approval request is stored pending; {request.id} is {request.status.value}"
            )
        try:
            with self.db.write() as conn:
                model_id = self._lock_version(conn, request.model, request.version)
                pending = conn.execute(
                    _select()
                    .where(
                        _a.model_id == model_id,
                        _a.version == request.version,
                        _a.stage == request.stage.value,
                        _a.status == ApprovalStatus.PENDING.value,
                    )
                    .order_by(_a.pk.desc())
                ).first()
                if pending is not None:
                    raise open_request_exists(_request(pending))
                conn.execute(
                    t.approval_requests.insert().values(
                        id=request.id,
                        model_id=model_id,
                        version=request.version,
                        stage=request.stage.value,
                        status=request.status.value,
                        requested_by=request.requested_by,
                        created_ms=request.created_ms,
                    )
                )
                append_event(conn, audit, request.created_ms)
        except SqlIntegrityError as exc:
            raise AlreadyExists(
                f"approval request id {request.id!r} is already taken; use a new id"
            ) from exc

    def _lock_version(self, conn: Connection, model: str, version: int) -> int:
        model_id = conn.execute(select(_m.id).where(_m.name == model).with_for_update()).scalar()
        if model_id is None:
            raise NotFound(f"model {model!r} does not exist; list models with `loopml models list`")
        v = t.model_versions.c
        found = conn.execute(
            select(v.id).where(v.model_id == model_id, v.version == version)
        ).first()
        if found is None:
            raise NotFound(
                f"model {model!r} has no version {version}; list its versions with "
                f"`loopml models show {model}`"
            )
        return int(model_id)

    def get(self, request_id: str) -> ApprovalRequest:
        with self.db.read() as conn:
            row = conn.execute(_select().where(_a.id == request_id)).first()
        if row is None:
            raise no_approval_request(request_id)
        return _request(row)

    def list(
        self,
        model: str | None,
        status: ApprovalStatus | None,
        page_size: int,
        page_token: str | None,
    ) -> Page[ApprovalRequest]:
        fp = query_fingerprint("approvals", model, None if status is None else status.value)
        offset = decode_token(page_token, fp)
        query = _select().order_by(_a.pk.desc()).limit(page_size + 1).offset(offset)
        if model is not None:
            query = query.where(_m.name == model)
        if status is not None:
            query = query.where(_a.status == status.value)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        items = [_request(r) for r in rows[:page_size]]
        return Page(items, encode_token(offset + page_size, fp) if len(rows) > page_size else None)

    def decide(self, decided: ApprovalRequest, audit: AuditRecord) -> None:
        if decided.is_open or decided.decided_ms is None:
            raise InvalidInput(
                f"decide stores a decision, but approval request {decided.id} is still pending"
            )
        with self.db.write() as conn:
            result = conn.execute(
                update(t.approval_requests)
                .where(_a.id == decided.id, _a.status == ApprovalStatus.PENDING.value)
                .values(
                    status=decided.status.value,
                    decided_by=decided.decided_by,
                    decided_ms=decided.decided_ms,
                    comment=decided.comment,
                )
            )
            if result.rowcount != 1:
                row = conn.execute(_select().where(_a.id == decided.id)).first()
                if row is None:
                    raise no_approval_request(decided.id)
                raise decided_meanwhile(_request(row))
            append_event(conn, audit, decided.decided_ms)

    def find_approved(self, model: str, version: int, stage: Stage) -> ApprovalRequest | None:
        with self.db.read() as conn:
            row = conn.execute(
                _select()
                .where(
                    _m.name == model,
                    _a.version == version,
                    _a.stage == stage.value,
                    _a.status == ApprovalStatus.APPROVED.value,
                )
                .order_by(_a.pk.desc())
                .limit(1)
            ).first()
        return None if row is None else _request(row)


def _select() -> Any:
    return select(t.approval_requests, _m.name).join(t.models, _m.id == _a.model_id)


def _request(row: Any) -> ApprovalRequest:
    return ApprovalRequest(
        id=row.id,
        model=row.name,
        version=int(row.version),
        stage=Stage(row.stage),
        requested_by=row.requested_by,
        created_ms=int(row.created_ms),
        status=ApprovalStatus(row.status),
        decided_by=row.decided_by,
        decided_ms=None if row.decided_ms is None else int(row.decided_ms),
        comment=row.comment,
    )
