"""Running the app: uvicorn on uvloop and httptools when they are installed.

The listening socket is bound here, before uvicorn starts, so ``--port 0``
works (the OS picks a free port) and the address printed is the real one;
with ``--workers N`` the workers share that socket and their counters go
through prometheus_client's multiprocess mode.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from shipyard.errors import InvalidArgumentError
from shipyard.serve._config import ServeConfig

__all__ = ["bind", "serve"]

log = logging.getLogger("shipyard.serve")


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: the header and body writes of a response
    # must not wait on Nagle's algorithm for the peer's delayed ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InvalidArgumentError(
            f"cannot listen on {host}:{port}: {e.strerror}; pick another --port (0: any free)"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config: ServeConfig, *, announce: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM stop it gracefully)."""
    try:
        import uvicorn
    except ImportError:
        raise InvalidArgumentError(
            "shipyard serve needs uvicorn, orjson and prometheus-client: "
            "pip install 'shipyard[serve]'"
        ) from None
    if not logging.getLogger("shipyard").handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logging.getLogger("shipyard").addHandler(handler)
        logging.getLogger("shipyard").setLevel(logging.INFO)
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    options: dict[str, Any] = {
        "loop": "uvloop" if _available("uvloop") else "asyncio",
        "http": "httptools" if _available("httptools") else "h11",
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 10,
    }
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    if config.workers == 1:
        from shipyard.serve._app import ServeApp

        server = uvicorn.Server(uvicorn.Config(ServeApp(config), lifespan="on", **options))
        if announce is not None:
            announce(url)
        server.run(sockets=[sock])
        return
    if announce is not None:
        announce(url)
    with tempfile.TemporaryDirectory(prefix="shipyard-serve-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        os.environ["SHIPYARD_SERVE_CONFIG"] = config.model_dump_json()
        os.environ["SHIPYARD_SERVE_WORKERS"] = str(config.workers)
        uvicorn.run(
            "shipyard.serve._app:app_from_env",
            factory=True,
            fd=sock.fileno(),
            workers=config.workers,
            lifespan="on",
            **options,
        )
