"""``loopml models list|show|promote|alias|archive``."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli.context import fmt_ms, fmt_value, handled, new_table, out, print_json, state

app = typer.Typer(help="The model registry: versions, stages and aliases.", no_args_is_help=True)


@app.command("list")
def list_models(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Registered models with their latest version and aliases."""
    with handled():
        page = state(ctx).client().list_models(page_size=1000)
    if as_json:
        print_json(
            [
                {
                    "name": m.name,
                    "latest_version": m.latest_version,
                    "aliases": m.aliases,
                    "created_ms": m.created_ms,
                }
                for m in page
            ]
        )
        return
    table = new_table("model", "latest", "aliases", "created")
    for m in page:
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(m.aliases.items()))
        table.add_row(m.name, f"v{m.latest_version}", aliases or "-", fmt_ms(m.created_ms))
    out.print(table)
    if not page.items:
        out.print("No models yet: register one with loopml.register_model(model, 'name').")


@app.command("show")
def show(
    ctx: typer.Context, name: str, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Every version of a model: stage, flavor, metrics, run and artifact."""
    with handled():
        client = state(ctx).client()
        versions = list(client.list_versions(name, page_size=1000))
    if as_json:
        print_json(
            [
                {
                    "version": v.version,
                    "stage": v.stage.value,
                    "flavor": v.flavor,
                    "aliases": list(v.aliases),
                    "metrics": v.metrics,
                    "run_id": v.run_id,
                    "artifact": str(v.artifact.digest),
                    "created_ms": v.created_ms,
                    "signature": v.signature.to_dict() if v.signature else None,
                }
                for v in versions
            ]
        )
        return
    table = new_table("version", "stage", "aliases", "flavor", "metrics", "run", "created")
    for v in versions:
        metrics = ", ".join(f"{k}={fmt_value(x)}" for k, x in sorted(v.metrics.items())[:3])
        table.add_row(
            f"v{v.version}",
            v.stage.value,
            ", ".join(v.aliases) or "-",
            v.flavor,
            metrics or "-",
            (v.run_id or "-")[:12],
            fmt_ms(v.created_ms),
        )
    out.print(table)


@app.command("promote")
def promote(
    ctx: typer.Context,
    name: str,
    version: int,
    stage: Annotated[str, typer.Argument(help="staging, production, candidate or archived")],
    reason: Annotated[str | None, typer.Option(help="Why; recorded in the audit trail.")] = None,
    archive_existing: Annotated[
        bool, typer.Option(help="Archive the current production version in the same step.")
    ] = False,
    allow_multiple: Annotated[
        bool, typer.Option(help="Keep several versions in production.")
    ] = False,
    force: Annotated[
        str | None,
        typer.Option(
            "--force", metavar="REASON", help="Promote past failed gates; the reason is audited."
        ),
    ] = None,
) -> None:
    """Move a version to another lifecycle stage (audited); gated stages run their gates."""
    with handled():
        mv = (
            state(ctx)
            .client()
            .promote(
                name,
                version,
                stage,
                reason=reason,
                archive_existing=archive_existing,
                allow_multiple=allow_multiple,
                force_reason=force,
            )
        )
    out.print(f"{mv.uri} is now in {mv.stage.value}")


@app.command("archive")
def archive(
    ctx: typer.Context,
    name: str,
    version: int,
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Retire a version (stage archived)."""
    with handled():
        mv = state(ctx).client().archive(name, version, reason)
    out.print(f"{mv.uri} is archived")


@app.command("alias")
def alias(
    ctx: typer.Context,
    name: str,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS")],
    version: Annotated[int | None, typer.Argument()] = None,
    delete: Annotated[bool, typer.Option("--delete")] = False,
) -> None:
    """Point ALIAS (e.g. champion) at VERSION, or remove it with --delete."""
    with handled():
        client = state(ctx).client()
        if delete:
            client.delete_alias(name, alias_name)
            out.print(f"removed alias models:/{name}@{alias_name}")
            return
        if version is None:
            out.print("give the VERSION the alias should point at, or --delete")
            raise typer.Exit(2)
        client.set_alias(name, alias_name, version)
    out.print(f"models:/{name}@{alias_name} → v{version}")
