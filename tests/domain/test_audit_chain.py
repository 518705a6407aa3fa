from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.audit import GENESIS_HASH, AuditEvent, AuditRecord, seal, verify_chain


def chain(n: int) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    prev = GENESIS_HASH
    for i in range(1, n + 1):
        record = AuditRecord(
            "model_version.stage",
            "model_version",
            f"models:/m/{i}",
            "ana",
            {"stage": "staging"},
            {"stage": "production"},
            f"reason {i}",
        )
        events.append(seal(record, i, 1000 + i, prev))
        prev = events[-1].hash
    return events


def head(events: list[AuditEvent]) -> tuple[int, str] | None:
    return (events[-1].seq, events[-1].hash) if events else None


def test_intact_chain_verifies() -> None:
    events = chain(5)
    report = verify_chain(events, head(events))
    assert report.ok and report.checked == 5 and report.head_hash == events[-1].hash


def test_empty_chain_verifies_against_no_head() -> None:
    assert verify_chain([], None).ok


def test_edited_event_is_named() -> None:
    events = chain(5)
    events[2] = dataclasses.replace(events[2], after={"stage": "archived"})
    report = verify_chain(events, head(chain(5)))
    assert not report.ok and report.first_bad_seq == 3 and "edited" in (report.problem or "")


def test_deleted_middle_event_is_named() -> None:
    events = chain(5)
    report = verify_chain(events[:2] + events[3:], head(events))
    assert not report.ok and report.first_bad_seq == 3 and "deleted" in (report.problem or "")


def test_deleted_tail_is_caught_by_the_head() -> None:
    events = chain(5)
    report = verify_chain(events[:4], head(events))
    assert not report.ok and report.first_bad_seq == 5


def test_rehashed_edit_still_breaks_the_next_link() -> None:
    events = chain(4)
    forged = seal(AuditRecord("x", "y", "z", "mallory"), 2, 5, events[0].hash)
    report = verify_chain([events[0], forged, events[2], events[3]], head(events))
    assert not report.ok and report.first_bad_seq == 3


@given(st.integers(min_value=1, max_value=30), st.data())
def test_any_single_field_edit_is_detected(n: int, data: st.DataObject) -> None:
    events = chain(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    field = data.draw(st.sampled_from(["actor", "action", "object_id", "reason", "time_ms"]))
    value = 999_999 if field == "time_ms" else "tampered"
    events[i] = dataclasses.replace(events[i], **{field: value})
    report = verify_chain(events, head(chain(n)))
    assert not report.ok and report.first_bad_seq == i + 1
