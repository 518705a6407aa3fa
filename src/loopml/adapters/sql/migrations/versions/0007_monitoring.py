"""Monitoring windows and references, the review queue, retrain loop runs, agent jobs,
alerts.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "monitor_windows",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("window_key", sa.String(256), nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.UniqueConstraint("deployment", "window_key", name="uq_monitor_windows_window"),
    )
    op.create_index("ix_monitor_windows_created", "monitor_windows", ["deployment", "created_ms"])
    op.create_table(
        "monitor_references",
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "review_items",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("request_rows", sa.Integer, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("reviewer", sa.String(256)),
        sa.Column("labelled_ms", sa.BigInteger),
        sa.Column("agrees", sa.Boolean),
        sa.UniqueConstraint("request_id", "row", name="uq_review_items_request_row"),
    )
    op.create_index("ix_review_items_queue", "review_items", ["deployment", "status", "time_ms"])
    op.create_table(
        "review_cursors",
        sa.Column("deployment", sa.String(128), primary_key=True),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "loop_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_loop_runs_deployment", "loop_runs", ["deployment", "created_ms"])
    op.create_table(
        "agent_jobs",
        sa.Column("job", sa.String(128), primary_key=True),
        sa.Column("due_ms", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_ms", sa.BigInteger, nullable=False),
        sa.Column("finished_ms", sa.BigInteger),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("dedup_key", sa.String(512), nullable=False),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_alerts_dedup", "alerts", ["dedup_key", "time_ms"])
    op.create_index("ix_alerts_deployment", "alerts", ["deployment", "time_ms"])


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_table("agent_jobs")
    op.drop_table("loop_runs")
    op.drop_table("review_cursors")
    op.drop_table("review_items")
    op.drop_table("monitor_references")
    op.drop_table("monitor_windows")
