"""``loopml monitor drift REFERENCE PATH...``: files of any size judged against a stored
dataset version's profile, for CI and for windows larger than memory (docs/drift.md).

cli/monitor.py registers the command on ``loopml monitor``.
It prints a table of the columns, most drifted first, and a summary line, and exits with
1 when a column drifted, so that a CI step fails on drift; errors keep their own codes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loopml.cli.context import handled, new_table, out, print_json, progress, state

if TYPE_CHECKING:
    from loopml.services.drift_check import DriftCheckResult

DRIFTED_EXIT = 1  # what a CI step fails on; errors exit with 2-9 (cli/context.py)


def monitor_drift(
    ctx: typer.Context,
    reference: Annotated[
        str, typer.Argument(help="Dataset version whose profile is the reference: NAME@VERSION.")
    ],
    paths: Annotated[list[Path], typer.Argument(help="CSV or Parquet files, or folders of them.")],
    engine: Annotated[str, typer.Option("--engine", help="local, or dask.")] = "local",
    workers: Annotated[
        int | None, typer.Option("--workers", help="Dask worker processes (default 2).")
    ] = None,
    prefix: Annotated[
        str,
        typer.Option(
            "--prefix",
            help="Read columns named PREFIX<column> and ignore the others "
            "('in.' for prediction-log segments).",
        ),
    ] = "",
    columns: Annotated[
        list[str] | None,
        typer.Option("--column", "-c", help="Judge only this reference column (repeat it)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Judge the drift of PATHS against the profile stored with dataset version REFERENCE,
    reading a batch at a time (--engine dask: on a Dask cluster). Exits with 1 when a
    column drifted."""
    from loopml.services.drift_check import DriftCheckService

    with handled():
        client = state(ctx).client()
        service = DriftCheckService(client.app.datasets)
        with progress(f"checking drift against {reference}", "rows") as advance:
            result = service.check(
                reference,
                paths,
                engine=engine,
                columns=columns or None,
                prefix=prefix,
                workers=workers,
                progress=advance,
            )
    if as_json:
        print_json(result.to_dict())
    else:
        _render(result)
    if result.drifted:
        raise typer.Exit(DRIFTED_EXIT)


def _render(result: DriftCheckResult) -> None:
    from rich.markup import escape  # column names and details are text, not markup

    table = new_table("column", "method", "score", "threshold", "p-value", "drifted", "detail")
    for c in sorted(result.columns, key=lambda c: -c.level):
        table.add_row(
            escape(c.column),
            c.method.value,
            f"{c.score:.4g}",
            f"{c.threshold:g}",
            "-" if c.p_value is None else f"{c.p_value:.3g}",
            "[bold red]DRIFTED[/]" if c.drifted else "no",
            escape(c.detail),
        )
    out.print(table)
    for line in _summary(result):
        out.print(line, markup=False)


def _summary(result: DriftCheckResult) -> list[str]:
    where = (
        f"{result.rows:,} rows of {result.files:,} file{'s' * (result.files != 1)} against "
        f"{result.reference} (score {result.score:.2f}; {result.engine} engine, "
        f"{result.seconds:.2f} s)"
    )
    drifted = result.drifted
    lines = [
        f"{len(drifted)} of {len(result.columns)} columns drifted ({', '.join(drifted)}) in {where}"
        if drifted
        else f"no column drifted in {where}"
    ]
    if result.missing_columns:
        lines.append(
            f"not in the data, so not judged (absent is not drift): "
            f"{', '.join(result.missing_columns)}"
        )
    for column, rows in result.partial_columns.items():
        lines.append(
            f"{column} is absent from files holding {rows:,} rows: counted as missing values there"
        )
    return lines
