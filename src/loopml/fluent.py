"""The module-level SDK: ``loopml.start_run(...)`` and friends on a default client.

A process-wide default :class:`~loopml.client.Client` is created on first use (finding
or creating the workspace). The active run is tracked per thread and per asyncio task
(a context variable), and ``start_run`` inside another run nests under it.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loopml.client import ActiveRun, Client
from loopml.domain.datasets import DatasetVersion
from loopml.domain.errors import InvalidState
from loopml.domain.registry import ModelVersion

_default: Client | None = None
_default_lock = threading.Lock()
_active: contextvars.ContextVar[tuple[ActiveRun, ...]] = contextvars.ContextVar(
    "loopml_active_runs", default=()
)


def get_client() -> Client:
    """The default client of this process, created on first use."""
    global _default  # noqa: PLW0603  # the one process-wide default client
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def set_client(client: Client | None) -> None:
    """Replace the default client (e.g. ``Client("other/workspace")``); None resets it."""
    global _default  # noqa: PLW0603  # the one process-wide default client
    with _default_lock:
        _default = client


@contextmanager
def start_run(
    experiment: str | None = None,
    name: str | None = None,
    *,
    tags: Mapping[str, object] | None = None,
    nested: bool = True,
) -> Iterator[ActiveRun]:
    """Start a run and make it the active one for the ``with`` block.

    Inside another active run the new run is its child (``nested=False`` to start a
    top-level run instead). The run ends as finished, or failed if the block raised.
    """
    stack = _active.get()
    parent = stack[-1] if stack and nested else None
    if experiment is None and parent is not None:
        experiment = parent.experiment
    run = get_client().start_run(experiment, name, parent=parent, tags=tags)
    token = _active.set((*stack, run))
    try:
        with run:
            yield run
    finally:
        _active.reset(token)


def active_run() -> ActiveRun | None:
    stack = _active.get()
    return stack[-1] if stack else None


def _require_run() -> ActiveRun:
    run = active_run()
    if run is None:
        raise InvalidState(
            "no active run: wrap the call in `with loopml.start_run():`, or use "
            "a Client and pass a run id explicitly"
        )
    return run


def log_param(key: str, value: object) -> None:
    _require_run().log_param(key, value)


def log_params(params: Mapping[str, object]) -> None:
    _require_run().log_params(params)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    _require_run().log_metric(key, value, step)


def log_metrics(values: Mapping[str, object], step: int | None = None) -> None:
    _require_run().log_metrics(values, step)


def set_tags(tags: Mapping[str, object]) -> None:
    _require_run().set_tags(tags)


def log_artifact(source: str | Path | bytes, name: str | None = None) -> None:
    _require_run().log_artifact(source, name)


def log_dataset(name: str, data: object, message: str = "") -> DatasetVersion:
    """Add ``data`` (a path, DataFrame, Arrow table or numpy array) as a version of dataset
    ``name`` and record it as an input of the active run."""
    return _require_run().log_dataset(name, data, message)


def register_model(model: object, name: str, **kwargs: Any) -> ModelVersion:
    """Register ``model``; inside a run, the version's lineage points at that run."""
    run = active_run()
    if run is not None and "run_id" not in kwargs:
        kwargs["run_id"] = run.id
    return get_client().register_model(model, name, **kwargs)


def load_model(uri: str, *, trusted: bool = False) -> Any:
    return get_client().load_model(uri, trusted=trusted)


def search_runs(filter: str | None = None, **kwargs: Any) -> Any:
    return get_client().search_runs(filter, **kwargs)


def flush() -> None:
    get_client().flush()
