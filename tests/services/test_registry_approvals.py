"""Approval requests, stored and enforced by the registry (see docs/gates.md, Approvals)."""

from __future__ import annotations

import re

import pytest
from sklearn.linear_model import LinearRegression

from loopml.bootstrap import Loopml
from loopml.domain.approvals import ApprovalStatus, GatesFailed
from loopml.domain.errors import (
    AlreadyExists,
    IllegalTransition,
    InvalidInput,
    InvalidState,
    NotFound,
    PermissionDenied,
)
from loopml.domain.gate_file import policy_from_toml
from loopml.domain.lifecycle import Stage
from loopml.services.registry import RegistryService

POLICY = """
[gates.default.production]
require_approval = true
{extra}

[gates.default.production.thresholds]
rmse = 40.0
"""


def _model() -> LinearRegression:
    return LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])


def _gate(app: Loopml, extra: str = "") -> RegistryService:
    app.registry.gates = policy_from_toml(POLICY.format(extra=extra), "loopml.toml")
    return app.registry


@pytest.fixture
def registry(app: Loopml) -> RegistryService:
    """Gated production (approval required, rmse <= 40) and two staged versions of m."""
    registry = _gate(app)
    for rmse in (30.0, 35.0):
        mv = registry.register(_model(), "m", "ana", metrics={"rmse": rmse})
        registry.transition("m", mv.version, Stage.STAGING, "ana")
    return registry


def _actions(app: Loopml, object_id: str = "models:/m") -> list[str]:
    return [e.action for e in app.audit.list_events(object_id, 1000, None)][::-1]


def _stages(registry: RegistryService) -> dict[int, Stage]:
    return {v.version: v.stage for v in registry.list_versions("m")}


def test_request_approve_promote(app: Loopml, registry: RegistryService) -> None:
    request = registry.request_approval("m", 1, "production", "alice")
    assert re.fullmatch(r"apr-[0-9a-f]{10}", request.id)
    assert (request.status, request.requested_by) == (ApprovalStatus.PENDING, "alice")
    approved = registry.approve(request.id, "bob", comment="numbers look right")
    assert (approved.status, approved.decided_by) == (ApprovalStatus.APPROVED, "bob")
    assert registry.transition("m", 1, "production", "alice").stage is Stage.PRODUCTION
    assert _actions(app, "models:/m/1")[-4:] == [
        "approval.request",
        "approval.approve",
        "model_version.gates",
        "model_version.stage",
    ]
    events = list(app.audit.list_events("models:/m/1", 100, None))
    [verdict] = [e for e in events if e.action == "model_version.gates"]
    assert verdict.after is not None and verdict.after["approval"] == request.id
    [asked] = [e for e in events if e.action == "approval.request"]
    assert (asked.actor, asked.object_id) == ("alice", f"models:/m/1/approvals/{request.id}")
    [decided] = [e for e in events if e.action == "approval.approve"]
    assert (decided.actor, decided.reason) == ("bob", "numbers look right")
    assert app.audit.verify().ok


def test_a_promotion_without_approval_is_refused_and_changes_nothing(
    app: Loopml, registry: RegistryService
) -> None:
    before = _actions(app)
    with pytest.raises(PermissionDenied, match=r"m v1 -> production needs approval"):
        registry.transition("m", 1, "production", "alice")
    with pytest.raises(PermissionDenied, match=r"forcing does not replace approval"):
        registry.transition("m", 1, "production", "alice", force_reason="urgent")
    request = registry.request_approval("m", 1, "production", "alice")
    with pytest.raises(PermissionDenied):  # pending is not approved
        registry.transition("m", 1, "production", "alice")
    registry.reject(request.id, "bob", "wait for the new data")
    with pytest.raises(PermissionDenied):  # neither is rejected
        registry.transition("m", 1, "production", "alice")
    assert _stages(registry) == {1: Stage.STAGING, 2: Stage.STAGING}
    assert _actions(app) == [*before, "approval.request", "approval.reject"]


def test_self_approval_is_refused_when_the_policy_forbids_it(
    app: Loopml, registry: RegistryService
) -> None:
    request = registry.request_approval("m", 1, "production", "alice")
    before = _actions(app)
    own = rf"ALICE cannot approve their own request {request.id}"
    with pytest.raises(PermissionDenied, match=own):
        registry.approve(request.id, "ALICE")
    assert registry.get_approval(request.id).status is ApprovalStatus.PENDING
    assert _actions(app) == before  # no audit event either
    with pytest.raises(PermissionDenied):
        registry.transition("m", 1, "production", "alice")


def test_self_approval_is_allowed_when_the_policy_says_so(app: Loopml) -> None:
    registry = _gate(app, "allow_self_approval = true")
    registry.register(_model(), "m", "alice", metrics={"rmse": 30.0})
    registry.transition("m", 1, Stage.STAGING, "alice")
    request = registry.request_approval("m", 1, "production", "alice")
    assert registry.approve(request.id, "alice").decided_by == "alice"
    assert registry.transition("m", 1, "production", "alice").stage is Stage.PRODUCTION


def test_reject_needs_a_comment_and_cancel_is_the_requesters(
    app: Loopml, registry: RegistryService
) -> None:
    request = registry.request_approval("m", 1, "production", "alice")
    before = _actions(app)
    with pytest.raises(InvalidInput, match=r"needs a comment saying why"):
        registry.reject(request.id, "bob", "   ")
    with pytest.raises(PermissionDenied, match=r"only alice.*can cancel it"):
        registry.cancel(request.id, "bob")
    assert _actions(app) == before
    assert registry.get_approval(request.id).is_open
    cancelled = registry.cancel(request.id, "alice", "asked too early")
    assert (cancelled.status, cancelled.comment) == (ApprovalStatus.CANCELLED, "asked too early")
    # a decided request leaves room for a new one
    assert registry.request_approval("m", 1, "production", "alice").is_open


def test_an_approval_of_v1_does_not_unlock_v2(registry: RegistryService) -> None:
    request = registry.request_approval("m", 1, "production", "alice")
    registry.approve(request.id, "bob")
    with pytest.raises(PermissionDenied, match=r"m v2 -> production needs approval"):
        registry.transition("m", 2, "production", "alice")
    assert _stages(registry)[2] is Stage.STAGING


def test_deciding_twice_is_refused(app: Loopml, registry: RegistryService) -> None:
    request = registry.request_approval("m", 1, "production", "alice")
    registry.approve(request.id, "bob")
    before = _actions(app)
    with pytest.raises(InvalidState, match=r"already approved by bob"):
        registry.reject(request.id, "carol", "no")
    with pytest.raises(InvalidState, match=r"already approved by bob"):
        registry.approve(request.id, "carol")
    with pytest.raises(InvalidState):
        registry.cancel(request.id, "alice")
    assert _actions(app) == before
    assert registry.get_approval(request.id).decided_by == "bob"


def test_approval_does_not_excuse_failed_checks(app: Loopml, registry: RegistryService) -> None:
    registry.register(_model(), "m", "ana", metrics={"rmse": 41.2})
    registry.transition("m", 3, Stage.STAGING, "ana")
    request = registry.request_approval("m", 3, "production", "alice")
    registry.approve(request.id, "bob")
    with pytest.raises(GatesFailed, match=r"rmse 41\.2 is above the maximum 40\.0"):
        registry.transition("m", 3, "production", "alice")
    mv = registry.transition("m", 3, "production", "alice", force_reason="hotfix, see #7")
    assert mv.stage is Stage.PRODUCTION
    assert "model_version.gates_forced" in _actions(app, "models:/m/3")


def test_requests_are_refused_where_they_make_no_sense(
    app: Loopml, registry: RegistryService
) -> None:
    registry.register(_model(), "m", "ana", metrics={"rmse": 30.0})  # v3, a candidate
    registry.archive("m", 2, "ana")
    before = _actions(app)
    with pytest.raises(InvalidInput, match=r"does not require approval for m -> staging"):
        registry.request_approval("m", 3, "staging", "alice")
    with pytest.raises(InvalidInput, match=r"stage 'archived' takes no gates"):
        registry.request_approval("m", 1, "archived", "alice")
    with pytest.raises(InvalidState, match=r"models:/m/2 is archived"):
        registry.request_approval("m", 2, "production", "alice")
    with pytest.raises(IllegalTransition, match=r"Promote it to staging first"):
        registry.request_approval("m", 3, "production", "alice")
    with pytest.raises(NotFound, match=r"no version 9"):
        registry.request_approval("m", 9, "production", "alice")
    assert _actions(app) == before
    first = registry.request_approval("m", 1, "production", "alice")
    with pytest.raises(AlreadyExists, match=rf"already has an open approval request, {first.id}"):
        registry.request_approval("m", 1, "production", "bob")
    registry.transition("m", 1, Stage.CANDIDATE, "ana")
    registry.transition("m", 1, Stage.STAGING, "ana")


def test_listing_filters_by_model_and_status(registry: RegistryService) -> None:
    registry.register(_model(), "other", "ana", metrics={"rmse": 30.0})
    registry.transition("other", 1, Stage.STAGING, "ana")
    first = registry.request_approval("m", 1, "production", "alice")
    second = registry.request_approval("m", 2, "production", "alice")
    third = registry.request_approval("other", 1, "production", "alice")
    registry.approve(first.id, "bob")
    assert [r.id for r in registry.list_approvals()] == [third.id, second.id, first.id]
    assert [r.id for r in registry.list_approvals("m", "pending")] == [second.id]
    assert [r.id for r in registry.list_approvals(status=ApprovalStatus.APPROVED)] == [first.id]
    with pytest.raises(InvalidInput, match=r"unknown approval status 'done'"):
        registry.list_approvals(status="done")
    with pytest.raises(NotFound, match=r"loopml approvals list"):
        registry.get_approval("apr-0000000000")
