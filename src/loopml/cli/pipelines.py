"""``loopml run`` and ``loopml repro``: pipelines with a content-keyed cache."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli.context import err, handled, out, print_json, state
from loopml.domain.errors import InvalidInput
from loopml.domain.pipelines import DEFAULT_SOURCE

if TYPE_CHECKING:
    from loopml.domain.pipelines import Wiring
    from loopml.services.pipelines import PipelineResult, StepOutcome


_MARKS = {
    "hit": "[green]cached[/]",
    "resumed": "[green]resumed[/]",
    "ran": "[cyan]ran[/]",
    "failed": "[bold red]FAILED[/]",
    "skipped": "[yellow]skipped[/]",
}


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("repro")(repro)


def run(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Argument(
            help="FILE.py:NAME of a loopml.Pipeline (default: [pipeline] source in "
            f"loopml.toml, else {DEFAULT_SOURCE})."
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="STEP.PARAM=VALUE (JSON, else text); repeatable."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the last failed run of the pipeline.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run a pipeline: cached steps are reused (and say why); the others say what changed."""
    from loopml.client.workspace_pipeline import config_params, load_pipeline
    from loopml.fluent import run_pipeline

    with handled():
        client = state(ctx).client()
        source, pipeline = load_pipeline(client, target)
        params = {**config_params(client), **_parse_params(param or [])}
        if not as_json:
            out.print(f"pipeline [bold]{pipeline.name}[/] ({source}): {len(pipeline.order)} steps")
        result = run_pipeline(
            pipeline,
            client=client,
            params=params,
            resume=resume,
            observer=None if as_json else _Printer(),
            source=source,
        )
    if as_json:
        print_json(_result_dict(result))
    else:
        _summary(result)
    if not result.ok:
        raise typer.Exit(1)


def repro(
    ctx: typer.Context,
    uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION built by `loopml run`.")],
    target: Annotated[
        str | None,
        typer.Option("--pipeline", help="FILE.py:NAME (default: the one recorded at build)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Re-run the lineage of a model version and report whether outputs and metrics match."""
    from loopml.client.workspace_pipeline import load_pipeline
    from loopml.fluent import StepRuns
    from loopml.services.pipelines import TAG_SOURCE
    from loopml.services.repro import reproduce

    with handled():
        client = state(ctx).client()
        app = client.app
        mv = app.registry.resolve(uri)
        if mv.run_id is None:
            raise InvalidInput(f"{mv.uri} has no run, so there is no lineage to re-run")
        step_run = app.tracking.get_run(mv.run_id)
        recorded = None
        if step_run.parent_id is not None:
            recorded = app.tracking.get_run(step_run.parent_id).tags.get(TAG_SOURCE)
        if target is None and recorded is None:
            raise InvalidInput(
                f"the pipeline that built {mv.uri} recorded no source file; pass "
                "--pipeline FILE.py:NAME"
            )
        source, pipeline = load_pipeline(client, target or recorded)
        if not as_json:
            out.print(f"re-running the lineage of {mv.uri} from {source} (no cache)")
        report = reproduce(
            app.pipelines,
            pipeline,
            step_run,
            mv.uri,
            runs=StepRuns(client),
            observer=None if as_json else _Printer(),
        )
    if as_json:
        print_json(report.to_dict())
    else:
        for s in report.steps:
            colour = "green" if s.match.value in ("identical", "metrics match") else "red"
            out.print(f"  {s.step:<16} [{colour}]{s.match.value}[/]")
            for note in s.notes:
                out.print(f"      {note}", markup=False)
        verdict = "reproduced" if report.reproduced else "NOT reproduced"
        out.print(f"{report.uri}: [bold]{verdict}[/] (re-run {report.run_id})")
    if not report.reproduced:
        raise typer.Exit(1)


class _Printer:
    """One line per step as it finishes, with the reason: what `loopml run` shows."""

    def step_started(self, wiring: Wiring, index: int, total: int) -> None:
        if sys.stderr.isatty():
            err.print(f"  [{index + 1}/{total}] {wiring.name} ...", end="\r")

    def step_finished(self, outcome: StepOutcome, index: int, total: int) -> None:
        secs = f" {outcome.duration_ms / 1000:.2f}s" if outcome.status.value == "ran" else ""
        mark = _MARKS[outcome.status.value]
        out.print(f"  [{index + 1}/{total}] {outcome.step:<16} {mark}{secs}")
        for reason in outcome.reasons:
            out.print(f"        {reason}", markup=False)
        if outcome.error:
            out.print(f"        {outcome.error}", markup=False, style="red")


def _summary(result: PipelineResult) -> None:
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.status.value] = counts.get(o.status.value, 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in counts.items())
    if result.all_hits:
        out.print(f"all {len(result.outcomes)} steps were cache hits: nothing to do ({parts})")
    elif result.ok:
        out.print(f"done: {parts} (run {result.run_id})")
    else:
        out.print(
            f"[bold red]pipeline failed[/]: {parts} (run {result.run_id}). Fix the step and "
            "run `loopml run --resume` to continue; finished steps are kept"
        )


def _result_dict(result: PipelineResult) -> dict[str, Any]:
    return {
        "pipeline": result.pipeline,
        "run_id": result.run_id,
        "ok": result.ok,
        "all_hits": result.all_hits,
        "steps": [
            {
                "step": o.step,
                "status": o.status.value,
                "reasons": o.reasons,
                "run_id": o.run_id,
                "cache_key": o.key,
                "duration_ms": o.duration_ms,
                "error": o.error,
            }
            for o in result.outcomes
        ],
    }


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or "." not in key:
            raise InvalidInput(
                f"--param {item!r} must look like STEP.PARAM=VALUE, e.g. train.alpha=0.2"
            )
        try:
            params[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            params[key.strip()] = text
    return params
