"""The audit trail in SQL: a hash chain appended inside the caller's transaction.

``append_event`` locks the single ``audit_head`` row (``FOR UPDATE`` on PostgreSQL; on
SQLite the write transaction already holds the database lock), seals the record onto
the chain and moves the head, so concurrent appends are serialised and the chain never
forks. Callers that change a model pass their connection, which puts the change and its
event in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, or_, select, update

from loopml.adapters.sql import schema as t
from loopml.adapters.sql.database import SqlDatabase
from loopml.adapters.sql.mapping import dump, event_from_row
from loopml.domain.audit import AuditEvent, AuditRecord, seal
from loopml.domain.paging import Page, decode_token, encode_token, query_fingerprint
from loopml.ports import Clock

_BATCH = 1000


def append_event(conn: Connection, record: AuditRecord, time_ms: int) -> AuditEvent:
    head = conn.execute(
        select(t.audit_head.c.seq, t.audit_head.c.hash)
        .where(t.audit_head.c.id == 1)
        .with_for_update()
    ).one()
    event = seal(record, int(head.seq) + 1, time_ms, head.hash)
    conn.execute(
        t.audit_events.insert().values(
            seq=event.seq,
            time_ms=event.time_ms,
            actor=event.actor,
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            before=dump(event.before),
            after=dump(event.after),
            reason=event.reason,
            prev_hash=event.prev_hash,
            hash=event.hash,
        )
    )
    conn.execute(
        update(t.audit_head).where(t.audit_head.c.id == 1).values(seq=event.seq, hash=event.hash)
    )
    return event


class SqlAuditLog:
    def __init__(self, db: SqlDatabase, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def append(self, record: AuditRecord) -> AuditEvent:
        with self.db.write() as conn:
            return append_event(conn, record, self.clock.now_ms())

    def list_events(
        self, object_id: str | None, page_size: int, page_token: str | None
    ) -> Page[AuditEvent]:
        fp = query_fingerprint("audit", object_id)
        offset = decode_token(page_token, fp)
        e = t.audit_events
        query = select(e).order_by(e.c.seq.desc()).limit(page_size + 1).offset(offset)
        if object_id:
            query = query.where(
                or_(
                    e.c.object_id == object_id,
                    e.c.object_id.startswith(object_id + "/", autoescape=True),
                    e.c.object_id.startswith(object_id + "@", autoescape=True),
                )
            )
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        items = [event_from_row(r) for r in rows[:page_size]]
        token = encode_token(offset + page_size, fp) if len(rows) > page_size else None
        return Page(items, token)

    def iter_events(self, until_seq: int | None = None) -> Iterator[AuditEvent]:
        e = t.audit_events
        after = 0
        while True:
            query = select(e).where(e.c.seq > after).order_by(e.c.seq).limit(_BATCH)
            if until_seq is not None:
                query = query.where(e.c.seq <= until_seq)
            with self.db.read() as conn:
                rows = conn.execute(query).mappings().all()
            if not rows:
                return
            for row in rows:
                yield event_from_row(row)
            after = int(rows[-1]["seq"])

    def head(self) -> tuple[int, str] | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(t.audit_head.c.seq, t.audit_head.c.hash).where(t.audit_head.c.id == 1)
            ).first()
        if row is None or int(row.seq) == 0:
            return None
        return int(row.seq), str(row.hash)
