"""The search config (``search.yaml``), validated with pydantic.

    name: rides-search                 # the tracking experiment the trials go to
    trial: rides_trial.py:RidesTrial   # a Trial class, or a Core API script (train.py)
    hparams: {batch_size: 64}          # fixed for every trial
    space:
      lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
      hidden: {type: int, low: 16, high: 256, log: true}
      optimizer: {type: categorical, choices: [adam, sgd]}
      momentum: {type: float, low: 0.5, high: 0.99, when: {optimizer: [sgd]}}
    metric: val_loss                   # or objectives: [{metric: ..., mode: ...}, ...]
    mode: min
    resource: {hparam: epochs, max: 27, min: 1}
    searcher: {name: asha, max_trials: 32, seed: 0, divisor: 3, mode: standard}
    resources: {cpus: 1, gpus: 0}      # per trial
    max_concurrent: 2
    retries: 1                         # re-runs of a crashed trial (from its checkpoint)
    time_budget: 600                   # seconds of wall clock for the whole search (optional)
    contract: {latency_p99_ms: 100, batch_size: 1, device: cpu}

Errors name the field and what was expected (``searcher.divisor: expected a
number > 1, got 1``). Unknown keys are refused, so a typo fails at once instead
of silently running a different search.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shipyard.errors import InvalidArgumentError
from shipyard.search._protocol import Objective
from shipyard.search._space import Categorical, Float, Int, Space
from shipyard.validation import read_yaml, settings_errors

__all__ = ["SearchConfig", "load_config", "parse_config"]

_SEARCHERS = ("grid", "random", "sobol", "asha", "tpe")
#: Searcher keys that are not options passed on to make_searcher.
_SEARCHER_KEYS = ("name", "max_trials", "seed")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamSpec(_Strict):
    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: int | None = None
    choices: list[Any] | None = None
    when: dict[str, list[Any]] | None = None

    @model_validator(mode="after")
    def _shape(self) -> ParamSpec:
        if self.type == "categorical":
            if self.choices is None:
                raise ValueError("a categorical parameter needs choices: [a, b, ...]")
            if self.low is not None or self.high is not None or self.log or self.step:
                raise ValueError("a categorical parameter takes choices, not low/high/log/step")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"an {self.type} parameter needs low and high")
            if self.choices is not None:
                raise ValueError(f"an {self.type} parameter takes low/high, not choices")
            if self.type == "float" and self.step is not None:
                raise ValueError("step is for int parameters")
        return self

    def build(self, name: str) -> Int | Float | Categorical:
        when = {k: tuple(v) for k, v in self.when.items()} if self.when else None
        if self.type == "categorical":
            return Categorical(name, tuple(self.choices or ()), when=when)
        low, high = self.low, self.high
        assert low is not None
        assert high is not None
        if self.type == "int":
            for bound in (low, high):
                if not float(bound).is_integer():
                    raise InvalidArgumentError(
                        f"space.{name}: an int parameter needs integer bounds, got {bound!r}"
                    )
            return Int(name, int(low), int(high), log=self.log, step=self.step or 1, when=when)
        return Float(name, float(low), float(high), log=self.log, when=when)


class ObjectiveSpec(_Strict):
    metric: str = Field(min_length=1)
    mode: Literal["min", "max"] = "min"


class ResourceSpec(_Strict):
    """The trial's length: ``hparam`` is set to ``max`` for every trial; ASHA pauses
    trials at rungs between ``min`` and ``max`` (counted in reports of the metric)."""

    hparam: str | None = "epochs"
    max: float = Field(gt=0)
    min: float = Field(default=1, gt=0)

    @model_validator(mode="after")
    def _order(self) -> ResourceSpec:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must be <= max ({self.max:g})")
        return self


class SearcherSpec(BaseModel):
    """``name``, ``max_trials`` and ``seed``; any other key is an option of the
    searcher (``divisor``, ``max_rungs``, ``mode``, ``sampler``, ``float_points``)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: Literal["grid", "random", "sobol", "asha", "tpe"] = "asha"
    max_trials: int = Field(default=16, ge=1)
    seed: int = 0

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ResourcesSpec(_Strict):
    cpus: float = Field(default=1, gt=0)
    gpus: int = Field(default=0, ge=0)


class SearchConfig(_Strict):
    name: str = Field(min_length=1)
    trial: str = Field(min_length=1)
    #: Options of ``shipyard train`` for every trial, e.g. ["--no-model"], ["--nproc", "2"].
    train_args: list[str] = Field(default_factory=list)
    hparams: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, ParamSpec]
    metric: str | None = None
    mode: Literal["min", "max"] = "min"
    objectives: list[ObjectiveSpec] | None = None
    resource: ResourceSpec | None = None
    searcher: SearcherSpec = Field(default_factory=SearcherSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    max_concurrent: int | None = Field(default=None, ge=1)
    retries: int = Field(default=1, ge=0)
    #: Wall-clock seconds for the whole experiment: then running trials are
    #: stopped (they checkpoint) and the experiment ends with what it has.
    time_budget: float | None = Field(default=None, gt=0)
    contract: dict[str, Any] | None = None
    #: Folder the trial command runs in (default: the config file's folder).
    workdir: str | None = None

    @field_validator("space")
    @classmethod
    def _space_not_empty(cls, v: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        if not v:
            raise ValueError("give at least one parameter to search")
        return v

    @model_validator(mode="after")
    def _objectives(self) -> SearchConfig:
        if self.objectives is None and self.metric is None:
            raise ValueError("give the metric to optimise: metric: val_loss (and mode: min|max)")
        if self.objectives is not None and self.metric is not None:
            raise ValueError("give metric/mode or objectives, not both")
        if self.objectives is not None and not self.objectives:
            raise ValueError("objectives: give at least one")
        if self.searcher.name == "asha" and self.resource is None:
            raise ValueError(
                "the asha searcher needs resource: {hparam: epochs, max: N} "
                "(the trial length it pauses and promotes in)"
            )
        return self

    # -- derived ------------------------------------------------------------------

    def objective_list(self) -> list[Objective]:
        if self.objectives is not None:
            return [Objective(o.metric, o.mode) for o in self.objectives]
        assert self.metric is not None
        return [Objective(self.metric, self.mode)]

    def build_space(self) -> Space:
        return Space([spec.build(name) for name, spec in self.space.items()])

    def contract_dict(self) -> dict[str, Any] | None:
        if self.contract is None:
            return None
        from shipyard.models import Contract

        try:
            return Contract.from_dict(self.contract).to_dict()
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"contract: {e}") from e


def parse_config(data: Any, *, source: str = "search config") -> SearchConfig:
    """Validate a mapping as a :class:`SearchConfig` (errors name each field)."""
    if not isinstance(data, Mapping):
        raise InvalidArgumentError(
            f"{source}: expected a mapping of settings (name, trial, space, metric, ...), "
            f"got {type(data).__name__}"
        )
    try:
        config = SearchConfig.model_validate(dict(data))
    except ValidationError as e:
        raise settings_errors(e, source) from None
    try:
        config.build_space()
    except InvalidArgumentError as e:
        raise InvalidArgumentError(f"{source}: space: {e}") from None
    config.contract_dict()
    for key in config.space:
        if key in config.hparams:
            raise InvalidArgumentError(
                f"{source}: {key!r} is both searched (space) and fixed (hparams); keep one"
            )
    if config.resource is not None and config.resource.hparam in config.space:
        raise InvalidArgumentError(
            f"{source}: resource.hparam {config.resource.hparam!r} is also in the space; "
            "the searcher sets the trial length itself"
        )
    res = config.resource
    if res is not None and not (math.isfinite(res.max) and math.isfinite(res.min)):
        raise InvalidArgumentError(f"{source}: resource: min and max must be finite")
    return config


def load_config(path: str | Path) -> SearchConfig:
    """Read and validate a YAML (or JSON) search config."""
    p = Path(path)
    config = parse_config(read_yaml(p, "search config"), source=str(p))
    if config.workdir is None:
        config = config.model_copy(update={"workdir": str(p.resolve().parent)})
    return config
