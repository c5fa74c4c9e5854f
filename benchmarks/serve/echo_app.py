"""The floors of the serving benchmark: servers that do no inference.

    python echo_app.py --port 8080          # echo: a raw ASGI app on uvicorn
    python echo_app.py --port 8080 --null   # null: a bare uvloop protocol, fixed reply

* **echo** reads the whole request body and answers a small JSON, served by
  uvicorn with exactly the settings of Shipyard's inference server (uvloop,
  httptools, no access log, no lifespan): the HTTP cost every server here pays
  before it runs a model.
* **null** parses just enough HTTP/1.1 (head, ``Content-Length``) to answer
  each request with fixed bytes, on one uvloop protocol: nearly free, so its
  requests/s at 16 connections is the load generator's ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, cast

BODY = b'{"predictions":[0.0]}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo floor: read the body, answer ``{"predictions": [0.0]}``."""
    if scope["type"] != "http":
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    _body = b"".join(chunks)  # the whole body, as a server would read it
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


_NULL_REPLY = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(BODY)}\r\n\r\n".encode()
    + BODY
)


class _Null(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15 :].split(b"\r\n", 1)[0]) if i >= 0 else 0
            if len(self.buf) < end + 4 + length:
                return
            del self.buf[: end + 4 + length]
            assert self.transport is not None
            self.transport.write(_NULL_REPLY)


async def _serve_null(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Null, host, port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--null", action="store_true", help="the null server instead of echo")
    args = p.parse_args(argv)
    if args.null:
        import uvloop

        uvloop.run(_serve_null(args.host, args.port))
        return 0
    import uvicorn

    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
