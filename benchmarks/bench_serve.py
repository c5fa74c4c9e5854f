"""Serving: Shipyard's inference server against its floors and MLflow, over loopback.

Two models, built and registered in a scratch ``SHIPYARD_HOME``
(``serve/models.py``): a scikit-learn ``Pipeline(StandardScaler, Ridge)`` on 16
float columns ``f0..f15`` (a DataFrame), and a torch MLP 16-64-64-1, each
exported to ONNX (parity checked) with the alias ``staging`` on version 1.

Every server runs pinned to one CPU and the load generator (``serve/loadgen.py``:
raw keep-alive HTTP/1.1, precomputed requests, its own process) to another.
Each server is measured with 2,000 sequential single-row requests on one
connection (p50/p99 latency), then with 16 concurrent connections (requests/s,
and p50/p99 under that load); every measurement stops at a request count or a
number of seconds, whichever comes first, after untimed warm-up requests.
Non-2xx answers and broken connections are counted as errors and printed; one
request per server is also checked against the model's own prediction.
Side by side, in the same run:

* **null server** (``serve/echo_app.py --null``): a bare uvloop protocol that
  answers fixed bytes -- its requests/s at 16 connections is the load
  generator's ceiling; a server figure near it is capped by the generator.
* **echo floor** (``serve/echo_app.py``): a raw ASGI app that reads the body and
  answers a small JSON, on uvicorn with the Shipyard server's settings -- the
  HTTP cost alone, measured with each model's request bodies.
* **in process**: ``load_model("models:/NAME@staging").predict`` on one raw row
  (a one-row DataFrame, a 1x16 array), and the same for the ONNX export's
  package (2,000 calls, pinned to the server's CPU): the model's cost to a
  caller in Python. Also ``predict_arrays`` on one row of already-checked
  arrays, the call the server makes after decoding a request (no pandas for
  an ONNX graph), so server minus this row is the HTTP and codec cost.
* **shipyard**: ``shipyard serve models:/NAME@staging`` (the ONNX export, the
  default) and ``--native``, on MLflow's ``/invocations`` and on the Open
  Inference Protocol's ``/v2/models/NAME/infer``.
* **mlflow**: ``mlflow models serve --env-manager local`` (its default, one
  uvicorn worker) of the same pipeline fitted on the same rows in MLflow's own
  environment, and of the MLP's ONNX graph through ``mlflow.onnx`` when that
  environment has onnx and onnxruntime. The environment is
  ``SHIPYARD_BENCH_MLFLOW`` (a python) or ``.bench-venv-mlflow/bin/python``
  (``make bench-mlflow-env``); without one, MLflow is not measured.

Targets (issue): p50 at concurrency 1 within 0.1 ms of the echo floor; requests/s
at 16 connections at least 10x MLflow's.

    .venv/bin/python benchmarks/run.py --only serve [--quick]
    .venv/bin/python benchmarks/bench_serve.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Figure, fresh_env, temp_dir

NAME = "serve"
TARGET_P50_OVER_ECHO_MS = 0.1
TARGET_VS_MLFLOW = 10.0
SERVE_DIR = Path(__file__).resolve().parent / "serve"
CONNS = 16
MLFLOW_LABEL = "mlflow models serve, /invocations"


@dataclass(frozen=True)
class Sizes:
    seq_n: int  # sequential requests (and in-process calls)
    seq_s: float  # ... at most this long
    conc_n: int  # concurrent requests
    conc_s: float  # ... at most this long
    warmup: int


FULL = Sizes(seq_n=2000, seq_s=60.0, conc_n=200_000, conc_s=8.0, warmup=200)
QUICK = Sizes(seq_n=300, seq_s=15.0, conc_n=20_000, conc_s=2.0, warmup=50)


@dataclass
class Row:
    """One line of a model's table."""

    label: str
    p50: float | None = None
    p99: float | None = None
    rps: float | None = None
    p50_c: float | None = None
    p99_c: float | None = None
    errors: int | None = None
    cpu_server: float | None = None
    cpu_gen: float | None = None
    first_error: str = ""
    check: str = ""  # a wrong answer: what was expected and what came back
    note: str = ""
    samples: list[float] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return self.p50 is not None


# -- processes -------------------------------------------------------------------


def _cpus() -> tuple[int | None, int | None]:
    """(server CPU, load generator CPU); (None, None) with fewer than two CPUs."""
    avail = sorted(os.sched_getaffinity(0))
    return (avail[0], avail[1]) if len(avail) >= 2 else (None, None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A server process in its own process group, pinned to one CPU; the whole
    group is killed by :meth:`stop` (also on errors: use it as a context manager)."""

    def __init__(
        self,
        label: str,
        cmd: list[str],
        port: int,
        ready_path: str,
        env: dict[str, str],
        cwd: Path,
        cpu: int | None,
        log: Path,
    ) -> None:
        self.label, self.cmd, self.port, self.ready_path = label, cmd, port, ready_path
        self.env, self.cwd, self.cpu, self.log = env, cwd, cpu, log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        cmd = list(self.cmd)
        preexec = None
        if self.cpu is not None:
            if shutil.which("taskset"):
                cmd = ["taskset", "-c", str(self.cpu), *cmd]
            else:
                cpu = self.cpu

                def preexec() -> None:
                    os.sched_setaffinity(0, {cpu})

        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: workers die with it
                preexec_fn=preexec,  # only sched_setaffinity; this process has no threads
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # workers that outlived their parent
            os.killpg(proc.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip()[:240] for line in text[-lines:])

    def wait_ready(self, timeout: float) -> None:
        """Poll ``ready_path`` until it answers 200; RuntimeError (with the server's
        output) when the process exits or ``timeout`` passes."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}{self.ready_path}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self.proc.returncode}: {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.label} not ready after {timeout:.0f} s: {self.log_tail()}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


def _post(port: int, path: str, body: str) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _loadgen(
    port: int, spec: Path, mode: str, sizes: Sizes, cpu: int | None, server: Server | None
) -> dict[str, Any]:
    seconds = sizes.seq_s if mode == "seq" else sizes.conc_s
    cmd = [sys.executable, str(SERVE_DIR / "loadgen.py"), "--port", str(port)]
    cmd += ["--requests", str(spec), "--mode", mode, "--conns", str(CONNS)]
    cmd += ["--n", str(sizes.seq_n if mode == "seq" else sizes.conc_n)]
    cmd += ["--seconds", str(seconds), "--warmup", str(sizes.warmup)]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    if server is not None and server.pid is not None:
        cmd += ["--server-pid", str(server.pid)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 2 + 120)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"load generator failed: {' | '.join(tail)}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- measuring -------------------------------------------------------------------


def _numbers(doc: Any) -> list[float]:
    """The predicted numbers of a response (MLflow ``predictions``, OIP ``outputs``)."""
    if isinstance(doc, bool):
        return []
    if isinstance(doc, int | float):
        return [float(doc)]
    if isinstance(doc, list):
        return [v for item in doc for v in _numbers(item)]
    if isinstance(doc, dict):
        for key in ("predictions", "outputs", "data"):
            if key in doc:
                return _numbers(doc[key])
        return [v for k, item in doc.items() if k not in ("shape",) for v in _numbers(item)]
    return []


def _check(port: int, spec: dict[str, Any], expected: float, rtol: float) -> str:
    """'' when the first request's answer is ``expected``, else what went wrong."""
    status, body = _post(port, spec["path"], spec["bodies"][0])
    if not 200 <= status < 300:
        return f"{spec['path']} answered {status}: {body[:300].decode(errors='replace')}"
    try:
        got = _numbers(json.loads(body))
    except ValueError:
        return f"{spec['path']} answered non-JSON: {body[:200]!r}"
    if not got or not math.isclose(got[0], expected, rel_tol=rtol, abs_tol=rtol):
        return f"{spec['path']} predicted {got[:3]} for a row whose prediction is {expected:.6g}"
    return ""


def _measure(
    label: str,
    port: int,
    spec_file: Path,
    sizes: Sizes,
    gen_cpu: int | None,
    server: Server | None,
    check: str = "",
) -> Row:
    row = Row(label, check=check)
    try:
        seq = _loadgen(port, spec_file, "seq", sizes, gen_cpu, server)
        conc = _loadgen(port, spec_file, "conc", sizes, gen_cpu, server)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
        row.note = f"not measured: {e}"
        return row
    row.p50, row.p99 = seq["p50_ms"], seq["p99_ms"]
    row.rps, row.p50_c, row.p99_c = conc["rps"], conc["p50_ms"], conc["p99_ms"]
    row.errors = seq["errors"] + conc["errors"]
    row.cpu_server, row.cpu_gen = conc.get("cpu_server"), conc["cpu"]
    first = seq["first_error"] or conc["first_error"]
    if first:
        row.first_error = f"status {first['status']}: {first['body'][:300]}"
    if seq["count"] < sizes.seq_n:
        row.note = f"{seq['count']} of {sizes.seq_n} sequential requests in {sizes.seq_s:.0f} s"
    return row


def _spec_file(tmp: Path, name: str, spec: dict[str, Any]) -> Path:
    path = tmp / "requests" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    return path


def _mlflow_python() -> str | None:
    found = os.environ.get("SHIPYARD_BENCH_MLFLOW") or str(
        ROOT / ".bench-venv-mlflow" / "bin" / "python"
    )
    return found if Path(found).exists() else None


# -- the run ---------------------------------------------------------------------


def run(quick: bool = False) -> list[Figure]:
    sizes = QUICK if quick else FULL
    srv_cpu, gen_cpu = _cpus()
    pinning = (
        f"server on CPU {srv_cpu}, load generator on CPU {gen_cpu}"
        if srv_cpu is not None
        else "fewer than two CPUs: nothing pinned"
    )
    print(
        f"  {pinning}; sequential: {sizes.seq_n} requests (max {sizes.seq_s:.0f} s); "
        f"{CONNS} connections: max {sizes.conc_n} requests or {sizes.conc_s:.0f} s; "
        f"{sizes.warmup} warm-up requests each; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    with temp_dir("serve") as tmp:
        env = fresh_env(tmp / "home")
        figures = _run(tmp, env, sizes, srv_cpu, gen_cpu)
    # Other work on the machine shows in every figure here (two servers' worth of CPU).
    print(f"  load average at the end: {os.getloadavg()[0]:.2f} (1 min)", flush=True)
    return figures


def _run(
    tmp: Path, env: dict[str, str], sizes: Sizes, srv_cpu: int | None, gen_cpu: int | None
) -> list[Figure]:
    py = sys.executable
    built = subprocess.run(
        [py, str(SERVE_DIR / "models.py"), "--out", str(tmp / "models.json")]
        + ["--calls", str(sizes.seq_n)]
        + (["--cpu", str(srv_cpu)] if srv_cpu is not None else []),
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if built.returncode != 0:
        tail = (built.stderr or built.stdout).strip().splitlines()[-5:]
        raise RuntimeError("building the models failed: " + " | ".join(tail))
    info: dict[str, Any] = json.loads((tmp / "models.json").read_text())
    models = ("sklearn", "mlp")
    tables: dict[str, list[Row]] = {m: [] for m in models}
    specs = {
        (m, proto): _spec_file(tmp, f"{m}-{proto}", info[m][proto])
        for m in models
        for proto in ("invocations", "v2")
    }
    logs = tmp / "logs"
    logs.mkdir()

    def server(label: str, cmd: list[str], ready: str, server_env: dict[str, str]) -> Server:
        port = _free_port()
        cmd = [c.replace("{port}", str(port)) for c in cmd]
        log = logs / f"{label.replace(' ', '_').replace('/', '_')}.log"
        return Server(label, cmd, port, ready, server_env, tmp, srv_cpu, log)

    # The load generator's ceiling: a server that costs almost nothing.
    null_cmd = [py, str(SERVE_DIR / "echo_app.py"), "--null", "--port", "{port}"]
    with server("null server", null_cmd, "/", env) as s:
        s.wait_ready(30)
        ceiling = _measure(
            "null server", s.port, specs["sklearn", "invocations"], sizes, gen_cpu, s
        )

    # The echo floor, with each model's request bodies.
    echo_cmd = [py, str(SERVE_DIR / "echo_app.py"), "--port", "{port}"]
    with server("echo", echo_cmd, "/", env) as s:
        s.wait_ready(30)
        for m in models:
            for proto, what in (("invocations", "/invocations"), ("v2", "/v2 infer")):
                row = _measure(
                    f"echo floor, {what} body", s.port, specs[m, proto], sizes, gen_cpu, s
                )
                tables[m].append(row)

    for m in models:
        flavor = "sklearn" if m == "sklearn" else "torch"
        for key, what in (
            ("native", f"predict, native {flavor}"),
            ("onnx", "predict, onnx export"),
            ("native_arrays", f"predict_arrays, native {flavor}"),
            ("onnx_arrays", "predict_arrays, onnx export"),
        ):
            t = info[m]["inprocess"].get(key)
            if t is not None:
                tables[m].append(Row(f"in-process {what}", p50=t["p50_ms"], p99=t["p99_ms"]))

    # Shipyard's server: the ONNX export (default), then the native flavor. The MLP's
    # factory (serve_data:mlp) is importable, as a user's project code would be.
    serve_env = env | {"PYTHONPATH": str(SERVE_DIR)}
    for m in models:
        name = info[m]["name"]
        for kind in ("onnx", "native"):
            cmd = [py, "-m", "shipyard.cli", "serve", f"models:/{name}@staging"]
            cmd += ["--host", "127.0.0.1", "--port", "{port}"]
            cmd += ["--native"] if kind == "native" else []
            rows = [
                Row(f"shipyard {kind}, /invocations"),
                Row(f"shipyard {kind}, /v2 infer"),
            ]
            try:
                with server(f"shipyard {m} {kind}", cmd, "/v2/health/ready", serve_env) as s:
                    s.wait_ready(180)
                    for i, proto in enumerate(("invocations", "v2")):
                        spec = info[m][proto]
                        bad = _check(s.port, spec, info[m]["expected"][0], rtol=1e-3)
                        rows[i] = _measure(
                            rows[i].label, s.port, specs[m, proto], sizes, gen_cpu, s, bad
                        )
            except RuntimeError as e:
                for r in rows:
                    r.note = f"not measured: {e}"
            tables[m] += rows

    mlflow_note = _mlflow(tmp, info, specs, sizes, server, gen_cpu, tables)

    figures, lines = _figures(tables, ceiling, mlflow_note)
    for m in models:
        _print_table(info[m]["label"], tables[m], ceiling)
        for line in lines[m]:
            print(f"    {line}")
    print(flush=True)
    return figures


def _mlflow(
    tmp: Path,
    info: dict[str, Any],
    specs: dict[tuple[str, str], Path],
    sizes: Sizes,
    server: Any,
    gen_cpu: int | None,
    tables: dict[str, list[Row]],
) -> str:
    """Measure ``mlflow models serve`` of both models; the note for the report."""
    mlflow_py = _mlflow_python()
    if mlflow_py is None:
        note = "MLflow not measured: no MLflow environment (make bench-mlflow-env)"
        for m in tables:
            tables[m].append(Row(MLFLOW_LABEL, note=note))
        return note
    mlflow_bin = str(Path(mlflow_py).parent / "mlflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_"))}
    env.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        # as if activated: MLflow starts its server as `bash -c "exec uvicorn ..."`
        PATH=f"{Path(mlflow_py).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    side = subprocess.run(
        [mlflow_py, str(SERVE_DIR / "mlflow_side.py"), "--out", str(tmp / "mlflow-models")]
        + (["--onnx", info["mlp"]["onnx_file"]] if info["mlp"]["onnx_file"] else [])
        + ["--example", json.dumps(info["mlp"]["mlflow_example"])],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if side.returncode != 0:
        tail = (side.stderr or side.stdout).strip().splitlines()[-3:]
        note = "MLflow not measured: saving the models failed: " + " | ".join(tail)
        for m in tables:
            tables[m].append(Row(MLFLOW_LABEL, note=note))
        return note
    saved = json.loads(side.stdout.strip().splitlines()[-1])
    version = f"MLflow {saved['mlflow']}, 1 uvicorn worker (its default)"
    paths = {"sklearn": saved["sklearn"], "mlp": saved["onnx"]}
    for m in tables:
        label = MLFLOW_LABEL
        if paths[m] is None:
            tables[m].append(Row(label, note=saved["onnx_note"]))
            continue
        check = ""
        if m == "sklearn":
            ours = info[m]["expected"]
            if not all(
                math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
                for a, b in zip(ours, saved["expected"], strict=True)
            ):
                check = "MLflow's pipeline predicts differently from Shipyard's (not the same fit)"
        cmd = [mlflow_bin, "models", "serve", "-m", paths[m], "--env-manager", "local"]
        cmd += ["-h", "127.0.0.1", "-p", "{port}"]
        row = Row(label)
        try:
            with server(f"mlflow {m}", cmd, "/ping", env) as s:
                s.wait_ready(180)
                spec = info[m]["invocations"]
                bad = check or _check(s.port, spec, info[m]["expected"][0], rtol=1e-3)
                row = _measure(label, s.port, specs[m, "invocations"], sizes, gen_cpu, s, bad)
        except RuntimeError as e:
            row.note = f"not measured: {e}"
        tables[m].append(row)
    return version


# -- output ----------------------------------------------------------------------

_COLUMNS = ("p50 ms", "p99 ms", "req/s@16", "p50@16", "p99@16", "errors", "cpu srv/gen")


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_table(title: str, rows: list[Row], ceiling: Row) -> None:
    print(f"\n  {title}")
    print(f"    {'':<44}" + "".join(f"{c:>10}" for c in _COLUMNS[:-1]) + f"{_COLUMNS[-1]:>13}")
    for r in [ceiling, *rows]:
        label = "null server (loadgen ceiling)" if r is ceiling else r.label
        cpu = ""
        if r.cpu_server is not None and r.cpu_gen is not None:
            cpu = f"{r.cpu_server * 100:.0f}%/{r.cpu_gen * 100:.0f}%"
        cells = (
            _f(r.p50),
            _f(r.p99),
            "-" if r.rps is None else f"{r.rps:.0f}",
            _f(r.p50_c),
            _f(r.p99_c),
            "-" if r.errors is None else str(r.errors),
            cpu,
        )
        print(f"    {label:<44}" + "".join(f"{c:>10}" for c in cells[:-1]) + f"{cells[-1]:>13}")
        for extra in (
            r.note,
            r.check and f"WRONG ANSWER: {r.check}",
            r.first_error and f"first error: {r.first_error}",
        ):
            if extra:
                print(f"      {extra}")


def _row(rows: list[Row], label: str) -> Row:
    found = next((r for r in rows if r.label == label), None)
    if found is None:
        raise KeyError(label)
    return found


def _problems(row: Row) -> str:
    """Why a measured row does not count: error responses, a wrong answer."""
    out = []
    if row.errors:
        out.append(f"{row.errors} error responses (first: {row.first_error})")
    if row.check:
        out.append(f"wrong answer: {row.check}")
    return "; ".join(out)


def _figures(
    tables: dict[str, list[Row]], ceiling: Row, mlflow_note: str
) -> tuple[list[Figure], dict[str, list[str]]]:
    """The figures, and each model's target lines."""
    figures = [
        Figure(
            NAME,
            "load generator ceiling (null server, 16 conns)",
            ceiling.rps,
            "req/s",
            higher_is_better=True,
            note=f"generator CPU {(ceiling.cpu_gen or 0) * 100:.0f}%",
            error=_problems(ceiling),
        )
    ]
    lines: dict[str, list[str]] = {}
    for m, rows in tables.items():
        short = "sklearn" if m == "sklearn" else "MLP"
        lines[m] = []
        mlflow = _row(rows, MLFLOW_LABEL)
        peer = mlflow.rps if mlflow.rps and not _problems(mlflow) else None
        why_no_peer = "" if peer else (_problems(mlflow) or mlflow.note or mlflow_note)
        for kind in ("onnx", "native"):
            for proto, echo_label in (
                ("/invocations", "echo floor, /invocations body"),
                ("/v2 infer", "echo floor, /v2 infer body"),
            ):
                ours = _row(rows, f"shipyard {kind}, {proto}")
                echo = _row(rows, echo_label)
                name = f"{short}: p50 over echo, {kind} {proto}"
                if ours.p50 is None or echo.p50 is None:
                    note = ours.note or echo.note
                    figures.append(
                        Figure(NAME, name, None, "ms", target=TARGET_P50_OVER_ECHO_MS, note=note)
                    )
                    lines[m].append(f"p50 over echo floor ({kind}, {proto}): not measured")
                    continue
                delta = ours.p50 - echo.p50
                note = f"shipyard {ours.p50:.3f} ms, echo {echo.p50:.3f} ms"
                if delta <= 0:
                    note += f" (measured {delta:+.3f} ms: within noise)"
                figures.append(
                    Figure(
                        NAME,
                        name,
                        max(delta, 1e-3),
                        "ms",
                        target=TARGET_P50_OVER_ECHO_MS,
                        note=note,
                        error=_problems(ours),
                    )
                )
                lines[m].append(
                    f"p50 over echo floor ({kind}, {proto}): {delta:.3f} ms "
                    f"(target ≤ {TARGET_P50_OVER_ECHO_MS} ms)"
                )
                if proto != "/invocations":
                    continue
                figures.append(
                    Figure(
                        NAME,
                        f"{short}: req/s at 16 conns, {kind} /invocations",
                        ours.rps,
                        "req/s",
                        higher_is_better=True,
                        target=peer * TARGET_VS_MLFLOW if peer else None,
                        peer="MLflow" if peer else None,
                        peer_value=peer,
                        note=mlflow_note if peer else f"no MLflow figure: {why_no_peer}",
                        error=_problems(ours),
                    )
                )
                if peer and ours.rps:
                    lines[m].append(
                        f"req/s vs MLflow ({kind}): {ours.rps / peer:.1f}x "
                        f"(target ≥ {TARGET_VS_MLFLOW:.0f}x; {ours.rps:.0f} vs {peer:.0f} req/s)"
                    )
                else:
                    lines[m].append(f"req/s vs MLflow ({kind}): no MLflow figure: {why_no_peer}")
    return figures, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    args = parser.parse_args(argv)
    for f in run(quick=args.quick):
        print(f.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
