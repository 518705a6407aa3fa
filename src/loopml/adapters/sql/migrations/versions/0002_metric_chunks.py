"""Metric history in packed chunks: one row per run per flush instead of one per point.

The points already stored move into chunks of at most 10,000 points each, in the order
they were written, so every series reads back exactly as before. Downgrading unpacks
them into per-point rows again.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from alembic import op

from loopml.adapters.sql.metric_chunks import Chunk, pack
from loopml.domain.tracking import Metric

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_CHUNK_POINTS = 10_000


def upgrade() -> None:
    op.create_table(
        "metric_chunks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "run_pk", sa.BigInteger, sa.ForeignKey("runs.pk", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("points", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_metric_chunks_run", "metric_chunks", ["run_pk", "id"])
    conn = op.get_bind()
    chunks = sa.table("metric_chunks", sa.column("run_pk"), sa.column("points"), sa.column("data"))
    rows = conn.execute(
        sa.text("SELECT run_pk, key, value, step, timestamp_ms FROM metrics ORDER BY run_pk, id")
    )
    run_pk: int | None = None
    points: list[Metric] = []

    def write() -> None:
        if points:
            row = {"run_pk": run_pk, "points": len(points), "data": pack(points)}
            conn.execute(chunks.insert().values(**row))
            points.clear()

    for pk, key, value, step, ts in rows:
        if pk != run_pk or len(points) >= _CHUNK_POINTS:
            write()
            run_pk = pk
        points.append(Metric(key, math.nan if value is None else float(value), int(step), int(ts)))
    write()
    op.drop_table("metrics")


def downgrade() -> None:
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
    conn = op.get_bind()
    metrics = sa.table(
        "metrics",
        sa.column("run_pk"),
        sa.column("key"),
        sa.column("value"),
        sa.column("step"),
        sa.column("timestamp_ms"),
    )
    for run_pk, data in conn.execute(
        sa.text("SELECT run_pk, data FROM metric_chunks ORDER BY id")
    ).all():
        rows = [
            {
                "run_pk": run_pk,
                "key": p.key,
                "value": None if math.isnan(p.value) else p.value,
                "step": p.step,
                "timestamp_ms": p.timestamp_ms,
            }
            for p in Chunk(data).points()
        ]
        conn.execute(metrics.insert(), rows)
    op.drop_table("metric_chunks")
