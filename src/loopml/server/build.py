"""Wiring a server for a workspace: the route table, its watcher, the shadow worker.

``create_server(app)`` is what ``loopml serve`` runs (and tests, with a real workspace);
``app_from_env()`` is the factory uvicorn imports in each worker process when the server
runs with several workers (the workspace comes from ``LOOPML_WORKSPACE``).
"""

from __future__ import annotations

import gc
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from loopml.bootstrap import Loopml, open_workspace
from loopml.config import load_settings
from loopml.domain.errors import StorageError
from loopml.domain.registry import ModelVersion
from loopml.server.app import DEFAULT_MAX_BODY, InferenceServer
from loopml.server.predict import warm
from loopml.server.review_desk import ReviewDesk
from loopml.server.routing import RouteTable

log = logging.getLogger("loopml.server")

DEFAULT_POLL_S = 0.5
DEFAULT_SHADOW_QUEUE = 1000


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


def create_server(
    app: Loopml,
    *,
    poll_s: float = DEFAULT_POLL_S,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    trusted: bool = False,
    log_predictions: bool = True,
) -> Running:
    """A server for every deployment of ``app``, loaded and watching for changes, logging
    every answer to the workspace's prediction log (docs/serving.md)."""

    def load(mv: ModelVersion) -> object:
        return app.registry.load(mv.uri, trusted=trusted)

    routes = RouteTable(app.deployments, load, warm, app.registry.block_model)
    routes.refresh_if_changed(app.audit.head())
    shadow = ShadowWorker()
    sink = app.prediction_sink if log_predictions else None
    desk = ReviewDesk(app.reviews, app.monitor_specs) if log_predictions else None
    server = InferenceServer(
        routes,
        sink,
        feedback=app.predictions.add_feedback if log_predictions else None,
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
        gauges["loopml_review_queue_size"] = lambda: float(desk.queue()[0])
        gauges["loopml_review_oldest_age_seconds"] = lambda: desk.queue()[1]
    stop = routes.watch(app.audit.head, poll_s)
    # What is loaded now (libraries, models) lives as long as the server: move it out of
    # the garbage collector's sight, so that a full collection does not walk it and stall
    # requests for tens of milliseconds.
    gc.freeze()
    return Running(server, stop)


@contextmanager
def serving_in_thread(app: Loopml, **options: Any) -> Iterator[tuple[Running, int]]:
    """A server for ``app`` on 127.0.0.1 and a free port, in a thread of this process,
    for the ``with`` block (the quickstart and the tests); yields it and its port."""
    import uvicorn  # lazy: only when serving

    running = create_server(app, **options)
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
    """The uvicorn factory for multi-worker serving (reads ``LOOPML_*`` settings)."""
    settings = load_settings()
    return create_server(
        open_workspace(settings),
        poll_s=settings.poll_seconds,
        max_body_bytes=int(settings.max_body_mb * 1024 * 1024),
    ).server
