"""The human side of gates: forcing a promotion past failed checks, and approval requests.

A :class:`ForcedPromotion` carries the written reason that lets a person move a version
whose gate checks failed; an empty reason is refused. An :class:`ApprovalRequest` is a
person's request to move a version into a stage whose policy requires approval; it is
decided once, by a small state machine::

    pending ──approve──▶ approved
       │ ├────reject───▶ rejected
       │ └────cancel───▶ cancelled   (by the requester only)

A decided request never changes again: ask anew with a new request. Who may decide:
anyone but the requester approves or rejects, unless the policy sets
``allow_self_approval``; only the requester cancels. Names are compared ignoring case and
surrounding spaces, so ``Alice`` cannot approve ``alice``'s request.

:func:`authorize_promotion` is the verdict the registry applies before a stage move: the
checks passed or were forced with a reason, and a required approval was granted for this
very version and stage. Force never stands in for approval: it overrides the numbers, not
the second pair of eyes. Standard library only, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from loopml.domain.errors import (
    AlreadyExists,
    ConcurrentModification,
    InvalidInput,
    InvalidState,
    NotFound,
    PermissionDenied,
)
from loopml.domain.gate_report import GateReport
from loopml.domain.gates import gated_stage
from loopml.domain.lifecycle import Stage
from loopml.domain.names import validate_identifier


class GatesFailed(InvalidState):
    """A promotion was refused because gate checks failed and it was not forced."""


@dataclass(frozen=True, slots=True)
class ForcedPromotion:
    """Permission to promote past failed gate checks, with the reason written down.

    The reason is stored (stripped) in the audit trail; empty or blank text is refused.
    """

    reason: str

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise InvalidInput(
                f"forcing a promotion past failed gates needs a written reason, got "
                f"{self.reason!r}; say why the failures are acceptable (e.g. 'eu slice has 12 "
                "rows this month, see issue 42')"
            )
        object.__setattr__(self, "reason", self.reason.strip())


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


ALLOWED_DECISIONS: dict[ApprovalStatus, tuple[ApprovalStatus, ...]] = {
    ApprovalStatus.PENDING: (
        ApprovalStatus.APPROVED,
        ApprovalStatus.REJECTED,
        ApprovalStatus.CANCELLED,
    ),
    ApprovalStatus.APPROVED: (),
    ApprovalStatus.REJECTED: (),
    ApprovalStatus.CANCELLED: (),
}


def same_person(a: str, b: str) -> bool:
    """Whether two actor names name the same person (case and outer spaces ignored)."""
    return a.strip().casefold() == b.strip().casefold()


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A request that a person approve moving ``model`` version ``version`` into ``stage``.

    Create one pending (the default); :meth:`approve`, :meth:`reject` and :meth:`cancel`
    return the decided copy, which the caller stores with the audit record of
    :func:`loopml.domain.gate_events.approval_decided`.
    """

    id: str
    model: str
    version: int
    stage: Stage
    requested_by: str
    created_ms: int
    status: ApprovalStatus = ApprovalStatus.PENDING
    decided_by: str | None = None
    decided_ms: int | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        validate_identifier("approval request id", self.id)
        validate_identifier("model name", self.model)
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise InvalidInput(f"version must be a whole number >= 1, got {self.version!r}")
        object.__setattr__(self, "stage", gated_stage(self.stage))
        _actor(self.requested_by, "requested_by")
        _time(self.created_ms, "created_ms")
        status: object = self.status
        if status not in {s.value for s in ApprovalStatus}:
            raise InvalidInput(
                f"approval status {status!r} is not known; expected one of "
                f"{', '.join(s.value for s in ApprovalStatus)}"
            )
        object.__setattr__(self, "status", ApprovalStatus(self.status))
        if self.comment is not None and not isinstance(self.comment, str):
            raise InvalidInput(f"comment must be text or None, got {self.comment!r}")
        if self.status is ApprovalStatus.PENDING:
            if self.decided_by is not None or self.decided_ms is not None:
                raise InvalidInput(
                    f"a pending request has no decision, but decided_by={self.decided_by!r} "
                    f"and decided_ms={self.decided_ms!r}; leave both None"
                )
        else:
            _actor(self.decided_by, "decided_by")
            _time(self.decided_ms, "decided_ms")

    @property
    def uri(self) -> str:
        """The audit object id: under the version, so the model's history lists it."""
        return f"models:/{self.model}/{self.version}/approvals/{self.id}"

    @property
    def subject(self) -> str:
        return f"{self.model} v{self.version} -> {self.stage.value}"

    @property
    def is_open(self) -> bool:
        return self.status is ApprovalStatus.PENDING

    def approve(
        self, actor: str, now_ms: int, *, allow_self_approval: bool, comment: str | None = None
    ) -> ApprovalRequest:
        """Approve; the requester may only when the policy allows self-approval.

        Raises:
            InvalidState: the request was already decided.
            PermissionDenied: ``actor`` requested it and self-approval is not allowed.
        """
        self._check_open(ApprovalStatus.APPROVED)
        if same_person(actor, self.requested_by) and not allow_self_approval:
            raise PermissionDenied(
                f"{actor} cannot approve their own request {self.id} ({self.subject}): the "
                "gate policy needs a second person; ask someone else to approve it"
            )
        return self._decide(ApprovalStatus.APPROVED, actor, now_ms, comment)

    def reject(self, actor: str, now_ms: int, comment: str) -> ApprovalRequest:
        """Reject, saying why: the requester learns what to fix.

        Raises:
            InvalidState: the request was already decided.
            InvalidInput: the comment is empty.
            PermissionDenied: ``actor`` is the requester (who cancels instead).
        """
        self._check_open(ApprovalStatus.REJECTED)
        if not isinstance(comment, str) or not comment.strip():
            raise InvalidInput(
                f"rejecting request {self.id} needs a comment saying why, got {comment!r}; "
                "the requester reads it to know what to fix"
            )
        if same_person(actor, self.requested_by):
            raise PermissionDenied(
                f"{actor} requested {self.id} and cannot reject it; withdraw it with cancel"
            )
        return self._decide(ApprovalStatus.REJECTED, actor, now_ms, comment)

    def cancel(self, actor: str, now_ms: int, comment: str | None = None) -> ApprovalRequest:
        """Withdraw the request; only its requester may.

        Raises:
            InvalidState: the request was already decided.
            PermissionDenied: ``actor`` is not the requester (who rejects instead).
        """
        self._check_open(ApprovalStatus.CANCELLED)
        if not same_person(actor, self.requested_by):
            raise PermissionDenied(
                f"only {self.requested_by}, who requested {self.id}, can cancel it; "
                f"{actor} can reject it with a comment instead"
            )
        return self._decide(ApprovalStatus.CANCELLED, actor, now_ms, comment)

    def _check_open(self, target: ApprovalStatus) -> None:
        if target in ALLOWED_DECISIONS[self.status]:
            return
        raise InvalidState(
            f"approval request {self.id} ({self.subject}) is already {self.status.value} by "
            f"{self.decided_by}, so it cannot be {target.value}; a decided request never "
            "changes. Open a new request to ask again"
        )

    def _decide(
        self, status: ApprovalStatus, actor: str, now_ms: int, comment: str | None
    ) -> ApprovalRequest:
        text = comment.strip() if isinstance(comment, str) and comment.strip() else None
        return replace(
            self, status=status, decided_by=_actor(actor, "actor"), decided_ms=now_ms, comment=text
        )


def no_approval_request(request_id: str) -> NotFound:
    """The error of every store when request ``request_id`` does not exist."""
    return NotFound(
        f"approval request {request_id!r} does not exist; list requests with "
        "`loopml approvals list`"
    )


def open_request_exists(existing: ApprovalRequest) -> AlreadyExists:
    """The error of every store asked to open a second request for one version and stage."""
    return AlreadyExists(
        f"{existing.subject} already has an open approval request, {existing.id}, asked by "
        f"{existing.requested_by}; wait for its decision, or cancel it "
        f"(`loopml approvals cancel {existing.id}`) before asking again"
    )


def decided_meanwhile(current: ApprovalRequest) -> ConcurrentModification:
    """The error of every store asked to decide a request someone else decided first."""
    return ConcurrentModification(
        f"approval request {current.id} ({current.subject}) was {current.status.value} by "
        f"{current.decided_by} meanwhile; the first decision counts and never changes. Look "
        "at it again with `loopml approvals list`"
    )


def _actor(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must name a person, got {value!r}")
    return value


def _time(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{what} must be milliseconds since the epoch (>= 0), got {value!r}")
    return value


def authorize_promotion(
    report: GateReport,
    *,
    force: ForcedPromotion | None = None,
    approval: ApprovalRequest | None = None,
) -> None:
    """Raise unless the move ``report`` describes may happen.

    Raises:
        GatesFailed: a check failed and ``force`` is ``None``.
        PermissionDenied: the policy requires approval and ``approval`` is missing, not
            approved, for another version or stage, or approved by its requester when the
            policy forbids that.
    """
    if not report.passed and force is None:
        raise GatesFailed(
            f"{report.subject} is refused: {len(report.failures)} gate check(s) failed: "
            f"{report.failure_text()}. Improve the model, or force the promotion with a "
            "written reason"
        )
    if not report.requires_approval:
        return
    who = "a person" if report.allow_self_approval else "a person other than the requester"
    if approval is None:
        raise PermissionDenied(
            f"{report.subject} needs approval by {who}: request it, and promote once it is "
            "approved (forcing does not replace approval)"
        )
    wanted = (report.model, report.stage)
    if (approval.model, approval.stage) != wanted or (
        report.candidate_version is not None and approval.version != report.candidate_version
    ):
        raise PermissionDenied(
            f"approval request {approval.id} is for {approval.subject}, not {report.subject}; "
            "use a request for this version and stage"
        )
    if approval.status is not ApprovalStatus.APPROVED:
        raise PermissionDenied(
            f"approval request {approval.id} ({approval.subject}) is {approval.status.value}, "
            f"not approved; {report.subject} needs approval by {who}"
        )
    decided_by = approval.decided_by or ""
    if not report.allow_self_approval and same_person(decided_by, approval.requested_by):
        raise PermissionDenied(
            f"approval request {approval.id} was approved by its own requester "
            f"({decided_by}), which the gate policy forbids; ask someone else to approve"
        )
