"""``log_metric`` throughput: in the caller, and sustained until flushed to SQLite.

10 metrics x 100,000 steps (1,000,000 points), logged step by step as a
training loop does, through the fluent ``shipyard.log_metric`` and through the
bound ``run.log_metric``. "Caller" is calls per second of the logging loop;
"sustained" is points per second from the first call until ``run.flush()``
returns (every point in SQLite). Each repetition is a fresh interpreter with
its own temporary ``SHIPYARD_HOME``.

Peers measured in the same run:
* the same loop calling an empty Python function (the floor of any
  call-per-point API);
* a naive row-per-point store: MLflow's metrics table shape
  ``(run_uuid, key, value, timestamp, step)`` filled with ``executemany`` in
  one transaction (rows prebuilt: a best case for row-per-point).
"""

from __future__ import annotations

from typing import Any

from _common import Figure, median, run_worker, temp_dir

NAME = "log_metric"
TARGET_POINTS_S = 1_000_000.0  # the issue: >= 1M points/s sustained into SQLite
TARGET_CALLS_S = 1_000_000.0  # DESIGN: "a buffered append costs under a microsecond"


def run(quick: bool = False) -> list[Figure]:
    keys, steps = 10, (20_000 if quick else 100_000)
    reps = 1 if quick else 3
    samples: dict[str, list[dict[str, Any]]] = {m: [] for m in ("fluent", "bound", "noop", "naive")}
    for rep in range(reps):
        with temp_dir("log") as tmp:
            for mode in ("fluent", "bound", "noop"):
                home = tmp / mode
                res = run_worker(
                    "log", {"home": str(home), "mode": mode, "keys": keys, "steps": steps}
                )
                if mode != "noop" and not (res["flushed"] and res["stored_ok"]):
                    raise RuntimeError(f"{mode} run did not store every point: {res}")
                samples[mode].append(res)
            naive = run_worker(
                "naive", {"path": str(tmp / "naive.db"), "keys": keys, "steps": steps}
            )
            samples["naive"].append(naive)
        print(f"    repetition {rep + 1}/{reps} done", flush=True)

    floor = median([r["calls_s"] for r in samples["noop"]])
    naive_s = median([r["rows_s"] for r in samples["naive"]])
    size = f"{keys} keys x {steps:,} steps"
    figures = []
    for mode, label in (("fluent", "shipyard.log_metric"), ("bound", "run.log_metric")):
        rs = samples[mode]
        calls = [r["calls_s"] for r in rs]
        sustained = [r["sustained_s"] for r in rs]
        flush = [r["flush_wait_ms"] for r in rs]
        figures += [
            Figure(
                NAME,
                f"{label}: calls/s in the caller",
                median(calls),
                "calls/s",
                higher_is_better=True,
                target=TARGET_CALLS_S,
                peer="empty-function loop",
                peer_value=floor,
                note=f"{1e6 / median(calls):.2f} µs/call",
                samples=calls,
            ),
            Figure(
                NAME,
                f"{label}: sustained until flushed",
                median(sustained),
                "points/s",
                higher_is_better=True,
                target=TARGET_POINTS_S,
                peer="naive executemany",
                peer_value=naive_s,
                note=f"{size}; flush wait {median(flush):.0f} ms",
                samples=sustained,
            ),
        ]
    figures.append(
        Figure(
            NAME,
            "naive row-per-point executemany (peer)",
            naive_s,
            "rows/s",
            higher_is_better=True,
            note="MLflow's metrics shape, one transaction, rows prebuilt",
            samples=[r["rows_s"] for r in samples["naive"]],
        )
    )
    figures.append(
        Figure(
            NAME,
            "empty-function loop (floor)",
            floor,
            "calls/s",
            higher_is_better=True,
            samples=[r["calls_s"] for r in samples["noop"]],
        )
    )
    return figures
