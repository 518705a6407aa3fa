"""The composition root: the one place that picks adapters and wires services.

``build`` makes objects and does no I/O. ``open_workspace`` checks the database schema
(it never migrates an existing database); ``init_workspace`` creates a workspace and the
schema of its brand-new database, safely when several processes do it at once;
``upgrade_database`` is the explicit migration behind ``loopml db upgrade``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.adapters.artifacts.fsspec_store import FsspecBlobStore
from loopml.adapters.clock import SystemClock
from loopml.adapters.flavors.catalog import DefaultFlavorCatalog
from loopml.adapters.memory.alerts import MemoryAlertStore
from loopml.adapters.memory.approvals import MemoryApprovalStore
from loopml.adapters.memory.blobs import MemoryBlobStore
from loopml.adapters.memory.datasets import MemoryDatasetStore
from loopml.adapters.memory.deployments import MemoryDeploymentStore
from loopml.adapters.memory.monitoring import (
    MemoryLoopStore,
    MemoryMonitorStore,
    MemoryReviewStore,
)
from loopml.adapters.memory.pipelines import MemoryEvaluationStore, MemoryStepCache
from loopml.adapters.memory.stores import (
    MemoryAuditLog,
    MemoryDatabase,
    MemoryRegistryStore,
    MemoryTrackingStore,
)
from loopml.adapters.model_cache import PickleModelCache
from loopml.adapters.provenance import GitProvenance
from loopml.adapters.sql import migrate
from loopml.adapters.sql.alerts import SqlAlertStore
from loopml.adapters.sql.approvals import SqlApprovalStore
from loopml.adapters.sql.audit import SqlAuditLog
from loopml.adapters.sql.database import SqlDatabase
from loopml.adapters.sql.datasets import SqlDatasetStore
from loopml.adapters.sql.deployments import SqlDeploymentStore
from loopml.adapters.sql.evaluations import SqlEvaluationStore
from loopml.adapters.sql.loops import SqlLoopStore
from loopml.adapters.sql.monitoring import SqlMonitorStore
from loopml.adapters.sql.registry import SqlRegistryStore
from loopml.adapters.sql.review import SqlReviewStore
from loopml.adapters.sql.step_cache import SqlStepCache
from loopml.adapters.sql.tracking import SqlTrackingStore
from loopml.adapters.stat_index import StatIndex
from loopml.config import CONFIG_FILE, STATE_DIR, Settings, load_settings
from loopml.domain.alert_config import AlertsConfig, alerts_from_config
from loopml.domain.errors import ConfigError, InvalidInput
from loopml.domain.gate_file import policy_from_mapping
from loopml.domain.gates import GatePolicy
from loopml.domain.monitoring import MonitorSpec, workspace_monitors
from loopml.ports import (
    ApprovalStore,
    AuditLog,
    BlobStore,
    Clock,
    DatasetStore,
    DeploymentStore,
    EvaluationStore,
    FileIndex,
    RegistryStore,
    StepCache,
    TrackingStore,
)
from loopml.ports.monitoring import AlertStore, LoopStore, MonitorStore, ReviewStore, ServiceMetrics
from loopml.ports.predictions import PredictionReader, PredictionSink
from loopml.services.audit import AuditService
from loopml.services.dataset_status import DatasetStatus
from loopml.services.deployments import DeploymentService
from loopml.services.gc import GarbageCollector
from loopml.services.lineage import LineageService
from loopml.services.registry import RegistryService
from loopml.services.tracking import TrackingService

if TYPE_CHECKING:
    from loopml.services.alerting import AlertService
    from loopml.services.batch_scoring import BatchScoringService
    from loopml.services.datasets import DatasetService
    from loopml.services.loop import LoopService
    from loopml.services.model_cards import ModelCardService
    from loopml.services.model_evaluation import EvaluationService
    from loopml.services.monitoring import MonitoringService
    from loopml.services.pipelines import PipelineService
    from loopml.services.review import ReviewService
    from loopml.services.validation import ValidationService

WORKSPACE_TEMPLATE = f"""\
# loopml workspace settings. Precedence: defaults < this file < LOOPML_* env < flags.
# `loopml config show` prints every value and where it came from.

[store]
# metadata_url = "postgresql://user@host:5432/loopml"   # default: SQLite in {STATE_DIR}/
# artifact_url = "s3://bucket/loopml"                   # default: {STATE_DIR}/artifacts

[tracking]
# metric_flush_seconds = 1.0
"""


@dataclass
class Loopml:
    """The wired application: services plus what they were built from."""

    settings: Settings | None
    clock: Clock
    blobs: BlobStore
    tracking: TrackingService
    registry: RegistryService
    audit: AuditService
    gc: GarbageCollector
    stores: Stores
    file_index: FileIndex
    root: Path  # the project folder: pipelines' code is hashed below it
    database: SqlDatabase | None = None

    @property
    def dataset_store(self) -> DatasetStore:
        return self.stores.datasets

    # The data services load Arrow and numpy (about 0.5 s), so they are built on first
    # use: `loopml runs list` or `loopml models show` never pays for them.
    @cached_property
    def datasets(self) -> DatasetService:
        from loopml.adapters.tables import FileTableReader  # lazy: see above
        from loopml.services.datasets import DatasetService

        return DatasetService(
            self.dataset_store, self.blobs, FileTableReader(), self.file_index, self.clock
        )

    @cached_property
    def data_status(self) -> DatasetStatus:
        return DatasetStatus(self.dataset_store, self.blobs, self.file_index)

    @cached_property
    def validation(self) -> ValidationService:
        from loopml.services.validation import ValidationService  # lazy

        return ValidationService(self.datasets, self.datasets.reader)

    @cached_property
    def deployments(self) -> DeploymentService:
        return DeploymentService(self.stores.deployments, self.registry, self.clock)

    @cached_property
    def lineage(self) -> LineageService:
        return LineageService(self.registry, self.tracking, self.datasets)

    @cached_property
    def batch_scoring(self) -> BatchScoringService:
        from loopml.services.batch_scoring import BatchScoringService  # lazy: Arrow, numpy

        return BatchScoringService(self.registry, self.tracking, self.datasets)

    @cached_property
    def evaluations(self) -> EvaluationService:
        from loopml.adapters.evaluation_html import evaluation_html  # lazy: numpy, Arrow
        from loopml.services.model_evaluation import EvaluationService

        return EvaluationService(
            self.registry,
            self.stores.evaluations,
            self.blobs,
            self.datasets,
            evaluation_html,
            self.clock,
        )

    @cached_property
    def cards(self) -> ModelCardService:
        from loopml.services.model_cards import ModelCardService  # lazy: numpy, Arrow

        return ModelCardService(self.registry, self.evaluations, self.datasets, self.lineage)

    @cached_property
    def pipelines(self) -> PipelineService:
        from loopml.adapters.code_digest import SourceCodeDigester  # lazy: numpy, Arrow
        from loopml.adapters.step_outputs import StepOutputCodec
        from loopml.services.pipelines import PipelineService

        return PipelineService(
            self.tracking,
            self.stores.steps,
            self.blobs,
            StepOutputCodec(self.registry.flavors),
            SourceCodeDigester(self.root),
            self.datasets,
            self.clock,
        )

    # The prediction log loads Arrow and its writer runs a thread: both made on first use.
    # The memory app has no workspace folder, so its log lives in a temporary folder.
    @cached_property
    def predictions_dir(self) -> Path:
        if self.settings is None:
            return Path(tempfile.mkdtemp(prefix="loopml-predictions-"))
        return self.settings.root / STATE_DIR / "predictions"

    @cached_property
    def prediction_sink(self) -> PredictionSink:
        from loopml.adapters.prediction_log import ParquetPredictionSink  # lazy: Arrow

        return ParquetPredictionSink(self.predictions_dir)

    @cached_property
    def predictions(self) -> PredictionReader:
        from loopml.adapters.prediction_reader import ParquetPredictionReader  # lazy: Arrow

        return ParquetPredictionReader(self.predictions_dir)

    # Monitoring: monitors, review, alerts and the retrain loop (docs/monitoring.md).
    @cached_property
    def monitor_specs(self) -> dict[str, MonitorSpec]:
        if self.settings is None:
            return {}
        root = self.settings.root
        return workspace_monitors(self.settings.monitor, str(root), str(root / CONFIG_FILE))

    @cached_property
    def monitoring(self) -> MonitoringService:
        from loopml.services.monitoring import MonitoringService  # lazy: numpy, Arrow

        return MonitoringService(
            self.stores.monitors,
            self.predictions,
            self.deployments,
            self.registry,
            self.lineage,
            self.datasets,
            self.registry.load,
            self.clock,
        )

    @cached_property
    def reviews(self) -> ReviewService:
        from loopml.adapters.python_target import load_function
        from loopml.services.review import ReviewService  # lazy: numpy, Arrow

        root = self.root
        return ReviewService(
            self.stores.reviews,
            self.predictions,
            self.clock,
            lambda target: load_function(target, root, "review function"),
        )

    @cached_property
    def alerting(self) -> AlertService:
        from loopml.adapters.alert_sinks import build_sinks  # lazy: HTTP and SMTP clients
        from loopml.services.alerting import AlertService

        if self.settings is None:
            config = AlertsConfig()
            sinks = build_sinks(config.sinks, env={}, workspace=self.root, log_path=None)
        else:
            source = str(self.settings.root / CONFIG_FILE)
            try:
                config = alerts_from_config(self.settings.alerts, source)
            except InvalidInput as exc:
                raise ConfigError(str(exc)) from exc
            sinks = build_sinks(
                config.sinks,
                env=os.environ,
                workspace=self.root,
                log_path=self.settings.root / STATE_DIR / "alerts.jsonl",
            )
        return AlertService(self.stores.alerts, config.rules, sinks, self.clock)

    @cached_property
    def service_metrics(self) -> ServiceMetrics | None:
        """The counters of the workspace's server (``[serve]`` host and port), read by the
        agent for error rates; None without a workspace."""
        from loopml.adapters.server_metrics import ServerMetricsReader

        if self.settings is None:
            return None
        host = self.settings.host
        host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        host = f"[{host}]" if ":" in host else host
        return ServerMetricsReader(f"http://{host}:{self.settings.port}/metrics")

    @cached_property
    def loops(self) -> LoopService:
        from loopml.services.loop import LoopService  # lazy: numpy, Arrow

        return LoopService(
            self.stores.loops,
            self.deployments,
            self.registry,
            self.evaluations,
            self.datasets,
            self.monitoring,
            self.predictions,
            self.stores.reviews,
            self.clock,
        )

    def close(self) -> None:
        if "prediction_sink" in self.__dict__:
            self.prediction_sink.close()
        if self.settings is None and "predictions_dir" in self.__dict__:
            shutil.rmtree(self.predictions_dir, ignore_errors=True)
        if self.database is not None:
            self.database.dispose()


@dataclass(frozen=True)
class Stores:
    """The metadata stores of one backend (SQL or memory)."""

    tracking: TrackingStore
    registry: RegistryStore
    audit: AuditLog
    datasets: DatasetStore
    approvals: ApprovalStore
    evaluations: EvaluationStore
    steps: StepCache
    deployments: DeploymentStore
    monitors: MonitorStore
    reviews: ReviewStore
    loops: LoopStore
    alerts: AlertStore


def _wire(
    settings: Settings | None,
    clock: Clock,
    blobs: BlobStore,
    stores: Stores,
    database: SqlDatabase | None,
    cwd: Path,
) -> Loopml:
    provenance = GitProvenance(cwd) if settings is None or settings.capture_code else None
    index = StatIndex(None if settings is None else settings.root / STATE_DIR / "index")
    tracking_service = TrackingService(stores.tracking, blobs, clock, provenance)
    gates = (
        GatePolicy()
        if settings is None
        else policy_from_mapping(settings.gates, str(settings.root / CONFIG_FILE))
    )
    registry_service = RegistryService(
        stores.registry,
        blobs,
        DefaultFlavorCatalog(),
        clock,
        stores.tracking,
        gates,
        approvals=stores.approvals,
        evaluations=stores.evaluations,
        model_cache=(
            PickleModelCache(settings.root / STATE_DIR / "cache" / "models")
            if settings is not None and settings.model_cache
            else None
        ),
    )
    return Loopml(
        settings=settings,
        clock=clock,
        blobs=blobs,
        tracking=tracking_service,
        registry=registry_service,
        audit=AuditService(stores.audit),
        gc=GarbageCollector(
            stores.tracking,
            stores.registry,
            stores.datasets,
            stores.evaluations,
            stores.steps,
            blobs,
            clock,
        ),
        stores=stores,
        file_index=index,
        root=cwd if settings is None else settings.root,
        database=database,
    )


def build(settings: Settings) -> Loopml:
    """Wire the SQL and artifact adapters named by ``settings``. No I/O happens here."""
    clock = SystemClock()
    db = SqlDatabase(settings.metadata_url, busy_timeout_s=settings.busy_timeout_seconds)
    stores = Stores(
        tracking=SqlTrackingStore(db),
        registry=SqlRegistryStore(db, clock),
        audit=SqlAuditLog(db, clock),
        datasets=SqlDatasetStore(db),
        approvals=SqlApprovalStore(db),
        evaluations=SqlEvaluationStore(db),
        steps=SqlStepCache(db),
        deployments=SqlDeploymentStore(db),
        monitors=SqlMonitorStore(db, clock),
        reviews=SqlReviewStore(db),
        loops=SqlLoopStore(db),
        alerts=SqlAlertStore(db),
    )
    return _wire(settings, clock, FsspecBlobStore(settings.artifact_url), stores, db, Path.cwd())


def build_memory(clock: Clock | None = None) -> Loopml:
    """Everything in memory: for tests, notebooks and trying loopml out."""
    clock = clock or SystemClock()
    mem = MemoryDatabase()
    stores = Stores(
        tracking=MemoryTrackingStore(mem),
        registry=MemoryRegistryStore(mem, clock),
        audit=MemoryAuditLog(mem, clock),
        datasets=MemoryDatasetStore(mem),
        approvals=MemoryApprovalStore(mem),
        evaluations=MemoryEvaluationStore(mem),
        steps=MemoryStepCache(mem),
        deployments=MemoryDeploymentStore(mem),
        monitors=MemoryMonitorStore(mem, clock),
        reviews=MemoryReviewStore(mem),
        loops=MemoryLoopStore(mem),
        alerts=MemoryAlertStore(mem),
    )
    return _wire(None, clock, MemoryBlobStore(), stores, None, Path.cwd())


def open_workspace(settings: Settings, *, create: bool = False) -> Loopml:
    """Build and check the schema. With ``create``, a database that has no schema yet
    gets one (an existing database at an old revision is never migrated here)."""
    app = build(settings)
    assert app.database is not None
    if create:
        migrate.initialize(app.database)
    else:
        migrate.check_schema(app.database)
    return app


def init_workspace(root: Path, **flags: object) -> Settings:
    """Create ``loopml.toml`` and ``.loopml/`` in ``root`` (keeping any that exist) and the
    database schema. Safe to run concurrently and to run again."""
    root = root.expanduser().resolve()
    try:
        (root / STATE_DIR).mkdir(parents=True, exist_ok=True)
        _write_once(root / CONFIG_FILE, WORKSPACE_TEMPLATE)
        _write_once(root / STATE_DIR / ".gitignore", "# loopml's local state: never commit\n*\n")
    except OSError as exc:
        raise ConfigError(f"cannot create a workspace in {root}: {exc}") from exc
    settings = load_settings(root, flags=flags)
    app = build(settings)
    try:
        assert app.database is not None
        migrate.initialize(app.database)
    finally:
        app.close()
    return settings


def upgrade_database(settings: Settings) -> tuple[str | None, str]:
    app = build(settings)
    try:
        assert app.database is not None
        return migrate.upgrade(app.database)
    finally:
        app.close()


def _write_once(path: Path, text: str) -> None:
    """Create ``path`` with ``text`` atomically unless it exists: never a half file, and
    never overwrite what another process (or the user) wrote."""
    if path.exists():
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # atomic create-if-absent
    finally:
        os.unlink(tmp)
