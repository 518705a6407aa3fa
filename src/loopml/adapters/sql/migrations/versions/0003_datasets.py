"""Datasets and their versions.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("latest_version", sa.Integer, nullable=False),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("dataset_id", sa.BigInteger, sa.ForeignKey("datasets.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("columns", sa.Text, nullable=False),
        sa.Column("manifest", sa.String(80), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("profile", sa.String(80)),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("parent", sa.Integer),
        sa.Column("author", sa.String(256), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_dataset_versions_digest", "dataset_versions", ["dataset_id", "digest"])


def downgrade() -> None:
    op.drop_table("dataset_versions")
    op.drop_table("datasets")
