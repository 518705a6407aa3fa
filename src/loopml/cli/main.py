"""Entry point of the ``loopml`` command; sub-command groups live in sibling modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopml.cli import (
    approvals,
    audit,
    cards,
    check,
    data,
    deploy,
    gc,
    lineage,
    models,
    monitor,
    pipelines,
    predict,
    predictions,
    runs,
    serve,
    sweep,
    workspace,
)
from loopml.cli.context import State, state

app = typer.Typer(
    name="loopml",
    help="loopml: track, version, register, promote and audit models: the whole loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain click help: renders in a third of the time
)


@app.callback()
def root(
    ctx: typer.Context,
    workspace_path: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace folder (default: found by walking up from here).",
            envvar="LOOPML_WORKSPACE",
        ),
    ] = None,
) -> None:
    ctx.obj = State(workspace=workspace_path)
    ctx.call_on_close(state(ctx).close)


workspace.register(app)
monitor.register(app)
app.add_typer(runs.app, name="runs")
app.add_typer(runs.experiments_app, name="experiments")
app.add_typer(models.app, name="models")
app.add_typer(approvals.app, name="approvals")
app.add_typer(data.app, name="data")
app.add_typer(deploy.app, name="deploy")
app.add_typer(audit.app, name="audit")
lineage.register(app)
cards.register(app)
pipelines.register(app)
check.register(app)
serve.register(app)
gc.register(app)
sweep.register(app)
predictions.register(app)
predict.register(app)


def main() -> None:
    app()
