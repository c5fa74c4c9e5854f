"""Regenerate v0.1.0.db: a database made with the 0.1.0 schema (kept for upgrade tests).

Run once when a release changes the schema; the file is committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from shipyard.store._sql import _engine, _metrics
from shipyard.store._sql import _schema as t
from shipyard.types import MetricSeries

out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("v0.1.0.db"))
out.unlink(missing_ok=True)
engine = _engine.make_engine(f"sqlite:///{out}")
cfg = Config()
cfg.set_main_option("script_location", str(_engine._MIGRATIONS))
with engine.connect() as conn:
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "v0.1.0")
    conn.commit()
P, E, R = "0" * 31 + "1", "0" * 31 + "2", "0" * 31 + "3"
with engine.begin() as conn:
    conn.execute(sa.insert(t.projects).values(id=P, name="default", description="", created_at=1.0))
    conn.execute(
        sa.insert(t.experiments).values(
            id=E, project_id=P, name="old", description="", lifecycle="active", created_at=1.0
        )
    )
    conn.execute(
        sa.insert(t.runs).values(
            id=R,
            experiment_id=E,
            name="legacy",
            status="FINISHED",
            start_time=1.0,
            end_time=2.0,
            user="u",
            lifecycle="active",
            parent_run_id=None,
            code='{"git_commit": "abc"}',
            environment="{}",
            process=None,
            heartbeat_time=None,
        )
    )
    conn.execute(
        sa.insert(t.params).values(
            run_id=R, key="lr", value_type="float", value_text="0.1", value_num=0.1
        )
    )
    steps = np.arange(5000, dtype=np.int64)
    _metrics.ingest(
        conn, R, MetricSeries("loss", steps, 1.0 / (1 + steps), np.full(5000, 3.0)), False
    )
engine.dispose()
print(out)
