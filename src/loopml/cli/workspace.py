"""Workspace commands: ``init``, ``config show``, ``db upgrade|status``, ``quickstart``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.context import handled, new_table, out, print_json, state

config_app = typer.Typer(
    help="Show the settings in force and where each came from.", no_args_is_help=True
)
db_app = typer.Typer(
    help="Metadata database schema: status and explicit upgrades.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("quickstart")(quickstart)
    app.add_typer(config_app, name="config")
    app.add_typer(db_app, name="db")


def init(
    path: Annotated[Path, typer.Argument(help="Folder to make a workspace.")] = Path(),
    metadata_url: Annotated[str | None, typer.Option(help="Database URL to record.")] = None,
    artifact_url: Annotated[str | None, typer.Option(help="Artifact location to record.")] = None,
) -> None:
    """Create loopml.toml and .loopml/ (SQLite database and artifact folder) here."""
    from loopml.bootstrap import init_workspace

    with handled():
        settings = init_workspace(path, metadata_url=metadata_url, artifact_url=artifact_url)
    out.print(f"Workspace ready in {settings.root}")
    out.print(f"  metadata:  {settings.metadata_url}")
    out.print(f"  artifacts: {settings.artifact_url}")


@config_app.command("show")
def config_show(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Print every setting, its value and where it came from."""
    from loopml.config import load_settings

    with handled():
        settings = load_settings(state(ctx).workspace)
    rows = settings.items()
    if as_json:
        print_json({name: {"value": value, "source": source} for name, value, source in rows})
        return
    table = new_table("setting", "value", "source")
    for name, value, source in rows:
        table.add_row(name, str(value), source)
    out.print(table)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Migrate the metadata database to the schema this loopml needs. Back it up first."""
    from loopml.bootstrap import upgrade_database
    from loopml.config import load_settings

    with handled():
        before, after = upgrade_database(load_settings(state(ctx).workspace))
    if before == after:
        out.print(f"Database already at revision {after}; nothing to do.")
    else:
        out.print(f"Database upgraded from {before or 'empty'} to {after}.")


@db_app.command("status")
def db_status(ctx: typer.Context) -> None:
    """Show the database's schema revision and the one this loopml needs."""
    from loopml.adapters.sql import migrate
    from loopml.adapters.sql.database import SqlDatabase
    from loopml.config import load_settings

    with handled():
        settings = load_settings(state(ctx).workspace)
        db = SqlDatabase(settings.metadata_url)
        try:
            current = migrate.current_revision(db)
        finally:
            db.dispose()
    status = "up to date" if current == migrate.HEAD_REVISION else "run `loopml db upgrade`"
    out.print(
        f"database {settings.metadata_url}: revision {current or 'none'}, "
        f"needed {migrate.HEAD_REVISION} ({status})"
    )
    if current != migrate.HEAD_REVISION:
        raise typer.Exit(5)


def quickstart(
    path: Annotated[
        Path | None,
        typer.Argument(help="Folder for the demo workspace (default: a new temporary folder)."),
    ] = None,
) -> None:
    """Run the whole first loop on the bundled bike-sharing data and explain each step."""
    from loopml.quickstart import run_quickstart

    with handled():
        run_quickstart(path, out)
