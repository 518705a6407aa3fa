"""The audit records of gates and approvals: one definition of each payload, for every store.

As in :mod:`loopml.domain.registry_events`, object ids are URIs under the model version,
so ``loopml audit log --object models:/NAME`` lists a model's gate verdicts and approvals
with the rest of its history: ``models:/NAME/VERSION`` for a gate verdict,
``models:/NAME/VERSION/approvals/ID`` for an approval request.
"""

from __future__ import annotations

from loopml.domain.approvals import ApprovalRequest, ApprovalStatus, ForcedPromotion
from loopml.domain.audit import AuditRecord
from loopml.domain.errors import InvalidInput
from loopml.domain.gate_report import GateReport, Outcome

_VERBS = {
    ApprovalStatus.APPROVED: "approve",
    ApprovalStatus.REJECTED: "reject",
    ApprovalStatus.CANCELLED: "cancel",
}


def gates_checked(
    report: GateReport,
    actor: str,
    force: ForcedPromotion | None = None,
    approval: ApprovalRequest | None = None,
) -> AuditRecord:
    """The verdict of the gates on a promotion, written with the stage change.

    A promotion forced past failed checks is its own action, ``model_version.gates_forced``,
    with the written reason, so that overrides are easy to find. A promotion a person
    approved names the approval request (``approval``: its id) that let it through.
    """
    if report.candidate_version is None:
        raise InvalidInput(
            f"the gate report of {report.subject} names no version; evaluate the gates "
            "with ModelFacts(version=...) so the audit record can name it"
        )
    forced = force is not None and not report.passed
    after: dict[str, object] = {
        "stage": report.stage.value,
        "passed": report.passed,
        "champion_version": report.champion_version,
        "counts": {o.value: report.count(o) for o in Outcome},
        "failed": [c.name for c in report.failures],
        "skipped": [c.name for c in report.skipped],
    }
    if approval is not None:
        after["approval"] = approval.id
    return AuditRecord(
        "model_version.gates_forced" if forced else "model_version.gates",
        "model_version",
        f"models:/{report.model}/{report.candidate_version}",
        actor,
        None,
        after,
        force.reason if forced and force is not None else None,
    )


def approval_requested(request: ApprovalRequest) -> AuditRecord:
    """A new (pending) request, by its requester; written with the stored request."""
    if not request.is_open:
        raise InvalidInput(
            f"approval request {request.id} is {request.status.value}; a new request is "
            "recorded while pending"
        )
    return AuditRecord(
        "approval.request",
        "approval_request",
        request.uri,
        request.requested_by,
        None,
        {
            "model": request.model,
            "version": request.version,
            "stage": request.stage.value,
            "status": request.status.value,
        },
    )


def approval_decided(before: ApprovalRequest, after: ApprovalRequest) -> AuditRecord:
    """The decision that moved ``before`` (pending) to ``after`` (decided)."""
    if before.id != after.id or not before.is_open or after.is_open:
        raise InvalidInput(
            f"approval_decided needs one request before (pending) and after (decided), got "
            f"{before.id} {before.status.value} and {after.id} {after.status.value}"
        )
    return AuditRecord(
        f"approval.{_VERBS[after.status]}",
        "approval_request",
        after.uri,
        after.decided_by or "",
        {"status": before.status.value},
        {"status": after.status.value, "decided_by": after.decided_by},
        after.comment,
    )
