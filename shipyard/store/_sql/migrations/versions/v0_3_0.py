"""Shipyard 0.3.0: the model registry (models, versions, exports, aliases, audit log).

Revision ID: v0.3.0
Revises: v0.2.0
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v0.3.0"
down_revision = "v0.2.0"
branch_labels = None
depends_on = None

ID = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("id", ID, primary_key=True),
        sa.Column("project_id", ID, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("contract", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_registered_models_project_name"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", ID, primary_key=True),
        sa.Column("model_id", ID, sa.ForeignKey("registered_models.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("package_digest", sa.String(64), nullable=False),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_number"),
    )
    op.create_index("ix_model_versions_run", "model_versions", ["run_id"])
    op.create_table(
        "model_exports",
        sa.Column("model_version_id", ID, sa.ForeignKey("model_versions.id"), primary_key=True),
        sa.Column("format", sa.String(32), primary_key=True),
        sa.Column("package_digest", sa.String(64), nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "model_aliases",
        sa.Column("model_id", ID, sa.ForeignKey("registered_models.id"), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", ID, sa.ForeignKey("registered_models.id"), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_index("ix_alias_events_model", "alias_events", ["model_id", "id"])


def downgrade() -> None:
    for table in (
        "alias_events",
        "model_aliases",
        "model_exports",
        "model_versions",
        "registered_models",
    ):
        op.drop_table(table)
