"""Checkpoint state files: JSON plus safetensors, no pickle, types kept."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from shipyard.errors import InvalidArgumentError, StoreError
from shipyard.train._codec import read_state, write_state


def test_round_trip_keeps_types(tmp_path: Path) -> None:
    """Tensors, arrays, bytes, tuples, int-keyed dicts and odd floats come back as saved."""
    state = {
        "model": {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3, dtype=torch.bfloat16)},
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 0.1}]},
        "rng": (3, tuple(range(5)), None),
        "np": np.arange(4, dtype=np.int64),
        "scalar": np.float32(1.5),
        "raw": b"\x00\x01booster",
        "floats": [math.inf, -math.inf],
        "$odd": {"$t": "not a reference"},
        "flag": True,
    }
    names = write_state(state, tmp_path)
    assert "tensors.safetensors" in names
    assert "arrays.safetensors" in names
    back = read_state(tmp_path)
    assert torch.equal(back["model"]["w"], state["model"]["w"])
    assert back["model"]["b"].dtype == torch.bfloat16
    assert list(back["optimizer"]["state"]) == [0]
    assert torch.equal(back["optimizer"]["state"][0]["step"], torch.tensor(3.0))
    assert back["rng"] == (3, (0, 1, 2, 3, 4), None)
    assert np.array_equal(back["np"], state["np"])
    assert back["np"].dtype == np.int64
    assert back["scalar"] == 1.5
    assert back["raw"] == b"\x00\x01booster"
    assert back["floats"] == [math.inf, -math.inf]
    assert back["$odd"] == {"$t": "not a reference"}
    assert back["flag"] is True


def test_nan_survives(tmp_path: Path) -> None:
    """NaN, which JSON cannot hold, is stored and read back as NaN."""
    write_state({"best": math.nan}, tmp_path)
    assert math.isnan(read_state(tmp_path)["best"])


def test_state_files_hold_no_pickle(tmp_path: Path) -> None:
    """The structure is plain JSON; no file starts with a pickle opcode."""
    write_state({"w": torch.ones(2), "n": 3}, tmp_path)
    json.loads((tmp_path / "state.json").read_text())
    for f in tmp_path.iterdir():
        assert not f.read_bytes().startswith(b"\x80")


@pytest.mark.parametrize(
    ("state", "where"),
    [
        ({"model": {"fn": lambda x: x}}, "state.model.fn"),
        ({"items": [1, object()]}, r"state.items\[1\]"),
        ({"a": np.array([object()], dtype=object)}, "object arrays"),
    ],
)
def test_unstorable_values_are_named(tmp_path: Path, state: dict, where: str) -> None:
    """A value that would need pickle is refused with its path in the state."""
    with pytest.raises(InvalidArgumentError, match=where):
        write_state(state, tmp_path)


def test_state_must_be_a_mapping(tmp_path: Path) -> None:
    """A list as the whole state is refused with what is expected."""
    with pytest.raises(InvalidArgumentError, match="must be a mapping"):
        write_state([1, 2], tmp_path)  # type: ignore[arg-type]


def test_missing_tensor_file_is_corrupt(tmp_path: Path) -> None:
    """A state whose tensor file is gone is reported corrupt, not half-loaded."""
    write_state({"w": torch.ones(2)}, tmp_path)
    (tmp_path / "tensors.safetensors").unlink()
    with pytest.raises(StoreError, match="missing"):
        read_state(tmp_path)
