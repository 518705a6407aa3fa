"""Table definitions of the metadata store (SQLAlchemy Core).

Core tables, not ORM classes: the hot paths (metric inserts, run search) are bulk
statements, and mapping rows to frozen domain values by hand is both faster and explicit.
Structured values (code version, signature, lineage) are canonical JSON text, readable
with any SQL client. Times are integer milliseconds since the epoch. Runs have an integer
surrogate key used by the child tables, and a public 32-hex id.

The migrations in ``migrations/versions`` create exactly these tables; a test compares
the two, so change both together.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite autoincrements only an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

experiments = Table(
    "experiments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("pk", BigId, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("experiment_id", BigInteger, ForeignKey("experiments.id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger),
    Column("parent_id", String(32), ForeignKey("runs.id")),
    Column("code", Text),
    Column("environment", Text),
    Index("ix_runs_experiment_start", "experiment_id", "start_ms"),
    Index("ix_runs_parent", "parent_id"),
)

params = Table(
    "params",
    metadata,
    Column("run_pk", BigInteger, ForeignKey("runs.pk", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_params_key_value", "key", "value"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_pk", BigInteger, ForeignKey("runs.pk", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_tags_key_value", "key", "value"),
)

# A run's metric history: one row per flush, the points packed (see metric_chunks.py).
metric_chunks = Table(
    "metric_chunks",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_pk", BigInteger, ForeignKey("runs.pk", ondelete="CASCADE"), nullable=False),
    Column("points", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Index("ix_metric_chunks_run", "run_pk", "id"),
)

latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_pk", BigInteger, ForeignKey("runs.pk", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float),  # NaN is stored as NULL
    Column("step", BigInteger, nullable=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Index("ix_latest_metrics_key_value", "key", "value"),
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_pk", BigInteger, ForeignKey("runs.pk", ondelete="CASCADE"), primary_key=True),
    Column("name", String(1024), primary_key=True),
    Column("digest", String(80), nullable=False),
    Column("size", BigInteger, nullable=False),
)

run_inputs = Table(
    "run_inputs",
    metadata,
    Column("run_pk", BigInteger, ForeignKey("runs.pk", ondelete="CASCADE"), primary_key=True),
    Column("dataset", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("digest", String(80)),
)

models = Table(
    "models",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("latest_version", Integer, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model_id", BigInteger, ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("flavor", String(64), nullable=False),
    Column("artifact_name", String(1024), nullable=False),
    Column("artifact_digest", String(80), nullable=False),
    Column("artifact_size", BigInteger, nullable=False),
    Column("stage", String(16), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("signature", Text),
    Column("metrics", Text, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id")),
    Column("inputs", Text, nullable=False),
    Column("code", Text),
    Column("description", Text, nullable=False),
    Column("flavor_info", Text, nullable=False),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    Index("ix_model_versions_model_stage", "model_id", "stage"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", BigInteger, ForeignKey("models.id"), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version", Integer, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time_ms", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(64), nullable=False),
    Column("object_id", String(512), nullable=False),
    Column("before", Text),
    Column("after", Text),
    Column("reason", Text),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_object", "object_id"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("latest_version", Integer, nullable=False),
)

# One row per immutable version; its chunk list lives in the manifest blob.
dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("dataset_id", BigInteger, ForeignKey("datasets.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("digest", String(80), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("columns", Text, nullable=False),  # JSON [[name, arrow type], ...]
    Column("manifest", String(80), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("profile", String(80)),
    Column("source", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("parent", Integer),
    Column("author", String(256), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_dataset_versions_digest", "dataset_id", "digest"),
)

# A person's request to move a version into a gated stage, and its one decision. The
# surrogate key orders requests by creation; the public id is what people type.
approval_requests = Table(
    "approval_requests",
    metadata,
    Column("pk", BigId, primary_key=True, autoincrement=True),
    Column("id", String(128), nullable=False, unique=True),
    Column("model_id", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("stage", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested_by", String(256), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("decided_by", String(256)),
    Column("decided_ms", BigInteger),
    Column("comment", Text),
    ForeignKeyConstraint(
        ["model_id", "version"],
        ["model_versions.model_id", "model_versions.version"],
        name="fk_approval_requests_version",
    ),
    Index("ix_approval_requests_subject", "model_id", "version", "stage", "status"),
)

# The evaluations of model versions; the full evaluation and its HTML report are blobs.
model_evaluations = Table(
    "model_evaluations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("evaluation", String(80), nullable=False),
    Column("report", String(80), nullable=False),
    Column("dataset", String(256)),
    Column("facts", Text, nullable=False),  # JSON: task, rows, metrics, validation, latency
    Index("ix_model_evaluations_version", "model", "version"),
)

# Finished pipeline steps by cache key.
step_cache = Table(
    "step_cache",
    metadata,
    Column("pipeline", String(128), primary_key=True),
    Column("step", String(128), primary_key=True),
    Column("key_digest", String(80), primary_key=True),
    Column("key", Text, nullable=False),  # JSON of the StepKey
    Column("outputs", Text, nullable=False),  # JSON {name: [codec, digest, size]}
    Column("run_id", String(32), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("duration_ms", BigInteger, nullable=False),
    Index("ix_step_cache_latest", "pipeline", "step", "created_ms"),
    Index("ix_step_cache_run", "run_id"),
)

# Deployments: the current state (JSON) and every revision of it, for `deploy history`.
deployments = Table(
    "deployments",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

deployment_history = Table(
    "deployment_history",
    metadata,
    Column("name", String(128), ForeignKey("deployments.name"), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("time_ms", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(32), nullable=False),
    Column("state", Text, nullable=False),
    Column("reason", Text),
)

# Monitoring: one row per evaluated window of a deployment's traffic, the report as JSON.
# ``score`` repeats the report's score for SQL filters and dashboards; reads rebuild it
# from the report. JSON has no infinity, so an infinite score is stored as the largest
# float (ordering is kept) and NaN as NULL (see adapters/monitor_rows.py).
monitor_windows = Table(
    "monitor_windows",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("deployment", String(128), nullable=False),
    Column("window_key", String(256), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("score", Float),
    Column("created_ms", BigInteger, nullable=False),
    Column("report", Text, nullable=False),  # JSON of WindowReport.to_dict()
    UniqueConstraint("deployment", "window_key", name="uq_monitor_windows_window"),
    Index("ix_monitor_windows_created", "deployment", "created_ms"),
)

# Summarised references (plain JSON) that windows are compared with, by key.
monitor_references = Table(
    "monitor_references",
    metadata,
    Column("key", String(256), primary_key=True),
    Column("data", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

# The human review queue: each (request_id, row) enters once; answers are stored on the row.
review_items = Table(
    "review_items",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("deployment", String(128), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("row", Integer, nullable=False),
    Column("request_rows", Integer, nullable=False),  # rows of the whole request
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("time_ms", BigInteger, nullable=False),
    Column("inputs", Text, nullable=False),  # JSON object
    Column("output", Text, nullable=False),  # JSON
    Column("confidence", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("label", Text),  # JSON, once answered
    Column("reviewer", String(256)),
    Column("labelled_ms", BigInteger),
    Column("agrees", Boolean),
    UniqueConstraint("request_id", "row", name="uq_review_items_request_row"),
    Index("ix_review_items_queue", "deployment", "status", "time_ms"),
)

# Time up to which each deployment's prediction log was scanned for review.
review_cursors = Table(
    "review_cursors",
    metadata,
    Column("deployment", String(128), primary_key=True),
    Column("time_ms", BigInteger, nullable=False),
)

# Retrain loop runs: the run as JSON, with state and revision (compare-and-set) beside it.
loop_runs = Table(
    "loop_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("deployment", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("data", Text, nullable=False),  # JSON of LoopRun.to_dict()
    Index("ix_loop_runs_deployment", "deployment", "created_ms"),
)

# The agent's job ledger: the primary key makes claiming a slot an insert only one
# process can win.
agent_jobs = Table(
    "agent_jobs",
    metadata,
    Column("job", String(128), primary_key=True),
    Column("due_ms", BigInteger, primary_key=True, autoincrement=False),
    Column("state", String(16), nullable=False),
    Column("started_ms", BigInteger, nullable=False),
    Column("finished_ms", BigInteger),
    Column("detail", Text, nullable=False),
)

# Alerts that fired (domain/alerts.py), whole as JSON with what each sink reported; the id
# derives from the de-dup key and the window, so the same firing is stored once.
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("deployment", String(128), nullable=False),
    Column("dedup_key", String(512), nullable=False),
    Column("time_ms", BigInteger, nullable=False),
    Column("data", Text, nullable=False),
    Index("ix_alerts_dedup", "dedup_key", "time_ms"),
    Index("ix_alerts_deployment", "deployment", "time_ms"),
)
