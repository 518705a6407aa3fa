"""``loopml predict URI --input IN --output OUT``: batch scoring with a registered model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.context import Trusted, handled, out, print_json, progress, state


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


def predict(
    ctx: typer.Context,
    uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION (or @ALIAS, /STAGE).")],
    input: Annotated[
        str,
        typer.Option(
            "--input", "-i", help="CSV or Parquet file, a folder of them, or NAME@VERSION."
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="File to write: CSV if it ends in .csv.")
    ],
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", help="Rows per model call (local engine).")
    ] = 65_536,
    engine: Annotated[str, typer.Option("--engine", help="local, or dask.")] = "local",
    workers: Annotated[
        int | None, typer.Option("--workers", help="Dask worker processes (default 2).")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="Dataset to record the output in [NAME-predictions]."),
    ] = None,
    trusted: Trusted = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a line.")] = False,
) -> None:
    """Score INPUT with a registered model, write OUTPUT (input columns + prediction, and
    confidence for classifiers), and record OUTPUT as a dataset version."""
    with handled():
        client = state(ctx).client()
        with progress(f"scoring with {uri}", "rows") as advance:
            result = client.app.batch_scoring.score(
                uri,
                input,
                output,
                actor=client.actor,
                chunk_rows=chunk_rows,
                engine=engine,
                dataset_name=dataset,
                trusted=trusted,
                workers=workers,
                progress=advance,
            )
    if as_json:
        print_json(result.to_dict())
        return
    recorded = result.dataset.ref + ("" if result.dataset_created else " (same content as before)")
    out.print(
        f"scored {result.rows:,} rows with {result.model_version} in {result.seconds:.2f} s "
        f"({result.rows_per_second:,.0f} rows/s); wrote {result.output}; "
        f"recorded {recorded}; run {result.run_id}",
        markup=False,
    )
