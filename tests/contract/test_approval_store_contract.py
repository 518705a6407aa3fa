"""The ApprovalStore contract, run against memory, SQLite and PostgreSQL.

Requests belong to an existing model version, at most one per version and stage is open
at a time, decisions are compare-and-set, and every change is checked together with the
audit trail it must (or must not) leave behind.
"""

from __future__ import annotations

import blake3
import pytest

from loopml.domain.approvals import ApprovalRequest, ApprovalStatus
from loopml.domain.artifacts import ArtifactRef, Digest
from loopml.domain.audit import verify_chain
from loopml.domain.errors import (
    AlreadyExists,
    ConcurrentModification,
    InvalidInput,
    NotFound,
)
from loopml.domain.gate_events import approval_decided, approval_requested
from loopml.domain.lifecycle import Stage
from loopml.ports import ApprovalStore, AuditLog, NewModelVersion, RegistryStore

P = Stage.PRODUCTION


def add_versions(registry: RegistryStore, name: str = "m", count: int = 2) -> None:
    for i in range(count):
        data = f"weights-{name}-{i}".encode()
        ref = ArtifactRef("model/model.skops", Digest("blake3", blake3.blake3(data).hexdigest()), 1)
        registry.create_version(NewModelVersion(name, "sklearn", ref, 1_000 + i), "ana")


def pending(
    request_id: str = "apr-1", model: str = "m", version: int = 1, stage: Stage = P
) -> ApprovalRequest:
    return ApprovalRequest(request_id, model, version, stage, "alice", 2_000)


def create(approvals: ApprovalStore, request: ApprovalRequest) -> ApprovalRequest:
    approvals.create(request, approval_requested(request))
    return request


def decide(approvals: ApprovalStore, before: ApprovalRequest, after: ApprovalRequest) -> None:
    approvals.decide(after, approval_decided(before, after))


def approve(approvals: ApprovalStore, request: ApprovalRequest) -> ApprovalRequest:
    decided = request.approve("bob", 3_000, allow_self_approval=False, comment="looks good")
    decide(approvals, request, decided)
    return decided


@pytest.fixture
def two_versions(registry: RegistryStore) -> None:
    add_versions(registry)


@pytest.mark.usefixtures("two_versions")
def test_a_request_reads_back_whole_with_its_audit_event(
    approvals: ApprovalStore, audit: AuditLog
) -> None:
    request = create(approvals, pending())
    assert approvals.get("apr-1") == request
    [event] = audit.list_events(request.uri, 10, None)
    assert (event.action, event.actor, event.time_ms) == ("approval.request", "alice", 2_000)
    # the request is part of the model's history
    assert event in list(audit.list_events("models:/m", 100, None))


@pytest.mark.usefixtures("two_versions")
def test_a_decision_reads_back_whole_with_its_audit_event(
    approvals: ApprovalStore, audit: AuditLog
) -> None:
    request = create(approvals, pending())
    decided = approve(approvals, request)
    stored = approvals.get("apr-1")
    assert stored == decided
    assert (stored.status, stored.decided_by, stored.decided_ms, stored.comment) == (
        ApprovalStatus.APPROVED,
        "bob",
        3_000,
        "looks good",
    )
    actions = [e.action for e in audit.list_events(request.uri, 10, None)]
    assert actions == ["approval.approve", "approval.request"]
    assert verify_chain(audit.iter_events(), audit.head()).ok


def test_a_request_needs_an_existing_model_version_and_writes_nothing_otherwise(
    approvals: ApprovalStore, registry: RegistryStore, audit: AuditLog
) -> None:
    with pytest.raises(NotFound, match=r"model 'm' does not exist"):
        create(approvals, pending())
    add_versions(registry, count=1)
    head = audit.head()
    with pytest.raises(NotFound, match=r"model 'm' has no version 2.*loopml models show m"):
        create(approvals, pending(version=2))
    assert audit.head() == head
    assert list(approvals.list(None, None, 10, None)) == []


@pytest.mark.usefixtures("two_versions")
def test_one_open_request_per_version_and_stage(approvals: ApprovalStore, audit: AuditLog) -> None:
    first = create(approvals, pending("apr-1"))
    head = audit.head()
    with pytest.raises(AlreadyExists, match=r"m v1 -> production already has an open.*apr-1"):
        create(approvals, pending("apr-2"))
    assert audit.head() == head
    with pytest.raises(NotFound):
        approvals.get("apr-2")
    # another version, or another stage, may have its own
    create(approvals, pending("apr-3", version=2))
    create(approvals, pending("apr-4", stage=Stage.STAGING))
    # once the first is decided, the version may ask again
    decide(approvals, first, first.cancel("alice", 2_500))
    create(approvals, pending("apr-2"))
    assert approvals.get("apr-2").is_open


@pytest.mark.usefixtures("two_versions")
def test_ids_are_unique(approvals: ApprovalStore, audit: AuditLog) -> None:
    create(approvals, pending("apr-1"))
    head = audit.head()
    with pytest.raises(AlreadyExists, match=r"id 'apr-1' is already taken"):
        create(approvals, pending("apr-1", version=2))
    assert audit.head() == head
    assert approvals.get("apr-1").version == 1


@pytest.mark.usefixtures("two_versions")
def test_only_pending_requests_are_created_and_only_decisions_stored(
    approvals: ApprovalStore, audit: AuditLog
) -> None:
    request = pending()
    with pytest.raises(InvalidInput, match=r"stored pending"):
        approvals.create(request.cancel("alice", 2_500), approval_requested(request))
    create(approvals, request)
    with pytest.raises(InvalidInput, match=r"still pending"):
        approvals.decide(request, approval_requested(request))
    assert [e.action for e in audit.list_events(request.uri, 10, None)] == ["approval.request"]
    assert approvals.get("apr-1").is_open


def test_a_missing_request_names_its_id_and_the_command_to_list(
    approvals: ApprovalStore, registry: RegistryStore
) -> None:
    with pytest.raises(NotFound, match=r"'apr-nope' does not exist.*loopml approvals list"):
        approvals.get("apr-nope")
    add_versions(registry, count=1)
    request = pending()
    with pytest.raises(NotFound, match=r"'apr-1' does not exist"):
        decide(approvals, request, request.reject("bob", 3_000, "no"))


@pytest.mark.usefixtures("two_versions")
def test_the_first_decision_wins(approvals: ApprovalStore, audit: AuditLog) -> None:
    request = create(approvals, pending())
    # two people read the pending request, then both decide
    approved = request.approve("bob", 3_000, allow_self_approval=False)
    rejected = request.reject("carol", 3_001, "too slow")
    decide(approvals, request, approved)
    head = audit.head()
    with pytest.raises(ConcurrentModification, match=r"apr-1 .* was approved by bob meanwhile"):
        decide(approvals, request, rejected)
    assert audit.head() == head
    assert approvals.get("apr-1") == approved


def test_listings_are_newest_first_filtered_and_paged(
    approvals: ApprovalStore, registry: RegistryStore
) -> None:
    add_versions(registry, "a", 3)
    add_versions(registry, "b", 1)
    made = [
        create(approvals, pending("apr-1", "a", 1)),
        create(approvals, pending("apr-2", "b", 1)),
        create(approvals, pending("apr-3", "a", 2)),
        create(approvals, pending("apr-4", "a", 3)),
    ]
    approve(approvals, made[2])
    page = approvals.list(None, None, 3, None)
    assert [r.id for r in page] == ["apr-4", "apr-3", "apr-2"]
    rest = approvals.list(None, None, 3, page.next_page_token)
    assert [r.id for r in rest] == ["apr-1"] and rest.next_page_token is None
    assert [r.id for r in approvals.list("a", None, 10, None)] == ["apr-4", "apr-3", "apr-1"]
    pending_a = approvals.list("a", ApprovalStatus.PENDING, 1, None)
    assert [r.id for r in pending_a] == ["apr-4"]
    more = approvals.list("a", ApprovalStatus.PENDING, 1, pending_a.next_page_token)
    assert [r.id for r in more] == ["apr-1"]
    assert [r.id for r in approvals.list(None, ApprovalStatus.APPROVED, 10, None)] == ["apr-3"]
    assert list(approvals.list("nope", None, 10, None)) == []
    with pytest.raises(InvalidInput):
        approvals.list("b", None, 3, page.next_page_token)  # a token of another query


@pytest.mark.usefixtures("two_versions")
def test_find_approved_names_the_newest_approval_of_exactly_that_version_and_stage(
    approvals: ApprovalStore,
) -> None:
    assert approvals.find_approved("m", 1, P) is None
    first = create(approvals, pending("apr-1"))
    assert approvals.find_approved("m", 1, P) is None  # pending is not approved
    first_ok = approve(approvals, first)
    second = create(approvals, pending("apr-2"))
    second_ok = approve(approvals, second)
    assert approvals.find_approved("m", 1, P) == second_ok != first_ok
    assert approvals.find_approved("m", 2, P) is None
    assert approvals.find_approved("m", 1, Stage.STAGING) is None
    assert approvals.find_approved("other", 1, P) is None
    rejected = create(approvals, pending("apr-3", version=2))
    decide(approvals, rejected, rejected.reject("bob", 3_000, "no"))
    assert approvals.find_approved("m", 2, P) is None
