"""The in-memory approval store, sharing :class:`MemoryDatabase` with the other stores.

Requests are kept in creation order, so "newest first" is that order reversed, as the
SQL store's surrogate key gives it. Every call holds the database lock, checks first and
changes last, so a refused call leaves neither a request nor an audit event behind.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from loopml.adapters.memory.stores import MemoryDatabase, page_of
from loopml.domain.approvals import (
    ApprovalRequest,
    ApprovalStatus,
    decided_meanwhile,
    no_approval_request,
    open_request_exists,
)
from loopml.domain.errors import AlreadyExists, InvalidInput, NotFound
from loopml.domain.paging import Page, decode_token, query_fingerprint

if TYPE_CHECKING:
    from loopml.domain.audit import AuditRecord
    from loopml.domain.lifecycle import Stage


class MemoryApprovalStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    def create(self, request: ApprovalRequest, audit: AuditRecord) -> None:
        if not request.is_open:
            raise InvalidInput(
                f"a new approval request is stored pending; {request.id} is {request.status.value}"
            )
        with self.db.lock:
            if request.version not in self.db.model(request.model).versions:
                raise NotFound(
                    f"model {request.model!r} has no version {request.version}; list its "
                    f"versions with `loopml models show {request.model}`"
                )
            for existing in reversed(self.db.approvals.values()):
                if existing.is_open and _subject(existing) == _subject(request):
                    raise open_request_exists(existing)
            if request.id in self.db.approvals:
                raise AlreadyExists(
                    f"approval request id {request.id!r} is already taken; use a new id"
                )
            self.db.approvals[request.id] = request
            self.db.append_event(audit, request.created_ms)

    def get(self, request_id: str) -> ApprovalRequest:
        with self.db.lock:
            found = self.db.approvals.get(request_id)
        if found is None:
            raise no_approval_request(request_id)
        return found

    def list(
        self,
        model: str | None,
        status: ApprovalStatus | None,
        page_size: int,
        page_token: str | None,
    ) -> Page[ApprovalRequest]:
        fp = query_fingerprint("approvals", model, None if status is None else status.value)
        offset = decode_token(page_token, fp)
        with self.db.lock:
            items = [
                r
                for r in reversed(self.db.approvals.values())
                if (model is None or r.model == model) and (status is None or r.status is status)
            ]
        return page_of(items, page_size, offset, fp)

    def decide(self, decided: ApprovalRequest, audit: AuditRecord) -> None:
        if decided.is_open or decided.decided_ms is None:
            raise InvalidInput(
                f"decide stores a decision, but approval request {decided.id} is still pending"
            )
        with self.db.lock:
            current = self.db.approvals.get(decided.id)
            if current is None:
                raise no_approval_request(decided.id)
            if not current.is_open:
                raise decided_meanwhile(current)
            # only the decision changes, as the SQL store's UPDATE does
            self.db.approvals[decided.id] = dataclasses.replace(
                current,
                status=decided.status,
                decided_by=decided.decided_by,
                decided_ms=decided.decided_ms,
                comment=decided.comment,
            )
            self.db.append_event(audit, decided.decided_ms)

    def find_approved(self, model: str, version: int, stage: Stage) -> ApprovalRequest | None:
        with self.db.lock:
            for r in reversed(self.db.approvals.values()):
                if r.status is ApprovalStatus.APPROVED and _subject(r) == (model, version, stage):
                    return r
        return None


def _subject(request: ApprovalRequest) -> tuple[str, int, Stage]:
    return request.model, request.version, request.stage
