"""Initial schema: experiments, runs and their records, registry, audit trail.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _run_fk() -> sa.Column[int]:
    return sa.Column(
        "run_pk", sa.BigInteger, sa.ForeignKey("runs.pk", ondelete="CASCADE"), primary_key=True
    )


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("pk", BigId, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("experiment_id", sa.BigInteger, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger),
        sa.Column("parent_id", sa.String(32), sa.ForeignKey("runs.id")),
        sa.Column("code", sa.Text),
        sa.Column("environment", sa.Text),
    )
    op.create_index("ix_runs_experiment_start", "runs", ["experiment_id", "start_ms"])
    op.create_index("ix_runs_parent", "runs", ["parent_id"])
    for name in ("params", "tags"):
        op.create_table(
            name,
            _run_fk(),
            sa.Column("key", sa.String(250), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        op.create_index(f"ix_{name}_key_value", name, ["key", "value"])
    op.create_table(
        "metrics",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "run_pk", sa.BigInteger, sa.ForeignKey("runs.pk", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_metrics_run_key_step", "metrics", ["run_pk", "key", "step"])
    op.create_table(
        "latest_metrics",
        _run_fk(),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Float),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_latest_metrics_key_value", "latest_metrics", ["key", "value"])
    op.create_table(
        "run_artifacts",
        _run_fk(),
        sa.Column("name", sa.String(1024), primary_key=True),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "run_inputs",
        _run_fk(),
        sa.Column("dataset", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("digest", sa.String(80)),
    )
    op.create_table(
        "models",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("latest_version", sa.Integer, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.BigInteger, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("flavor", sa.String(64), nullable=False),
        sa.Column("artifact_name", sa.String(1024), nullable=False),
        sa.Column("artifact_digest", sa.String(80), nullable=False),
        sa.Column("artifact_size", sa.BigInteger, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("signature", sa.Text),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id")),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("code", sa.Text),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("flavor_info", sa.Text, nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    )
    op.create_index("ix_model_versions_model_stage", "model_versions", ["model_id", "stage"])
    op.create_table(
        "model_aliases",
        sa.Column("model_id", sa.BigInteger, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("alias", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(512), nullable=False),
        sa.Column("before", sa.Text),
        sa.Column("after", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_events_object", "audit_events", ["object_id"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])


def downgrade() -> None:
    for name in (
        "audit_head",
        "audit_events",
        "model_aliases",
        "model_versions",
        "models",
        "run_inputs",
        "run_artifacts",
        "latest_metrics",
        "metrics",
        "tags",
        "params",
        "runs",
        "experiments",
    ):
        op.drop_table(name)
