"""Models for the serving tests, and a real server process to talk to."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def rides_frame(n: int = 200, seed: int = 0, shift: float = 0.0) -> Any:
    """Rides: two numeric columns and a categorical one."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "distance": rng.gamma(2.0, 2.0, n) + shift,
            "passengers": rng.integers(1, 5, n),
            "zone": rng.choice(["north", "south", "east"], n),
        }
    )


def fit_rides(seed: int = 0, alpha: float = 1.0) -> tuple[Any, Any]:
    """A scaling + one-hot + ridge pipeline on the rides frame, and the frame."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x = rides_frame(seed=seed)
    y = 3.0 + 1.5 * x["distance"] + 0.5 * x["passengers"] + (x["zone"] == "south") * 2.0
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["distance", "passengers"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["zone"]),
                    ]
                ),
            ),
            ("ridge", Ridge(alpha=alpha)),
        ]
    )
    return pipe.fit(x, y), x


def log_rides(name: str = "rides", *, alpha: float = 1.0, export: bool = True) -> int:
    """Log, register (and export to ONNX) a rides pipeline; the new version number."""
    import shipyard
    from shipyard.export import export_version

    pipe, x = fit_rides(alpha=alpha)
    with shipyard.start_run(experiment="serve-tests"):
        info = shipyard.log_model(pipe, "model", input_example=x[:20], profile_data=x)
    version = shipyard.register_model(info.uri, name).version
    if export:
        export_version(f"models:/{name}/{version}")
    return version


def log_numeric(name: str = "numeric") -> int:
    """A scaler + ridge on three float columns of a DataFrame (exported with one
    stacked matrix input), exported to ONNX."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import shipyard
    from shipyard.export import export_version

    x = rides_frame()[["distance"]].assign(
        hour=np.arange(200) % 24 * 1.0, surge=1.0 + (np.arange(200) % 3) * 0.25
    )
    model = make_pipeline(StandardScaler(), Ridge()).fit(x, x.distance * 2 + x.surge)
    with shipyard.start_run(experiment="serve-tests"):
        info = shipyard.log_model(model, "model", input_example=x[:10])
    version = shipyard.register_model(info.uri, name).version
    export_version(f"models:/{name}/{version}")
    return version


def log_matrix(name: str = "matrix") -> int:
    """A ridge on a plain float matrix (an ndarray signature), exported to ONNX."""
    from sklearn.linear_model import Ridge

    import shipyard
    from shipyard.export import export_version

    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 4))
    model = Ridge().fit(x, x @ np.array([1.0, -2.0, 0.5, 3.0]))
    with shipyard.start_run(experiment="serve-tests"):
        info = shipyard.log_model(model, "model", input_example=x[:10])
    version = shipyard.register_model(info.uri, name).version
    export_version(f"models:/{name}/{version}")
    return version


class Server:
    """A ``shipyard serve`` process on a free port of 127.0.0.1."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard.cli", "serve", "--port", "0", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}\n{self.logs()}")
        self.url = line.split()[-1]

    def logs(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        timeout: float = 30,
        retry_refused: bool = False,
    ) -> tuple[int, Any, dict[str, str]]:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        hdrs = {"content-type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload, status, got = resp.read(), resp.status, dict(resp.headers)
        except urllib.error.HTTPError as e:
            payload, status, got = e.read(), e.code, dict(e.headers)
        except urllib.error.URLError:
            if not retry_refused:
                raise
            return 0, "not accepting connections yet", {}
        with contextlib.suppress(ValueError):
            return status, json.loads(payload), got
        return status, payload.decode(errors="replace"), got

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.logs()}")
            status, _, _ = self.request("GET", "/v2/health/ready", timeout=5, retry_refused=True)
            if status == 200:
                return
            time.sleep(0.1)
        raise TimeoutError(f"server not ready in {timeout}s:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


@contextlib.contextmanager
def serving(
    args: list[str], env: dict[str, str], log: Path, *, ready: bool = True
) -> Iterator[Server]:
    server = Server(args, env, log)
    try:
        if ready:
            server.wait_ready()
        yield server
    finally:
        server.stop()


class Times:
    """A Python-function model: ``x * factor``, where the factor is the class's, times
    ``SERVE_TEST_SKEW`` (1 unless set: a server started with another value no
    longer reproduces the golden examples). Each predict first sleeps
    ``SERVE_TEST_SLEEP`` seconds, to hold a request in flight."""

    factor = 2.0

    def __init__(self, artifacts: dict[str, str] | None = None) -> None:
        pass

    def predict(self, x: Any) -> Any:
        time.sleep(float(os.environ.get("SERVE_TEST_SLEEP", "0")))
        skew = float(os.environ.get("SERVE_TEST_SKEW", "1"))
        return np.asarray(x, dtype=np.float64) * self.factor * skew


class Times3(Times):
    factor = 3.0


class Times5(Times):
    factor = 5.0


def log_times(name: str, cls: str = "Times") -> int:
    """Register a ``Times`` model (by reference to this module) as ``name``'s next version."""
    import shipyard

    with shipyard.start_run(experiment="serve-tests"):
        info = shipyard.log_model(
            None, "model", python_model=f"serve_support:{cls}", input_example=np.ones((3, 2))
        )
    return shipyard.register_model(info.uri, name).version


def tamper(version_digest: str) -> None:
    """Corrupt one file of a package in the local blob store (its digest no longer matches)."""
    import shipyard.registry

    blobs = shipyard.registry.client().blobs
    for entry in blobs.read_manifest(version_digest).entries:
        if entry.path == "shipyard-model.json":
            path = Path(blobs._path(entry.digest))  # type: ignore[attr-defined]
            path.chmod(0o644)
            path.write_bytes(path.read_bytes() + b"tampered")
            return
    raise AssertionError("no manifest in the package")


def scrape(server: Server) -> dict[str, float]:
    """``/metrics`` as ``{'name{labels}': value}``."""
    status, text, _ = server.request("GET", "/metrics")
    assert status == 200, text
    out = {}
    for line in str(text).splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def metric(samples: dict[str, float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total
