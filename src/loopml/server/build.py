"""Wiring a server for a workspace: the route table, its watcher, the shadow worker.

``serve_sources(workspace_sources(settings))`` is what ``loopml serve`` runs: on a SQLite
workspace it reads its routes with lean readers and starts without SQLAlchemy
(:mod:`loopml.bootstrap_serve`). ``serve_sources(sources_of(app))`` serves an application
already opened (the quickstart and tests, through ``serving_in_thread``); ``app_from_env()``
is the factory uvicorn imports in each worker process when the server runs with several
workers (the workspace comes from ``LOOPML_WORKSPACE``).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.bootstrap_serve import ServingSources, lean_serving_sources
from loopml.config import Settings, load_settings
from loopml.domain.errors import StorageError
from loopml.domain.registry import ModelVersion
from loopml.server.app import DEFAULT_MAX_BODY, InferenceServer
from loopml.server.predict import warm
from loopml.server.review_desk import ReviewDesk
from loopml.server.routing import RouteTable

if TYPE_CHECKING:
    from loopml.bootstrap import Loopml

log = logging.getLogger("loopml.server")

DEFAULT_POLL_S = 0.5
DEFAULT_SHADOW_QUEUE = 1000
# "1": the workers of a multi-worker server load models that need trust (``--trusted``).
# ``loopml serve`` always sets it, so a value left in the shell is never inherited.
WORKERS_TRUSTED = "LOOPML_SERVE_TRUSTED"


class ShadowWorker:
    """Runs shadow calls on one daemon thread, off the request path; a full queue refuses
    the call (the server counts it) instead of slowing production answers down."""

    def __init__(self, size: int = DEFAULT_SHADOW_QUEUE) -> None:
        self.jobs: queue.Queue[Callable[[], None]] = queue.Queue(maxsize=size)
        threading.Thread(target=self._run, name="loopml-shadow", daemon=True).start()

    def submit(self, job: Callable[[], None]) -> bool:
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            return False
        return True

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                job()
            except Exception:  # a shadow failure never reaches a client; it is logged
                log.exception("a shadow prediction failed")


@dataclass
class Running:
    server: InferenceServer
    stop_watching: threading.Event


def sources_of(app: Loopml) -> ServingSources:
    """What a server reads, loads and writes through, from the full application."""
    return ServingSources(
        deployments=app.stores.deployments.list_deployments,
        version=app.registry.store.get_version,
        head=app.audit.head,
        loader=app.registry.loader,
        sink=lambda: app.prediction_sink,
        feedback=app.predictions.add_feedback,
        monitor_specs=app.monitor_specs,
        reviews=lambda: app.reviews,
    )


def workspace_sources(settings: Settings) -> ServingSources:
    """The lean sources of the workspace where its database allows them (a SQLite file at
    the schema revision the lean readers know), else the full application's. Either way,
    the review queue's service comes from the full application, opened on first use."""
    lock = threading.Lock()
    opened: list[Loopml] = []

    def app() -> Loopml:
        with lock:
            if not opened:
                # lazy: SQLAlchemy and every store, which the lean start goes without
                from loopml.bootstrap import open_workspace

                opened.append(open_workspace(settings))
            return opened[0]

    def close() -> None:
        with lock:
            if opened:
                opened.pop().close()

    lean = lean_serving_sources(settings, reviews=lambda: app().reviews)
    return dataclasses.replace(lean if lean is not None else sources_of(app()), close=close)


def serve_sources(
    sources: ServingSources,
    *,
    poll_s: float = DEFAULT_POLL_S,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    trusted: bool = False,
    log_predictions: bool = True,
) -> Running:
    """A server for every deployment ``sources`` lists, loaded and watching for changes,
    logging every answer to the workspace's prediction log (docs/serving.md)."""
    loader = sources.loader

    def load(mv: ModelVersion) -> object:
        return loader.load(mv, trusted=trusted)

    routes = RouteTable(sources.deployments, sources.version, load, warm, loader.block_model)
    routes.refresh_if_changed(sources.head())
    shadow = ShadowWorker()
    sink = sources.sink() if log_predictions else None
    desk = ReviewDesk(sources.reviews, sources.monitor_specs) if log_predictions else None
    server = InferenceServer(
        routes,
        sink,
        feedback=sources.feedback if log_predictions else None,
        max_body_bytes=max_body_bytes,
        shadow=shadow.submit,
        review=desk,
    )
    gauges = server.metrics.gauges
    gauges["loopml_shadow_queue_depth"] = lambda: float(shadow.jobs.qsize())
    if sink is not None:
        gauges["loopml_prediction_log_queue_depth"] = lambda: float(sink.queue_depth)
        gauges["loopml_prediction_log_dropped_total"] = lambda: float(sink.dropped)
        gauges["loopml_prediction_log_write_errors_total"] = lambda: float(sink.write_errors)
    if desk is not None and desk.specs:
        gauges["loopml_review_queue_size"] = lambda: desk.queue()[0]
        gauges["loopml_review_oldest_age_seconds"] = lambda: desk.queue()[1]
        desk.open_in_background()  # the metrics read the queue on the event loop
    stop = routes.watch(sources.head, poll_s)
    # What is loaded now (libraries, models) lives as long as the server: move it out of
    # the garbage collector's sight, so that a full collection does not walk it and stall
    # requests for tens of milliseconds.
    gc.freeze()
    return Running(server, stop)


@contextmanager
def serving_in_thread(
    app: Loopml | ServingSources, **options: Any
) -> Iterator[tuple[Running, int]]:
    """A server for ``app`` (or for these sources) on 127.0.0.1 and a free port, in a
    thread of this process, for the ``with`` block (the quickstart and the tests); yields
    it and its port."""
    import uvicorn  # lazy: only when serving

    sources = app if isinstance(app, ServingSources) else sources_of(app)
    running = serve_sources(sources, **options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(running.server, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    try:
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise StorageError("the inference server did not start within 10 s")
            time.sleep(0.01)
        yield running, sock.getsockname()[1]
    finally:
        server.should_exit = True
        running.stop_watching.set()
        thread.join(timeout=10)
        sock.close()


def app_from_env() -> InferenceServer:
    """The uvicorn factory for multi-worker serving (reads ``LOOPML_*`` settings, and
    :data:`WORKERS_TRUSTED` for ``--trusted``)."""
    settings = load_settings()
    return serve_sources(
        workspace_sources(settings),
        poll_s=settings.poll_seconds,
        max_body_bytes=int(settings.max_body_mb * 1024 * 1024),
        trusted=os.environ.get(WORKERS_TRUSTED) == "1",
    ).server
