"""``loopml audit log|verify``."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli.context import err, fmt_ms, handled, new_table, out, print_json, state
from loopml.domain.audit import canonical_json

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


@app.command("log")
def log(
    ctx: typer.Context,
    object_id: Annotated[
        str | None,
        typer.Option(
            "--object", help="e.g. models:/bike-demand (includes its versions and aliases)"
        ),
    ] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Audit events, newest first."""
    with handled():
        page = state(ctx).client().audit_events(object_id, page_size=limit)
    if as_json:
        print_json(
            [
                {
                    "seq": e.seq,
                    "time_ms": e.time_ms,
                    "actor": e.actor,
                    "action": e.action,
                    "object": e.object_id,
                    "before": e.before,
                    "after": e.after,
                    "reason": e.reason,
                    "hash": e.hash,
                }
                for e in page
            ]
        )
        return
    table = new_table("#", "time", "actor", "action", "object", "change")
    for e in page:
        change = (
            f"{canonical_json(e.before) if e.before else '∅'} → "
            f"{canonical_json(e.after) if e.after else '∅'}"
        )
        if e.reason:
            change += f"  ({e.reason})"
        table.add_row(str(e.seq), fmt_ms(e.time_ms), e.actor, e.action, e.object_id, change)
    out.print(table)


@app.command("verify")
def verify(ctx: typer.Context) -> None:
    """Check the hash chain; exit 6 and name the first bad event if it was tampered with."""
    with handled():
        report = state(ctx).client().verify_audit()
    if report.ok:
        out.print(f"audit trail intact: {report.checked} events, head {report.head_hash}")
        return
    err.print(
        f"[bold red]audit trail broken[/] at event {report.first_bad_seq}: "
        f"{report.problem} ({report.checked} events verified before it)"
    )
    raise typer.Exit(6)
