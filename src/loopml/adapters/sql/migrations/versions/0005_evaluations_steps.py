"""Evaluations of model versions, and the pipeline step cache.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_evaluations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("evaluation", sa.String(80), nullable=False),
        sa.Column("report", sa.String(80), nullable=False),
        sa.Column("dataset", sa.String(256)),
        sa.Column("facts", sa.Text, nullable=False),
    )
    op.create_index("ix_model_evaluations_version", "model_evaluations", ["model", "version"])
    op.create_table(
        "step_cache",
        sa.Column("pipeline", sa.String(128), primary_key=True),
        sa.Column("step", sa.String(128), primary_key=True),
        sa.Column("key_digest", sa.String(80), primary_key=True),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("duration_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_step_cache_latest", "step_cache", ["pipeline", "step", "created_ms"])
    op.create_index("ix_step_cache_run", "step_cache", ["run_id"])


def downgrade() -> None:
    op.drop_table("step_cache")
    op.drop_table("model_evaluations")
