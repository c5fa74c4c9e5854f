"""The inference server as a real process on 127.0.0.1: both protocols, signature
checks, errors, a client nobody here wrote (tritonclient), several models, the
native flavor, and the not-ready state when golden examples do not replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_support import (
    Server,
    log_matrix,
    log_numeric,
    log_rides,
    log_times,
    metric,
    rides_frame,
    scrape,
    serving,
)

pytestmark = [pytest.mark.slow]
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def served_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A home with ``rides`` (DataFrame pipeline) and ``matrix`` (ndarray model), each
    exported to ONNX and aliased ``staging``; the environment a server needs."""
    home = tmp_path_factory.mktemp("serve") / "home"
    with pytest.MonkeyPatch.context() as mp:
        from shipyard.tracking import _fluent

        mp.setenv("SHIPYARD_HOME", str(home))
        mp.delenv("SHIPYARD_TRACKING_URI", raising=False)
        mp.delenv("SHIPYARD_BLOB_URI", raising=False)
        _fluent.set_tracking_uri(None)
        import shipyard.registry

        log_rides("rides")
        log_matrix("matrix")
        log_times("times")
        log_numeric("numeric")
        client = shipyard.registry.client()
        for name in ("rides", "matrix", "times", "numeric"):
            client.set_alias(name, "staging", 1)
        _fluent.set_tracking_uri(None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_HOME=str(home), PYTHONPATH=str(HERE))
    return env


@pytest.fixture(scope="module")
def server(
    served_home: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("config") / "serve.yaml"
    config.write_text(
        json.dumps(
            {
                "max_body_bytes": 8192,
                "models": [
                    {"uri": "models:/rides@staging"},
                    {"uri": "models:/matrix@staging"},
                    {"uri": "models:/numeric@staging"},
                    {"uri": "models:/rides/1", "name": "rides-native", "native": True},
                ],
            }
        )
    )
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with serving(["--config", str(config)], served_home, log) as s:
        yield s


def native_predict(uri: str, frame: Any, served_home: dict[str, str]) -> np.ndarray[Any, Any]:
    """The native model's predictions, in this process, on the served home."""
    import shipyard

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHIPYARD_HOME", served_home["SHIPYARD_HOME"])
        return np.asarray(shipyard.load_model(uri).predict(frame))


def expected_rides(frame: Any, served_home: dict[str, str]) -> np.ndarray[Any, Any]:
    return native_predict("models:/rides/1", frame, served_home)


def v2_columns(frame: Any) -> list[dict[str, Any]]:
    kinds = {"f": "FP64", "i": "INT64", "O": "BYTES"}
    return [
        {
            "name": c,
            "shape": [len(frame)],
            "datatype": kinds[frame[c].dtype.kind],
            "data": frame[c].tolist(),
        }
        for c in frame.columns
    ]


class TestProtocols:
    def test_health_and_metadata(self, server: Server) -> None:
        assert server.request("GET", "/v2/health/live")[0] == 200
        assert server.request("GET", "/v2/health/ready")[0] == 200
        status, doc, _ = server.request("GET", "/v2")
        assert status == 200
        assert "binary_tensor_data" in doc["extensions"]
        status, meta, _ = server.request("GET", "/v2/models/rides")
        assert status == 200
        assert meta["versions"] == ["1"]
        assert meta["platform"] == "onnxruntime_onnx"  # the ONNX export by default
        assert {(i["name"], i["datatype"]) for i in meta["inputs"]} == {
            ("distance", "FP64"),
            ("passengers", "INT64"),
            ("zone", "BYTES"),
        }
        assert server.request("GET", "/v2/models/rides/ready")[0] == 200
        assert server.request("GET", "/v2/models/rides/versions/1/ready")[0] == 200
        assert server.request("GET", "/v2/models/rides/versions/7/ready")[0] == 503
        status, native, _ = server.request("GET", "/v2/models/rides-native")
        assert native["platform"] == "shipyard_sklearn"
        assert server.request("GET", "/ping")[0] == 200

    def test_invocations_formats_agree_with_in_process_predict(
        self, server: Server, served_home: dict[str, str]
    ) -> None:
        frame = rides_frame(7, seed=5)
        want = expected_rides(frame, served_home)
        records = frame.to_dict(orient="records")
        bodies = [
            {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}},
            {"dataframe_records": records},
            {"instances": records},
            {"inputs": {c: frame[c].tolist() for c in frame.columns}},
        ]
        for model, rtol in (("rides", 1e-5), ("rides-native", 1e-12)):
            for body in bodies:
                status, doc, _ = server.request("POST", f"/models/{model}/invocations", body)
                assert status == 200, (model, body, doc)
                np.testing.assert_allclose(doc["predictions"], want, rtol=rtol)

    def test_v2_infer_agrees_and_echoes_the_id(
        self, server: Server, served_home: dict[str, str]
    ) -> None:
        frame = rides_frame(5, seed=6)
        body = {"id": "req-42", "inputs": v2_columns(frame)}
        status, doc, _ = server.request("POST", "/v2/models/rides/versions/1/infer", body)
        assert status == 200, doc
        assert doc["id"] == "req-42"
        assert doc["model_name"] == "rides"
        assert doc["model_version"] == "1"
        (out,) = doc["outputs"]
        assert out["shape"] == [5]
        np.testing.assert_allclose(out["data"], expected_rides(frame, served_home), rtol=1e-5)

    def test_ndarray_model_takes_tensors(self, server: Server) -> None:
        x = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 1.0]]
        want = np.asarray(x) @ np.array([1.0, -2.0, 0.5, 3.0])
        status, doc, _ = server.request("POST", "/models/matrix/invocations", {"inputs": x})
        assert status == 200, doc
        np.testing.assert_allclose(doc["predictions"], want, atol=0.3)
        body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x}]}
        status, doc, _ = server.request("POST", "/v2/models/matrix/infer", body)
        assert status == 200, doc
        np.testing.assert_allclose(doc["outputs"][0]["data"], want, atol=0.3)

    def test_numeric_table_in_any_column_order(
        self, server: Server, served_home: dict[str, str]
    ) -> None:
        """Numeric columns travel as one matrix (dataframe_split rows, or one OIP input
        per column): several rows, columns in another order, same answers."""
        import pandas as pd

        rows = [[3.0, 2.0, 1.25], [7.5, 18.0, 1.0], [1.0, 0.0, 1.5]]
        frame_cols = ["distance", "hour", "surge"]
        frame = pd.DataFrame(rows, columns=frame_cols)
        want = native_predict("models:/numeric/1", frame, served_home)
        shuffled = {
            "columns": ["surge", "distance", "hour"],
            "data": [[r[2], r[0], r[1]] for r in rows],
        }
        status, doc, _ = server.request(
            "POST", "/models/numeric/invocations", {"dataframe_split": shuffled}
        )
        assert status == 200, doc
        np.testing.assert_allclose(doc["predictions"], want, rtol=1e-4)
        inputs = [
            {"name": c, "shape": [3], "datatype": "FP64", "data": [r[i] for r in rows]}
            for i, c in reversed(list(enumerate(frame_cols)))
        ]
        status, doc, _ = server.request("POST", "/v2/models/numeric/infer", {"inputs": inputs})
        assert status == 200, doc
        np.testing.assert_allclose(doc["outputs"][0]["data"], want, rtol=1e-4)

    def test_tritonclient_http(self, server: Server, served_home: dict[str, str]) -> None:
        """tritonclient's HTTP client: health, metadata, and infer with binary and JSON
        tensors both ways."""
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        try:
            assert client.is_server_live()
            assert client.is_server_ready()
            assert client.is_model_ready("rides")
            meta = client.get_model_metadata("rides")
            assert meta["name"] == "rides"
            frame = rides_frame(6, seed=8)
            want = expected_rides(frame, served_home)
            for binary in (True, False):
                inputs = []
                for col, dtype in (
                    ("distance", "FP64"),
                    ("passengers", "INT64"),
                    ("zone", "BYTES"),
                ):
                    values = frame[col].to_numpy()
                    if dtype == "BYTES":
                        values = values.astype(object)
                    item = httpclient.InferInput(col, [len(frame)], dtype)
                    item.set_data_from_numpy(values, binary_data=binary)
                    inputs.append(item)
                for outputs in (
                    None,
                    [httpclient.InferRequestedOutput("output", binary_data=binary)],
                ):
                    result = client.infer("rides", inputs, outputs=outputs, request_id="t1")
                    np.testing.assert_allclose(result.as_numpy("output"), want, rtol=1e-5)
                    assert result.get_response()["model_version"] == "1"
            with pytest.raises(Exception, match="unknown model"):
                client.infer("nope", inputs)
        finally:
            client.close()


class TestBadRequests:
    """Clear 4xx for each kind of bad request, and the server goes on serving."""

    def good(self, server: Server) -> None:
        frame = rides_frame(2)
        status, _, _ = server.request(
            "POST", "/v2/models/rides/infer", {"inputs": v2_columns(frame)}
        )
        assert status == 200

    def test_signature_errors_name_what_was_expected(self, server: Server) -> None:
        frame = rides_frame(2)
        cols = v2_columns(frame)
        status, doc, _ = server.request("POST", "/v2/models/rides/infer", {"inputs": cols[:2]})
        assert status == 400
        assert "zone" in doc["error"]
        assert "missing" in doc["error"]
        wrong_type = [
            *cols[:2],
            {"name": "zone", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
        ]
        status, doc, _ = server.request("POST", "/v2/models/rides/infer", {"inputs": wrong_type})
        assert status == 400
        assert "'zone'" in doc["error"]
        assert "string" in doc["error"]
        status, doc, _ = server.request(
            "POST",
            "/models/rides/invocations",
            {"dataframe_records": [{"distance": "far", "passengers": 1, "zone": "x"}]},
        )
        assert status == 400
        assert doc["error_code"] == "BAD_REQUEST"
        assert "distance" in doc["message"]
        status, doc, _ = server.request(
            "POST", "/models/matrix/invocations", {"inputs": [[1.0, 2.0]]}
        )
        assert status == 400
        assert "expected shape (any, 4)" in doc["message"]
        bad_shape = {"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1.0]}]}
        status, doc, _ = server.request("POST", "/v2/models/matrix/infer", bad_shape)
        assert status == 400
        assert "shape [3] needs 3" in doc["error"]
        self.good(server)

    def test_protocol_errors(self, server: Server) -> None:
        cases = [
            (("POST", "/v2/models/rides/infer"), {"raw": b"{not json"}, 400, "not valid JSON"),
            (("POST", "/invocations"), {"body": {"inputs": [[1]]}}, 400, "several models"),
            (("POST", "/models/rides/invocations"), {"body": {"rows": []}}, 400, "exactly one of"),
            (
                ("POST", "/models/rides/invocations"),
                {"raw": b"a,b\n1,2", "headers": {"content-type": "text/csv"}},
                415,
                "application/json",
            ),
            (
                ("POST", "/v2/models/nope/infer"),
                {"body": {"inputs": []}},
                404,
                "unknown model 'nope'",
            ),
            (
                ("POST", "/v2/models/rides/versions/9/infer"),
                {"body": {"inputs": []}},
                404,
                "version 9",
            ),
            (("GET", "/v2/models/rides/infer"), {}, 405, "POST"),
            (("GET", "/nowhere"), {}, 404, "no endpoint"),
            (("POST", "/v2/models/rides/infer"), {"raw": b"x" * 20000}, 413, "limit"),
            (
                ("POST", "/v2/models/rides/infer"),
                {
                    "body": {
                        "inputs": [{"name": "zone", "shape": [1], "datatype": "FP128", "data": [1]}]
                    }
                },
                400,
                "unknown datatype",
            ),
        ]
        for (method, path), kwargs, want, text in cases:
            status, doc, _ = server.request(method, path, **kwargs)
            assert status == want, (path, kwargs, doc)
            message = doc.get("error") or doc.get("message") if isinstance(doc, dict) else doc
            assert text in str(message), (path, message)
        self.good(server)
        samples = scrape(server)
        assert metric(samples, "shipyard_requests_total", model="rides", status="400") >= 2


def test_not_ready_when_golden_examples_do_not_replay(
    served_home: dict[str, str], tmp_path: Path
) -> None:
    """A server whose model no longer reproduces its golden examples stays up but not
    ready, says why, and answers 503."""
    env = {**served_home, "SERVE_TEST_SKEW": "1.5"}
    with serving(["models:/times@staging"], env, tmp_path / "log", ready=False) as server:
        import time

        deadline = time.monotonic() + 60
        while "not ready" not in server.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "golden" in server.logs() or "example" in server.logs()
        while server.request("GET", "/v2/health/ready", retry_refused=True)[0] == 0:
            time.sleep(0.1)  # the port opens once the first load has been tried
        assert server.request("GET", "/v2/health/ready")[0] == 503
        status, doc, _ = server.request("POST", "/invocations", {"inputs": [[1.0, 1.0]]})
        assert status == 503
        assert "not ready" in doc["message"]
        assert metric(scrape(server), "shipyard_model_ready", model="times") == 0


def test_cli_refuses_bad_config(served_home: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "models:\n  - uri: models:/rides@staging\n    batching: {max_batch_size: 0}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "shipyard.cli", "serve", "--config", str(config)],
        env=served_home,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "models[0].batching.max_batch_size" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "shipyard.cli", "serve"],
        env=served_home,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "nothing to serve" in result.stderr
