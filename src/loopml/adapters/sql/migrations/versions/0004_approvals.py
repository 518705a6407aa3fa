"""Approval requests of promotions into gated stages.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "approval_requests",
        sa.Column("pk", BigId, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(128), nullable=False, unique=True),
        sa.Column("model_id", sa.BigInteger, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(256), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("decided_by", sa.String(256)),
        sa.Column("decided_ms", sa.BigInteger),
        sa.Column("comment", sa.Text),
        sa.ForeignKeyConstraint(
            ["model_id", "version"],
            ["model_versions.model_id", "model_versions.version"],
            name="fk_approval_requests_version",
        ),
    )
    op.create_index(
        "ix_approval_requests_subject",
        "approval_requests",
        ["model_id", "version", "stage", "status"],
    )


def downgrade() -> None:
    op.drop_index("ix_approval_requests_subject", table_name="approval_requests")
    op.drop_table("approval_requests")
