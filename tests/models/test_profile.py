"""Training profiles: what is profiled and how, the manifest entry, PSI, and cost."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.errors import InvalidArgumentError
from shipyard.models import (
    PSI_MODERATE,
    PSI_SIGNIFICANT,
    Profile,
    Signature,
    bin_counts,
    drift_status,
    feature_columns,
    infer_signature,
    output_columns,
    profile_of,
    psi,
    save_package,
)
from shipyard.models._profile import (
    MAX_PROFILE_ROWS,
    MIN_OUTPUT_ROWS,
    OUTPUT_INPUT_BYTES,
    build_profile,
)


def _profile(data: Any, predict: Any = None) -> Profile:
    return build_profile(data, infer_signature(data), source="profile_data", predict=predict)


class SmallBatchesOnly:
    """A Python-function model that refuses batches of more than 50 rows."""

    def predict(self, x: Any) -> Any:
        arr = np.asarray(x, dtype=np.float64)
        if len(arr) > 50:
            raise ValueError("batch too large")
        return arr.sum(axis=1)


# -- what is profiled --------------------------------------------------------------------


def test_numeric_feature_has_ten_quantile_bins_and_stats() -> None:
    """A continuous column gets 9 interior edges, ~10% per bin, an empty missing bucket."""
    import pandas as pd

    x = np.random.default_rng(0).normal(5.0, 2.0, 20_000)
    f = _profile(pd.DataFrame({"x": x})).feature("x")
    assert f.kind == "numeric"
    assert len(f.edges) == 9
    assert list(f.edges) == sorted(f.edges)
    assert np.allclose(f.proportions[:-1], 0.1, atol=0.002)
    assert f.proportions[-1] == 0
    assert f.count == 20_000
    assert f.stats["mean"] == pytest.approx(5.0, abs=0.05)
    assert f.stats["std"] == pytest.approx(2.0, abs=0.05)
    assert f.stats["p50"] == pytest.approx(float(np.median(x)))
    assert f.stats["min"] == x.min()
    assert f.stats["max"] == x.max()


def test_missing_values_have_their_own_bucket() -> None:
    """NaN rows land in the last bucket; the stats ignore them."""
    import pandas as pd

    x = np.arange(1000, dtype=np.float64)
    x[::4] = np.nan
    f = _profile(pd.DataFrame({"x": x})).feature("x")
    assert f.missing == 250
    assert f.proportions[-1] == pytest.approx(0.25)
    assert sum(f.proportions) == pytest.approx(1.0)
    assert f.stats["max"] == 999.0


def test_discrete_numeric_feature_keeps_one_bin_per_value() -> None:
    """Floats with three values: the deduplicated edges put each value in its own bin."""
    import pandas as pd

    x = np.repeat([0.0, 1.0, 2.5], [600, 300, 100])
    f = _profile(pd.DataFrame({"x": x})).feature("x")
    assert f.kind == "numeric"
    assert len(set(f.edges)) == len(f.edges) <= 3
    nonzero = [p for p in f.proportions if p > 0]
    assert nonzero == pytest.approx([0.6, 0.3, 0.1])
    assert bin_counts(f, x).tolist() == [round(p * 1000) for p in f.proportions]


def test_integers_with_few_values_are_categorical_many_are_numeric() -> None:
    """Up to 20 distinct integers are categories (codes, counts); more are numbers."""
    import pandas as pd

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"few": rng.integers(0, 5, 1000), "many": rng.integers(0, 1000, 1000)})
    profile = _profile(frame)
    few, many = profile.feature("few"), profile.feature("many")
    assert few.kind == "categorical"
    assert sorted(few.categories) == [0, 1, 2, 3, 4]
    assert few.proportions[-2:] == (0.0, 0.0)  # no other, no missing
    assert many.kind == "numeric"


def test_strings_keep_the_top_categories_other_and_missing() -> None:
    """30 categories: the 20 most frequent are kept, the rest is 'other', None is missing."""
    import pandas as pd

    values = [f"c{i:02d}" for i in range(30) for _ in range(30 - i)] + [None] * 35
    f = _profile(pd.DataFrame({"s": values})).feature("s")
    assert f.kind == "categorical"
    assert len(f.categories) == 20
    assert f.categories[0] == "c00"
    total = len(values)
    assert f.proportions[-1] == pytest.approx(35 / total)
    other = sum(30 - i for i in range(20, 30))
    assert f.proportions[-2] == pytest.approx(other / total)
    unseen = bin_counts(f, np.array(["zzz", None, "c00"], dtype=object))
    assert unseen[-2] == 1
    assert unseen[-1] == 1
    assert unseen[0] == 1


def test_booleans_are_categorical() -> None:
    """A bool column has the categories True and False."""
    import pandas as pd

    f = _profile(pd.DataFrame({"b": [True] * 70 + [False] * 30})).feature("b")
    assert f.kind == "categorical"
    assert f.categories == (True, False)
    assert f.proportions[:2] == pytest.approx((0.7, 0.3))


def test_tensor_columns_are_split_and_images_skipped() -> None:
    """(N, k) tensors give name[i] features; (N, 1) one feature; images are listed as skipped."""
    rng = np.random.default_rng(2)
    data = {
        "emb": rng.normal(size=(200, 3)),
        "age": rng.normal(size=(200, 1)),
        "image": rng.normal(size=(200, 3, 8, 8)).astype(np.float32),
        "wide": rng.normal(size=(200, 300)),
    }
    profile = _profile(data)
    assert profile.kind == "dict"
    assert profile.names == ["emb[0]", "emb[1]", "emb[2]", "age"]
    skipped = {s["name"]: s for s in profile.skipped}
    assert set(skipped) == {"image", "wide"}
    assert skipped["image"]["shape"] == [-1, 3, 8, 8]


def test_an_unnamed_tensor_is_called_x() -> None:
    """An (N, k) NumPy input profiles as x[0], x[1]...; a server's key for it does not matter."""
    x = np.random.default_rng(3).normal(size=(500, 2))
    profile = _profile(x)
    assert profile.names == ["x[0]", "x[1]"]
    for key in ("input", "dense_input"):
        columns = feature_columns(profile, {key: x})
        assert np.array_equal(columns["x[1]"], x[:, 1])


def test_feature_columns_names_a_request_like_the_profile() -> None:
    """Columns map one to one; tensors are split; absent inputs are left out."""
    rng = np.random.default_rng(4)
    profile = _profile({"emb": rng.normal(size=(50, 2)), "n": rng.normal(size=50)})
    request = {"emb": np.array([[1.0, 2.0]]), "n": np.array([3.0])}
    columns = feature_columns(profile, request)
    assert {k: v.tolist() for k, v in columns.items()} == {
        "emb[0]": [1.0],
        "emb[1]": [2.0],
        "n": [3.0],
    }
    assert set(feature_columns(profile, {"n": np.array([1.0])})) == {"n"}


def test_outputs_are_profiled_from_predictions() -> None:
    """The predict callback's arrays are profiled like inputs, by output name."""
    x = np.random.default_rng(5).normal(size=(1000, 2))

    def predict(batch: Any) -> dict[str, Any]:
        arr = np.asarray(batch)
        return {"output": np.where(arr[:, 0] > 0, "yes", "no").astype(object)}

    profile = _profile(x, predict)
    (out,) = profile.outputs
    assert out.name == "output"
    assert out.kind == "categorical"
    assert set(out.categories) == {"yes", "no"}
    request = {"label": np.array(["yes", "yes"], dtype=object)}
    assert output_columns(profile, request)["output"].tolist() == ["yes", "yes"]


# -- size, sampling and cost -------------------------------------------------------------


def test_round_trip_through_json() -> None:
    """to_dict -> JSON -> from_dict gives the same profile; profile_of reads a manifest."""
    import pandas as pd

    rng = np.random.default_rng(6)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=300),
            "s": rng.choice(["x", "y", None], 300),
            "i": rng.integers(0, 3, 300),
            "b": rng.random(300) > 0.5,
        }
    )
    frame.loc[3, "a"] = np.nan
    profile = _profile(frame)
    doc = json.loads(json.dumps(profile.to_dict(), allow_nan=False))
    assert Profile.from_dict(doc) == profile
    assert profile_of({"profile": doc}) == profile
    assert profile_of({"format": "shipyard.model/1"}) is None
    with pytest.raises(InvalidArgumentError, match="invalid profile"):
        profile_of({"profile": {"rows": 3}})


def test_large_data_is_sampled_deterministically() -> None:
    """At most 100,000 rows are read, the same ones every time."""
    x = np.random.default_rng(7).normal(size=(MAX_PROFILE_ROWS + 50_000, 2))
    first, second = _profile(x), _profile(x)
    assert first.rows == MAX_PROFILE_ROWS
    assert first.sampled_from == MAX_PROFILE_ROWS + 50_000
    assert first == second


def test_profiling_a_wide_frame_is_cheap() -> None:
    """100,000 x 20 floats profile well under a second (about 50 ms measured)."""
    import pandas as pd

    rng = np.random.default_rng(8)
    frame = pd.DataFrame(rng.normal(size=(100_000, 20)), columns=[f"c{i}" for i in range(20)])
    sig = infer_signature(frame)
    build_profile(frame.iloc[:100], sig, source="profile_data")  # warm-up: imports
    start = time.perf_counter()
    profile = build_profile(frame, sig, source="profile_data")
    elapsed = time.perf_counter() - start
    assert len(profile.features) == 20
    assert elapsed < 1.0, f"profiling took {elapsed:.2f}s"
    assert len(json.dumps(profile.to_dict())) < 20_000  # small enough to sit in the manifest


# -- PSI ---------------------------------------------------------------------------------


def test_psi_reading_and_thresholds() -> None:
    """The documented reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 drift."""
    assert (PSI_MODERATE, PSI_SIGNIFICANT) == (0.1, 0.25)
    assert drift_status(0.05) == "stable"
    assert drift_status(0.2) == "moderate"
    assert drift_status(0.3) == "drift"
    assert drift_status(0.3, rows=10) == "few rows"
    assert drift_status(math.nan) == "few rows"


def test_psi_grows_as_the_distribution_shifts() -> None:
    """Shifting a normal feature by 0, 0.25, 0.5, 1 std gives increasing PSI past 0.25."""
    import pandas as pd

    rng = np.random.default_rng(9)
    f = _profile(pd.DataFrame({"x": rng.normal(size=50_000)})).feature("x")
    fresh = rng.normal(size=20_000)
    scores = [psi(f.proportions, bin_counts(f, fresh + shift)) for shift in (0, 0.25, 0.5, 1)]
    assert scores == sorted(scores)
    assert scores[0] < 0.01
    assert scores[-1] > PSI_SIGNIFICANT


def test_psi_refuses_mismatched_buckets_and_is_nan_without_rows() -> None:
    """Different bucket counts are an error; no rows at all give NaN."""
    with pytest.raises(InvalidArgumentError, match="same buckets"):
        psi([0.5, 0.5], [1, 2, 3])
    assert math.isnan(psi([0.5, 0.5], [0, 0]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=1000), min_size=2, max_size=12).filter(
        lambda c: sum(c) > 0
    ),
    st.lists(st.integers(min_value=0, max_value=1000), min_size=2, max_size=12),
)
def test_psi_is_zero_for_identical_and_finite_nonnegative_otherwise(
    counts: list[int], other: list[int]
) -> None:
    """PSI(p, p) is 0; PSI is finite and >= 0 even when buckets are empty on either side."""
    expected = np.asarray(counts, dtype=np.float64) / sum(counts)
    assert psi(expected, counts) == pytest.approx(0.0, abs=1e-12)
    actual = (other + [0] * len(counts))[: len(counts)]
    if sum(actual) == 0:
        return
    score = psi(expected, actual)
    assert math.isfinite(score)
    assert score >= 0


# -- in packages -------------------------------------------------------------------------


def test_save_package_stores_the_profile_of_profile_data(tmp_path: Path, home: Path) -> None:
    """profile_data wins over the input example; the model's outputs are profiled too."""
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(10)
    frame = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    model = LinearRegression().fit(frame, frame["a"] * 2 + frame["b"])
    manifest = save_package(model, tmp_path / "pkg", input_example=frame[:5], profile_data=frame)
    profile = profile_of(manifest)
    assert profile is not None
    assert profile.source == "profile_data"
    assert profile.rows == 2000
    assert profile.names == ["a", "b"]
    (out,) = profile.outputs
    assert out.kind == "numeric"
    assert out.stats["std"] == pytest.approx(float(np.std(frame["a"] * 2 + frame["b"])), rel=1e-6)
    on_disk = json.loads((tmp_path / "pkg" / "shipyard-model.json").read_text())
    assert on_disk["profile"]["source"] == "profile_data"


def test_without_profile_data_the_input_example_is_profiled(tmp_path: Path, home: Path) -> None:
    """The example stands in, and the profile says it is a weak baseline."""
    from sklearn.linear_model import LinearRegression

    x = np.random.default_rng(11).normal(size=(20, 2))
    manifest = save_package(LinearRegression().fit(x, x[:, 0]), tmp_path / "p", input_example=x)
    profile = profile_of(manifest)
    assert profile is not None
    assert profile.source == "input_example"
    assert profile.rows == 20
    assert any("profile_data" in n for n in profile.notes)


def test_profile_data_that_does_not_match_the_signature_is_refused(
    tmp_path: Path, home: Path
) -> None:
    """Training data with a missing column fails at log time, saying what to pass."""
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 0.0]})
    model = LinearRegression().fit(frame, [1.0, 2.0, 3.0])
    with pytest.raises(InvalidArgumentError, match="cannot profile the profile data"):
        save_package(model, tmp_path / "p", input_example=frame, profile_data=frame[["a"]])


def test_a_failing_predict_on_the_sample_only_costs_the_outputs(tmp_path: Path, home: Path) -> None:
    """The inputs are still profiled; a note says why the outputs are not."""
    x = np.random.default_rng(12).normal(size=(500, 2))
    manifest = save_package(
        SmallBatchesOnly(),
        tmp_path / "p",
        python_model="test_profile:SmallBatchesOnly",
        input_example=x[:5],
        profile_data=x,
    )
    profile = profile_of(manifest)
    assert profile is not None
    assert profile.names == ["x[0]", "x[1]"]
    assert profile.outputs == ()
    assert any("batch too large" in n for n in profile.notes)


def test_a_package_without_examples_has_no_profile(tmp_path: Path, home: Path) -> None:
    """No input example and no profile data: the manifest's profile is None."""
    from sklearn.linear_model import LinearRegression

    x = np.arange(6.0).reshape(3, 2)
    manifest = save_package(
        LinearRegression().fit(x, [0.0, 1.0, 2.0]),
        tmp_path / "p",
        signature=Signature.from_dict(
            {"inputs": {"kind": "ndarray", "specs": [{"dtype": "float64", "shape": [-1, 2]}]}}
        ),
    )
    assert profile_of(manifest) is None


def test_large_rows_are_predicted_on_a_smaller_sample() -> None:
    """Image-sized inputs: outputs are profiled from about 64 MiB of input, not 20,000 rows."""
    images = np.zeros((2000, 3, 64, 64), dtype=np.float32)
    seen: list[int] = []

    def predict(batch: Any) -> dict[str, Any]:
        seen.append(len(batch))
        return {"output": np.asarray(batch).reshape(len(batch), -1).mean(axis=1)}

    profile = _profile(images, predict)
    assert profile.names == []
    assert [s["name"] for s in profile.skipped] == ["x"]
    expected = max(MIN_OUTPUT_ROWS, OUTPUT_INPUT_BYTES // (3 * 64 * 64 * 4))
    assert expected < 2000
    assert sum(seen) == expected
    assert profile.outputs[0].count == expected
