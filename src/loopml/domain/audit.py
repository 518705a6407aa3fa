"""The audit trail: who did what to which object, when, with before and after.

Events form a hash chain: each event's hash covers its own fields and the previous
event's hash, so editing or deleting any stored event breaks every hash after it.
The store also keeps the chain head (last sequence number and hash) so that cutting
events off the end is detected too. This makes tampering evident, not impossible: an
attacker who can rewrite the whole table can rebuild the chain. Anchor the head hash
printed by ``loopml audit verify`` somewhere else when that matters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What a caller asks to record; the store seals it into an :class:`AuditEvent`."""

    action: str
    object_type: str
    object_id: str
    actor: str
    before: Mapping[str, object] | None = None
    after: Mapping[str, object] | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    seq: int
    time_ms: int
    actor: str
    action: str
    object_type: str
    object_id: str
    before: Mapping[str, object] | None
    after: Mapping[str, object] | None
    reason: str | None
    prev_hash: str
    hash: str


def canonical_json(value: object) -> str:
    """Deterministic JSON: sorted keys, no whitespace, non-ASCII kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(event: AuditEvent) -> str:
    """SHA-256 over every field of ``event`` but its own hash, previous hash included."""
    payload = canonical_json(
        [
            event.prev_hash,
            event.seq,
            event.time_ms,
            event.actor,
            event.action,
            event.object_type,
            event.object_id,
            event.before,
            event.after,
            event.reason,
        ]
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def seal(record: AuditRecord, seq: int, time_ms: int, prev_hash: str) -> AuditEvent:
    """Turn a record into the next event of a chain whose last hash is ``prev_hash``."""
    unsealed = AuditEvent(
        seq,
        time_ms,
        record.actor,
        record.action,
        record.object_type,
        record.object_id,
        dict(record.before) if record.before is not None else None,
        dict(record.after) if record.after is not None else None,
        record.reason,
        prev_hash,
        hash="",
    )
    return dataclasses.replace(unsealed, hash=event_hash(unsealed))


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


def verify_chain(events: Iterable[AuditEvent], head: tuple[int, str] | None) -> ChainReport:
    """Check events in ``seq`` order against each other and against the stored head.

    ``head`` is the ``(seq, hash)`` the store recorded with its last append, or ``None``
    for a store that never appended.
    """
    prev_hash, expected_seq, checked = GENESIS_HASH, 1, 0
    for event in events:
        if event.seq != expected_seq:
            return ChainReport(
                False,
                checked,
                prev_hash,
                expected_seq,
                f"event {expected_seq} is missing (next stored event is "
                f"{event.seq}): an event was deleted",
            )
        if event.prev_hash != prev_hash:
            return ChainReport(
                False,
                checked,
                prev_hash,
                event.seq,
                f"event {event.seq} does not link to event {event.seq - 1}: "
                "an earlier event was edited or deleted",
            )
        recomputed = event_hash(event)
        if recomputed != event.hash:
            return ChainReport(
                False,
                checked,
                prev_hash,
                event.seq,
                f"event {event.seq} ({event.action} {event.object_id}) was "
                "edited: its content no longer matches its hash",
            )
        prev_hash, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    last_seq = expected_seq - 1
    head_seq, head_hash = head if head is not None else (0, GENESIS_HASH)
    if (head_seq, head_hash) != (last_seq, prev_hash):
        return ChainReport(
            False,
            checked,
            prev_hash,
            last_seq + 1,
            f"the chain ends at event {last_seq} but the recorded head is "
            f"event {head_seq}: events were deleted from the end",
        )
    return ChainReport(True, checked, prev_hash)
