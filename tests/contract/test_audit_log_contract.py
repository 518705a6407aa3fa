"""The AuditLog contract, run against every backend (see ``conftest.py``).

The chain verifies after any mix of direct appends and audited registry changes; events
list newest first, filtered by object id (exactly, or as the parent of ``/...`` and
``@...`` ids, never as a bare string prefix); ``iter_events`` streams in sequence order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import blake3
import pytest

from loopml.domain.artifacts import ArtifactRef, Digest
from loopml.domain.audit import GENESIS_HASH, AuditRecord, verify_chain
from loopml.domain.errors import InvalidInput
from loopml.ports import NewModelVersion

if TYPE_CHECKING:
    from tests.contract.conftest import FakeClock

    from loopml.domain.audit import AuditEvent
    from loopml.ports import AuditLog, RegistryStore


def record(object_id: str, reason: str | None = None) -> AuditRecord:
    return AuditRecord("test.touch", "test", object_id, "ana", reason=reason)


def ids(events: list[AuditEvent]) -> list[str]:
    return [e.object_id for e in events]


def test_empty_log(audit: AuditLog) -> None:
    assert audit.head() is None
    assert list(audit.iter_events()) == []
    assert list(audit.list_events(None, 10, None)) == []
    report = verify_chain(audit.iter_events(), audit.head())
    assert (report.ok, report.checked, report.head_hash) == (True, 0, GENESIS_HASH)


def test_append_seals_onto_the_chain(audit: AuditLog, clock: FakeClock) -> None:
    first = audit.append(record("models:/m"))
    clock.advance(5)
    second = audit.append(record("models:/m/1", reason="why not"))
    assert (first.seq, first.prev_hash, first.time_ms) == (1, GENESIS_HASH, clock.now_ms() - 5)
    assert (second.seq, second.prev_hash, second.time_ms) == (2, first.hash, clock.now_ms())
    assert audit.head() == (2, second.hash)
    assert list(audit.iter_events()) == [first, second]
    report = verify_chain(audit.iter_events(), audit.head())
    assert (report.ok, report.checked, report.head_hash) == (True, 2, second.hash)


def test_payloads_round_trip(audit: AuditLog) -> None:
    before = {"stage": "staging", "nested": {"list": [1, 2.5, None, True], "text": "åß∂"}}
    after = {"stage": "production", "empty": {}}
    appended = audit.append(
        AuditRecord(
            "model_version.stage",
            "model_version",
            "models:/m/1",
            "ana@example.com",
            before,
            after,
            "better rmse: 0.21 → 0.19",
        )
    )
    [stored] = list(audit.iter_events())
    assert stored == appended
    assert (stored.before, stored.after, stored.reason) == (
        before,
        after,
        "better rmse: 0.21 → 0.19",
    )


def test_chain_verifies_across_registry_changes(
    audit: AuditLog, registry: RegistryStore, clock: FakeClock
) -> None:
    digest = Digest("blake3", blake3.blake3(b"w").hexdigest())
    audit.append(record("workspace"))
    for i in range(3):
        clock.advance()
        registry.create_version(
            NewModelVersion("m", "sklearn", ArtifactRef("model/m", digest, 1), 100 + i), "ana"
        )
    audit.append(record("workspace"))
    events = list(audit.iter_events())
    assert [e.seq for e in events] == list(range(1, 7))
    assert [e.action for e in events] == [
        "test.touch",
        "model.create",
        "model_version.create",
        "model_version.create",
        "model_version.create",
        "test.touch",
    ]
    report = verify_chain(events, audit.head())
    assert (report.ok, report.checked) == (True, 6)


def test_list_events_newest_first_with_paging(audit: AuditLog) -> None:
    appended = [audit.append(record(f"obj/{i}")) for i in range(7)]
    first = audit.list_events(None, 3, None)
    second = audit.list_events(None, 3, first.next_page_token)
    third = audit.list_events(None, 3, second.next_page_token)
    assert [e.seq for p in (first, second, third) for e in p] == [7, 6, 5, 4, 3, 2, 1]
    assert third.next_page_token is None
    assert list(third) == [appended[0]]


OBJECTS = [
    "models:/m",
    "models:/m/1",
    "models:/m/2",
    "models:/m@champion",
    "models:/m2",
    "models:/m2/1",
    "models:/mx/1",
    "models:/m_/1",
    "models:/m%/1",
    "models:/",
    "models:/m/1/extra",
]


@pytest.mark.parametrize(
    ("object_id", "expected"),
    [
        (
            "models:/m",
            ["models:/m", "models:/m/1", "models:/m/2", "models:/m@champion", "models:/m/1/extra"],
        ),
        ("models:/m/1", ["models:/m/1", "models:/m/1/extra"]),
        ("models:/m2", ["models:/m2", "models:/m2/1"]),
        ("models:/m_", ["models:/m_/1"]),  # '_' is no wildcard
        ("models:/m%", ["models:/m%/1"]),  # nor is '%'
        ("models:/m@champion", ["models:/m@champion"]),
        (
            "models:",
            [
                "models:/",
                "models:/m",
                "models:/m/1",
                "models:/m/2",
                "models:/m@champion",
                "models:/m2",
                "models:/m2/1",
                "models:/mx/1",
                "models:/m_/1",
                "models:/m%/1",
                "models:/m/1/extra",
            ],
        ),
        ("models:/M", []),  # case-sensitive
        ("nothing", []),
    ],
)
def test_list_events_object_filter(audit: AuditLog, object_id: str, expected: list[str]) -> None:
    for obj in OBJECTS:
        audit.append(record(obj))
    found = audit.list_events(object_id, 100, None)
    assert ids(list(found)) == sorted(expected, key=OBJECTS.index, reverse=True)


def test_list_events_without_filter_lists_everything(audit: AuditLog) -> None:
    for obj in OBJECTS:
        audit.append(record(obj))
    assert ids(list(audit.list_events(None, 100, None))) == OBJECTS[::-1]
    assert ids(list(audit.list_events("", 100, None))) == OBJECTS[::-1]


def test_list_events_filtered_paging_and_foreign_tokens(audit: AuditLog) -> None:
    for i in range(5):
        audit.append(record(f"models:/m/{i}"))
        audit.append(record(f"models:/other/{i}"))
    first = audit.list_events("models:/m", 2, None)
    second = audit.list_events("models:/m", 2, first.next_page_token)
    third = audit.list_events("models:/m", 2, second.next_page_token)
    assert ids([*first, *second, *third]) == [f"models:/m/{i}" for i in range(4, -1, -1)]
    assert third.next_page_token is None
    with pytest.raises(InvalidInput, match="different query"):
        audit.list_events("models:/other", 2, first.next_page_token)
    with pytest.raises(InvalidInput, match="different query"):
        audit.list_events(None, 2, first.next_page_token)


def test_iter_events_until_seq(audit: AuditLog) -> None:
    appended = [audit.append(record(f"obj/{i}")) for i in range(5)]
    assert list(audit.iter_events(until_seq=3)) == appended[:3]
    assert list(audit.iter_events(until_seq=0)) == []
    assert list(audit.iter_events(until_seq=99)) == appended
    assert list(audit.iter_events()) == appended
    head = audit.head()
    assert head is not None
    audit.append(record("later"))  # appended after the head was read: left for next time
    report = verify_chain(audit.iter_events(until_seq=head[0]), head)
    assert (report.ok, report.checked) == (True, 5)
