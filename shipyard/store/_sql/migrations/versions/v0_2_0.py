"""Shipyard 0.2.0: datasets, dataset versions, run inputs, step results.

Revision ID: v0.2.0
Revises: v0.1.0
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v0.2.0"
down_revision = "v0.1.0"
branch_labels = None
depends_on = None

ID = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", ID, primary_key=True),
        sa.Column("project_id", ID, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_datasets_project_name"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", ID, primary_key=True),
        sa.Column("dataset_id", ID, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("num_files", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_number"),
    )
    op.create_table(
        "run_inputs",
        sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("dataset_version_id", ID, sa.ForeignKey("dataset_versions.id"), primary_key=True),
        sa.Column("role", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_run_inputs_version", "run_inputs", ["dataset_version_id"])
    op.create_table(
        "step_results",
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("dataset_version_id", ID, sa.ForeignKey("dataset_versions.id"), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    for table in ("step_results", "run_inputs", "dataset_versions", "datasets"):
        op.drop_table(table)
