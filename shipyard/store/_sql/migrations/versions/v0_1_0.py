"""Shipyard 0.1.0: projects, experiments, runs, params, tags, metrics, artifacts.

Revision ID: v0.1.0
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v0.1.0"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(32)
KEY = sa.String(250)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_table(
        "experiments",
        sa.Column("id", ID, primary_key=True),
        sa.Column("project_id", ID, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("lifecycle", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_experiments_project_name"),
    )
    op.create_table(
        "experiment_tags",
        sa.Column("experiment_id", ID, sa.ForeignKey("experiments.id"), primary_key=True),
        sa.Column("key", KEY, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "runs",
        sa.Column("id", ID, primary_key=True),
        sa.Column("experiment_id", ID, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", sa.Double, nullable=False),
        sa.Column("end_time", sa.Double, nullable=True),
        sa.Column("user", sa.String(256), nullable=False),
        sa.Column("lifecycle", sa.String(16), nullable=False),
        sa.Column("parent_run_id", ID, nullable=True),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("process", sa.String(512), nullable=True),
        sa.Column("heartbeat_time", sa.Double, nullable=True),
    )
    op.create_index("ix_runs_experiment_start", "runs", ["experiment_id", "start_time"])
    op.create_table(
        "params",
        sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", KEY, primary_key=True),
        sa.Column("value_type", sa.String(8), nullable=False),
        sa.Column("value_text", sa.Text, nullable=False),
        sa.Column("value_num", sa.Double, nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_params_key_num", "params", ["key", "value_num"])
    op.create_table(
        "tags",
        sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", KEY, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "metric_summaries",
        sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", KEY, primary_key=True),
        sa.Column("last", sa.Double, nullable=True),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("last_time", sa.Double, nullable=False),
        sa.Column("min", sa.Double, nullable=True),
        sa.Column("max", sa.Double, nullable=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_metric_summaries_key_last", "metric_summaries", ["key", "last"])
    op.create_table(
        "metric_segments",
        sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", KEY, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "artifacts",
        sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    for table in (
        "artifacts",
        "metric_segments",
        "metric_summaries",
        "tags",
        "params",
        "runs",
        "experiment_tags",
        "experiments",
        "projects",
    ):
        op.drop_table(table)
