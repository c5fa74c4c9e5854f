"""The PyTorch flavor: safetensors weights + factory for fine-tuning, and a
code-free torch.export program, loaded only after its archive is checked."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from shipyard.errors import InvalidArgumentError, NotFoundError, UntrustedModelError
from shipyard.models import load_package, save_package

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # torch.export takes a second or two per process

from torch_support import Branchy, TinyNet, TwoInputs  # noqa: E402 - after importorskip


@pytest.fixture
def x() -> np.ndarray[Any, Any]:
    return np.random.default_rng(0).random((6, 4)).astype(np.float32)


def _reference(module: Any, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    with torch.no_grad():
        return module.eval()(torch.from_numpy(x)).numpy()


def test_factory_package_loads_a_fine_tunable_module(home: Path, x: Any) -> None:
    """Weights go to safetensors; load rebuilds the module from factory + hparams."""
    net = TinyNet(4, 8)
    with shipyard.start_run():
        info = shipyard.log_model(net, "net", input_example=x, factory=TinyNet, hparams={"h": 8})
    assert net.training is True  # logging (export, golden outputs) left the mode as it was
    config = info.manifest["flavor"]["config"]
    assert config["factory"] == "torch_support:TinyNet"
    assert (config["weights"], config["program"]) == ("weights.safetensors", "program.pt2")
    assert {r.split("==")[0] for r in info.requirements} >= {"torch", "safetensors", "numpy"}
    loaded = shipyard.load_model(info.uri)
    assert isinstance(loaded.raw, TinyNet)
    for name, tensor in net.state_dict().items():
        assert torch.equal(loaded.raw.state_dict()[name], tensor)
    np.testing.assert_allclose(loaded.predict(x), _reference(net, x), rtol=1e-6)
    np.testing.assert_allclose(loaded.predict(x.astype(np.float64).tolist()), _reference(net, x))


def test_code_free_program_needs_no_factory(home: Path, x: Any) -> None:
    """Without a factory the exported program is the package, with a dynamic batch."""
    net = TinyNet()
    with shipyard.start_run():
        info = shipyard.log_model(net, "net", input_example=x)
    assert info.manifest["flavor"]["config"]["factory"] is None
    loaded = shipyard.load_model(info.uri)
    assert not isinstance(loaded.raw, TinyNet)
    np.testing.assert_allclose(loaded.predict(x[:1]), _reference(net, x[:1]), rtol=1e-5)
    np.testing.assert_allclose(loaded.predict(x), _reference(net, x), rtol=1e-5)


def test_unimportable_factory_falls_back_to_the_program(
    home: Path, x: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """code_free=None uses the program when the factory is gone; False insists on it."""
    net = TinyNet()
    save_package(net, home / "pkg", input_example=x, factory="torch_support:build_tiny")
    manifest = home / "pkg" / "shipyard-model.json"
    manifest.write_text(manifest.read_text().replace("torch_support:", "gone_project.models:"))
    with caplog.at_level(logging.WARNING, logger="shipyard.models"):
        loaded = load_package(home / "pkg")
    assert "cannot be imported here" in caplog.text
    np.testing.assert_allclose(loaded.predict(x), _reference(net, x), rtol=1e-5)
    with pytest.raises(NotFoundError, match="cannot import factory"):
        load_package(home / "pkg", code_free=False)


def test_named_inputs_become_keyword_arguments(home: Path) -> None:
    """A dict example feeds forward(left=..., right=...)."""
    net = TwoInputs()
    example = {"left": np.ones((3, 3), np.float32), "right": np.ones((3, 2), np.float32)}
    with shipyard.start_run():
        info = shipyard.log_model(net, "two", input_example=example, factory=TwoInputs)
    with torch.no_grad():
        want = net(torch.ones(3, 3), torch.ones(3, 2)).numpy()
    for code_free in (False, True):
        loaded = shipyard.load_model(info.uri, code_free=code_free)
        np.testing.assert_allclose(loaded.predict(example), want, rtol=1e-5)


def test_without_factory_or_export_nothing_can_be_loaded(home: Path, x: Any) -> None:
    """A module that does not export and has no factory is refused, saying what to pass."""
    with shipyard.start_run(), pytest.raises(InvalidArgumentError) as err:
        shipyard.log_model(Branchy(), "branchy", input_example=x)
    assert "factory='pkg.module:build'" in str(err.value)
    assert "export:" in str(err.value)
    with shipyard.start_run():
        info = shipyard.log_model(Branchy(), "branchy", input_example=x, factory=Branchy)
    assert info.manifest["flavor"]["config"]["export_error"]
    with pytest.raises(InvalidArgumentError, match="has no exported program"):
        shipyard.load_model(info.uri, code_free=True)


def test_factory_in_main_is_refused_with_the_reason(home: Path, x: Any) -> None:
    """A factory another process cannot import is refused at log time."""
    local = type("Local", (TinyNet,), {"__module__": "__main__"})
    with shipyard.start_run(), pytest.raises(InvalidArgumentError, match="__main__"):
        shipyard.log_model(TinyNet(), "net", input_example=x, factory=local)


def _rewrite_program(path: Path, edit: Any) -> None:
    """Apply ``edit`` to the program JSON inside a .pt2 archive."""
    with zipfile.ZipFile(path) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    for name, data in entries.items():
        if "/models/" in name and name.endswith(".json"):
            entries[name] = json.dumps(edit(json.loads(data))).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda doc: json.loads(
                json.dumps(doc).replace("Symbol(", "__import__('os').system('true') or Symbol(")
            ),
            "shape expression",
        ),
        (
            lambda doc: json.loads(
                json.dumps(doc).replace("torch.ops.aten.relu.default", "torch.load")
            ),
            "'torch.load'",
        ),
        (lambda doc: {**doc, "guards_code": ["__import__('os').system('true')"]}, "guard code"),
    ],
)
def test_crafted_programs_are_refused_before_torch_reads_them(
    home: Path, x: Any, edit: Any, message: str
) -> None:
    """Code smuggled into the program (eval'd expressions, arbitrary call targets,
    guard source) is found by the archive check; torch.export.load never runs."""
    save_package(TinyNet(), home / "pkg", input_example=x)
    _rewrite_program(home / "pkg" / "model" / "program.pt2", edit)
    with pytest.raises(UntrustedModelError, match=message):
        load_package(home / "pkg", verify_examples=False)


def test_pickled_payloads_in_the_program_are_refused() -> None:
    """Weights flagged use_pickle and legacy .pt files are reported by the check."""
    from shipyard.models._flavors._pt2 import check_archive

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("p/archive_format", "pt2")
        config = {"config": {"w": {"path_name": "weight_0", "use_pickle": True}}}
        archive.writestr("p/data/weights/model_weights_config.json", json.dumps(config))
        archive.writestr("p/data/weights/model.pt", b"")
        archive.writestr("p/data/aotinductor/model/x.so", b"")
    path = Path(__import__("tempfile").mkdtemp()) / "p.pt2"
    path.write_bytes(buffer.getvalue())
    problems = check_archive(path)
    assert any("stored with pickle" in p for p in problems)
    assert any("legacy payload" in p for p in problems)
    assert any("aotinductor" in p for p in problems)


def test_cuda_when_unavailable_is_an_error_not_a_fallback(home: Path, x: Any) -> None:
    """device='cuda' without CUDA fails loudly."""
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with shipyard.start_run():
        info = shipyard.log_model(TinyNet(), "net", input_example=x, factory=TinyNet)
    with pytest.raises(InvalidArgumentError, match="no CUDA device"):
        shipyard.load_model(info.uri, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_load_replays_the_golden_examples(home: Path, x: Any) -> None:
    """On a GPU both the factory path and the program path load and reproduce."""
    with shipyard.start_run():
        info = shipyard.log_model(TinyNet(), "net", input_example=x, factory=TinyNet)
    for code_free in (False, True):
        loaded = shipyard.load_model(info.uri, device="cuda", code_free=code_free)
        assert loaded.predict(x).shape == (6, 1)
