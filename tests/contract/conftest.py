"""Backends for the metadata-store contract suites: memory, SQLite and PostgreSQL.

Every test that asks for ``tracking``, ``registry``, ``audit``, ``datasets``, ``approvals``,
``evaluations``, ``steps``, ``deployments``, ``monitors``, ``reviews`` or ``loops`` runs once
per backend, with the stores sharing one fresh, empty database (``stores.database``, for
tests that open a second store on it or damage a row behind the store's back):

* ``memory``: a new :class:`MemoryDatabase`;
* ``sqlite``: a copy of a template file migrated once per session (migrating per test
  would dominate the run time);
* ``postgresql``: a schema of its own, created and migrated once per session and dropped
  at the end; every table is truncated before each test. Skipped, naming the URL, when
  psycopg is missing or the server does not answer. ``LOOPML_TEST_POSTGRES_URL`` points
  the suite at another server.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from loopml.adapters.memory.approvals import MemoryApprovalStore
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
from loopml.adapters.sql import migrate
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
from loopml.adapters.sql.schema import metadata
from loopml.adapters.sql.step_cache import SqlStepCache
from loopml.adapters.sql.tracking import SqlTrackingStore
from loopml.domain.audit import GENESIS_HASH

if TYPE_CHECKING:
    from pathlib import Path

    from loopml.ports import (
        ApprovalStore,
        AuditLog,
        DatasetStore,
        DeploymentStore,
        EvaluationStore,
        RegistryStore,
        StepCache,
        TrackingStore,
    )
    from loopml.ports.monitoring import LoopStore, MonitorStore, ReviewStore

POSTGRES_URL = os.environ.get(
    "LOOPML_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.ms = start_ms

    def now_ms(self) -> int:
        return self.ms

    def advance(self, ms: int = 1) -> int:
        self.ms += ms
        return self.ms


@dataclass
class Stores:
    backend: str
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
    database: MemoryDatabase | SqlDatabase


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "loopml.db"
    db = SqlDatabase(f"sqlite:///{path}")
    migrate.initialize(db)
    db.dispose()  # the last connection to close checkpoints and removes the WAL file
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(("-wal", "-shm"))]
    if leftovers:
        pytest.fail(f"the migrated template left {leftovers} behind; copying it would lose data")
    return path


@pytest.fixture(scope="session")
def postgres_db() -> Iterator[SqlDatabase]:
    try:
        import psycopg
    except ImportError:
        pytest.skip(
            f"psycopg is not installed; cannot reach {POSTGRES_URL} "
            "(pip install 'loopml[postgres]')"
        )
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}".strip())
    schema = f"loopml_contract_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    # synchronous_commit=off: commits skip the WAL flush; durability is moot in a test
    options = f"-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"
    db = SqlDatabase(f"{POSTGRES_URL}{sep}options={options}")
    try:
        migrate.initialize(db)
        yield db
    finally:
        db.dispose()
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def _reset_postgres(db: SqlDatabase) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with db.write() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        conn.execute(
            text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": GENESIS_HASH}
        )


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> Iterator[Stores]:
    backend: str = request.param
    if backend == "memory":
        mem = MemoryDatabase()
        yield Stores(
            backend,
            MemoryTrackingStore(mem),
            MemoryRegistryStore(mem, clock),
            MemoryAuditLog(mem, clock),
            MemoryDatasetStore(mem),
            MemoryApprovalStore(mem),
            MemoryEvaluationStore(mem),
            MemoryStepCache(mem),
            MemoryDeploymentStore(mem),
            MemoryMonitorStore(mem, clock),
            MemoryReviewStore(mem),
            MemoryLoopStore(mem),
            mem,
        )
        return
    if backend == "sqlite":
        path = tmp_path / "loopml.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        db = SqlDatabase(f"sqlite:///{path}")
    else:
        db = request.getfixturevalue("postgres_db")
        _reset_postgres(db)
    try:
        yield Stores(
            backend,
            SqlTrackingStore(db),
            SqlRegistryStore(db, clock),
            SqlAuditLog(db, clock),
            SqlDatasetStore(db),
            SqlApprovalStore(db),
            SqlEvaluationStore(db),
            SqlStepCache(db),
            SqlDeploymentStore(db),
            SqlMonitorStore(db, clock),
            SqlReviewStore(db),
            SqlLoopStore(db),
            db,
        )
    finally:
        if backend == "sqlite":
            db.dispose()


@pytest.fixture
def twin_database(stores: Stores) -> Iterator[MemoryDatabase | SqlDatabase]:
    """A second handle on the stores' database: the same MemoryDatabase, or a new engine
    (its own connections, as another process would have) on the same SQL database."""
    if isinstance(stores.database, MemoryDatabase):
        yield stores.database
        return
    twin = SqlDatabase(stores.database.url)
    try:
        yield twin
    finally:
        twin.dispose()


@pytest.fixture
def backend(stores: Stores) -> str:
    return stores.backend


@pytest.fixture
def tracking(stores: Stores) -> TrackingStore:
    return stores.tracking


@pytest.fixture
def registry(stores: Stores) -> RegistryStore:
    return stores.registry


@pytest.fixture
def audit(stores: Stores) -> AuditLog:
    return stores.audit


@pytest.fixture
def datasets(stores: Stores) -> DatasetStore:
    return stores.datasets


@pytest.fixture
def approvals(stores: Stores) -> ApprovalStore:
    return stores.approvals


@pytest.fixture
def evaluations(stores: Stores) -> EvaluationStore:
    return stores.evaluations


@pytest.fixture
def steps(stores: Stores) -> StepCache:
    return stores.steps


@pytest.fixture
def deployments(stores: Stores) -> DeploymentStore:
    return stores.deployments


@pytest.fixture
def monitors(stores: Stores) -> MonitorStore:
    return stores.monitors


@pytest.fixture
def reviews(stores: Stores) -> ReviewStore:
    return stores.reviews


@pytest.fixture
def loops(stores: Stores) -> LoopStore:
    return stores.loops
