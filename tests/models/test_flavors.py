"""XGBoost, ONNX and Python-function flavors: round trips from raw input, and
pickle only by explicit opt-in on both sides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard
from shipyard.errors import InvalidArgumentError, NotFoundError, UntrustedModelError


@pytest.fixture
def xy() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Forty rows of four features and a binary label."""
    rng = np.random.default_rng(0)
    x = rng.random((40, 4))
    return x, (x[:, 0] + x[:, 1] > 1).astype(int)


class TestXGBoost:
    """Native UBJSON files, as a Booster or an sklearn wrapper."""

    @pytest.mark.slow  # importing xgboost and sklearn's wrappers takes seconds
    def test_classifier_wrapper_round_trip_from_a_frame(self, home: Path, xy: Any) -> None:
        """Labels and probabilities survive; the file is XGBoost's own format."""
        import xgboost as xgb

        x, y = xy
        frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
        model = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(frame, y)
        with shipyard.start_run():
            info = shipyard.log_model(model, "xgb", input_example=frame[:5])
        assert info.manifest["flavor"] == {
            "name": "xgboost",
            "config": {"file": "model.ubj", "wrapper": "XGBClassifier"},
        }
        assert any(r.startswith("xgboost==") for r in info.requirements)
        loaded = shipyard.load_model(info.uri)
        np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
        np.testing.assert_allclose(loaded.predict_proba(frame), model.predict_proba(frame))
        np.testing.assert_array_equal(
            loaded.predict(frame.to_dict(orient="records")), model.predict(frame)
        )

    def test_booster_round_trip_from_an_array(self, home: Path, xy: Any) -> None:
        """A raw Booster predicts through a DMatrix built from the array."""
        import xgboost as xgb

        x, y = xy
        booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=y), num_boost_round=3)
        with shipyard.start_run():
            info = shipyard.log_model(booster, "booster", input_example=x[:5])
        loaded = shipyard.load_model(info.uri)
        np.testing.assert_allclose(loaded.predict(x), booster.predict(xgb.DMatrix(x)))
        assert info.manifest["examples"]["tolerance"]["output"] == {"rtol": 1e-4, "atol": 1e-5}


def _linear_graph() -> Any:
    """y = x @ W + b as an ONNX graph built by hand (one float input of 3 columns)."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([[1.0], [2.0], [3.0]], np.float32), "W")
    b = numpy_helper.from_array(np.array([0.5], np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[w, b],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _two_input_graph() -> Any:
    """out = a + b over two named (N, 1) inputs, as skl2onnx pipelines have per column."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["out"])],
        "add",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 1]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


class TestOnnx:
    """Graphs run on onnxruntime; the graph declares the signature when no example does."""

    def test_model_proto_without_example_takes_the_graph_signature(self, home: Path) -> None:
        """Inputs come from the graph; float64 NumPy input is fed as float32."""
        with shipyard.start_run():
            info = shipyard.log_model(_linear_graph(), "linear")
        assert info.signature is not None
        assert info.signature.inputs.describe() == "input: float32 (any, 3)"
        loaded = shipyard.load_model(info.uri)
        out = loaded.predict(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]]))
        np.testing.assert_allclose(out, [[6.5], [3.5]])
        with pytest.raises(InvalidArgumentError, match=r"expected shape \(any, 3\)"):
            loaded.predict(np.zeros((2, 2)))

    def test_onnx_file_fed_by_dataframe_columns(self, home: Path) -> None:
        """A path to .onnx is copied; a DataFrame feeds the named (N, 1) inputs."""
        import onnx

        path = home.parent / "add.onnx"
        onnx.save_model(_two_input_graph(), str(path))
        frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [10.0, 20.0, 30.0]})
        with shipyard.start_run():
            info = shipyard.log_model(str(path), "add", input_example=frame)
        assert any(r.startswith("onnxruntime==") for r in info.requirements)
        loaded = shipyard.load_model(info.uri)
        np.testing.assert_allclose(loaded.predict(frame), [[11.0], [22.0], [33.0]])
        np.testing.assert_allclose(loaded.predict({"a": 1.0, "b": 2.0}), [[3.0]])

    def test_converted_classifier_returns_every_output(self, home: Path, xy: Any) -> None:
        """An skl2onnx classifier (zipmap off) returns labels and probabilities by name."""
        from skl2onnx import to_onnx
        from sklearn.linear_model import LogisticRegression

        x, y = xy
        model = LogisticRegression().fit(x, y)
        proto = to_onnx(
            model, x[:1].astype(np.float32), options={id(model): {"zipmap": False}}, target_opset=18
        )
        with shipyard.start_run():
            info = shipyard.log_model(proto, "clf", input_example=x[:5])
        out = shipyard.load_model(info.uri).predict(x)
        np.testing.assert_array_equal(out["label"], model.predict(x))
        np.testing.assert_allclose(out["probabilities"], model.predict_proba(x), atol=1e-5)


class TestPyfunc:
    """Anything else: by importable reference, or pickled only when both sides opt in."""

    def test_reference_with_artifacts_round_trip(self, home: Path) -> None:
        """The class is rebuilt by import and gets its artifacts as local paths."""
        factor = home.parent / "factor.txt"
        factor.write_text("3")
        with shipyard.start_run():
            info = shipyard.log_model(
                None,
                "scaler",
                python_model="model_support:Scaler",
                artifacts={"factor": factor},
                input_example=np.ones((2, 2)),
            )
        assert info.flavor == "pyfunc"
        assert info.manifest["pickle"] is False
        loaded = shipyard.load_model(info.uri)
        np.testing.assert_allclose(loaded.predict([[1.0, 2.0]]), [[3.0, 6.0]])
        assert (loaded.path / "model" / "artifacts" / "factor").read_text() == "3"

    def test_object_without_flavor_is_refused_without_pickle_opt_in(self, home: Path) -> None:
        """The error says what to pass instead: a reference, or allow_pickle=True."""
        from model_support import Scaler

        with shipyard.start_run(), pytest.raises(InvalidArgumentError) as err:
            shipyard.log_model(Scaler(), "scaler", input_example=np.ones((2, 2)))
        assert "python_model=" in str(err.value)
        assert "allow_pickle=True" in str(err.value)

    def test_pickled_package_needs_opt_in_to_load(self, home: Path) -> None:
        """Logged with allow_pickle=True, it loads only with allow_pickle=True."""
        from model_support import Scaler

        with shipyard.start_run():
            info = shipyard.log_model(
                Scaler(), "scaler", input_example=np.ones((2, 2)), allow_pickle=True
            )
        assert info.manifest["pickle"] is True
        with pytest.raises(UntrustedModelError) as err:
            shipyard.load_model(info.uri)
        assert "contains pickled Python code" in str(err.value)
        assert "allow_pickle=True" in str(err.value)
        loaded = shipyard.load_model(info.uri, allow_pickle=True)
        np.testing.assert_allclose(loaded.predict([[1.0, 1.0]]), [[2.0, 2.0]])

    def test_lambdas_cannot_be_pickled_and_say_why(self, home: Path) -> None:
        """stdlib pickle stores functions by name; a lambda is refused with the reason."""
        with shipyard.start_run(), pytest.raises(InvalidArgumentError, match="not a lambda"):
            shipyard.log_model(lambda x: x, "f", input_example=np.ones((2, 2)), allow_pickle=True)

    @pytest.mark.parametrize(
        ("ref", "error", "message"),
        [
            ("subprocess:getoutput", UntrustedModelError, "standard library"),
            ("pandas:read_pickle", UntrustedModelError, "load files or pickles"),
            ("model_support:nothing_here", NotFoundError, "cannot import"),
        ],
    )
    def test_references_are_checked_before_they_are_called(
        self, home: Path, ref: str, error: type[Exception], message: str
    ) -> None:
        """A package cannot make the loader call the standard library or a file loader."""
        from shipyard.models import save_package

        target = home.parent / "pkg"
        save_package(None, target, python_model="model_support:Scaler")
        manifest = target / "shipyard-model.json"
        manifest.write_text(manifest.read_text().replace("model_support:Scaler", ref))
        with pytest.raises(error, match=message):
            shipyard.models.load_package(target)

    def test_unknown_options_are_refused_naming_the_valid_ones(self, home: Path) -> None:
        """An option the flavor does not take is an error, not silently ignored."""
        with shipyard.start_run(), pytest.raises(InvalidArgumentError) as err:
            shipyard.log_model(None, "x", python_model="model_support:Scaler", factory="a:b")
        assert "unknown option(s) ['factory'] for the pyfunc flavor" in str(err.value)
        assert "['artifacts', 'python_model']" in str(err.value)
