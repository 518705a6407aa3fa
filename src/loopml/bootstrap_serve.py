"""The composition root of a server that starts without SQLAlchemy.

``loopml serve`` needs the deployments, the model versions they route to, the audit head
(which moves on every change), the model loader and the prediction log. On a SQLite
workspace, :func:`lean_serving_sources` reads the first three with the standard library's
sqlite3 (:class:`loopml.adapters.sql.sqlite_reader.SqliteServingReader`) and wires the
rest as :mod:`loopml.bootstrap` wires them, about 0.3 s sooner than the full application
(SQLAlchemy and every store). The review queue, which needs the full stores, gets its
service from the caller when it is first used. Any other database, or a schema revision
the lean reader does not know, returns None, and the caller uses the full application.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loopml.adapters.artifacts.fsspec_store import FsspecBlobStore
from loopml.adapters.flavors.catalog import DefaultFlavorCatalog
from loopml.adapters.model_cache import PickleModelCache
from loopml.adapters.prediction_log import ParquetPredictionSink
from loopml.adapters.prediction_reader import ParquetPredictionReader
from loopml.adapters.sql.sqlite_reader import SqliteServingReader
from loopml.config import CONFIG_FILE, STATE_DIR, Settings, sqlite_file
from loopml.domain.deployments import Deployment
from loopml.domain.gate_file import policy_from_mapping
from loopml.domain.monitoring import MonitorSpec, workspace_monitors
from loopml.domain.predictions import Feedback
from loopml.domain.registry import ModelVersion
from loopml.ports.predictions import PredictionSink
from loopml.services.model_loader import ModelLoader

if TYPE_CHECKING:
    from loopml.services.review import ReviewService


@dataclass(frozen=True)
class ServingSources:
    """What a server reads, loads and writes through: from the full application
    (``loopml.server.build.sources_of``) or from lean readers (:func:`lean_serving_sources`)."""

    deployments: Callable[[], list[Deployment]]  # every stored deployment
    version: Callable[[str, int], ModelVersion]  # a model version by name and number
    head: Callable[[], object]  # the audit head: moves on every change
    loader: ModelLoader
    sink: Callable[[], PredictionSink]  # the prediction log, made on first use
    feedback: Callable[[Sequence[Feedback]], int]
    monitor_specs: Mapping[str, MonitorSpec]
    reviews: Callable[[], ReviewService]  # the review queue's service, made on first use
    close: Callable[[], None] = lambda: None  # what the sources opened, closed at the end


def lean_serving_sources(
    settings: Settings, reviews: Callable[[], ReviewService]
) -> ServingSources | None:
    """Serving sources over a SQLite file at the schema revision the lean reader knows,
    else None; ``reviews`` makes the review service (from the full application) when the
    review queue is first used. Wired as ``bootstrap`` wires the same parts."""
    path = sqlite_file(settings)
    reader = (
        None
        if path is None
        else SqliteServingReader.open(path, settings.metadata_url, settings.busy_timeout_seconds)
    )
    if reader is None:
        return None
    config = str(settings.root / CONFIG_FILE)
    # What the full start checks of loopml.toml, checked here too: a malformed table
    # refuses the start instead of failing later, when the review queue opens the stores.
    policy_from_mapping(settings.gates, config)
    specs = workspace_monitors(settings.monitor, str(settings.root), config)
    state = settings.root / STATE_DIR
    cache = PickleModelCache(state / "cache" / "models") if settings.model_cache else None
    loader = ModelLoader(FsspecBlobStore(settings.artifact_url), DefaultFlavorCatalog(), cache)
    predictions = state / "predictions"
    sink = ParquetPredictionSink(predictions)  # no I/O and no thread until its first record

    return ServingSources(
        deployments=reader.list_deployments,
        version=reader.get_version,
        head=reader.head,
        loader=loader,
        sink=lambda: sink,
        feedback=ParquetPredictionReader(predictions).add_feedback,
        monitor_specs=specs,
        reviews=reviews,
    )
