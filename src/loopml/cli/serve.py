"""``loopml serve``: every deployment of the workspace behind one HTTP server."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from loopml.cli.context import Trusted, err, handled, state
from loopml.domain.errors import InvalidInput


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on [127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", "-p", help="Port [8000].")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes [1].")] = None,
    poll: Annotated[
        float | None,
        typer.Option("--poll", help="Seconds between checks for deployment changes [0.5]."),
    ] = None,
    max_body_mb: Annotated[
        float | None, typer.Option("--max-body-mb", help="Largest request body [10].")
    ] = None,
    trusted: Trusted = False,
) -> None:
    """Serve every deployment: JSON and Open Inference Protocol v2, health, /metrics.

    Defaults come from [serve] in loopml.toml (host, port, workers, poll_seconds,
    max_body_mb), then LOOPML_* variables; flags win."""
    import uvicorn

    from loopml.config import load_settings
    from loopml.server.build import WORKERS_TRUSTED, serve_sources, workspace_sources

    with handled():
        settings = load_settings(state(ctx).workspace)
        host = host or settings.host
        port = settings.port if port is None else port
        workers = settings.workers if workers is None else workers
        poll = settings.poll_seconds if poll is None else poll
        max_body_mb = settings.max_body_mb if max_body_mb is None else max_body_mb
        if workers < 1 or not 0 < port < 65536 or poll <= 0 or max_body_mb <= 0:
            raise InvalidInput(
                f"--workers must be >= 1, --port in 1..65535, --poll and --max-body-mb > 0; "
                f"got workers={workers}, port={port}, poll={poll}, max_body_mb={max_body_mb}"
            )
        # Opened here whatever the worker count: a missing or out-of-date database fails
        # now, with what to do, rather than in every worker.
        sources = workspace_sources(settings)
        if workers > 1:  # each worker opens the workspace itself, from the environment
            sources.close()
            os.environ["LOOPML_WORKSPACE"] = str(settings.root)
            os.environ["LOOPML_POLL_SECONDS"] = str(poll)
            os.environ["LOOPML_MAX_BODY_MB"] = str(max_body_mb)
            os.environ[WORKERS_TRUSTED] = "1" if trusted else "0"
        else:
            running = serve_sources(
                sources,
                poll_s=poll,
                max_body_bytes=int(max_body_mb * 1024 * 1024),
                trusted=trusted,
            )
            endpoints = running.server.routes.endpoints
    if workers > 1:
        err.print(f"serving on http://{host}:{port} with {workers} workers")
        uvicorn.run(
            "loopml.server.build:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
        return
    listed = ", ".join(sorted(endpoints)) or "none yet (`loopml deploy create ...`)"
    err.print(f"serving {listed} on http://{host}:{port} (docs: /docs, metrics: /metrics)")
    try:
        uvicorn.run(
            running.server,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
    finally:
        sources.close()
