"""``loopml gc``: report, then remove, artifact-store objects nothing references."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli.context import handled, out, print_json, state


def register(app: typer.Typer) -> None:
    app.command("gc")(gc)


def gc(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help="Delete; without it, only report.")] = False,
    grace_hours: Annotated[
        float, typer.Option(help="Keep unreferenced objects stored more recently than this.")
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Find artifacts nothing references (e.g. chunks of a failed add); --yes deletes them."""
    with handled():
        report = state(ctx).client().app.gc.collect(grace_hours * 3600, dry_run=not yes)
    if as_json:
        print_json(
            {
                "objects": report.objects,
                "referenced": report.referenced,
                "garbage": report.garbage,
                "garbage_bytes": report.garbage_bytes,
                "young": report.young,
                "deleted": report.deleted,
                "temporaries": report.temporaries,
                "temporaries_bytes": report.temporaries_bytes,
            }
        )
        return
    verb = "deleted" if report.deleted else "would delete"
    out.print(
        f"{report.objects:,} objects, {report.referenced:,} referenced; {verb} "
        f"{report.garbage:,} unreferenced ({report.garbage_bytes:,} bytes); kept {report.young:,} "
        f"unreferenced younger than {grace_hours:g} h"
    )
    if report.deleted and report.temporaries:
        out.print(
            f"removed {report.temporaries} half-written temporary files "
            f"({report.temporaries_bytes:,} bytes)"
        )
    if not report.deleted and report.garbage:
        out.print("run `loopml gc --yes` to delete them")
