"""``loopml monitor``, ``alerts``, ``review``, ``loop`` and ``agent``: production watching
itself (see docs/monitoring.md)."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli.context import fmt_ms, handled, new_table, out, print_json, state
from loopml.cli.monitor_drift import monitor_drift
from loopml.domain.errors import InvalidInput, NotFound
from loopml.domain.loop import LoopState

if TYPE_CHECKING:
    from loopml.bootstrap import Loopml
    from loopml.client import Client
    from loopml.domain.monitoring import MonitorSpec, WindowReport
    from loopml.domain.review import ReviewItem

monitor_app = typer.Typer(
    help="Drift, performance and service figures per window.", no_args_is_help=True
)
alerts_app = typer.Typer(help="Alerts that fired.", no_args_is_help=True)
review_app = typer.Typer(help="The human review queue.", no_args_is_help=True)
loop_app = typer.Typer(
    help="Retrain loops: train, gate, canary, promote or roll back.", no_args_is_help=True
)

_Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
_Deployment = Annotated[str, typer.Argument(help="The deployment, as in [monitor.NAME].")]


def register(app: typer.Typer) -> None:
    monitor_app.command("drift")(monitor_drift)
    app.add_typer(monitor_app, name="monitor")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(review_app, name="review")
    app.add_typer(loop_app, name="loop")
    app.command("agent")(agent)


def _spec(app: Loopml, name: str) -> MonitorSpec:
    specs = app.monitor_specs
    if name not in specs:
        raise NotFound(
            f"deployment {name!r} has no monitor; add a [monitor.{name}] table to loopml.toml "
            f"(monitored: {', '.join(sorted(specs)) or 'none'}); see docs/monitoring.md"
        )
    return specs[name]


# monitor -------------------------------------------------------------------------------


@monitor_app.command("run")
def monitor_run(ctx: typer.Context, deployment: _Deployment, as_json: _Json = False) -> None:
    """Judge the new windows of the prediction log now, queue unsure rows for review and
    apply the alert rules (what the agent's monitor job does)."""
    from loopml.fluent import build_agent

    with handled():
        client = state(ctx).client()
        spec = _spec(client.app, deployment)
        # by key, not by count: the store lists at most its newest 1000 windows
        known = {w.window_key for w in client.app.monitoring.windows(deployment)}
        summary = build_agent(client).monitor_once(spec)
        windows = [
            w for w in client.app.monitoring.windows(deployment) if w.window_key not in known
        ]
    if as_json:
        print_json({"summary": summary, "windows": [w.to_dict() for w in windows]})
        return
    _windows_table(windows)
    out.print(summary, markup=False)


@monitor_app.command("status")
def monitor_status(
    ctx: typer.Context,
    deployment: _Deployment,
    last: Annotated[int, typer.Option("--last", "-n", help="Windows to show.")] = 10,
    as_json: _Json = False,
) -> None:
    """The newest windows of a deployment: rows, drift score, drifted columns, performance."""
    with handled():
        client = state(ctx).client()
        _spec(client.app, deployment)
        windows = client.app.monitoring.windows(deployment, limit=last)
    if as_json:
        print_json([w.to_dict() for w in windows])
        return
    if not windows:
        out.print(f"no windows yet: run `loopml monitor run {deployment}`", markup=False)
        return
    _windows_table(windows)


def _windows_table(windows: list[WindowReport]) -> None:
    table = new_table("window", "rows", "version", "score", "drifted", "performance", "p99 ms")
    for w in windows:
        perf = ", ".join(f"{k} {v:.4g}" for k, v in w.performance.items()) or "-"
        score = f"{w.score:.2f}" if (w.features or w.outputs) else w.note[:40] or "-"
        table.add_row(
            w.window_key,
            f"{w.rows:,}",
            f"v{w.version}" if w.version else "-",
            score,
            ", ".join(w.drifted) or "-",
            perf,
            "-" if w.latency_p99_ms is None else f"{w.latency_p99_ms:.2f}",
        )
    out.print(table)


@monitor_app.command("report")
def monitor_report(
    ctx: typer.Context,
    deployment: _Deployment,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")] = None,
    as_json: _Json = False,
) -> None:
    """A self-contained offline report: drift per feature over time, performance, alerts
    and loop actions."""
    from loopml.adapters.monitor_html import render_monitor_html

    if html is None and not as_json:
        raise typer.BadParameter("give --html FILE, --json, or both")
    with handled():
        client = state(ctx).client()
        app = client.app
        _spec(app, deployment)
        report = client.monitor_report(deployment)
        if html is not None:
            html.parent.mkdir(parents=True, exist_ok=True)
            tmp = html.with_name(f".{html.name}.tmp")
            tmp.write_text(render_monitor_html(report), encoding="utf-8")
            tmp.replace(html)
    if as_json:
        print_json(report.to_dict())
    else:
        out.print(f"report of {deployment!r}: {html}", markup=False)


# alerts --------------------------------------------------------------------------------


@alerts_app.command("list")
def alerts_list(
    ctx: typer.Context,
    deployment: Annotated[str | None, typer.Option("--deployment", "-d")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    as_json: _Json = False,
) -> None:
    """Alerts that fired, newest first, with how each sink took them."""
    with handled():
        found = state(ctx).client().app.alerting.list(deployment, limit)
    if as_json:
        print_json([{**a.to_dict(), "deliveries": [d.to_dict() for d in ds]} for a, ds in found])
        return
    table = new_table("time", "deployment", "rule", "severity", "figure", "delivered", "action")
    for alert, deliveries in found:
        delivered = ", ".join(f"{d.sink} {'ok' if d.ok else 'FAILED'}" for d in deliveries)
        table.add_row(
            fmt_ms(alert.time_ms),
            alert.deployment,
            alert.rule,
            alert.severity.value,
            f"{alert.metric} {alert.value:.4g} ({alert.comparison.value} {alert.threshold:g})",
            delivered or "-",
            alert.action.value if alert.action else "-",
        )
    out.print(table)


# review --------------------------------------------------------------------------------


def _show_item(item: ReviewItem | None, as_json: bool) -> None:
    if item is None:
        if as_json:
            print_json(None)
        else:
            out.print("the review queue is empty")
        return
    data = {
        "id": item.id,
        "deployment": item.deployment,
        "request_id": item.request_id,
        "row": item.row,
        "model": f"models:/{item.model}/{item.version}",
        "time": fmt_ms(item.time_ms),
        "confidence": item.confidence,
        "output": item.output,
        "inputs": dict(item.inputs),
        "status": item.status.value,
        "label": item.label,
    }
    if as_json:
        print_json(data)
        return
    out.print(f"[bold]review item {item.id}[/] of {item.deployment} ({data['model']})")
    for key in ("request_id", "row", "time", "confidence", "output", "status", "label"):
        out.print(f"  {key:<11} {data[key]}", markup=False)
    for name, value in item.inputs.items():
        out.print(f"  in.{name:<8} {value}", markup=False)
    if item.status.value == "open":
        out.print(f"answer with: loopml review label {item.id} VALUE", markup=False)


@review_app.command("next")
def review_next(
    ctx: typer.Context,
    deployment: Annotated[str | None, typer.Argument(help="Default: every deployment.")] = None,
    as_json: _Json = False,
) -> None:
    """The oldest open item (unsure rows of the prediction log are queued first)."""
    with handled():
        app = state(ctx).client().app
        specs = app.monitor_specs.values() if deployment is None else [_spec(app, deployment)]
        for spec in specs:
            app.reviews.sync(spec)
        item = app.reviews.next(deployment)
    _show_item(item, as_json)


@review_app.command("label")
def review_label(
    ctx: typer.Context,
    item_id: Annotated[int, typer.Argument(help="The item's id (from `loopml review next`).")],
    label: Annotated[str, typer.Argument(help="The true answer: JSON, else text.")],
    as_json: _Json = False,
) -> None:
    """Answer an item: the label joins the prediction log and feeds retraining."""
    with handled():
        client = state(ctx).client()
        item = client.app.reviews.label(item_id, _json_or_text(label), client.actor)
    _show_item(item, as_json)


@review_app.command("stats")
def review_stats(
    ctx: typer.Context,
    deployment: Annotated[str | None, typer.Argument()] = None,
    as_json: _Json = False,
) -> None:
    """Queue size and age, and how often reviewers agreed with the model."""
    with handled():
        reviews = state(ctx).client().app.reviews
        size, age = reviews.stats(deployment)
        agreement = reviews.agreement(deployment)
    data = {
        "open": size,
        "oldest_age_s": age,
        "answered": agreement.answered,
        "agreement": agreement.rate,
        "by_version": {
            str(v): {"answered": n, "agreed": k} for v, (n, k) in agreement.by_version.items()
        },
        "by_day": {d: {"answered": n, "agreed": k} for d, (n, k) in agreement.by_day.items()},
    }
    if as_json:
        print_json(data)
        return
    rate = "-" if agreement.rate is None else f"{agreement.rate:.1%}"
    oldest = "-" if age is None else f"{age:.0f}s"
    out.print(f"open {size} (oldest {oldest}); answered {agreement.answered}, agreement {rate}")
    for day, (n, k) in agreement.by_day.items():
        out.print(f"  {day}  {k}/{n} agreed", markup=False)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# loop ----------------------------------------------------------------------------------


@loop_app.command("status")
def loop_status(ctx: typer.Context, deployment: _Deployment, as_json: _Json = False) -> None:
    """The deployment's retrain loops, newest first, each stage with its time and detail."""
    with handled():
        app = state(ctx).client().app
        _spec(app, deployment)
        runs = app.loops.history(deployment, 10)
    if as_json:
        print_json([r.to_dict() for r in runs])
        return
    if not runs:
        out.print(f"no retrain loop has run on {deployment!r}", markup=False)
        return
    for run in runs:
        candidate = f"v{run.candidate}" if run.candidate else "-"
        out.print(
            f"[bold]loop {run.id}[/] {run.state.value}  champion v{run.champion}, "
            f"candidate {candidate}"
        )
        for step in run.steps:
            line = f"  {fmt_ms(step.time_ms)}  {step.state.value:<11} {step.detail}"
            out.print(line, markup=False)


@loop_app.command("start")
def loop_start(
    ctx: typer.Context,
    deployment: _Deployment,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Run the stages up to the canary watch.")
    ] = True,
    as_json: _Json = False,
) -> None:
    """Start a retrain loop by hand (the agent starts one when a retrain rule fires)."""
    from loopml.fluent import PipelineTrainer

    with handled():
        client = state(ctx).client()
        app = client.app
        spec = _spec(app, deployment)
        run = app.loops.start(spec, trigger=f"manual ({client.actor})", actor=client.actor)
        if wait:
            run = app.loops.run_to_end(run, spec, PipelineTrainer(client))
    if as_json:
        print_json(run.to_dict())
    else:
        out.print(f"loop {run.id}: {run.state.value}: {run.steps[-1].detail}", markup=False)
    if run.state in (LoopState.FAILED, LoopState.REJECTED, LoopState.ROLLED_BACK):
        raise typer.Exit(1)  # for scripts: the candidate did not reach production


# agent ---------------------------------------------------------------------------------


def agent(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, then exit.")] = False,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between checks.")] = 1.0,
) -> None:
    """Run monitors and the actions they call on their schedules until stopped (Ctrl-C)."""
    from loopml.fluent import build_agent

    with handled():
        client: Client = state(ctx).client()
        runner = build_agent(client)
        if not runner.jobs:
            raise InvalidInput(
                "no deployment is monitored: add a [monitor.NAME] table to loopml.toml "
                "(see docs/monitoring.md)"
            )
        out.print(f"agent: {len(runner.jobs)} job(s): {', '.join(j.name for j in runner.jobs)}")

        def show(outcome: Any) -> None:
            mark = "ok" if outcome.ok else "FAILED"
            missed = f" ({outcome.missed} missed slot(s) skipped)" if outcome.missed else ""
            line = f"{fmt_ms(outcome.due_ms)}  {outcome.job}  {mark}{missed}: {outcome.detail}"
            out.print(line, markup=False)

        if once:
            for outcome in runner.tick():
                show(outcome)
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        runner.run_forever(stop, show, poll)
        out.print("agent stopped")
