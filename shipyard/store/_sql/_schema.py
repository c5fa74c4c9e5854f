"""Tables of the SQL store (SQLite and PostgreSQL).

The Alembic revisions in ``migrations/versions`` create exactly this schema; a
test compares the two. Times are float seconds; ids are 32 hex characters.

Metric points live in ``metric_segments``: per run and key, columnar,
compressed blocks of up to ``SEGMENT_POINTS`` points (see ``_segments.py``),
about 9 bytes a point where MLflow spends ~300 in one row per point. Search
reads only ``metric_summaries`` (last, min, max per run and key).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ID = sa.String(32)
KEY = sa.String(250)
Double: sa.Double[float] = sa.Double()

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", Double, nullable=False),
)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("project_id", ID, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("lifecycle", sa.String(16), nullable=False, default="active"),
    sa.Column("created_at", Double, nullable=False),
    sa.UniqueConstraint("project_id", "name", name="uq_experiments_project_name"),
)

experiment_tags = sa.Table(
    "experiment_tags",
    metadata,
    sa.Column("experiment_id", ID, sa.ForeignKey("experiments.id"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sqlite_with_rowid=False,
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("experiment_id", ID, sa.ForeignKey("experiments.id"), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("start_time", Double, nullable=False),
    sa.Column("end_time", Double, nullable=True),
    sa.Column("user", sa.String(256), nullable=False, default=""),
    sa.Column("lifecycle", sa.String(16), nullable=False, default="active"),
    sa.Column("parent_run_id", ID, nullable=True),
    sa.Column("code", sa.Text, nullable=False, default="{}"),
    sa.Column("environment", sa.Text, nullable=False, default="{}"),
    sa.Column("process", sa.String(512), nullable=True),
    sa.Column("heartbeat_time", Double, nullable=True),
    sa.Index("ix_runs_experiment_start", "experiment_id", "start_time"),
)

#: ``value_type`` is one of str, int, float, bool, null; ``value_num`` holds the
#: number for int and float (NULL for NaN) so comparisons are numeric.
params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value_type", sa.String(8), nullable=False),
    sa.Column("value_text", sa.Text, nullable=False),
    sa.Column("value_num", Double, nullable=True),
    sa.Index("ix_params_key_num", "key", "value_num"),
    sqlite_with_rowid=False,
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sqlite_with_rowid=False,
)

#: NaN is stored as NULL in ``last``/``min``/``max`` (SQLite cannot hold NaN);
#: a row exists only once a point was logged, so NULL there means NaN.
metric_summaries = sa.Table(
    "metric_summaries",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("last", Double, nullable=True),
    sa.Column("last_step", sa.BigInteger, nullable=False),
    sa.Column("last_time", Double, nullable=False),
    sa.Column("min", Double, nullable=True),
    sa.Column("max", Double, nullable=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Index("ix_metric_summaries_key_last", "key", "last"),
    sqlite_with_rowid=False,
)

metric_segments = sa.Table(
    "metric_segments",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("created_at", Double, nullable=False),
    sqlite_with_rowid=False,
)

# -- data versioning (v0.2.0) ----------------------------------------------------

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("project_id", ID, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", Double, nullable=False),
    sa.UniqueConstraint("project_id", "name", name="uq_datasets_project_name"),
)

dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("dataset_id", ID, sa.ForeignKey("datasets.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("num_files", sa.BigInteger, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("source", sa.Text, nullable=False, default=""),
    sa.Column("run_id", ID, nullable=True),
    sa.Column("metadata", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", Double, nullable=False),
    sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_number"),
)

run_inputs = sa.Table(
    "run_inputs",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("dataset_version_id", ID, sa.ForeignKey("dataset_versions.id"), primary_key=True),
    sa.Column("role", sa.String(64), primary_key=True),
    sa.Column("created_at", Double, nullable=False),
    sa.Index("ix_run_inputs_version", "dataset_version_id"),
    sqlite_with_rowid=False,
)

step_results = sa.Table(
    "step_results",
    metadata,
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("dataset_version_id", ID, sa.ForeignKey("dataset_versions.id"), nullable=False),
    sa.Column("created_at", Double, nullable=False),
)

# -- model registry (v0.3.0) -------------------------------------------------------

registered_models = sa.Table(
    "registered_models",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("project_id", ID, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("tags", sa.Text, nullable=False, default="{}"),
    sa.Column("contract", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", Double, nullable=False),
    sa.Column("updated_at", Double, nullable=False),
    sa.UniqueConstraint("project_id", "name", name="uq_registered_models_project_name"),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("model_id", ID, sa.ForeignKey("registered_models.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("package_digest", sa.String(64), nullable=False),
    sa.Column("run_id", ID, nullable=True),
    sa.Column("source", sa.Text, nullable=False, default=""),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("tags", sa.Text, nullable=False, default="{}"),
    sa.Column("metadata", sa.Text, nullable=False, default="{}"),
    sa.Column("created_by", sa.String(256), nullable=False, default=""),
    sa.Column("created_at", Double, nullable=False),
    sa.UniqueConstraint("model_id", "version", name="uq_model_versions_number"),
    sa.Index("ix_model_versions_run", "run_id"),
)

model_exports = sa.Table(
    "model_exports",
    metadata,
    sa.Column("model_version_id", ID, sa.ForeignKey("model_versions.id"), primary_key=True),
    sa.Column("format", sa.String(32), primary_key=True),
    sa.Column("package_digest", sa.String(64), nullable=False),
    sa.Column("report", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", Double, nullable=False),
    sqlite_with_rowid=False,
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("model_id", ID, sa.ForeignKey("registered_models.id"), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", Double, nullable=False),
    sqlite_with_rowid=False,
)

alias_events = sa.Table(
    "alias_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", ID, sa.ForeignKey("registered_models.id"), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False, default=""),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("report", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", Double, nullable=False),
    sa.Index("ix_alias_events_model", "model_id", "id"),
)
