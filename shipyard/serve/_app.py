"""The inference server's ASGI app: routing, bodies, errors, metrics.

A raw ASGI callable rather than a framework: a request costs a path split,
one ``orjson.loads``, the signature check and the model call, and the answer
one ``orjson.dumps`` (DESIGN.md: FastAPI with a pydantic model per request
halved throughput in the prototype). Endpoints:

* Open Inference Protocol v2: ``GET /v2``, ``/v2/health/live``,
  ``/v2/health/ready``, ``/v2/models/{name}[/versions/{v}]``, its ``/ready``,
  and ``POST .../infer`` (JSON, and the binary tensor extension);
* MLflow scoring: ``POST /invocations`` (one model served) or
  ``/models/{name}/invocations``, ``GET /ping`` and ``/health``;
* ``GET /metrics`` (Prometheus text format).

Without micro-batching the model runs on the event loop's thread: for the small
models this server is built for, a hand-off to a worker thread would cost as
much as the model (50-100 us here). The price is that a slow model holds up
the other connections, health checks included, while it runs: serve such a
model with batching on (its calls run in their own thread) or with more
``--workers``.

Errors are answered in the protocol's own format -- ``{"error": msg}`` for v2,
``{"error_code", "message"}`` for MLflow -- with 400 (bad body or input), 404
(unknown model or version), 405, 413 (body over ``max_body_bytes``), 415
(content type), 503 (not ready) or 500 (the model raised); the server goes on
serving after each.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from shipyard import __version__
from shipyard.errors import InvalidArgumentError
from shipyard.serve._codec import (
    BadRequestError,
    as_matrix,
    decode_invocations,
    decode_v2,
    encode_invocations,
    encode_v2,
)
from shipyard.serve._config import ServeConfig
from shipyard.serve._metrics import CONTENT_TYPE, ServerMetrics
from shipyard.serve._model import ServedModel, Version, rows_of

__all__ = ["ServeApp", "app_from_env"]

log = logging.getLogger("shipyard.serve")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = b"application/json"
_EMPTY = b"{}"


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _ClientGoneError(Exception):
    pass


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


def _content_type(headers: dict[bytes, bytes]) -> bytes:
    return headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()


async def _respond(
    send: Send, status: int, body: bytes, ctype: bytes = _JSON, extra: list[Any] | None = None
) -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ServeApp:
    """The ASGI app over a :class:`ServeConfig`'s models."""

    def __init__(self, config: ServeConfig, *, registry: Any = None, tracking: Any = None) -> None:
        self.config = config
        self.metrics = ServerMetrics(self._drift_rows)
        self.models: dict[str, ServedModel] = {}
        for spec in config.models:
            served = ServedModel(spec, self.metrics, registry=registry, tracking=tracking)
            if served.name in self.models:
                raise InvalidArgumentError(
                    f"two served models are named {served.name!r}: give one a name: in the config"
                )
            self.models[served.name] = served
        self.limit = config.max_body_bytes
        self._started = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Load every model once (successfully or not), then watch the aliases in
        the background. Called at startup, before the server accepts connections:
        with several workers on one port, a worker that answered before its models
        were loaded would fail requests the others could serve."""
        if self._started:
            return
        self._started = True
        self._load_all()
        self._thread = threading.Thread(
            target=self._watch, name="shipyard-serve-models", daemon=True
        )
        self._thread.start()

    def _load_all(self) -> None:
        """One model at a time: concurrent first imports of a library from several
        threads are not safe."""
        for served in self.models.values():
            served.refresh()
        # what is loaded now lives as long as the server: keep it out of the
        # garbage collector's generations, whose full passes would pause requests
        gc.collect()
        gc.freeze()

    def _watch(self) -> None:
        """Poll the aliases for hot swaps (and retry models not loaded yet)."""
        poll = self.config.poll_seconds
        if poll <= 0:
            return
        while not self._stopping.wait(poll):
            for served in self.models.values():
                if served.ref.alias is not None or not served.ready:
                    served.refresh()

    def stop(self) -> None:
        self._stopping.set()
        for served in self.models.values():
            served.stop()

    @property
    def ready(self) -> bool:
        return all(m.ready for m in self.models.values())

    def _drift_rows(self) -> list[tuple[str, str, str, str, float, int]]:
        rows = []
        for served in self.models.values():
            rows += served.drift_rows()
        return rows

    # -- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await asyncio.to_thread(self.start)  # the loop stays responsive
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if path.startswith("/v2"):
                await self._v2(path, method, scope, receive, send)
            elif path == "/invocations" or (
                path.startswith("/models/") and path.endswith("/invocations")
            ):
                await self._invocations(path, method, scope, receive, send)
            elif path == "/metrics":
                self._method(method, "GET")
                body = await asyncio.to_thread(self.metrics.render)
                await _respond(send, 200, body, CONTENT_TYPE.encode())
            elif path in ("/ping", "/health"):
                self._method(method, "GET")
                await _respond(send, 200 if self.ready else 503, b"\n", b"text/plain")
            else:
                raise HttpError(
                    404,
                    f"no endpoint {path}: try /v2/models/NAME/infer, /invocations or /metrics",
                )
        except HttpError as e:
            await self._error(send, e.status, e.message, mlflow="invocations" in path)
        except _ClientGoneError:
            return
        except Exception as e:  # a bug: answer in the protocol's format, keep serving
            log.exception("request %s %s failed", method, path)
            await self._error(
                send, 500, f"internal error: {type(e).__name__}: {e}", mlflow="invocations" in path
            )

    @staticmethod
    def _method(method: str, allowed: str) -> None:
        if method != allowed:
            raise HttpError(405, f"method {method} not allowed here; use {allowed}")

    async def _error(self, send: Send, status: int, message: str, *, mlflow: bool) -> None:
        if mlflow:
            code = {
                400: "BAD_REQUEST",
                404: "RESOURCE_DOES_NOT_EXIST",
                405: "BAD_REQUEST",
                413: "BAD_REQUEST",
                415: "BAD_REQUEST",
                503: "TEMPORARILY_UNAVAILABLE",
            }
            doc = {"error_code": code.get(status, "INTERNAL_ERROR"), "message": message}
        else:
            doc = {"error": message}
        await _respond(send, status, orjson.dumps(doc))

    async def _body(self, scope: Scope, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            raise HttpError(
                413,
                f"request body of {int(declared)} bytes is over this server's limit of "
                f"{self.limit} (max_body_bytes)",
            )
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):
            if len(body) > self.limit:
                raise HttpError(413, f"request body is over this server's limit of {self.limit}")
            return body
        parts, size = [body], len(body)
        while message.get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGoneError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise HttpError(
                    413,
                    f"request body is over this server's limit of {self.limit} bytes "
                    "(max_body_bytes)",
                )
            parts.append(chunk)
        return b"".join(parts)

    def _model(self, name: str, version: str | None = None) -> tuple[ServedModel, Version]:
        served = self.models.get(name)
        if served is None:
            raise HttpError(
                404, f"unknown model {name!r}; this server serves {sorted(self.models)}"
            )
        current = served.current
        if current is None:
            why = served.error or "its first version is still loading"
            raise HttpError(503, f"model {name!r} is not ready: {why}")
        if version is not None and version != current.label:
            raise HttpError(
                404,
                f"version {version} of {name!r} is not loaded; this server serves version "
                f"{current.number} ({served.uri})",
            )
        return served, current

    # -- Open Inference Protocol v2 ------------------------------------------------------

    async def _v2(self, path: str, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        parts = path.strip("/").split("/")
        if parts == ["v2"]:
            self._method(method, "GET")
            doc = {"name": "shipyard", "version": __version__, "extensions": ["binary_tensor_data"]}
            await _respond(send, 200, orjson.dumps(doc))
            return
        if parts[1:2] == ["health"] and len(parts) == 3 and parts[2] in ("live", "ready"):
            self._method(method, "GET")
            ok = parts[2] == "live" or self.ready
            await _respond(send, 200 if ok else 503, orjson.dumps({parts[2]: ok}))
            return
        if parts[1:2] != ["models"] or len(parts) < 3:
            raise HttpError(404, f"no endpoint {path}: see /v2/models/NAME")
        name, rest, version = parts[2], parts[3:], None
        if rest[:1] == ["versions"] and len(rest) >= 2:
            version, rest = rest[1], rest[2:]
        if rest == ["infer"]:
            self._method(method, "POST")
            await self._infer(name, version, scope, receive, send)
        elif rest == ["ready"]:
            self._method(method, "GET")
            served = self.models.get(name)
            if served is None:
                raise HttpError(
                    404, f"unknown model {name!r}; this server serves {sorted(self.models)}"
                )
            current = served.current
            ok = current is not None and (version is None or version == current.label)
            await _respond(send, 200 if ok else 503, orjson.dumps({"name": name, "ready": ok}))
        elif not rest:
            self._method(method, "GET")
            _, current = self._model(name, version)
            await _respond(send, 200, orjson.dumps(current.metadata))
        else:
            raise HttpError(404, f"no endpoint {path}")

    async def _counted(
        self, protocol: str, served: ServedModel, current: Version, work: Awaitable[None]
    ) -> None:
        """Run one inference request's ``work``, counting its status and time."""
        started = time.perf_counter()
        status = 200
        try:
            await work
        except HttpError as e:
            status = e.status
            raise
        except Exception:
            status = 500
            raise
        finally:
            self.metrics.observe(
                served.name, current.label, protocol, status, time.perf_counter() - started
            )

    async def _infer(
        self, name: str, version: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        served, current = self._model(name, version)
        await self._counted(
            "v2", served, current, self._infer_body(current, served, scope, receive, send)
        )

    async def _infer_body(
        self, current: Version, served: ServedModel, scope: Scope, receive: Receive, send: Send
    ) -> None:
        headers = _headers(scope)
        ctype = _content_type(headers)
        if ctype not in (b"", _JSON, b"application/octet-stream"):
            raise HttpError(
                415,
                f"content type {ctype.decode(errors='replace')!r} is not supported: "
                "send application/json (or the binary tensor extension)",
            )
        body = await self._body(scope, receive, headers)
        header = headers.get(b"inference-header-content-length")
        if header is not None and not header.isdigit():
            raise HttpError(400, "Inference-Header-Content-Length must be an integer")
        try:
            inputs, request = decode_v2(body, None if header is None else int(header))
            arrays = current.check(as_matrix(inputs) if current.matrix else inputs)
        except InvalidArgumentError as e:
            raise HttpError(400, str(e)) from None
        outputs = await self._predict(served, current, arrays)
        try:
            out, head = encode_v2(served.name, current.number, outputs, request)
        except BadRequestError as e:
            raise HttpError(400, str(e)) from None
        extra = None
        ctype_out = _JSON
        if head is not None:
            extra = [(b"inference-header-content-length", str(head).encode())]
            ctype_out = b"application/octet-stream"
        await _respond(send, 200, out, ctype_out, extra)

    async def _predict(self, served: ServedModel, current: Version, arrays: Any) -> Any:
        rows = rows_of(arrays)
        try:
            if current.batcher is not None:
                outputs = await current.batcher.submit(arrays, rows)
            else:
                outputs = current.predict(arrays)
        except InvalidArgumentError as e:
            raise HttpError(400, str(e)) from None
        except Exception as e:
            log.exception("%s version %s failed on a request", served.name, current.number)
            raise HttpError(
                500,
                f"model {served.name!r} version {current.number} failed: {type(e).__name__}: {e}",
            ) from None
        served.observe(current, arrays, outputs, rows)
        return outputs

    # -- MLflow scoring -----------------------------------------------------------------

    async def _invocations(
        self, path: str, method: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self._method(method, "POST")
        if path == "/invocations":
            if len(self.models) != 1:
                raise HttpError(
                    400,
                    f"this server serves several models ({sorted(self.models)}): POST to "
                    "/models/NAME/invocations",
                )
            name = next(iter(self.models))
        else:
            name = path[len("/models/") : -len("/invocations")]
        served, current = self._model(name)
        await self._counted(
            "invocations", served, current, self._score(current, served, scope, receive, send)
        )

    async def _score(
        self, current: Version, served: ServedModel, scope: Scope, receive: Receive, send: Send
    ) -> None:
        headers = _headers(scope)
        ctype = _content_type(headers)
        if ctype != _JSON:
            raise HttpError(
                415,
                f"content type {ctype.decode(errors='replace') or '(none)'!r} is not "
                "supported: send application/json",
            )
        body = await self._body(scope, receive, headers)
        try:
            inputs = decode_invocations(body, current.kind, current.names, matrix=current.matrix)
            arrays = current.check(inputs)
        except InvalidArgumentError as e:
            raise HttpError(400, str(e)) from None
        outputs = await self._predict(served, current, arrays)
        await _respond(send, 200, encode_invocations(outputs))


def app_from_env() -> ServeApp:
    """The app factory uvicorn's worker processes call (``--workers N``): the
    config travels in ``SHIPYARD_SERVE_CONFIG`` as JSON."""
    import os

    from shipyard.serve._config import parse_config

    raw = os.environ.get("SHIPYARD_SERVE_CONFIG")
    if not raw:
        raise InvalidArgumentError("SHIPYARD_SERVE_CONFIG is not set (run `shipyard serve`)")
    return ServeApp(parse_config(orjson.loads(raw), source="SHIPYARD_SERVE_CONFIG"))
