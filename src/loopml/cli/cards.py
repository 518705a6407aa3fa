"""``loopml card models:/NAME/VERSION``: write a model card as Markdown and HTML.

The card is assembled from what loopml already holds about the version (see
:mod:`loopml.services.model_cards`) and the sections people write in ``cards/NAME.md``
beside the code (or ``--sections FILE``). Both files go to ``cards/`` under the
workspace root unless ``--out`` names another folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.context import handled, out, print_json, state


def register(app: typer.Typer) -> None:
    app.command("card")(card)


def card(
    ctx: typer.Context,
    uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION (or @ALIAS, /STAGE).")],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder to write NAME-vVERSION.md and .html into.",
            show_default="cards/ in the workspace",
        ),
    ] = None,
    sections: Annotated[
        Path | None,
        typer.Option(
            "--sections",
            help="Markdown file of '## Intended use', '## Limitations' and other sections.",
            show_default="cards/NAME.md in the workspace, if it exists",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the paths and the card as JSON.")
    ] = False,
) -> None:
    """Write a model card from the registry, data, evaluation, gates and lineage."""
    with handled():
        from loopml.adapters.card_files import SECTIONS_DIR, write_card

        client = state(ctx).client()
        model_card = client.model_card(uri, sections)
        directory = out_dir if out_dir is not None else client.app.root / SECTIONS_DIR
        markdown, html = write_card(model_card, directory)
    if as_json:
        print_json({"markdown": str(markdown), "html": str(html), "card": model_card.to_dict()})
        return
    out.print(str(markdown), markup=False)
    out.print(str(html), markup=False)
