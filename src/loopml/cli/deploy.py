"""``loopml deploy create|list|show|canary|shadow|promote|rollback|retire|history``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from loopml.cli.context import fmt_ms, handled, new_table, out, print_json, state
from loopml.domain.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.domain.deployments import Deployment
    from loopml.services.deployments import DeploymentService

app = typer.Typer(
    help="Deployments: endpoints and the versions that answer on them.", no_args_is_help=True
)

_Reason = Annotated[str | None, typer.Option("--reason", "-m", help="Why (audited).")]
_Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _service(ctx: typer.Context) -> tuple[DeploymentService, str]:
    client = state(ctx).client()
    return client.app.deployments, client.actor


def _show(d: Deployment, as_json: bool, service: DeploymentService) -> None:
    live = service.live(d)
    if as_json:
        data = d.to_dict()
        data["notes"] = list(live.notes)
        print_json(data)
        return
    status = "retired" if d.retired else f"revision {d.revision}"
    out.print(f"[bold]{d.name}[/] ({status}, updated {fmt_ms(d.updated_ms)})")
    out.print(f"  production  {d.production.uri}", markup=False)
    if d.canary is not None:
        out.print(f"  canary      {d.canary.uri}  {d.canary_share:g}% of requests", markup=False)
    if d.shadow is not None:
        out.print(
            f"  shadow      {d.shadow.uri}  (a copy of the traffic, never returned)", markup=False
        )
    if d.previous is not None:
        out.print(
            f"  previous    {d.previous.uri}  (`loopml deploy rollback {d.name}`)", markup=False
        )
    for note in live.notes:
        out.print(f"  [yellow]note:[/] {note}")


@app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION or models:/NAME@ALIAS")],
    reason: _Reason = None,
    as_json: _Json = False,
) -> None:
    """A new deployment serving ``uri`` in production."""
    with handled():
        service, actor = _service(ctx)
        _show(service.create(name, uri, actor, reason), as_json, service)


@app.command("list")
def list_deployments(ctx: typer.Context, as_json: _Json = False) -> None:
    """Every deployment and what it serves."""
    with handled():
        service, _ = _service(ctx)
        found = service.list_all()
    if as_json:
        print_json([d.to_dict() for d in found])
        return
    table = new_table("deployment", "production", "canary", "shadow", "updated")
    for d in found:
        canary = "-" if d.canary is None else f"{d.canary.uri} ({d.canary_share:g}%)"
        shadow = "-" if d.shadow is None else d.shadow.uri
        production = "retired" if d.retired else d.production.uri
        table.add_row(d.name, production, canary, shadow, fmt_ms(d.updated_ms))
    out.print(table)
    if not found:
        out.print("No deployments yet: `loopml deploy create NAME models:/MODEL@champion`.")


@app.command("show")
def show(ctx: typer.Context, name: str, as_json: _Json = False) -> None:
    """A deployment's routes, and notes on versions that no longer serve."""
    with handled():
        service, _ = _service(ctx)
        _show(service.get(name), as_json, service)


@app.command("canary")
def canary(
    ctx: typer.Context,
    name: str,
    uri: Annotated[
        str | None, typer.Argument(help="The canary version (omit with --stop).")
    ] = None,
    share: Annotated[float, typer.Option("--share", help="Percent of requests.")] = 10.0,
    stop: Annotated[bool, typer.Option("--stop", help="Remove the canary.")] = False,
    reason: _Reason = None,
    as_json: _Json = False,
) -> None:
    """Send a share of the traffic to another version (sticky per request key)."""
    with handled():
        service, actor = _service(ctx)
        if stop == (uri is not None):
            raise InvalidInput("give the canary version, or --stop to remove the canary")
        current = service.get(name)
        if uri is not None and current.canary is not None and _same(service, uri, current):
            d = service.share(name, share, actor, reason)
        else:
            d = service.canary(name, uri, share, actor, reason)
        _show(d, as_json, service)


def _same(service: DeploymentService, uri: str, d: Deployment) -> bool:
    mv = service.registry.resolve(uri)
    return d.canary is not None and (mv.model, mv.version) == (d.canary.model, d.canary.version)


@app.command("shadow")
def shadow(
    ctx: typer.Context,
    name: str,
    uri: Annotated[
        str | None, typer.Argument(help="The shadow version (omit with --stop).")
    ] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Remove the shadow.")] = False,
    reason: _Reason = None,
    as_json: _Json = False,
) -> None:
    """Copy the traffic to another version; its answers are logged, never returned."""
    with handled():
        service, actor = _service(ctx)
        if stop == (uri is not None):
            raise InvalidInput("give the shadow version, or --stop to remove the shadow")
        _show(service.shadow(name, uri, actor, reason), as_json, service)


@app.command("promote")
def promote(
    ctx: typer.Context,
    name: str,
    reason: _Reason = None,
    force: Annotated[
        str | None, typer.Option("--force", help="Promote past failed gates; REASON is audited.")
    ] = None,
    as_json: _Json = False,
) -> None:
    """The canary becomes production, through the registry's gates."""
    with handled():
        service, actor = _service(ctx)
        _show(service.promote(name, actor, reason, force_reason=force), as_json, service)


@app.command("rollback")
def rollback(ctx: typer.Context, name: str, reason: _Reason = None, as_json: _Json = False) -> None:
    """Serve the previous production version again, at once."""
    with handled():
        service, actor = _service(ctx)
        _show(service.rollback(name, actor, reason), as_json, service)


@app.command("retire")
def retire(ctx: typer.Context, name: str, reason: _Reason = None, as_json: _Json = False) -> None:
    """Stop serving on this deployment (its history is kept)."""
    with handled():
        service, actor = _service(ctx)
        _show(service.retire(name, actor, reason), as_json, service)


@app.command("history")
def history(
    ctx: typer.Context,
    name: str,
    at: Annotated[
        str | None, typer.Option("--at", help="Which versions served at this time (ISO 8601).")
    ] = None,
    as_json: _Json = False,
) -> None:
    """Every change of a deployment; with --at, the routes in force at that time."""
    with handled():
        service, _ = _service(ctx)
        entries = service.history(name)
        if at is not None:
            entries = [service.serving_at(name, _parse_time(at))]
    if as_json:
        print_json(
            [
                {
                    "revision": e.revision,
                    "time_ms": e.time_ms,
                    "actor": e.actor,
                    "action": e.action.value,
                    "reason": e.reason,
                    "state": e.state.to_dict(),
                }
                for e in entries
            ]
        )
        return
    table = new_table("rev", "time", "action", "actor", "production", "canary", "shadow")
    for e in entries:
        s = e.state
        table.add_row(
            str(e.revision),
            fmt_ms(e.time_ms),
            e.action.value,
            e.actor,
            "retired" if s.retired else s.production.uri,
            "-" if s.canary is None else f"{s.canary.uri} ({s.canary_share:g}%)",
            "-" if s.shadow is None else s.shadow.uri,
        )
    out.print(table)


def _parse_time(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"--at {text!r} is not a time; use ISO 8601, e.g. 2026-11-23T14:05:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
