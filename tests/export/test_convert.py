"""ONNX conversion of native models, and running the result on raw inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from shipyard.errors import InvalidArgumentError, ShipyardError
from shipyard.export._convert import ExportError, InputSpec, OnnxModel, run_onnx, to_onnx
from shipyard.export._parity import check_parity, native_predictor


def frame(rows: int = 60, seed: int = 0) -> Any:
    """A DataFrame with a float, an int and a text column."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.uniform(18, 80, rows),
            "visits": rng.integers(0, 20, rows),
            "city": rng.choice(["paris", "lyon", "nice"], rows),
        }
    )


def pipeline() -> tuple[Any, Any]:
    """A ColumnTransformer (scaler + one-hot) + LogisticRegression pipeline, and its data."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df = frame()
    y = ((df["age"] > 45) ^ (df["city"] == "nice")).astype(int)
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "visits"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(df, y), df


def test_pipeline_keeps_preprocessing_in_the_graph_with_one_input_per_column() -> None:
    """Each column becomes a typed [None, 1] input; label and probabilities come out as tensors."""
    model, df = pipeline()
    onnx_model = to_onnx(model, df.head(5), flavor="sklearn")
    assert onnx_model.inputs == (
        InputSpec("age", "float32", (None, 1)),
        InputSpec("visits", "int64", (None, 1)),
        InputSpec("city", "string", (None, 1)),
    )
    assert dict(onnx_model.outputs) == {"predict": "label", "predict_proba": "probabilities"}
    assert onnx_model.converter.startswith("skl2onnx ")
    assert onnx_model.opset >= 9
    out = run_onnx(onnx_model, df)
    assert isinstance(out["predict_proba"], np.ndarray)  # no ZipMap list of dicts
    assert out["predict_proba"].shape == (len(df), 2)
    np.testing.assert_array_equal(out["predict"], model.predict(df))
    np.testing.assert_allclose(out["predict_proba"], model.predict_proba(df), atol=1e-5)


def test_pipeline_parity_passes_on_dataframe_examples() -> None:
    """Golden DataFrames plus a generated batch agree within the default tolerance."""
    model, df = pipeline()
    onnx_model = to_onnx(model, df.head(5), flavor="sklearn")
    examples = [df.head(5), df.iloc[5:20]]
    report = check_parity(
        native_predictor(model, flavor="sklearn"), onnx_model.runner().run, examples
    )
    assert report.passed, report.summary()
    assert report.rows == 5 + 15 + 256
    assert report.outputs == ("predict", "predict_proba")
    assert report.max_abs is not None
    assert report.max_abs < 1e-5


def test_pipeline_converts_and_passes_parity_from_a_dict_example() -> None:
    """A dict of column arrays works as the example and as the input."""
    model, df = pipeline()
    example = {c: df[c].to_numpy()[:8] for c in df.columns}
    onnx_model = to_onnx(model, example, flavor="sklearn")
    assert [i.name for i in onnx_model.inputs] == ["age", "visits", "city"]
    report = check_parity(
        native_predictor(model, flavor="sklearn"), onnx_model.runner().run, [example]
    )
    assert report.passed, report.summary()


def test_the_bytes_alone_describe_the_model() -> None:
    """Input specs, roles and flattening travel in the ONNX metadata."""
    model, df = pipeline()
    onnx_model = to_onnx(model, df.head(3), flavor="sklearn")
    again = OnnxModel.from_bytes(onnx_model.data)
    assert again == onnx_model
    first, second = run_onnx(onnx_model, df), run_onnx(onnx_model.data, df)
    np.testing.assert_array_equal(first["predict_proba"], second["predict_proba"])


def test_runner_is_created_once() -> None:
    """Repeated runs reuse one onnxruntime session."""
    model, df = pipeline()
    onnx_model = to_onnx(model, df.head(3), flavor="sklearn")
    assert onnx_model.runner() is onnx_model.runner()
    assert onnx_model.runner().session is onnx_model.runner().session


def test_matrix_model_fit_on_a_frame_takes_one_stacked_input() -> None:
    """A model on numeric columns gets a single input listing its columns in order
    (onnxruntime runs one matrix input several times faster than a Concat of one
    input per column)."""
    from sklearn.linear_model import LinearRegression

    df = frame()[["age", "visits"]]
    model = LinearRegression().fit(df, df["age"] * 2 + df["visits"])
    onnx_model = to_onnx(model, df.head(4), flavor="sklearn")
    assert onnx_model.inputs == (InputSpec("input", "float32", (None, 2), ("age", "visits")),)
    assert not onnx_model.notes  # numbers only, no ColumnTransformer: stacked first
    out = run_onnx(onnx_model, df[["visits", "age"]])  # column order comes from the spec
    assert out["predict"].shape == (len(df),)
    np.testing.assert_allclose(out["predict"], model.predict(df), rtol=1e-5)


@pytest.mark.parametrize("estimator", ["random_forest", "gradient_boosting"])
def test_tree_regressor_on_an_array_reports_its_float32_error(estimator: str) -> None:
    """Tree ensembles run in float32: the report states the error and stays consistent."""
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6)) * [1, 10, 100, 1000, 0.1, 0.01]
    y = x @ rng.normal(size=6) + rng.normal(size=300)
    model = (
        RandomForestRegressor(n_estimators=15, random_state=0)
        if estimator == "random_forest"
        else GradientBoostingRegressor(n_estimators=40, random_state=0)
    ).fit(x, y)
    onnx_model = to_onnx(model, x[:5], flavor="sklearn")
    assert onnx_model.inputs == (InputSpec("input", "float32", (None, 6)),)
    assert onnx_model.flatten == frozenset({"predict"})
    native, runner = native_predictor(model, flavor="sklearn"), onnx_model.runner()
    report = check_parity(native, runner.run, [x[:50]], generated_rows=500)
    print(report.summary())
    assert report.passed == (report.over_tolerance == 0 and report.label_mismatches == 0)
    assert report.max_abs is not None
    assert report.max_abs < 1e-2 * float(np.abs(y).max())
    # the counts match an independent recount
    from shipyard.export._parity import generated_batch

    over = 0
    for batch in (x[:50], generated_batch(x[:50], 500)):
        a, b = runner.run(batch)["predict"], model.predict(batch)
        over += int(np.count_nonzero(~np.isclose(a, b, rtol=1e-4, atol=1e-5)))
    assert report.over_tolerance == over
    json.dumps(report.to_dict(), allow_nan=False)


@pytest.mark.slow
def test_torch_mlp_exports_with_a_dynamic_batch() -> None:
    """A Linear-ReLU-Linear MLP runs at batch 1 and 37 and matches torch."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    x = np.random.default_rng(0).normal(size=(3, 4))
    onnx_model = to_onnx(net, x, flavor="torch")
    assert onnx_model.converter.endswith("(dynamo)")
    assert onnx_model.inputs == (InputSpec("input", "float32", (None, 4)),)
    assert dict(onnx_model.outputs) == {"predict": "output"}
    assert net.training  # the caller's mode is restored
    for rows in (1, 37):
        assert run_onnx(onnx_model, np.ones((rows, 4)))["predict"].shape == (rows, 2)
    report = check_parity(native_predictor(net, flavor="torch"), onnx_model.runner().run, [x])
    assert report.passed, report.summary()


class Branchy:
    """Factory for a torch module whose forward branches on the data."""

    @staticmethod
    def make() -> Any:
        import torch

        class Module(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lin = torch.nn.Linear(3, 1)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                if x.sum() > 0:
                    return self.lin(x)  # type: ignore[no-any-return]
                return -self.lin(x)  # type: ignore[no-any-return]

        return Module()


@pytest.mark.slow
def test_torch_falls_back_to_tracing_and_says_so() -> None:
    """When torch.export cannot capture the model, TorchScript tracing is used and noted."""
    onnx_model = to_onnx(Branchy.make(), np.ones((2, 3)), flavor="torch")
    assert onnx_model.converter.endswith("(torchscript)")
    assert "dynamo exporter failed" in onnx_model.notes[0]
    assert "GuardOnDataDependentSymNode" in onnx_model.notes[0]
    assert run_onnx(onnx_model, np.ones((5, 3)))["predict"].shape == (5, 1)


def test_torch_flavor_needs_a_module() -> None:
    """A non-module under flavor 'torch' is an invalid argument naming the type."""
    with pytest.raises(InvalidArgumentError, match=r"torch\.nn\.Module.*builtins\.dict"):
        to_onnx({}, np.ones((2, 2)), flavor="torch")


def test_xgboost_regressor_fit_on_a_named_frame() -> None:
    """Feature names other than f0, f1, ... still convert; parity passes."""
    import xgboost

    df = frame()[["age", "visits"]]
    model = xgboost.XGBRegressor(n_estimators=20, max_depth=3).fit(
        df, df["age"] / df["visits"].clip(1)
    )
    onnx_model = to_onnx(model, df.head(5), flavor="xgboost")
    assert onnx_model.converter.startswith("onnxmltools ")
    assert onnx_model.opset > 0
    assert onnx_model.inputs[0].columns == ("age", "visits")
    assert model.get_booster().feature_names == ["age", "visits"]  # the original is untouched
    report = check_parity(native_predictor(model, flavor="xgboost"), onnx_model.runner().run, [df])
    assert report.passed, report.summary()


def test_xgboost_classifier_gives_labels_and_probabilities() -> None:
    """An XGBClassifier maps label and probabilities to predict and predict_proba."""
    import xgboost

    x = np.random.default_rng(2).normal(size=(200, 4))
    y = np.digitize(x[:, 0] + x[:, 1], [-0.5, 0.5])
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(x, y)
    onnx_model = to_onnx(model, x[:5], flavor="xgboost")
    assert set(onnx_model.outputs) == {"predict", "predict_proba"}
    report = check_parity(native_predictor(model, flavor="xgboost"), onnx_model.runner().run, [x])
    assert report.passed, report.summary()
    assert report.label_count == 200 + 256


def test_xgboost_regression_booster_converts_and_classification_booster_is_refused() -> None:
    """A raw Booster converts for reg:* objectives; others raise ExportError saying what to do."""
    import xgboost

    x = np.random.default_rng(3).normal(size=(100, 3))
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(x, label=x[:, 0]), 5)
    onnx_model = to_onnx(booster, x[:4], flavor="xgboost")
    report = check_parity(native_predictor(booster, flavor="xgboost"), onnx_model.runner().run, [x])
    assert report.passed, report.summary()
    logistic = xgboost.train(
        {"objective": "binary:logistic"}, xgboost.DMatrix(x, label=x[:, 0] > 0), 3
    )
    with pytest.raises(ExportError, match=r"binary:logistic.*XGBClassifier instead"):
        to_onnx(logistic, x[:4], flavor="xgboost")


def test_unsupported_estimator_raises_export_error_naming_it() -> None:
    """A model skl2onnx has no converter for fails with the type, the cause and a way out."""
    from sklearn.base import BaseEstimator, RegressorMixin

    class Custom(RegressorMixin, BaseEstimator):  # type: ignore[misc]
        def fit(self, x: Any, y: Any) -> Custom:
            self.mean_ = float(np.mean(y))
            return self

        def predict(self, x: Any) -> Any:
            return np.full(len(x), self.mean_)

    x = np.ones((4, 2))
    with pytest.raises(ExportError) as info:
        to_onnx(Custom().fit(x, [1, 2, 3, 4]), x, flavor="sklearn")
    message = str(info.value)
    assert "Custom" in message
    assert "skl2onnx 1." in message
    assert "MissingShapeCalculator" in message  # the converter's own words
    assert "native format" in message
    assert isinstance(info.value, ShipyardError)
    assert info.value.__cause__ is not None


def test_bad_flavor_and_opset_are_invalid_arguments() -> None:
    """Unknown flavors and impossible opsets are refused before any conversion."""
    with pytest.raises(InvalidArgumentError, match="flavor: expected one of"):
        to_onnx(object(), np.ones((1, 1)), flavor="keras")
    with pytest.raises(InvalidArgumentError, match="opset: expected an integer"):
        to_onnx(object(), np.ones((1, 1)), flavor="sklearn", opset=3)


def test_run_onnx_casts_int_float_and_string_columns() -> None:
    """float64, int32, Python lists and NumPy/pandas strings are fed as the graph expects."""
    import pandas as pd

    model, df = pipeline()
    onnx_model = to_onnx(model, df.head(5), flavor="sklearn")
    expected = model.predict_proba(df.head(3))
    feeds: list[Any] = [
        {
            "age": df["age"].to_numpy()[:3],
            "visits": df["visits"].to_numpy()[:3].astype(np.int32),
            "city": df["city"].to_numpy().astype("U")[:3],
        },
        {
            "age": df["age"].tolist()[:3],
            "visits": df["visits"].astype(float).tolist()[:3],  # integral floats are fine
            "city": df["city"].tolist()[:3],
        },
        pd.DataFrame({c: df[c].head(3) for c in ["city", "visits", "age"]}).astype(
            {"city": "category"}
        ),
        df.head(3).to_numpy(dtype=object),  # one column per input, in order
    ]
    for feed in feeds:
        np.testing.assert_allclose(run_onnx(onnx_model, feed)["predict_proba"], expected, atol=1e-5)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("visits", [1.5, 2.0], "expected integers, got floats with fractions"),
        ("city", ["paris", None], "missing values, which ONNX string inputs cannot hold"),
        ("city", [1, 2], "expected text"),
        ("age", ["a", "b"], "expected numbers"),
    ],
)
def test_run_onnx_refuses_casts_that_change_meaning(
    column: str, values: list[Any], message: str
) -> None:
    """Fractions into ints, missing text and text/number swaps raise InvalidArgumentError."""
    model, df = pipeline()
    onnx_model = to_onnx(model, df.head(5), flavor="sklearn")
    feed: dict[str, Any] = {"age": [30.0, 40.0], "visits": [1, 2], "city": ["paris", "lyon"]}
    feed[column] = np.array(values, dtype=object)
    with pytest.raises(InvalidArgumentError, match=message):
        run_onnx(onnx_model, feed)


def test_run_onnx_names_missing_columns() -> None:
    """A missing column is named along with the expected ones."""
    model, df = pipeline()
    onnx_model = to_onnx(model, df.head(5), flavor="sklearn")
    with pytest.raises(InvalidArgumentError, match=r"missing column\(s\) \['city'\]"):
        run_onnx(onnx_model, df[["age", "visits"]])


def test_importing_the_export_core_loads_no_heavy_library() -> None:
    """torch, sklearn, onnx, onnxruntime, skl2onnx, xgboost and pandas load only when used."""
    heavy = ["torch", "sklearn", "onnx", "onnxruntime", "skl2onnx", "xgboost", "pandas"]
    code = (
        "import sys, shipyard.export._convert, shipyard.export._parity\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
