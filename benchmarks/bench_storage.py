"""Bytes per stored metric point on SQLite.

1,000,000 points (10 keys x 100,000 steps of a noisy decaying loss) logged
through ``run.log_metric``, flushed, the run ended; then the WAL is
checkpointed (``PRAGMA wal_checkpoint(TRUNCATE)``), the file VACUUMed, and its
size divided by the number of points (the empty schema's pages included).
Twice: with ``time.time()`` taken at each call (a tight loop: times barely
move), and with explicit timestamps ~50 ms apart with jitter (a real training
loop's clock). Per-table bytes come from SQLite's ``dbstat`` table.

Peer: the same points as one row each in MLflow's metrics table shape.
"""

from __future__ import annotations

from typing import Any

from _common import Figure, run_worker, temp_dir

NAME = "storage"
TARGET_BYTES = 16.0


def _tables(res: dict[str, Any], points: int, top: int = 3) -> str:
    tables = res.get("tables") or {}
    if not tables:
        return "dbstat not available"
    shown = [f"{n} {b / points:.2f}" for n, b in list(tables.items())[:top]]
    rest = sum(list(tables.values())[top:])
    return "per table B/point: " + ", ".join(shown) + f", rest {rest / points:.2f}"


def run(quick: bool = False) -> list[Figure]:
    keys, steps = 10, (20_000 if quick else 100_000)
    points = keys * steps
    figures = []
    with temp_dir("storage") as tmp:
        naive = run_worker(
            "naive", {"path": str(tmp / "naive.db"), "keys": keys, "steps": steps, "compact": True}
        )
        naive_bpp = naive["db_bytes"] / naive["points"]
        for ts, label in (
            ("now", "time.time() at each call"),
            ("spaced", "timestamps ~50 ms apart"),
        ):
            res = run_worker(
                "log",
                {
                    "home": str(tmp / ts),
                    "mode": "bound",
                    "keys": keys,
                    "steps": steps,
                    "timestamps": ts,
                    "compact": True,
                },
            )
            if not (res["flushed"] and res["stored_ok"]):
                raise RuntimeError(f"the run did not store every point: {res}")
            figures.append(
                Figure(
                    NAME,
                    f"bytes/point, {label}",
                    res["db_bytes"] / points,
                    "B/point",
                    target=TARGET_BYTES,
                    peer="naive row-per-point",
                    peer_value=naive_bpp,
                    note=f"file {res['db_bytes'] / 1e6:.2f} MB; " + _tables(res, points),
                )
            )
    figures.append(
        Figure(
            NAME,
            "naive row-per-point (peer)",
            naive_bpp,
            "B/point",
            note=f"file {naive['db_bytes'] / 1e6:.1f} MB; " + _tables(naive, points),
        )
    )
    return figures
