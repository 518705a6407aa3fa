"""``loopml runs list|show|compare`` and ``loopml experiments list``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from loopml.cli.context import fmt_ms, fmt_value, handled, new_table, out, print_json, state

if TYPE_CHECKING:
    from loopml.domain.tracking import Run

app = typer.Typer(help="Search, show and compare runs.", no_args_is_help=True)
experiments_app = typer.Typer(help="Experiments (named groups of runs).", no_args_is_help=True)


def run_dict(run: Run) -> dict[str, object]:
    return {
        "run_id": run.id,
        "experiment": run.experiment,
        "name": run.name,
        "status": run.status.value,
        "start_ms": run.start_ms,
        "end_ms": run.end_ms,
        "parent_id": run.parent_id,
        "params": run.params,
        "metrics": run.metrics,
        "tags": run.tags,
        "code": None
        if run.code is None
        else {
            "commit": run.code.commit,
            "branch": run.code.branch,
            "dirty": run.code.dirty,
            "diff_hash": run.code.diff_hash,
        },
        "environment": None
        if run.environment is None
        else {
            "python": run.environment.python,
            "platform": run.environment.platform,
            "packages": dict(run.environment.packages),
        },
        "artifacts": [
            {"name": a.name, "digest": str(a.digest), "size": a.size} for a in run.artifacts
        ],
        "inputs": [{"name": i.name, "version": i.version} for i in run.inputs],
    }


@app.command("list")
def list_runs(
    ctx: typer.Context,
    filter: Annotated[
        str | None,
        typer.Option("--filter", "-f", help="e.g. \"metrics.rmse < 0.3 and params.model = 'gbr'\""),
    ] = None,
    experiment: Annotated[list[str] | None, typer.Option("--experiment", "-e")] = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option("--order-by", "-o", help="e.g. 'metrics.rmse asc' (repeatable)"),
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows per page.")] = 50,
    page_token: Annotated[
        str | None, typer.Option(help="Token printed by a previous page.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List runs, newest first, optionally filtered and ordered."""
    with handled():
        runs = (
            state(ctx)
            .client()
            .search_runs(
                filter,
                experiments=experiment or (),
                order_by=order_by,
                max_results=limit,
                page_token=page_token,
            )
        )
    if as_json:
        print_json({"runs": [run_dict(r) for r in runs], "next_page_token": runs.next_page_token})
        return
    metric_keys = sorted({k for r in runs for k in r.metrics})[:6]
    table = new_table("run id", "experiment", "name", "status", "started", *metric_keys)
    for r in runs:
        table.add_row(
            r.id[:12],
            r.experiment,
            r.name,
            r.status.value,
            fmt_ms(r.start_ms),
            *(fmt_value(r.metrics[k]) if k in r.metrics else "-" for k in metric_keys),
        )
    out.print(table)
    if not runs:
        out.print("No runs match." if filter else "No runs yet: log one with loopml.start_run().")
    if runs.next_page_token:
        out.print(f"More runs: --page-token {runs.next_page_token}")


def _find(ctx: typer.Context, run_id: str) -> Run:
    client = state(ctx).client()
    if len(run_id) < 32:  # accept the 12-character prefix that `runs list` prints
        matches = (
            client.search_runs(f"run_id like '{run_id}%'", max_results=2)
            if run_id.isalnum()
            else []
        )
        if len(matches) == 1:
            return matches[0]  # type: ignore[no-any-return]
    return client.get_run(run_id)


@app.command("show")
def show(
    ctx: typer.Context, run_id: str, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Everything a run recorded: params, metrics, tags, code, environment, artifacts."""
    with handled():
        run = _find(ctx, run_id)
    data = run_dict(run)
    if as_json:
        print_json(data)
        return
    out.print(f"[bold]{run.name}[/]  {run.id}  ({run.experiment}, {run.status.value})")
    out.print(f"started {fmt_ms(run.start_ms)}, ended {fmt_ms(run.end_ms)}")
    if run.parent_id:
        out.print(f"parent run {run.parent_id}")
    if run.code:
        dirty = f", dirty (diff {run.code.diff_hash[:12]})" if run.code.diff_hash else ""
        out.print(f"code: {run.code.commit[:12]} on {run.code.branch or 'detached HEAD'}{dirty}")
    for title in ("params", "metrics", "tags"):
        values = data[title]
        assert isinstance(values, dict)
        if values:
            table = new_table(title, "value")
            for key in sorted(values):
                table.add_row(key, fmt_value(values[key]))
            out.print(table)
    for artifact in run.artifacts:
        out.print(f"artifact {artifact.name}  {artifact.size} bytes  {artifact.digest.short}")


@app.command("compare")
def compare(
    ctx: typer.Context, run_ids: list[str], as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Params and metrics of several runs side by side; differing rows are marked."""
    with handled():
        runs = [_find(ctx, r) for r in run_ids]
    rows: list[tuple[str, list[str], bool]] = []
    for kind in ("params", "metrics"):
        keys = sorted({k for r in runs for k in getattr(r, kind)})
        for key in keys:
            values = [
                fmt_value(getattr(r, kind)[key]) if key in getattr(r, kind) else "-" for r in runs
            ]
            rows.append((f"{kind}.{key}", values, len(set(values)) > 1))
    if as_json:
        print_json(
            {
                "runs": [r.id for r in runs],
                "rows": [{"key": k, "values": v, "differs": d} for k, v, d in rows],
            }
        )
        return
    table = new_table("", "key", *(r.name for r in runs))
    for key, values, differs in rows:
        style = "bold yellow" if differs else None
        table.add_row("≠" if differs else "", key, *values, style=style)
    out.print(table)


@experiments_app.command("list")
def list_experiments(ctx: typer.Context) -> None:
    """List experiments by name."""
    with handled():
        page = state(ctx).client().app.tracking.list_experiments(1000)
    table = new_table("name", "created")
    for e in page:
        table.add_row(e.name, fmt_ms(e.created_ms))
    out.print(table)
