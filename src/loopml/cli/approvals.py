"""``loopml approvals list|request|approve|reject|cancel``: the second pair of eyes.

A stage whose gate policy sets ``require_approval`` is entered only once a person other
than the requester (unless the policy allows self-approval) approved a request for that
very version and stage; see docs/gates.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli.context import fmt_ms, handled, new_table, out, print_json, state

if TYPE_CHECKING:
    from loopml.domain.approvals import ApprovalRequest

app = typer.Typer(
    help="Approval requests for promotions into stages that require them.",
    no_args_is_help=True,
)


@app.command("list")
def list_requests(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model's requests.")] = None,
    status: Annotated[
        str | None, typer.Option(help="pending, approved, rejected or cancelled.")
    ] = None,
    limit: Annotated[int, typer.Option()] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Approval requests, newest first."""
    with handled():
        page = state(ctx).client().list_approvals(model, status, page_size=limit)
    if as_json:
        print_json([_as_dict(r) for r in page])
        return
    table = new_table("id", "request", "status", "asked by", "asked", "decided by", "comment")
    for r in page:
        table.add_row(
            r.id,
            r.subject,
            r.status.value,
            r.requested_by,
            fmt_ms(r.created_ms),
            r.decided_by or "-",
            r.comment or "-",
        )
    out.print(table)
    if not page.items:
        out.print("No approval requests: ask for one with `loopml approvals request NAME VERSION`.")


@app.command("request")
def request(
    ctx: typer.Context,
    name: str,
    version: int,
    stage: Annotated[str, typer.Option(help="staging or production.")] = "production",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Ask that another person approve moving VERSION of NAME into a stage."""
    with handled():
        r = state(ctx).client().request_approval(name, version, stage)
    if as_json:
        print_json(_as_dict(r))
        return
    out.print(
        f"requested approval {r.id}: {r.subject}; another person approves it with "
        f"`loopml approvals approve {r.id}`"
    )


@app.command("approve")
def approve(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(metavar="ID")],
    comment: Annotated[str | None, typer.Option(help="Recorded in the audit trail.")] = None,
) -> None:
    """Approve a pending request; the version may then be promoted."""
    with handled():
        r = state(ctx).client().approve(request_id, comment)
    out.print(
        f"approved {r.id}: promote with `loopml models promote {r.model} {r.version} "
        f"{r.stage.value}`"
    )


@app.command("reject")
def reject(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(metavar="ID")],
    comment: Annotated[str, typer.Option(help="Why: the requester reads it to know what to fix.")],
) -> None:
    """Reject a pending request, saying why."""
    with handled():
        r = state(ctx).client().reject(request_id, comment)
    out.print(f"rejected {r.id} ({r.subject})")


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(metavar="ID")],
    comment: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Withdraw your own pending request."""
    with handled():
        r = state(ctx).client().cancel_approval(request_id, comment)
    out.print(f"cancelled {r.id} ({r.subject})")


def _as_dict(r: ApprovalRequest) -> dict[str, Any]:
    return {
        "id": r.id,
        "model": r.model,
        "version": r.version,
        "stage": r.stage.value,
        "status": r.status.value,
        "requested_by": r.requested_by,
        "created_ms": r.created_ms,
        "decided_by": r.decided_by,
        "decided_ms": r.decided_ms,
        "comment": r.comment,
    }
