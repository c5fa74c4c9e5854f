"""Shared pieces of the benchmarks: figures, timing, subprocess workers, printing.

A :class:`Figure` is one measured number. It is compared with a target (the
issue's figure) and, where one is measured in the same run, with a peer (a
floor such as ``python -c pass`` or a naive baseline). The ratio is always
"how many times better than the target": >= 1 meets it, whichever way the
unit points (points/s: higher is better; ms and bytes: lower is better).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS_DIR = ROOT / "bench-results"
CACHE_DIR = RESULTS_DIR / "cache"
WORKERS = BENCH_DIR / "_workers.py"


@dataclass
class Figure:
    """One measured figure of a benchmark."""

    bench: str
    name: str
    value: float | None  # None: not available
    unit: str
    higher_is_better: bool = False
    target: float | None = None
    peer: str | None = None  # what the peer is ("naive executemany", "python -c pass")
    peer_value: float | None = None
    note: str = ""
    samples: list[float] = field(default_factory=list)
    error: str = ""  # a correctness check failed: the figure does not count

    @property
    def ratio(self) -> float | None:
        """Times better than the target (>= 1 meets it)."""
        return _better(self.value, self.target, self.higher_is_better)

    @property
    def peer_ratio(self) -> float | None:
        """Times better than the peer (>= 1: better than the peer)."""
        return _better(self.value, self.peer_value, self.higher_is_better)

    @property
    def status(self) -> str:
        if self.error:
            return "FAILED"
        if self.value is None:
            return "N/A"
        if self.target is None:
            return "info"
        return "ok" if (self.ratio or 0.0) >= 1.0 else "MISSED"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(ratio=self.ratio, peer_ratio=self.peer_ratio, status=self.status)
        return out

    def line(self) -> str:
        """One printed line: name, value, target, ratio (and the peer)."""
        if self.value is None:
            return f"  {self.name:<46} not available{'  (' + self.note + ')' if self.note else ''}"
        cmp = "≥" if self.higher_is_better else "≤"
        parts = [f"  {self.name:<46} {fmt(self.value, self.unit):>16}"]
        if self.target is not None:
            r = self.ratio or 0.0
            verdict = "" if r >= 1.0 else " — MISSED"
            parts.append(f"target {cmp} {fmt(self.target, self.unit)}: {r:.2f}x target{verdict}")
        if self.peer_value is not None:
            parts.append(
                f"vs {self.peer} {fmt(self.peer_value, self.unit)}: {self.peer_ratio or 0.0:.2f}x"
            )
        if self.note:
            parts.append(self.note)
        if self.error:
            parts.append(f"FAILED: {self.error}")
        return "  |  ".join(parts)


def _better(value: float | None, ref: float | None, higher: bool) -> float | None:
    if value is None or ref is None or value <= 0 or ref <= 0:
        return None
    return value / ref if higher else ref / value


def fmt(value: float, unit: str) -> str:
    if unit in ("points/s", "calls/s", "rows/s", "req/s"):
        if value >= 1e6:
            return f"{value / 1e6:.2f} M {unit}"
        if value >= 1e3:
            return f"{value / 1e3:.1f} k {unit}"
        return f"{value:.0f} {unit}"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 1 else f"{value:.1f} ms"
    if unit == "µs":
        return f"{value:.3f} µs"
    if unit == "B/point":
        return f"{value:.2f} B/point"
    if unit == "MB":
        return f"{value:.2f} MB"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:g} {unit}"


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def time_call(fn: Callable[[], object], reps: int, warmup: int = 1) -> list[float]:
    """Wall times (ms) of ``reps`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


class WorkerError(RuntimeError):
    pass


def fresh_env(home: Path) -> dict[str, str]:
    """The environment of a measured interpreter: no SHIPYARD_* settings but its own
    home, and bytecode caching on (see :func:`run_worker`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["SHIPYARD_HOME"] = str(home)
    return env


def run_worker(name: str, args: dict[str, Any], timeout: float = 180.0) -> dict[str, Any]:
    """Run ``_workers.py NAME ARGS`` in a fresh interpreter; its last stdout line
    is a JSON object."""
    env = dict(os.environ)
    env.pop("SHIPYARD_TRACKING_URI", None)
    env.pop("SHIPYARD_BLOB_URI", None)
    # any non-empty value (even "0") stops .pyc caching: workers would compile
    # shipyard from source at every start, which no user's machine does
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        proc = subprocess.run(
            [sys.executable, str(WORKERS), name, json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=str(ROOT),
        )
    except subprocess.TimeoutExpired:
        raise WorkerError(f"worker {name} took more than {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise WorkerError(f"worker {name} failed (exit {proc.returncode}): " + " | ".join(tail))
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise WorkerError(f"worker {name} printed nothing")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"shipyard-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sqlite_sizes(path: Path) -> dict[str, int]:
    """Bytes per table/index from SQLite's ``dbstat`` table ({} if unavailable)."""
    import sqlite3

    conn = sqlite3.connect(str(path))
    try:
        rows = conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
    return {str(n): int(s) for n, s in rows}


def compact_sqlite(path: Path) -> int:
    """Checkpoint the WAL into the file and VACUUM; the file's size in bytes."""
    import sqlite3

    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path.stat().st_size


def environment() -> dict[str, Any]:
    import sqlite3

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for mod in ("numpy", "sqlalchemy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            versions[mod] = "missing"
    commit = ""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=str(ROOT),
        )
        commit = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu": cpu or "unknown",
        "cores": os.cpu_count(),
        "load_avg_1m": round(load[0], 2),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "commit": commit,
        **versions,
    }
