"""``search_runs`` over 100,000 runs of one experiment, with a filter and an order.

The store is filled directly through the SQL store's tables
(``shipyard/store/_sql/_schema.py``) with SQLAlchemy Core ``executemany`` in one
transaction: per run 3 typed params, 1 tag and 2 metric summaries. The file is
cached under ``bench-results/cache/`` keyed by the schema, the migration head
and this generator's version, and copied to a temp folder for each run (the
sanity check below writes to it).

Sanity check through the public store API: four runs made with ``create_run``
and ``log_batch`` (three must come first, one must be filtered out), and the
whole page must equal the expected ids computed with NumPy.

Timed: ``store.search_runs([exp], FILTER, ["metrics.val_rmse"], max_results=100)``,
median of 5 after one warm-up. Diagnostics: the id query alone and the loading
of the 100 runs (internal functions; left out if they change).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

from _common import CACHE_DIR, Figure, median, temp_dir, time_call

NAME = "search_runs"
TARGET_MS = 100.0
FILTER = "metrics.val_rmse < 3 and params.alpha >= 0.05"
ORDER = ["metrics.val_rmse"]
DATA_VERSION = "1"
SEED = 42
WAIT_FOR_SEARCH_S = float(os.environ.get("SHIPYARD_BENCH_WAIT_SEARCH_S", "0"))


def _data(n: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(SEED)
    raw = rng.bytes(16 * n)
    ids = [raw[i * 16 : (i + 1) * 16].hex() for i in range(n)]
    return {
        "ids": ids,
        "alpha": np.round(rng.uniform(0.0, 0.1, n), 4),
        "layers": rng.choice([2, 4, 8, 16], n),
        "optimizer": rng.choice(["adam", "sgd", "adamw"], n),
        "val_rmse": rng.uniform(1.0, 5.0, n),
        "train_loss": rng.uniform(0.1, 2.0, n),
    }


def _cache_key(n: int) -> str:
    from shipyard.store._sql import _engine, _schema

    h = hashlib.sha256()
    h.update(Path(_schema.__file__).read_bytes())
    h.update(_engine.HEAD_REVISION.encode())
    h.update(f"{DATA_VERSION}:{n}:{SEED}".encode())
    return h.hexdigest()[:16]


def _param(rid: str, key: str, vtype: str, text: str, num: float | None) -> dict[str, Any]:
    return {"run_id": rid, "key": key, "value_type": vtype, "value_text": text, "value_num": num}


def _populate(path: Path, n: int) -> None:
    import sqlalchemy as sa

    from shipyard.store import open_store
    from shipyard.store._sql import _schema as t

    store = open_store(f"sqlite:///{path}")  # creates the schema through the migrations
    project = store.create_project("bench")
    exp = store.create_experiment(project.id, "search-bench")
    d = _data(n)
    t0 = 1.7e9
    runs, params, tags, summaries = [], [], [], []
    for i, rid in enumerate(d["ids"]):
        start = t0 + i * 10.0
        runs.append(
            {
                "id": rid,
                "experiment_id": exp.id,
                "name": f"trial-{i}",
                "status": "FINISHED",
                "start_time": start,
                "end_time": start + 9.0,
                "user": "bench",
                "lifecycle": "active",
                "parent_run_id": None,
                "code": "{}",
                "environment": "{}",
                "process": None,
                "heartbeat_time": None,
            }
        )
        alpha = float(d["alpha"][i])
        layers = int(d["layers"][i])
        params += [
            _param(rid, "alpha", "float", repr(alpha), alpha),
            _param(rid, "layers", "int", str(layers), float(layers)),
            _param(rid, "optimizer", "str", str(d["optimizer"][i]), None),
        ]
        tags.append({"run_id": rid, "key": "source", "value": "bench"})
        for key in ("val_rmse", "train_loss"):
            v = float(d[key][i])
            summaries.append(
                {
                    "run_id": rid,
                    "key": key,
                    "last": v,
                    "last_step": 99,
                    "last_time": start + 9.0,
                    "min": v,
                    "max": v * 3,
                    "count": 100,
                }
            )
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(t.runs.insert(), runs)
        conn.execute(t.params.insert(), params)
        conn.execute(t.tags.insert(), tags)
        conn.execute(t.metric_summaries.insert(), summaries)
    engine.dispose()
    store.close()


def _database(n: int, tmp: Path) -> tuple[Path, float | None]:
    """A copy of the populated database in ``tmp``; seconds spent populating
    (None when it came from the cache)."""
    from _common import compact_sqlite

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cached = CACHE_DIR / f"search-{n}-{_cache_key(n)}.db"
    took = None
    if not cached.exists():
        for old in CACHE_DIR.glob(f"search-{n}-*.db"):
            old.unlink(missing_ok=True)
        t0 = time.perf_counter()
        building = tmp / "building.db"
        _populate(building, n)
        compact_sqlite(building)
        took = time.perf_counter() - t0
        partial = cached.with_suffix(".partial")
        shutil.copyfile(building, partial)
        partial.replace(cached)
    db = tmp / "search.db"
    shutil.copyfile(cached, db)
    return db, took


def _search_available() -> str:
    """Empty when the SQL search can be imported, else why not."""
    try:
        import shipyard.store._sql._query  # noqa: F401
    except ImportError as e:
        return f"{type(e).__name__}: {e}"
    return ""


def _wait_for_search() -> str:
    """Poll once a minute (up to SHIPYARD_BENCH_WAIT_SEARCH_S) while the search is
    being written; empty when it imports."""
    import importlib
    import sys

    deadline = time.monotonic() + WAIT_FOR_SEARCH_S
    while True:
        why = _search_available()
        if not why or time.monotonic() >= deadline:
            return why
        print(f"    search not available yet ({why}); retrying in 60 s", flush=True)
        time.sleep(60)
        for mod in [m for m in sys.modules if m.startswith("shipyard.store._sql._")]:
            if mod.endswith(("_query", "_search", "_filter")):
                del sys.modules[mod]
        importlib.invalidate_caches()


def _sanity(store: Any, exp_id: str, data: dict[str, Any]) -> list[str]:
    """Log 4 runs through the public API; the ids the page must hold, in order."""
    import numpy as np

    from shipyard.store import series

    now = time.time()
    made = []
    for rmse, alpha in ((0.5, 0.09), (0.6, 0.05), (0.7, 0.07), (0.1, 0.01)):
        run = store.create_run(exp_id, name=f"api-{rmse}")
        store.log_batch(
            run.id,
            params={"alpha": alpha, "layers": 4, "optimizer": "adam"},
            metrics=[series("val_rmse", [0, 1], [rmse + 1.0, rmse], [now, now])],
        )
        made.append(run.id)
    ids = np.array(data["ids"])
    ok = (data["val_rmse"] < 3) & (data["alpha"] >= 0.05)
    order = np.argsort(data["val_rmse"][ok], kind="stable")
    return made[:3] + ids[ok][order][:97].tolist()


def run(quick: bool = False) -> list[Figure]:
    n = 20_000 if quick else 100_000
    why = _wait_for_search()
    if why:
        return [Figure(NAME, f"search_runs, {n:,} runs", None, "ms", target=TARGET_MS, note=why)]

    from shipyard.store import open_store

    figures = []
    with temp_dir("search") as tmp:
        db, took = _database(n, tmp)
        built = f"populated in {took:.1f} s" if took is not None else "database from cache"
        print(f"    {built}", flush=True)
        store = open_store(f"sqlite:///{db}")
        try:
            exp = store.get_experiment_by_name(
                store.get_project_by_name("bench").id, "search-bench"
            )
            expected = _sanity(store, exp.id, _data(n))

            def query() -> Any:
                return store.search_runs([exp.id], FILTER, ORDER, max_results=100)

            page = query()
            got = [r.id for r in page.items]
            if got != expected:
                first = next(
                    (i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), None
                )
                raise RuntimeError(
                    f"search_runs returned the wrong page: {len(got)} runs, first difference at "
                    f"position {first} (expected {len(expected)} runs)"
                )
            samples = time_call(query, reps=5, warmup=1)
            figures.append(
                Figure(
                    NAME,
                    f"search_runs, {n:,} runs, filter+order, 100",
                    median(samples),
                    "ms",
                    target=TARGET_MS,
                    note=f"page verified; {built}",
                    samples=samples,
                )
            )
            figures += _diagnostics(store, exp.id)
        finally:
            store.close()
    return figures


def _diagnostics(store: Any, exp_id: str) -> list[Figure]:
    """Split the time: the id query, then loading 100 full runs (internal APIs)."""
    try:
        from shipyard.store._sql._engine import read
        from shipyard.store._sql._query import search

        engine = store._engine
        holder: dict[str, list[str]] = {}

        def ids_only() -> None:
            with read(engine) as conn:
                holder["ids"] = search(conn, [exp_id], FILTER, ORDER, 100, None, False)[0]

        ids_ms = time_call(ids_only, reps=5, warmup=1)

        def load() -> None:
            with read(engine) as conn:
                store._load_runs(conn, holder["ids"])

        load_ms = time_call(load, reps=5, warmup=1)
    except Exception as e:  # internals moved: the public figure above still stands
        return [Figure(NAME, "  id query / run loading split", None, "ms", note=repr(e)[:120])]
    return [
        Figure(
            NAME, "  of which: id query (filter+order+limit)", median(ids_ms), "ms", samples=ids_ms
        ),
        Figure(NAME, "  of which: loading the 100 runs", median(load_ms), "ms", samples=load_ms),
    ]
