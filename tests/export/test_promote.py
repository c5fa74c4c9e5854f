"""Export of registered versions and promotion through the production gates, end to end:
real sklearn pipelines logged with shipyard.log_model, a SQLite store, onnxruntime."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError
from shipyard.export import ExportError, GateFailedError, export_version, promote
from shipyard.registry import RegistryClient

CALLS = 20  # timed predict calls per latency gate: enough to test the gate, quick

Cli = Callable[..., "subprocess.CompletedProcess[str]"]  # the shipyard_cli fixture


def _rides(n: int = 300, seed: int = 0) -> tuple[Any, Any]:
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "distance": rng.gamma(2.0, 3.0, n),
            "minutes": rng.uniform(5, 60, n),
            "period": rng.choice(["rush", "off-peak"], n),
        }
    )
    price = 2 + 1.2 * frame.distance + 0.3 * frame.minutes + 2.0 * (frame.period == "rush")
    return frame, price + rng.normal(0, 1, n)


def _pipeline(frame: Any, price: Any, alpha: float = 1.0) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = ColumnTransformer(
        [
            ("num", StandardScaler(), ["distance", "minutes"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["period"]),
        ]
    )
    return Pipeline([("features", features), ("model", Ridge(alpha=alpha))]).fit(frame, price)


def _version(rmse: float, contract: dict[str, Any], *, name: str = "rides") -> int:
    """Log a fitted pipeline in a run with val_rmse=rmse and register it; its version."""
    frame, price = _rides()
    with shipyard.start_run(experiment="pricing"):
        shipyard.log_metric("val_rmse", rmse)
        info = shipyard.log_model(
            _pipeline(frame, price), "model", input_example=frame[:5], contract=contract
        )
    return shipyard.register_model(info.uri, name).version


# Budgets far above what a loaded CI machine needs, so only the tests about the latency
# gate can fail it (timings are never asserted).
ONNX = {"latency_p99_ms": 5000, "format": "onnx", "min_metrics": {"val_rmse": {"max": 3.0}}}
NATIVE = {"latency_p99_ms": 5000, "min_metrics": {"val_rmse": {"max": 3.0}}}


@pytest.mark.slow
def test_export_attaches_a_parity_checked_onnx_package(home: Path) -> None:
    """The export is its own package (ONNX flavor) that predicts what the original does."""
    v = _version(1.0, ONNX)
    result = export_version(f"models:/rides/{v}")
    assert result.parity.passed
    assert result.parity.rows > 5
    client = RegistryClient()
    mv = client.resolve(f"rides/{v}")
    [export] = client.store.list_model_exports(mv.model_id, v)
    assert export.package_digest == result.package_digest
    assert export.report["passed"] is True
    assert "skl2onnx" in export.report["converter"]
    frame, _ = _rides(20, seed=3)
    native = shipyard.load_model(f"models:/rides/{v}").predict(frame)
    exported = shipyard.models.load_package(export.package_digest)
    assert exported.flavor == "onnx"
    np.testing.assert_allclose(exported.predict(frame), native, rtol=1e-4, atol=1e-4)
    with pytest.raises(InvalidArgumentError, match="cannot export to 'tflite'"):
        export_version(f"models:/rides/{v}", "tflite")


@pytest.mark.slow
def test_numeric_frame_model_exports_one_stacked_input(home: Path) -> None:
    """A pipeline on numeric columns only is exported with one matrix input; the
    package still takes the table (any column order, a dict, a column matrix)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from shipyard.models import ColumnMatrix

    frame, price = _rides()
    numeric = frame[["distance", "minutes"]]
    model = make_pipeline(StandardScaler(), LinearRegression()).fit(numeric, price)
    with shipyard.start_run():
        info = shipyard.log_model(model, "model", input_example=numeric[:5])
    v = shipyard.register_model(info.uri, "numeric").version
    exported = shipyard.models.load_package(export_version(f"models:/numeric/{v}").package_digest)
    [graph_input] = exported.manifest["flavor"]["config"]["inputs"]
    assert graph_input["columns"] == ["distance", "minutes"]
    want = model.predict(numeric[:4])
    for given in (
        numeric[:4],
        numeric[["minutes", "distance"]][:4],
        {"minutes": numeric.minutes[:4].to_numpy(), "distance": numeric.distance[:4].to_numpy()},
    ):
        np.testing.assert_allclose(exported.predict(given), want, rtol=1e-4)
    matrix = ColumnMatrix(numeric[["minutes", "distance"]][:4].to_numpy(), ["minutes", "distance"])
    arrays = shipyard.models.enforce_arrays(exported.signature.inputs, matrix)
    np.testing.assert_allclose(exported.predict_arrays(arrays)["output"], want, rtol=1e-4)


@pytest.mark.slow
def test_parity_over_tolerance_fails_and_attaches_nothing(home: Path) -> None:
    """A float32 graph cannot meet a 1e-12 tolerance: the export fails, naming the worst value."""
    v = _version(1.0, {**ONNX, "parity_rtol": 1e-12, "parity_atol": 1e-12})
    with pytest.raises(ExportError, match=r"does not match the original.*worst"):
        export_version(f"models:/rides/{v}")
    client = RegistryClient()
    mv = client.resolve(f"rides/{v}")
    assert client.store.list_model_exports(mv.model_id, v) == []
    with pytest.raises(GateFailedError, match="parity") as refused:
        promote("rides", v, calls=CALLS)
    gates = {g.name: g.passed for g in refused.value.report.gates}
    assert gates == {"signature": True, "parity": False, "latency": False, "metrics": True}


@pytest.mark.slow
def test_promotion_runs_every_gate_then_moves_the_alias(home: Path) -> None:
    """All gates pass: the alias moves, and the audit log keeps the gate report."""
    v = _version(1.0, ONNX)
    result = promote("rides", v, "production", calls=CALLS, reason="first release")
    gates = {g.name: g for g in result.report.gates}
    assert [g.passed for g in gates.values()] == [True, True, True, True]
    assert gates["latency"].data["calls"] == CALLS
    assert "onnx export on onnxruntime" in gates["latency"].detail  # exported on the way
    client = RegistryClient()
    assert client.resolve("rides@production").version == v
    [event] = client.events("rides")
    assert (event.outcome, event.to_version, event.reason) == ("moved", v, "first release")
    assert event.report["passed"] is True
    assert len(event.report["gates"]) == 4


@pytest.mark.slow
def test_failing_gates_refuse_and_force_needs_a_reason(home: Path) -> None:
    """A blown latency budget and a metric regression refuse; --force with a reason moves it."""
    good = _version(1.0, NATIVE)
    promote("rides", good, calls=CALLS)
    worse = _version(2.0, {**NATIVE, "latency_p99_ms": 1e-6})
    with pytest.raises(GateFailedError) as refused:
        promote("rides", worse, calls=CALLS)
    failed = {g.name: g.detail for g in refused.value.report.failed}
    assert set(failed) == {"latency", "metrics"}
    assert "budget" in failed["latency"]
    assert f"worse than 1 of version {good}" in failed["metrics"]
    assert "--force" in str(refused.value)
    client = RegistryClient()
    assert client.resolve("rides@production").version == good
    with pytest.raises(InvalidArgumentError, match="reason"):
        promote("rides", worse, force=True, calls=CALLS)
    forced = promote("rides", worse, force=True, reason="hotfix, budget waived", calls=CALLS)
    assert forced.event.outcome == "forced"
    assert client.resolve("rides@production").version == worse
    log = [(e.outcome, e.from_version, e.to_version, e.reason) for e in client.events("rides")]
    assert log == [
        ("moved", None, good, ""),
        ("refused", good, worse, ""),
        ("forced", good, worse, "hotfix, budget waived"),
    ]


@pytest.mark.slow
def test_version_without_signature_or_examples_is_refused(home: Path) -> None:
    """No input example: no signature, nothing to time: the gates say so."""
    frame, price = _rides()
    with shipyard.start_run(experiment="pricing"):
        info = shipyard.log_model(_pipeline(frame, price), "model", contract=NATIVE)
    v = shipyard.register_model(info.uri, "bare").version
    with pytest.raises(GateFailedError) as refused:
        promote("bare", v, calls=CALLS)
    failed = {g.name: g.detail for g in refused.value.report.failed}
    assert "no input signature" in failed["signature"]
    assert "input_example" in failed["latency"]
    with pytest.raises(NotFoundError):
        promote("bare", v + 1, calls=CALLS)


def _promote_in_process(home: str, version: int, start: Any, out: Any) -> None:
    os.environ["SHIPYARD_HOME"] = home
    start.wait()
    try:
        promote("rides", version, calls=CALLS, actor=f"proc-{version}")
        out.put((version, "won"))
    except ConflictError as e:
        out.put((version, f"lost: {e}"))
    except Exception as e:  # pragma: no cover - reported by the assertion
        out.put((version, f"error: {e!r}"))


@pytest.mark.slow
def test_two_promotions_at_once_one_wins(home: Path) -> None:
    """Two processes promote different versions to one alias at once: one wins, the
    other gets a conflict, the audit log shows both attempts, no update is lost."""
    first = _version(1.0, NATIVE)
    promote("rides", first, calls=CALLS)
    a, b = _version(0.9, NATIVE), _version(0.8, NATIVE)
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_promote_in_process, args=(str(home), v, start, out)) for v in (a, b)
    ]
    for p in procs:
        p.start()
    start.set()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    outcomes = sorted(r.split(":")[0] for r in results.values())
    # Gates run in parallel; the compare-and-set serializes the moves. Either both saw
    # version `first` and one lost, or one finished before the other looked (then the
    # later one also passes, gating against the new holder, and wins after it).
    assert outcomes in (["lost", "won"], ["won", "won"]), results
    client = RegistryClient()
    log = client.events("rides", "production")[1:]
    assert sorted(e.outcome for e in log) == sorted(
        "moved" if r == "won" else "conflict" for r in outcomes
    )
    holder = client.resolve("rides@production").version
    moves = [e for e in log if e.outcome == "moved"]
    assert moves[-1].to_version == holder
    assert moves[0].from_version == first
    if outcomes == ["lost", "won"]:
        conflict = next(e for e in log if e.outcome == "conflict")
        assert conflict.from_version == holder  # it saw the winner's move, not a stale one


@pytest.mark.slow
def test_promote_and_export_commands(home: Path, shipyard_cli: Cli) -> None:
    """The CLI prints the gate table, refuses with exit 1, and exports with a parity line."""
    v = _version(1.0, ONNX)
    cli = shipyard_cli
    exported = cli("models", "export", f"rides/{v}")
    assert exported.returncode == 0, exported.stderr
    assert "parity ok on" in exported.stdout
    assert "skl2onnx" in exported.stdout
    promoted = cli("models", "promote", "rides", str(v), "--calls", str(CALLS))
    assert promoted.returncode == 0, promoted.stderr
    assert "promoted: rides@production -> version" in promoted.stdout
    for gate in ("signature", "parity", "latency", "metrics"):
        assert gate in promoted.stdout
    worse = _version(5.0, ONNX)
    refused = cli("models", "promote", "rides", str(worse), "--calls", str(CALLS), "--json")
    assert refused.returncode == 1
    assert "refused" in refused.stderr
    report = json.loads(refused.stdout)
    assert report["passed"] is False
    assert [g["name"] for g in report["gates"] if g["passed"] is False] == ["metrics"]
    shown = json.loads(cli("models", "show", "rides", "--json").stdout)
    assert [e["outcome"] for e in shown["events"]] == ["moved", "refused"]


@pytest.mark.slow
def test_a_registered_model_contract_overrides_the_logged_one(
    home: Path, shipyard_cli: Cli
) -> None:
    """`models contract` sets terms the gates apply over each version's own; bad terms are
    refused by name; gated_aliases makes another alias promotion-only."""
    v = _version(1.0, NATIVE)
    cli = shipyard_cli
    bad = cli("models", "contract", "rides", "--set", "latency_p99=5")
    assert bad.returncode == 1
    assert "unknown key" in bad.stderr
    tight = cli("models", "contract", "rides", "--set", "min_metrics={val_rmse: {max: 0.5}}")
    assert tight.returncode == 0, tight.stderr
    assert json.loads(cli("models", "contract", "rides", "--json").stdout) == {
        "min_metrics": {"val_rmse": {"max": 0.5}}
    }
    with pytest.raises(GateFailedError, match=r"val_rmse = 1 \(needs <= 0.5\)"):
        promote("rides", v, calls=CALLS)
    gated = cli("models", "contract", "rides", "--clear", "--set", "gated_aliases=[staging]")
    assert gated.returncode == 0, gated.stderr
    refused = cli("models", "alias", "rides", "staging", str(v))
    assert refused.returncode == 1
    assert "gated" in refused.stderr
    promote("rides", v, "staging", calls=CALLS)
    assert RegistryClient().resolve("rides@staging").version == v


@pytest.mark.slow
def test_torch_and_xgboost_versions_export_and_promote(home: Path) -> None:
    """A torch module (dynamo exporter) and an XGBoost regressor (onnxmltools) go through
    export with parity and all four gates, like the sklearn pipeline."""
    import torch
    import xgboost
    from export_support import build_mlp

    contract = {"latency_p99_ms": 5000, "format": "onnx", "min_metrics": {"val_loss": {"max": 1}}}
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
    features = np.random.default_rng(1).normal(size=(200, 5))
    booster = xgboost.XGBRegressor(n_estimators=10, max_depth=3).fit(
        features, features[:, 0] * 2 + features[:, 1]
    )
    cases = [
        ("mlp", build_mlp(32).eval(), x, {"factory": "export_support:build_mlp",
                                          "hparams": {"hidden": 32}}),
        ("xgb", booster, features[:10].astype(np.float32), {}),
    ]  # fmt: skip
    for name, model, example, options in cases:
        with shipyard.start_run(experiment="pricing"):
            shipyard.log_metric("val_loss", 0.1)
            info = shipyard.log_model(
                model, "model", input_example=example, contract=contract, **options
            )
        v = shipyard.register_model(info.uri, name).version
        result = promote(name, v, calls=CALLS)
        assert [g.passed for g in result.report.gates] == [True, True, True, True], name
        [export] = RegistryClient().store.list_model_exports(
            RegistryClient().resolve(f"{name}/{v}").model_id, v
        )
        assert export.report["passed"] is True
        exported = shipyard.models.load_package(export.package_digest)
        np.testing.assert_allclose(
            np.asarray(exported.predict(example)).reshape(-1),
            np.asarray(shipyard.load_model(f"models:/{name}/{v}").predict(example)).reshape(-1),
            rtol=1e-4,
            atol=1e-4,
        )
