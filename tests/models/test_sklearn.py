"""The scikit-learn flavor: pipelines with their preprocessing, skops without
pickle, trusted types only, requirements from the flavor."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard
from shipyard.errors import InvalidArgumentError, UntrustedModelError


def test_pipeline_round_trip_takes_raw_input_of_any_form(
    home: Path, frame: Any, pipeline: Any
) -> None:
    """A logged pipeline predicts from a DataFrame, a dict, row dicts and a 2-D list,
    exactly as the fitted object does, preprocessing included."""
    with shipyard.start_run(experiment="rides"):
        info = shipyard.log_model(pipeline, "model", input_example=frame[:5])
    assert info.flavor == "sklearn"
    assert info.uri.endswith("/model")
    model = shipyard.load_model(info.uri)
    expected = pipeline.predict(frame)
    rows = frame.to_dict(orient="records")
    np.testing.assert_array_equal(model.predict(frame), expected)
    np.testing.assert_array_equal(model.predict(frame.to_dict(orient="list")), expected)
    np.testing.assert_array_equal(model.predict(rows), expected)
    np.testing.assert_array_equal(model.predict(frame.values.tolist()), expected)
    np.testing.assert_array_equal(model.predict(rows[0]), expected[:1])
    np.testing.assert_allclose(model.predict_proba(frame), pipeline.predict_proba(frame))


def test_bad_input_is_refused_before_the_model_sees_it(
    home: Path, frame: Any, pipeline: Any
) -> None:
    """A missing column is named at predict time, not deep inside sklearn."""
    with shipyard.start_run():
        info = shipyard.log_model(pipeline, "model", input_example=frame)
    model = shipyard.load_model(info.uri)
    with pytest.raises(InvalidArgumentError, match=r"missing column\(s\) \['zone'\]"):
        model.predict(frame.drop(columns=["zone"]))


def test_requirements_come_from_the_flavor_not_loaded_modules(
    home: Path, frame: Any, pipeline: Any
) -> None:
    """sklearn, skops, NumPy, SciPy and pandas are pinned to installed versions; torch is
    not, even when it is imported in the process."""
    import torch  # noqa: F401 - loaded on purpose: it must not leak into the requirements

    from shipyard.models._requirements import installed_version

    with shipyard.start_run():
        info = shipyard.log_model(
            pipeline, "model", input_example=frame, requirements=["rides-features>=1.2"]
        )
    reqs = set(info.requirements)
    for dist in ("scikit-learn", "skops", "numpy", "scipy", "pandas"):
        assert f"{dist}=={installed_version(dist)}" in reqs
    assert "rides-features>=1.2" in reqs
    assert not any(r.lower().startswith("torch") for r in reqs)


def test_a_model_fitted_on_arrays_takes_arrays(home: Path) -> None:
    """Without feature names the estimator gets a NumPy array, and no warning."""
    from sklearn.linear_model import LinearRegression

    x = np.arange(20, dtype=np.float64).reshape(10, 2)
    model = LinearRegression().fit(x, x[:, 0] * 3)
    with shipyard.start_run():
        info = shipyard.log_model(model, "lr", input_example=x[:4])
    loaded = shipyard.load_model(info.uri)
    assert loaded.signature is not None
    assert loaded.signature.inputs.kind == "ndarray"
    np.testing.assert_allclose(loaded.predict(x), model.predict(x))
    assert not hasattr(loaded, "predict_proba")


def test_types_outside_the_safe_list_need_trust_types(home: Path) -> None:
    """A project's own class is refused on load, naming it, until trusted explicitly."""
    from model_support import AddOne
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    model = Pipeline([("add", AddOne()), ("lr", LinearRegression())]).fit(x, x[:, 1])
    with shipyard.start_run():
        info = shipyard.log_model(model, "custom", input_example=x[:3])
    with pytest.raises(UntrustedModelError) as err:
        shipyard.load_model(info.uri)
    assert "model_support.AddOne" in str(err.value)
    assert "trust_types=['model_support.AddOne']" in str(err.value)
    loaded = shipyard.load_model(info.uri, trust_types=["model_support.AddOne"])
    np.testing.assert_allclose(loaded.predict(x), model.predict(x))


def test_safe_list_admits_library_classes_not_functions() -> None:
    """sklearn/NumPy/SciPy classes pass; a NumPy function or another module does not."""
    from shipyard.models._flavors.sklearn import is_safe_type

    assert is_safe_type("sklearn.tree._tree.Tree")
    assert is_safe_type("numpy.dtype")
    assert not is_safe_type("numpy.load")
    assert not is_safe_type("os.system")
    assert not is_safe_type("sklearn.no_such_module.Thing")


def test_package_files_hold_no_pickle(home: Path, frame: Any, pipeline: Any) -> None:
    """The saved estimator is a skops file, and examples load with allow_pickle=False."""
    from shipyard.models import save_package

    manifest = save_package(pipeline, home / "pkg", input_example=frame)
    files = sorted(p.relative_to(home / "pkg").as_posix() for p in (home / "pkg").rglob("*"))
    assert "model/model.skops" in files
    assert not any(f.endswith((".pkl", ".pickle", ".joblib")) for f in files)
    assert manifest["pickle"] is False
    with np.load(home / "pkg" / "examples" / "inputs.npz", allow_pickle=False) as data:
        assert {data[k].dtype.kind for k in data.files} <= {"f", "i", "U"}


@pytest.mark.slow  # a fresh interpreter importing scikit-learn
def test_skops_import_does_not_drag_torch_in() -> None:
    """The flavor imports skops without importing torch (a ~1 s saving)."""
    code = (
        "import sys; from shipyard.models._flavors.sklearn import import_skops; "
        "import_skops(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_log_model_of_a_small_pipeline_is_fast(home: Path, frame: Any, pipeline: Any) -> None:
    """log_model of the pipeline with a 5-row example stays well under 0.3 s once the
    flavor's libraries are imported (the median of five calls; see the report)."""
    with shipyard.start_run():
        shipyard.log_model(pipeline, "warmup", input_example=frame[:5])
        times = []
        for i in range(5):
            start = time.perf_counter()
            shipyard.log_model(pipeline, f"m{i}", input_example=frame[:5])
            times.append(time.perf_counter() - start)
    assert sorted(times)[2] < 0.3, times


def test_missing_values_in_examples_round_trip(home: Path) -> None:
    """A string column with None and a nullable-int column survive the examples file."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame(
        {
            "zone": np.array(["a", None, "b", "a"], dtype=object),
            "n": pd.array([1, None, 3, 4], dtype="Int64").astype("float64"),
        }
    )
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("z", OneHotEncoder(handle_unknown="ignore"), ["zone"]),
                        ("n", SimpleImputer(), ["n"]),
                    ]
                ),
            ),
            ("lr", LinearRegression()),
        ]
    ).fit(frame, [1.0, 2.0, 3.0, 4.0])
    with shipyard.start_run():
        info = shipyard.log_model(model, "gaps", input_example=frame)
    loaded = shipyard.load_model(info.uri)  # replays the examples, gaps included
    np.testing.assert_allclose(loaded.predict(frame), model.predict(frame))


def test_logging_does_not_import_all_of_sklearn(home: Path) -> None:
    """skops' default trust list would import every scikit-learn module (seconds on a
    first log_model); Shipyard lists only the estimators already loaded, and leaves
    sklearn's all_estimators as it found it."""
    import subprocess
    import sys

    script = """
import sys
import numpy as np
from sklearn.linear_model import Ridge
import sklearn.utils, sklearn.utils.discovery
import shipyard
before = sklearn.utils.discovery.all_estimators
with shipyard.start_run():
    info = shipyard.log_model(Ridge().fit(np.ones((4, 2)), [1, 2, 3, 4]), "m",
                              input_example=np.ones((2, 2)))
shipyard.load_model(info.uri).predict(np.ones((1, 2)))
assert sklearn.utils.discovery.all_estimators is before
assert sklearn.utils.all_estimators is before
walked = ("sklearn.semi_supervised", "sklearn.cross_decomposition", "sklearn.naive_bayes")
print("walked" if any(m in sys.modules for m in walked) else "lean")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "lean"
