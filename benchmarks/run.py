"""Shipyard's benchmarks: ``make bench`` (or ``.venv/bin/python benchmarks/run.py``).

    benchmarks/run.py                  all benchmarks (about 9 minutes, 4 of them data, 3 hpo)
    benchmarks/run.py --only search_runs --only startup
    benchmarks/run.py --only data --only dvc   Shipyard beside DVC (make bench-dvc-env)
    benchmarks/bench_train.py --device cuda    the training harness alone, on a GPU
    benchmarks/run.py --only hpo       the search benchmark (tables: benchmarks/hpo/)
    benchmarks/run.py --quick          smaller sizes, fewer repetitions (a smoke run)
    benchmarks/run.py --list

Every figure is printed with its target and, where one is measured in the same
run, a peer (a floor or a naive baseline); "Nx target" is how many times better
than the target the figure is (>= 1 meets it). Results go to
``bench-results/latest.json``. Timings are medians over repetitions; they are
never asserted by tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_data
import bench_dvc
import bench_experiment
import bench_history
import bench_hpo
import bench_logging
import bench_models
import bench_search
import bench_serve
import bench_startup
import bench_storage
import bench_train
from _common import RESULTS_DIR, Figure, environment, fmt

BENCHMARKS: dict[str, ModuleType] = {
    m.NAME: m
    for m in (
        bench_logging,
        bench_storage,
        bench_startup,
        bench_search,
        bench_hpo,
        bench_history,
        bench_data,
        bench_dvc,  # after data: its peers are data's figures from the same run
        bench_models,
        bench_serve,
        bench_train,
        bench_experiment,
    )
}


def _header(env: dict[str, object], quick: bool) -> None:
    print("Shipyard benchmarks" + ("  (--quick: reduced sizes)" if quick else ""))
    print(f"  CPU      {env['cpu']}, {env['cores']} cores, load average {env['load_avg_1m']}")
    print(f"  Python   {env['python']} ({env['implementation']}), {env['platform']}")
    print(f"  SQLite   {env['sqlite']}; NumPy {env['numpy']}; SQLAlchemy {env['sqlalchemy']}")
    print(f"  commit   {env['commit'] or 'unknown'}")
    print("  ratios: 'Nx target' = times better than the target (>= 1 meets it)")
    print()


def _summary(figures: list[Figure]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for f in figures:
            print(f.line())
        return
    table = Table(title="Summary", show_lines=False)
    for col, justify in (
        ("benchmark", "left"),
        ("figure", "left"),
        ("value", "right"),
        ("target", "right"),
        ("vs target", "right"),
        ("peer", "left"),
        ("vs peer", "right"),
        ("status", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    styles = {"ok": "green", "MISSED": "bold red", "FAILED": "bold red", "N/A": "yellow"}
    for f in figures:
        cmp = "≥ " if f.higher_is_better else "≤ "
        table.add_row(
            f.bench,
            f.name.strip(),
            fmt(f.value, f.unit) if f.value is not None else "n/a",
            cmp + fmt(f.target, f.unit) if f.target is not None else "",
            f"{f.ratio:.2f}x" if f.ratio is not None else "",
            f"{f.peer} {fmt(f.peer_value, f.unit)}" if f.peer and f.peer_value else "",
            f"{f.peer_ratio:.2f}x" if f.peer_ratio is not None else "",
            f"[{styles.get(f.status, '')}]{f.status}[/]" if f.status in styles else f.status,
        )
    Console(width=200).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, mod in BENCHMARKS.items():
            print(f"{name:<16} {(mod.__doc__ or '').strip().splitlines()[0]}")
        return 0

    env = environment()
    _header(env, args.quick)
    # Registration order, whatever the order of --only (dvc reads data's figures).
    selected = [n for n in BENCHMARKS if n in args.only] if args.only else list(BENCHMARKS)
    figures: list[Figure] = []
    crashed: list[str] = []
    started = time.time()
    for name in selected:
        mod = BENCHMARKS[name]
        print(f"[{name}] {(mod.__doc__ or '').strip().splitlines()[0]}", flush=True)
        t0 = time.perf_counter()
        if hasattr(mod, "use_figures"):  # the figures measured so far in this run
            mod.use_figures(list(figures))
        try:
            got: list[Figure] = mod.run(quick=args.quick)
        except Exception as e:
            traceback.print_exc()
            crashed.append(name)
            got = [Figure(name, "benchmark crashed", None, "", note=f"{type(e).__name__}: {e}")]
        for f in got:
            print(f.line(), flush=True)
        print(f"  ({time.perf_counter() - t0:.1f} s)\n", flush=True)
        figures += got

    _summary(figures)
    missed = [f for f in figures if f.status in ("MISSED", "FAILED")]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "latest.json"
    out.write_text(
        json.dumps(
            {
                "started": started,
                "duration_s": round(time.time() - started, 1),
                "quick": args.quick,
                "only": args.only,
                "environment": env,
                "figures": [f.to_json() for f in figures],
            },
            indent=2,
        )
        + "\n"
    )
    print(
        f"\n{len(figures)} figures, {len(missed)} missed or failed"
        + (f", crashed: {', '.join(crashed)}" if crashed else "")
        + f"; {time.time() - started:.0f} s; written to {out.relative_to(RESULTS_DIR.parent)}"
    )
    # Missing a target is a finding, not a failure of the run; a crash or a
    # failed correctness check is.
    return 1 if crashed or any(f.status == "FAILED" for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
