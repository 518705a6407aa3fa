"""Reading and verifying the audit trail."""

from __future__ import annotations

from loopml.domain.audit import AuditEvent, ChainReport, verify_chain
from loopml.domain.paging import Page, check_page_size
from loopml.ports import AuditLog


class AuditService:
    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def list_events(
        self, object_id: str | None = None, page_size: int = 100, page_token: str | None = None
    ) -> Page[AuditEvent]:
        return self.log.list_events(object_id, check_page_size(page_size), page_token)

    def head(self) -> tuple[int, str] | None:
        """The newest event's ``(seq, hash)``: it moves on every audited change, which is
        how a running server notices deployment and registry changes."""
        return self.log.head()

    def verify(self) -> ChainReport:
        """Walk the whole chain; the report names the first bad event, if any."""
        head = self.log.head()  # events appended while we verify are left for next time
        return verify_chain(self.log.iter_events(until_seq=head[0] if head else 0), head)
