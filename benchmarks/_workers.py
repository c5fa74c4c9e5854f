"""Work that runs in a fresh interpreter, one process per repetition, so nothing
(buffers, engines, caches, the active-run stack) carries over between runs.

    python benchmarks/_workers.py NAME '{"json": "args"}'

prints one JSON object as its last line of output.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

RUN_UUID = "0123456789abcdef0123456789abcdef"


def loss_curve(n: int, seed: int, spikes: int = 0) -> Any:
    """A noisy decaying loss (NumPy float64 array): what a training loop logs."""
    import numpy as np

    rng = np.random.default_rng(seed)
    steps = np.arange(n, dtype=np.float64)
    scale = 0.5 + rng.random()
    curve = scale * np.exp(-steps / (n / 5)) + 0.1 * scale + 0.02 * scale * (1 + steps / n)
    noisy = curve * (1 + 0.05 * rng.standard_normal(n))
    if spikes:
        where = rng.choice(np.arange(1, n - 1), size=spikes, replace=False)
        noisy[where[: spikes // 2]] *= 20.0  # divergence spikes
        noisy[where[spikes // 2 :]] *= 0.01  # dips
    return noisy


def timestamps(n: int, mode: str, seed: int = 7) -> list[float] | None:
    """None: let ``log_metric`` take ``time.time()``; "spaced": a step every
    ~50 ms with a few ms of jitter (a realistic training loop's clock)."""
    if mode == "now":
        return None
    import numpy as np

    rng = np.random.default_rng(seed)
    t = time.time() - n * 0.05 + np.cumsum(0.045 + 0.01 * rng.random(n))
    out: list[float] = t.tolist()
    return out


def _noop(key: str, value: float, step: int | None = None, timestamp: float | None = None) -> None:
    return None


def log(args: dict[str, Any]) -> dict[str, Any]:
    """Log keys x steps points through the public API and time it."""
    home = Path(args["home"])
    os.environ["SHIPYARD_HOME"] = str(home)
    os.environ.pop("SHIPYARD_TRACKING_URI", None)
    mode, n_keys, n = args["mode"], int(args["keys"]), int(args["steps"])
    keys = [f"train/metric_{i}" for i in range(n_keys)]
    pairs = tuple((k, loss_curve(n, seed=i).tolist()) for i, k in enumerate(keys))
    ts = timestamps(n, args.get("timestamps", "now"))

    import shipyard

    run = None
    if mode == "noop":
        lm: Any = _noop
    else:
        run = shipyard.start_run(experiment="bench", run_name=f"log-{mode}")
        for thread in run.background:  # code/environment capture: not part of the hot path
            thread.join(timeout=60)
        run.flush()
        lm = shipyard.log_metric if mode == "fluent" else run.log_metric

    t0 = time.perf_counter()
    if ts is None:
        for step in range(n):
            for key, col in pairs:
                lm(key, col[step], step)
    else:
        for step in range(n):
            when = ts[step]
            for key, col in pairs:
                lm(key, col[step], step, when)
    t1 = time.perf_counter()
    flushed = True if run is None else run.flush(timeout=120)
    t2 = time.perf_counter()

    points = n * n_keys
    out: dict[str, Any] = {
        "points": points,
        "calls_s": points / (t1 - t0),
        "sustained_s": points / (t2 - t0) if run is not None else None,
        "flush_wait_ms": (t2 - t1) * 1000.0,
        "flushed": flushed,
    }
    if run is None:
        return out
    info = shipyard.get_run(run.id)
    counts = {k: s.count for k, s in info.summaries.items()}
    out["stored_ok"] = counts == dict.fromkeys(keys, n)
    out["counts"] = counts if not out["stored_ok"] else None
    shipyard.end_run()
    if args.get("compact"):
        sys.path.insert(0, str(Path(__file__).parent))
        from _common import compact_sqlite, sqlite_sizes

        shipyard.get_client().store.close()
        db = home / "shipyard.db"
        out["db_bytes"] = compact_sqlite(db)
        out["tables"] = sqlite_sizes(db)
    return out


def naive(args: dict[str, Any]) -> dict[str, Any]:
    """MLflow's shape: one SQL row per point, inserted with executemany into
    SQLite (WAL, synchronous=NORMAL, as Shipyard's store). Rows are built before
    the clock starts, so this is a best case for row-per-point storage."""
    import sqlite3

    path = Path(args["path"])
    n_keys, n = int(args["keys"]), int(args["steps"])
    keys = [f"train/metric_{i}" for i in range(n_keys)]
    cols = [loss_curve(n, seed=i).tolist() for i in range(n_keys)]
    ts = timestamps(n, args.get("timestamps", "now"))
    if ts is None:  # as if logged at ~1M points/s, like the Shipyard run
        t0 = time.time()
        ms = [math.floor((t0 + (s * n_keys) * 1e-6) * 1000) for s in range(n)]
    else:
        ms = [math.floor(t * 1000 + 0.5) for t in ts]
    rows = [(RUN_UUID, keys[k], cols[k][s], ms[s], s) for s in range(n) for k in range(n_keys)]

    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE metrics (run_uuid VARCHAR(32) NOT NULL, key VARCHAR(250) NOT NULL, "
        "value FLOAT NOT NULL, timestamp BIGINT NOT NULL, step BIGINT NOT NULL, "
        "CONSTRAINT metric_pk PRIMARY KEY (key, timestamp, step, run_uuid, value))"
    )
    t_start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO metrics (run_uuid, key, value, timestamp, step) VALUES (?, ?, ?, ?, ?)", rows
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t_start
    conn.close()
    out: dict[str, Any] = {"points": len(rows), "rows_s": len(rows) / elapsed}
    if args.get("compact"):
        sys.path.insert(0, str(Path(__file__).parent))
        from _common import compact_sqlite, sqlite_sizes

        out["db_bytes"] = compact_sqlite(path)
        out["tables"] = sqlite_sizes(path)
    return out


WORKERS = {"log": log, "naive": naive}


def main() -> None:
    name, raw = sys.argv[1], sys.argv[2]
    result = WORKERS[name](json.loads(raw))
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
