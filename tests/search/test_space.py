"""Hyperparameter spaces: validation, sampling, grids and config identity."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.search._space import Categorical, Float, Int, Space


def _space() -> Space:
    return Space(
        [
            Categorical("optimizer", ("sgd", "adam")),
            Float("lr", 1e-5, 1e-1, log=True),
            Float("momentum", 0.0, 0.99, when={"optimizer": ("sgd",)}),
            Int("layers", 1, 4),
            Int("units", 16, 512, log=True),
            Int("batch", 32, 256, step=32),
        ]
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Int("n", 3, 3), "low < high"),
        (lambda: Int("n", 1.5, 3), "low must be an integer"),
        (lambda: Int("n", True, 3), "low must be an integer"),
        (lambda: Int("n", 0, 8, log=True), "log=True needs low > 0"),
        (lambda: Int("n", 1, 8, step=0), "step must be a positive integer"),
        (lambda: Int("n", 1, 8, log=True, step=2), "log=True needs step=1"),
        (lambda: Float("x", 1.0, 0.5), "low < high"),
        (lambda: Float("x", 0.0, 1.0, log=True), "log=True needs low > 0"),
        (lambda: Float("x", float("nan"), 1.0), "finite number"),
        (lambda: Float("x", 0.0, "1"), "finite number"),
        (lambda: Categorical("c", ()), "at least one choice"),
        (lambda: Categorical("c", ([1],)), "JSON scalars"),
        (lambda: Categorical("c", ("a", "a")), "unique"),
        (lambda: Categorical("c", (1, 1.0)), "unique"),
        (lambda: Categorical("c", "ab"), "tuple of values"),
        (lambda: Categorical("c", ("a",), when={}), "`when` must map"),
        (lambda: Categorical("c", ("a",), when={"p": ()}), "non-empty tuple"),
        (lambda: Float("", 0.0, 1.0), "non-empty string"),
    ],
)
def test_bad_parameters_are_named(build: Any, message: str) -> None:
    """A malformed parameter raises InvalidArgumentError saying what was expected."""
    with pytest.raises(InvalidArgumentError, match=message) as info:
        build()
    if "non-empty string" not in message:
        assert repr(info.value).count("'") >= 2  # the parameter's name is quoted


def test_bool_and_int_choices_are_distinct() -> None:
    """True and 1 are different choices (unlike Python's ==)."""
    c = Categorical("c", (True, 1, None))
    space = Space([c])
    assert space.validate({"c": 1}) == {"c": 1}
    assert space.validate({"c": True})["c"] is True
    assert space.key({"c": True}) != space.key({"c": 1})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([Int("a", 0, 3), Int("a", 0, 5)], "'a' is declared twice"),
        ([Float("x", 0.0, 1.0, when={"opt": ("sgd",)})], "not in the space"),
        (
            [Float("x", 0.0, 1.0, when={"opt": ("sgd",)}), Categorical("opt", ("sgd", "adam"))],
            "must be declared before it",
        ),
        (
            [Categorical("opt", ("sgd", "adam")), Float("x", 0.0, 1.0, when={"opt": ("rmsprop",)})],
            "'opt' takes one of 'sgd', 'adam'",
        ),
        ([Int("n", 1, 4), Float("x", 0.0, 1.0, when={"n": (7,)})], r"takes an integer in \[1, 4\]"),
        ([], "at least one parameter"),
        (["lr"], "Int, Float and Categorical"),
    ],
)
def test_bad_spaces_are_named(params: list[Any], message: str) -> None:
    """Repeated names, unknown or later parents and impossible `when` values are rejected."""
    with pytest.raises(InvalidArgumentError, match=message):
        Space(params)


def test_space_basics() -> None:
    """A space exposes its parameters in order."""
    space = _space()
    assert space.names == ("optimizer", "lr", "momentum", "layers", "units", "batch")
    assert len(space) == 6
    assert space["lr"] == Float("lr", 1e-5, 1e-1, log=True)
    assert list(space) == list(space.params)
    assert space == _space()


def test_samples_are_in_bounds_and_typed() -> None:
    """Samples hold Python ints and floats inside the bounds, ints on their step."""
    space = _space()
    rng = np.random.default_rng(0)
    for _ in range(500):
        config = space.sample(rng)
        assert space.validate(config) == config
        assert type(config["lr"]) is float
        assert 1e-5 <= config["lr"] <= 1e-1
        assert type(config["layers"]) is int
        assert 1 <= config["layers"] <= 4
        assert config["batch"] % 32 == 0
        assert 32 <= config["batch"] <= 256
        assert config["optimizer"] in ("sgd", "adam")


def test_log_scale_is_log_uniform() -> None:
    """On a log scale about half the samples fall below the geometric midpoint."""
    space = Space([Float("lr", 1e-6, 1.0, log=True), Int("units", 1, 1024, log=True)])
    rng = np.random.default_rng(1)
    samples = [space.sample(rng) for _ in range(4000)]
    below = sum(s["lr"] < 1e-3 for s in samples) / len(samples)
    assert 0.45 < below < 0.55
    decades = [math.floor(math.log10(s["lr"])) for s in samples]
    assert {d: decades.count(d) for d in range(-6, 0)}.keys() == set(decades)
    assert min(decades.count(d) for d in range(-6, 0)) > 500  # each decade about 1/6
    units_below = sum(s["units"] <= 32 for s in samples) / len(samples)
    assert 0.4 < units_below < 0.6


def test_sampling_is_seeded() -> None:
    """The same generator state gives the same configs."""
    space = _space()
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a == b


def test_conditional_parameters_follow_their_parent() -> None:
    """A conditional parameter is present exactly when its parent takes a listed value."""
    space = _space()
    rng = np.random.default_rng(2)
    seen = set()
    for _ in range(200):
        config = space.sample(rng)
        seen.add(config["optimizer"])
        assert ("momentum" in config) == (config["optimizer"] == "sgd")
    assert seen == {"sgd", "adam"}


def test_nested_conditions_need_an_active_parent() -> None:
    """A child of an inactive parameter is inactive too."""
    space = Space(
        [
            Categorical("opt", ("sgd", "adam")),
            Categorical("nesterov", (True, False), when={"opt": ("sgd",)}),
            Float("dampening", 0.0, 0.5, when={"nesterov": (False,)}),
        ]
    )
    assert space.from_unit([0.9, 0.9, 0.5]) == {"opt": "adam"}
    assert space.from_unit([0.1, 0.1, 0.5]) == {"opt": "sgd", "nesterov": True}
    assert space.from_unit([0.1, 0.9, 0.5]) == {"opt": "sgd", "nesterov": False, "dampening": 0.25}


def test_from_unit_maps_the_cube() -> None:
    """0 maps to the low end, just under 1 to the high end; ints land on their steps."""
    space = _space()
    low = space.from_unit([0.0] * 6)
    assert low == {
        "optimizer": "sgd",
        "lr": pytest.approx(1e-5),
        "momentum": 0.0,
        "layers": 1,
        "units": 16,
        "batch": 32,
    }
    high = space.from_unit([1.0] * 6)  # clipped to just below 1
    assert high == {
        "optimizer": "adam",
        "lr": pytest.approx(0.1),
        "layers": 4,
        "units": 512,
        "batch": 256,
    }
    mid = space.from_unit([0.5] * 6)
    assert mid["lr"] == pytest.approx(10**-3)  # the middle of a log scale
    assert mid["batch"] in (128, 160)
    with pytest.raises(InvalidArgumentError, match="expected 6 coordinates"):
        space.from_unit([0.5])


def test_int_values_are_uniform() -> None:
    """Each value of a linear int gets an equal share of the unit interval."""
    space = Space([Int("k", 0, 3)])
    values = [space.from_unit([u])["k"] for u in np.linspace(0, 1, 400, endpoint=False)]
    assert [values.count(k) for k in range(4)] == [100, 100, 100, 100]


def test_grid_contents() -> None:
    """Categoricals give every choice, small ints every value, floats evenly spaced points."""
    space = Space(
        [
            Categorical("opt", ("sgd", "adam")),
            Float("lr", 1e-4, 1e-2, log=True),
            Float("dropout", 0.0, 0.5),
            Int("layers", 1, 3),
        ]
    )
    grid = space.grid(float_points=3)
    assert len(grid) == 2 * 3 * 3 * 3
    assert sorted({g["lr"] for g in grid}) == pytest.approx([1e-4, 1e-3, 1e-2])
    assert sorted({g["dropout"] for g in grid}) == pytest.approx([0.0, 0.25, 0.5])
    assert {g["layers"] for g in grid} == {1, 2, 3}
    assert len({space.key(g) for g in grid}) == len(grid)
    assert space.grid(float_points=1)[0]["dropout"] == 0.25


def test_grid_of_a_wide_int_is_evenly_spaced() -> None:
    """An int with more than 2 * float_points values gets float_points values on its step."""
    assert [g["n"] for g in Space([Int("n", 1, 10)]).grid(5)] == list(range(1, 11))
    assert [g["n"] for g in Space([Int("n", 0, 100)]).grid(5)] == [0, 25, 50, 75, 100]
    assert [g["n"] for g in Space([Int("n", 0, 100, step=10)]).grid(2)] == [0, 100]
    assert [g["n"] for g in Space([Int("n", 1, 1000, log=True)]).grid(4)] == [1, 10, 100, 1000]
    with pytest.raises(InvalidArgumentError, match="float_points"):
        Space([Int("n", 1, 10)]).grid(0)


def test_grid_does_not_multiply_inactive_branches() -> None:
    """A conditional parameter multiplies only the configs where it is active."""
    space = Space(
        [
            Categorical("opt", ("sgd", "adam")),
            Float("momentum", 0.0, 0.9, when={"opt": ("sgd",)}),
        ]
    )
    grid = space.grid(float_points=4)
    assert len(grid) == 4 + 1
    assert grid[-1] == {"opt": "adam"}


def test_key_detects_duplicates() -> None:
    """Keys ignore float noise past 12 digits, key order, int-valued floats and inactive params."""
    space = _space()
    a = {"optimizer": "adam", "lr": 0.05, "layers": 2, "units": 64, "batch": 64}
    b = {"batch": 64.0, "units": 64, "layers": 2, "lr": 0.05000000000001, "optimizer": "adam"}
    assert space.key(a) == space.key(b)
    assert space.key({**a, "momentum": 0.5}) == space.key(a)  # inactive: dropped
    assert space.key({**a, "lr": 0.0501}) != space.key(a)
    assert space.key({**a, "lr": np.float64(0.05)}) == space.key(a)
    unit = Space([Float("x", 0.0, 1.0)])
    assert unit.key({"x": 0.1}) == unit.key({"x": 0.1000000000001})
    assert unit.key({"x": -0.0}) == unit.key({"x": 0.0})


def test_validate_restricts_and_names_the_culprit() -> None:
    """validate keeps the active params and names a missing, wrong or unknown one."""
    space = _space()
    good = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "layers": 2, "units": 20, "batch": 96}
    assert space.validate(good) == good
    adam = {**good, "optimizer": "adam"}
    assert "momentum" not in space.validate(adam)
    cases = [
        ({**good, "lr": 0.5}, r"'lr': expected a number in \[1e-05, 0.1\]"),
        ({**good, "layers": 2.5}, "'layers': expected an integer"),
        ({**good, "batch": 40}, "in steps of 32"),
        ({**good, "optimizer": "rmsprop"}, "'optimizer': expected one of 'sgd', 'adam'"),
        ({k: v for k, v in good.items() if k != "momentum"}, "'momentum' is missing"),
        ({**good, "depth": 3}, "unknown parameter 'depth'"),
        ({**good, "lr": float("nan")}, "'lr'"),
        ({**good, "layers": True}, "'layers'"),
    ]
    for config, message in cases:
        with pytest.raises(InvalidArgumentError, match=message):
            space.validate(config)
    with pytest.raises(InvalidArgumentError, match="mapping"):
        space.validate([1, 2])  # type: ignore[arg-type]


def test_params_are_hashable_and_frozen() -> None:
    """Parameters are frozen values; `when` does not take part in hashing."""
    p = Float("m", 0.0, 1.0, when={"opt": ("sgd",)})
    assert hash(p) == hash(Float("m", 0.0, 1.0, when={"opt": ("sgd",)}))
    with pytest.raises(AttributeError):
        p.low = 0.5  # type: ignore[misc]


def test_importing_the_space_is_light() -> None:
    """Importing the space module loads neither SciPy nor Optuna."""
    code = (
        "import sys, shipyard.search._space, shipyard.search._searchers;"
        "print(sorted(m for m in ('scipy', 'optuna') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
