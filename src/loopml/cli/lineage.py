"""``loopml lineage models:/NAME/VERSION``: where a model version came from."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli.context import handled, out, print_json, state


def register(app: typer.Typer) -> None:
    app.command("lineage")(lineage)


def lineage(
    ctx: typer.Context,
    uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION (or @ALIAS, /STAGE).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a tree.")] = False,
) -> None:
    """The graph from a model version back through its run to its data and code."""
    with handled():
        tree = state(ctx).client().app.lineage.of_model(uri)
    if as_json:
        print_json(tree.to_dict())
        return
    for line in tree.lines():
        out.print(line, markup=False)
