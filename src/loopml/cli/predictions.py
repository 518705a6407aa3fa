"""``loopml predictions tail|export|stats`` and ``loopml feedback import``: the prediction log.

The server writes every answered request to the log (see docs/serving.md#prediction-log);
these commands read it, export a time window with its labels, report what it holds and
what was lost, and bring ground truth in from a file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli.context import err, fmt_ms, fmt_value, handled, new_table, out, print_json, state
from loopml.domain.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.domain.predictions import PredictionRecord
    from loopml.ports.predictions import PredictionReader

app = typer.Typer(help="The prediction log: tail, export and stats.", no_args_is_help=True)
feedback_app = typer.Typer(help="Ground truth for logged predictions.", no_args_is_help=True)

DeploymentOption = Annotated[
    str | None, typer.Option("--deployment", "-d", help="Only this deployment (default: all).")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
MAX_CELL = 60


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="predictions")
    root.add_typer(feedback_app, name="feedback")


def _reader(ctx: typer.Context) -> PredictionReader:
    return state(ctx).client().app.predictions


@app.command("tail")
def tail(
    ctx: typer.Context,
    deployment: DeploymentOption = None,
    n: Annotated[int, typer.Option("-n", help="How many requests.", min=1)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """The newest logged requests, oldest first."""
    with handled():
        reader = _reader(ctx)
        records = reader.tail(deployment, n)
        known = reader.deployments() if not records else []
    if as_json:
        print_json([_record_dict(r) for r in records])
    else:
        from rich.markup import escape  # request ids and values are data, not markup

        table = new_table("time", "deployment", "version", "route", "request", "ms", "in", "out")
        for r in records:
            table.add_row(
                fmt_ms(r.time_ms),
                r.deployment,
                f"{r.model}/{r.version}",
                str(r.route),
                escape(r.request_id),
                f"{r.latency_ms:.2f}",
                escape(_cell(r.inputs)),
                escape(_cell(r.outputs)),
            )
        if records:
            out.print(table)
    if not records:
        where = f"deployment {deployment!r}" if deployment else "any deployment"
        others = f"; logged deployments: {', '.join(known)}" if known else ""
        err.print(f"no predictions logged for {where}{others}", markup=False, highlight=False)


@app.command("export")
def export(
    ctx: typer.Context,
    output: Annotated[Path, typer.Argument(help="OUT.parquet or OUT.csv.")],
    deployment: DeploymentOption = None,
    since: Annotated[
        str | None, typer.Option(help="From this time on (ISO 8601; UTC unless given).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601).")] = None,
    with_feedback: Annotated[
        bool, typer.Option("--with-feedback", help="Add each request's label (left join).")
    ] = False,
) -> None:
    """Write logged predictions (one row per predicted row) to a Parquet or CSV file."""
    with handled():
        since_ms = None if since is None else _parse_time("--since", since)
        until_ms = None if until is None else _parse_time("--until", until)
        rows = _reader(ctx).export(
            output, deployment, since_ms, until_ms, with_feedback=with_feedback
        )
    out.print(f"wrote {rows:,} rows to {output}")


@app.command("stats")
def stats(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """What the log holds per deployment, and every record lost or not yet written."""
    with handled():
        s = _reader(ctx).stats()
    if as_json:
        print_json(
            {
                "deployments": [
                    {
                        "deployment": d.deployment,
                        "segments": d.segments,
                        "records": d.records,
                        "rows": d.rows,
                        "bytes": d.bytes,
                        "first_ms": d.first_ms,
                        "last_ms": d.last_ms,
                    }
                    for d in s.deployments
                ],
                "feedback_segments": s.feedback_segments,
                "feedback_rows": s.feedback_rows,
                "dropped": s.dropped,
                "overflow": s.overflow,
                "rejected": s.rejected,
                "lost": s.lost,
                "write_errors": s.write_errors,
                "last_error": s.last_error,
                "temporaries": s.temporaries,
            }
        )
        return
    table = new_table("deployment", "segments", "requests", "rows", "bytes", "first", "last")
    for d in s.deployments:
        table.add_row(
            d.deployment,
            f"{d.segments:,}",
            f"{d.records:,}",
            f"{d.rows:,}",
            f"{d.bytes:,}",
            fmt_ms(d.first_ms),
            fmt_ms(d.last_ms),
        )
    if s.deployments:
        out.print(table)
    else:
        out.print("no predictions logged yet")
    out.print(f"feedback: {s.feedback_rows:,} labels in {s.feedback_segments:,} segments")
    out.print(
        f"dropped: {s.dropped:,} records ({s.overflow:,} queue full, {s.rejected:,} "
        f"rejected, {s.lost:,} unwritten at shutdown); write errors: {s.write_errors:,}"
    )
    if s.last_error:
        out.print(f"last error: {s.last_error}", markup=False)
    if s.temporaries:
        out.print(
            f"{s.temporaries} half-written temporary files (left by a killed writer; "
            "never read, safe to delete)"
        )


@feedback_app.command("import")
def import_feedback(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV, Parquet or JSON Lines file.")],
    label_column: Annotated[str, typer.Option(help="The column holding the label.")] = "label",
    id_column: Annotated[
        str, typer.Option(help="The column holding the request id.")
    ] = "request_id",
) -> None:
    """Store the labels of FILE; they join logged predictions by request id."""
    from loopml.adapters.feedback_file import read_feedback_file

    with handled():
        app_ = state(ctx).client().app
        parsed = read_feedback_file(
            file, id_column=id_column, label_column=label_column, time_ms=app_.clock.now_ms()
        )
        stored = app_.predictions.add_feedback(parsed.items)
        ids = [item.request_id for item in parsed.items]
        known = app_.predictions.known_request_ids(ids)
    matched = sum(1 for i in ids if i in known)
    out.print(
        f"imported {stored:,} labels from {file}: {matched:,} match a logged request, "
        f"{stored - matched:,} do not (yet)"
    )
    unknown = [i for i in dict.fromkeys(ids) if i not in known][:5]
    if unknown:
        out.print(f"unmatched request ids, e.g.: {', '.join(unknown)}", markup=False)
    if parsed.skipped:
        out.print(f"skipped {parsed.skipped:,} rows without a label")


def _parse_time(flag: str, text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{flag} {text!r} is not a time; use ISO 8601, e.g. 2026-11-23T14:05:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _record_dict(r: PredictionRecord) -> dict[str, Any]:
    return {
        "request_id": r.request_id,
        "time_ms": r.time_ms,
        "deployment": r.deployment,
        "model": r.model,
        "version": r.version,
        "route": str(r.route),
        "latency_ms": r.latency_ms,
        "rows": r.rows,
        "inputs": {k: list(v) for k, v in r.inputs.items()},
        "outputs": {k: list(v) for k, v in r.outputs.items()},
    }


def _cell(columns: Any) -> str:
    text = ", ".join(
        f"{k}={fmt_value(v[0]) if len(v) == 1 else [fmt_value(x) for x in v]}"
        for k, v in columns.items()
    )
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
