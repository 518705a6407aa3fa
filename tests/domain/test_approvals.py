"""Force and approval: written reasons, the approval state machine, the promotion verdict,
and the audit records of each."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.approvals import (
    ALLOWED_DECISIONS,
    ApprovalRequest,
    ApprovalStatus,
    ForcedPromotion,
    GatesFailed,
    authorize_promotion,
    same_person,
)
from loopml.domain.errors import InvalidInput, InvalidState, PermissionDenied
from loopml.domain.gate_checks import ModelFacts, evaluate_stage
from loopml.domain.gate_events import approval_decided, approval_requested, gates_checked
from loopml.domain.gate_report import GateReport
from loopml.domain.gates import Limit, StagePolicy
from loopml.domain.lifecycle import Stage
from loopml.domain.metric_directions import MetricDirections

P = ApprovalStatus


def request(**changes: object) -> ApprovalRequest:
    fields: dict[str, object] = {
        "id": "apr-1",
        "model": "churn",
        "version": 7,
        "stage": "production",
        "requested_by": "alice",
        "created_ms": 1_000,
    }
    fields.update(changes)
    return ApprovalRequest(**fields)  # type: ignore[arg-type]


def report(
    accuracy: float = 0.9,
    *,
    require_approval: bool = True,
    allow_self_approval: bool = False,
    version: int | None = 7,
) -> GateReport:
    rules = StagePolicy(
        thresholds=(Limit("accuracy", 0.85),),
        require_approval=require_approval,
        allow_self_approval=allow_self_approval,
    )
    facts = ModelFacts(metrics={"accuracy": accuracy}, version=version)
    return evaluate_stage(rules, MetricDirections(), "churn", Stage.PRODUCTION, facts)


# --- force ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   ", "\n\t", None, 42])
def test_force_without_a_written_reason_is_refused(reason: object) -> None:
    with pytest.raises(
        InvalidInput, match=r"forcing a promotion past failed gates needs a written"
    ):
        ForcedPromotion(reason)  # type: ignore[arg-type]


def test_force_keeps_the_reason_stripped() -> None:
    assert ForcedPromotion("  eu slice has 12 rows  ").reason == "eu slice has 12 rows"


# --- the approval state machine ------------------------------------------------------------


def test_a_new_request_is_pending() -> None:
    r = request()
    assert r.status is P.PENDING and r.is_open
    assert r.stage is Stage.PRODUCTION
    assert r.uri == "models:/churn/7/approvals/apr-1"
    assert r.subject == "churn v7 -> production"


def test_someone_else_approves() -> None:
    approved = request().approve("bob", 2_000, allow_self_approval=False, comment=" looks good ")
    assert approved == request(
        status=P.APPROVED, decided_by="bob", decided_ms=2_000, comment="looks good"
    )
    assert not approved.is_open


def test_self_approval_is_refused_unless_the_policy_allows_it() -> None:
    with pytest.raises(PermissionDenied) as info:
        request().approve("alice", 2_000, allow_self_approval=False)
    assert str(info.value) == (
        "alice cannot approve their own request apr-1 (churn v7 -> production): the gate "
        "policy needs a second person; ask someone else to approve it"
    )
    with pytest.raises(PermissionDenied):
        request().approve(" ALICE ", 2_000, allow_self_approval=False)  # same person
    assert request().approve("alice", 2_000, allow_self_approval=True).status is P.APPROVED


def test_reject_needs_a_comment_and_someone_else() -> None:
    rejected = request().reject("bob", 2_000, "recall on eu is too low")
    assert (rejected.status, rejected.comment) == (P.REJECTED, "recall on eu is too low")
    with pytest.raises(InvalidInput, match=r"rejecting request apr-1 needs a comment saying why"):
        request().reject("bob", 2_000, "  ")
    with pytest.raises(PermissionDenied, match=r"alice requested apr-1 and cannot reject it"):
        request().reject("alice", 2_000, "never mind")


def test_only_the_requester_cancels() -> None:
    assert request().cancel("Alice", 2_000).status is P.CANCELLED
    with pytest.raises(PermissionDenied) as info:
        request().cancel("bob", 2_000)
    assert str(info.value) == (
        "only alice, who requested apr-1, can cancel it; bob can reject it with a comment instead"
    )


@pytest.mark.parametrize("first", ["approve", "reject", "cancel"])
@pytest.mark.parametrize("second", ["approve", "reject", "cancel"])
def test_a_decided_request_never_changes(first: str, second: str) -> None:
    decided = decide(request(), first)
    with pytest.raises(InvalidState) as info:
        decide(decided, second)
    assert f"approval request apr-1 (churn v7 -> production) is already {decided.status.value}" in (
        str(info.value)
    )
    assert "a decided request never changes. Open a new request to ask again" in str(info.value)


def decide(r: ApprovalRequest, move: str) -> ApprovalRequest:
    if move == "approve":
        return r.approve("bob", 3_000, allow_self_approval=False)
    if move == "reject":
        return r.reject("bob", 3_000, "no")
    return r.cancel("alice", 3_000)


@given(st.lists(st.sampled_from(["approve", "reject", "cancel"]), min_size=1, max_size=5))
def test_exactly_the_first_decision_counts(moves: list[str]) -> None:
    r = request()
    for i, move in enumerate(moves):
        before = r
        try:
            r = decide(r, move)
        except InvalidState:
            assert i > 0 and not before.is_open
            assert r == before
        else:
            assert i == 0
            assert r.status in ALLOWED_DECISIONS[P.PENDING]
    assert all(not ALLOWED_DECISIONS[s] for s in ALLOWED_DECISIONS if s is not P.PENDING)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": ""}, r"approval request id must be a non-empty string"),
        ({"model": "bad name"}, r"model name 'bad name' is not valid"),
        ({"version": 0}, r"version must be a whole number >= 1, got 0"),
        ({"stage": "archived"}, r"stage 'archived' takes no gates"),
        ({"stage": "prod"}, r"unknown stage 'prod' \(did you mean 'production'\?\)"),
        ({"requested_by": " "}, r"requested_by must name a person"),
        ({"created_ms": -1}, r"created_ms must be milliseconds since the epoch"),
        ({"status": "done"}, r"approval status 'done' is not known"),
        ({"decided_by": "bob"}, r"a pending request has no decision"),
        ({"status": "approved"}, r"decided_by must name a person, got None"),
        ({"status": "approved", "decided_by": "bob"}, r"decided_ms must be milliseconds"),
    ],
)
def test_malformed_requests_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        request(**changes)


def test_same_person_ignores_case_and_outer_spaces() -> None:
    assert same_person("Alice", " alice ")
    assert not same_person("alice", "alicia")


# --- the promotion verdict -----------------------------------------------------------------


def test_failed_gates_refuse_the_promotion_unless_forced() -> None:
    failing = report(0.8, require_approval=False)
    with pytest.raises(GatesFailed) as info:
        authorize_promotion(failing)
    assert isinstance(info.value, InvalidState)
    assert str(info.value) == (
        "churn v7 -> production is refused: 1 gate check(s) failed: accuracy 0.8 is below the "
        "minimum 0.85. Improve the model, or force the promotion with a written reason"
    )
    authorize_promotion(failing, force=ForcedPromotion("known label noise, see #42"))
    authorize_promotion(report(0.9, require_approval=False))


def test_approval_is_required_and_force_does_not_replace_it() -> None:
    with pytest.raises(PermissionDenied) as info:
        authorize_promotion(report(0.8), force=ForcedPromotion("urgent fix"))
    assert str(info.value) == (
        "churn v7 -> production needs approval by a person other than the requester: request "
        "it, and promote once it is approved (forcing does not replace approval)"
    )
    approved = request().approve("bob", 2_000, allow_self_approval=False)
    authorize_promotion(report(0.8), force=ForcedPromotion("urgent fix"), approval=approved)
    authorize_promotion(report(0.9), approval=approved)


def test_the_approval_must_be_granted_for_this_version_and_stage() -> None:
    with pytest.raises(PermissionDenied, match=r"apr-1 \(churn v7 -> production\) is pending"):
        authorize_promotion(report(), approval=request())
    rejected = request().reject("bob", 2_000, "no")
    with pytest.raises(PermissionDenied, match=r"is rejected, not approved"):
        authorize_promotion(report(), approval=rejected)
    other = request(version=6).approve("bob", 2_000, allow_self_approval=False)
    with pytest.raises(PermissionDenied) as info:
        authorize_promotion(report(), approval=other)
    assert str(info.value) == (
        "approval request apr-1 is for churn v6 -> production, not churn v7 -> production; "
        "use a request for this version and stage"
    )
    staging = request(stage="staging").approve("bob", 2_000, allow_self_approval=False)
    with pytest.raises(PermissionDenied, match=r"is for churn v7 -> staging"):
        authorize_promotion(report(), approval=staging)


def test_a_self_approval_is_refused_when_the_policy_changed_since() -> None:
    self_approved = request().approve("alice", 2_000, allow_self_approval=True)
    authorize_promotion(report(allow_self_approval=True), approval=self_approved)
    with pytest.raises(PermissionDenied, match=r"approved by its own requester \(alice\)"):
        authorize_promotion(report(), approval=self_approved)


# --- audit records -------------------------------------------------------------------------


def test_gate_verdict_record() -> None:
    record = gates_checked(report(0.9), "alice")
    assert (record.action, record.object_type, record.object_id, record.actor) == (
        "model_version.gates",
        "model_version",
        "models:/churn/7",
        "alice",
    )
    assert record.after == {
        "stage": "production",
        "passed": True,
        "champion_version": None,
        "counts": {"passed": 1, "failed": 0, "skipped": 0},
        "failed": [],
        "skipped": [],
    }
    assert record.reason is None


def test_forced_promotion_record_names_the_overridden_checks_and_the_reason() -> None:
    record = gates_checked(report(0.8), "alice", ForcedPromotion("label noise, see #42"))
    assert record.action == "model_version.gates_forced"
    assert record.after is not None and record.after["failed"] == ["min:accuracy"]
    assert record.reason == "label noise, see #42"
    # forcing a promotion that passed anyway is an ordinary verdict
    assert gates_checked(report(0.9), "alice", ForcedPromotion("x")).action == "model_version.gates"
    with pytest.raises(InvalidInput, match=r"names no version"):
        gates_checked(report(version=None), "alice")


def test_approval_records() -> None:
    pending = request()
    asked = approval_requested(pending)
    assert (asked.action, asked.object_type, asked.object_id, asked.actor) == (
        "approval.request",
        "approval_request",
        "models:/churn/7/approvals/apr-1",
        "alice",
    )
    assert asked.after == {
        "model": "churn",
        "version": 7,
        "stage": "production",
        "status": "pending",
    }
    for decided, action in (
        (pending.approve("bob", 2, allow_self_approval=False, comment="ok"), "approval.approve"),
        (pending.reject("bob", 2, "too slow"), "approval.reject"),
        (pending.cancel("alice", 2), "approval.cancel"),
    ):
        record = approval_decided(pending, decided)
        assert record.action == action
        assert record.actor == decided.decided_by
        assert record.before == {"status": "pending"}
        assert record.after == {"status": decided.status.value, "decided_by": decided.decided_by}
        assert record.reason == decided.comment
    with pytest.raises(InvalidInput, match=r"needs one request before \(pending\) and after"):
        approval_decided(pending, pending)
    with pytest.raises(InvalidInput, match=r"a new request is recorded while pending"):
        approval_requested(pending.cancel("alice", 2))
