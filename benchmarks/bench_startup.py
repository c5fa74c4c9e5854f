"""Start-up time of whole processes: ``import shipyard`` and ``shipyard --help``.

Each is a fresh interpreter timed from spawn to exit (median of 10 after one
warm-up run that fills the OS and bytecode caches); ``python -c pass`` is the
floor measured in the same run. Figures are raw (the floor is not subtracted).
``-X importtime`` then names the heaviest imports, and the heavy libraries
``import shipyard`` must not load are checked.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, Figure, median

NAME = "startup"
TARGET_IMPORT_MS = 100.0
TARGET_HELP_MS = 250.0
HEAVY = (
    "sqlalchemy",
    "numpy",
    "alembic",
    "rich",
    "pandas",
    "torch",
    "sklearn",
    "psycopg",
    "fsspec",
)


def _time(cmd: list[str], reps: int) -> tuple[list[float], str]:
    """Wall times (ms) of ``reps`` runs after a warm-up; "" or the failure."""
    samples = []
    for i in range(reps + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=str(ROOT))
        elapsed = (time.perf_counter() - t0) * 1000.0
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            return [], f"exit {proc.returncode}: {lines[-1] if lines else 'no output'}"
        if i:
            samples.append(elapsed)
    return samples, ""


def _heaviest(cmd: list[str], top: int = 4) -> str:
    """The top-level imports with the largest cumulative time (-X importtime)."""
    proc = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
    )
    found: list[tuple[int, str]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        name = parts[2].rstrip()
        if len(parts) < 3 or name.strip() == "imported package" or name.startswith("  "):
            continue  # header, or nested under another import
        try:
            found.append((int(parts[1]), name.strip()))
        except ValueError:
            continue
    found.sort(reverse=True)
    return ", ".join(f"{n} {us / 1000:.0f} ms" for us, n in found[:top])


def run(quick: bool = False) -> list[Figure]:
    reps = 5 if quick else 10
    py = sys.executable
    floor, _ = _time([py, "-c", "pass"], reps)
    floor_ms = median(floor)
    figures = [
        Figure(NAME, "python -c pass (floor)", floor_ms, "ms", samples=floor),
    ]

    imp, err = _time([py, "-c", "import shipyard"], reps)
    if err:
        figures.append(
            Figure(NAME, "import shipyard", None, "ms", target=TARGET_IMPORT_MS, note=err)
        )
    else:
        probe = subprocess.run(
            [py, "-c", f"import sys, shipyard; print(*sorted(set({HEAVY!r}) & set(sys.modules)))"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=str(ROOT),
        )
        heavy = probe.stdout.split()
        note = "heavy modules loaded: " + (", ".join(heavy) if heavy else "none")
        note += f"; heaviest: {_heaviest([py, '-c', 'import shipyard'])}"
        figures.append(
            Figure(
                NAME,
                "import shipyard (whole process)",
                median(imp),
                "ms",
                target=TARGET_IMPORT_MS,
                peer="python -c pass",
                peer_value=floor_ms,
                note=note,
                samples=imp,
            )
        )

    script = Path(py).parent / "shipyard"
    if not script.exists():
        figures.append(
            Figure(
                NAME, "shipyard --help", None, "ms", target=TARGET_HELP_MS, note="no console script"
            )
        )
        return figures
    hlp, err = _time([str(script), "--help"], reps)
    if err:
        figures.append(Figure(NAME, "shipyard --help", None, "ms", target=TARGET_HELP_MS, note=err))
    else:
        figures.append(
            Figure(
                NAME,
                "shipyard --help (whole process)",
                median(hlp),
                "ms",
                target=TARGET_HELP_MS,
                peer="python -c pass",
                peer_value=floor_ms,
                note=f"heaviest: {_heaviest([py, str(script), '--help'])}",
                samples=hlp,
            )
        )
    return figures
