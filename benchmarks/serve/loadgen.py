"""A small HTTP/1.1 load generator for loopback benchmarks, in plain Python.

    python loadgen.py --port 8080 --requests req.json --mode seq --n 2000 --seconds 60
    python loadgen.py --port 8080 --requests req.json --mode conc --conns 16 --n 50000 --seconds 10

``req.json`` is ``{"method": "POST", "path": "/invocations", "bodies": ["{...}", ...]}``;
the request bytes are built once and cycled. Prints one JSON object: count,
errors (non-2xx responses and broken connections), the first error's status
and body, p50/p99/mean/max latency in ms, requests/s, and the CPU use (user +
system seconds over wall seconds, timed window only) of this process and, with
``--server-pid``, of the server's process tree: near 1.0 for the generator
means the generator, not the server, was the limit.

* ``seq``: one keep-alive connection on a blocking socket, one request at a
  time, each timed with ``time.perf_counter_ns`` (a blocking socket adds less
  client time to every sample than an event loop would).
* ``conc``: ``--conns`` keep-alive connections on asyncio (uvloop when
  installed), each sending its next request when the last response is in.

Both stop at ``--n`` requests or ``--seconds``, whichever comes first; warm-up
requests (``--warmup``) are not counted. Responses are parsed from the status
line and ``Content-Length`` (chunked bodies are understood too). aiohttp and
httpx are not used: either costs more per request than the servers measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import sys
import time
from typing import Any, cast

_CRLF2 = b"\r\n\r\n"


def build_requests(spec: dict[str, Any], host: str, port: int) -> list[bytes]:
    """The raw request bytes, one per body."""
    method = spec.get("method", "POST")
    path = spec["path"]
    ctype = spec.get("content_type", "application/json")
    bodies = spec.get("bodies") or [""]
    out = []
    for body in bodies:
        raw = body.encode() if isinstance(body, str) else bytes(body)
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        if raw or method not in ("GET", "HEAD"):
            head += f"Content-Type: {ctype}\r\nContent-Length: {len(raw)}\r\n"
        out.append(head.encode() + b"\r\n" + raw)
    return out


def parse_response(buf: bytearray) -> tuple[int, int, int, int] | None:
    """``(status, consumed, body_start, body_end)`` of the first complete response
    in ``buf``, or None when more bytes are needed."""
    end = buf.find(_CRLF2)
    if end < 0:
        return None
    status = int(buf[9:12])
    head = bytes(buf[:end]).lower()
    start = end + 4
    i = head.find(b"\r\ncontent-length:")
    if i >= 0:
        j = head.find(b"\r\n", i + 2)
        length = int(head[i + 17 : j if j >= 0 else len(head)])
        if len(buf) < start + length:
            return None
        return status, start + length, start, start + length
    if b"\r\ntransfer-encoding: chunked" in head:
        return _parse_chunked(buf, status, start)
    if status in (204, 304) or 100 <= status < 200:
        return status, start, start, start
    raise ValueError("response without Content-Length or chunked encoding")


def _parse_chunked(buf: bytearray, status: int, start: int) -> tuple[int, int, int, int] | None:
    pos = start
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n", pos)  # no trailers expected: one blank line
            if trailer_end < 0:
                return None
            return status, trailer_end + 2, start, pos
        if len(buf) < pos + size + 2:
            return None
        pos += size + 2


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of sorted nanoseconds, in ms."""
    if not sorted_ns:
        return float("nan")
    k = max(0, min(len(sorted_ns) - 1, round(q / 100.0 * len(sorted_ns) + 0.5) - 1))
    return sorted_ns[k] / 1e6


class _Stats:
    def __init__(self) -> None:
        self.latencies: list[int] = []
        self.errors = 0
        self.first_error: dict[str, Any] | None = None

    def record(self, status: int, body: bytes, elapsed_ns: int) -> None:
        self.latencies.append(elapsed_ns)
        if not 200 <= status < 300:
            self.error(status, body)

    def error(self, status: int | None, body: bytes | str) -> None:
        self.errors += 1
        if self.first_error is None:
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            self.first_error = {"status": status, "body": text[:500]}

    def result(self, wall_s: float, cpu_s: float, server_s: float | None) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "count": len(lat),
            "errors": self.errors,
            "first_error": self.first_error,
            "wall_s": wall_s,
            "rps": len(lat) / wall_s if wall_s > 0 else 0.0,
            "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99),
            "mean_ms": sum(lat) / len(lat) / 1e6 if lat else float("nan"),
            "max_ms": lat[-1] / 1e6 if lat else float("nan"),
            "cpu": cpu_s / wall_s if wall_s > 0 else 0.0,
            "cpu_server": None if server_s is None or wall_s <= 0 else server_s / wall_s,
        }


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of process ``root`` and its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += [c for c, p in parent.items() if p == pid]
    return total


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _exchange(sock: socket.socket, req: bytes, buf: bytearray) -> tuple[int, bytes]:
    sock.sendall(req)
    while True:
        parsed = parse_response(buf)
        if parsed is not None:
            status, used, b0, b1 = parsed
            body = bytes(buf[b0:b1])
            del buf[:used]
            return status, body
        chunk = sock.recv(262144)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk


def run_sequential(
    host: str,
    port: int,
    reqs: list[bytes],
    n: int,
    seconds: float,
    warmup: int,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """One connection, one request at a time."""
    stats = _Stats()
    sock = _connect(host, port)
    buf = bytearray()
    warm_deadline = time.perf_counter() + max(1.0, seconds / 4)
    for i in range(warmup):
        if time.perf_counter() > warm_deadline:
            break
        _exchange(sock, reqs[i % len(reqs)], buf)
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    server0 = tree_cpu_s(server_pid) if server_pid else 0.0
    cpu0, t0 = _cpu_s(), clock()
    try:
        for i in range(n):
            if clock() > deadline:
                break
            start = clock()
            try:
                status, body = _exchange(sock, reqs[i % len(reqs)], buf)
            except (OSError, ValueError) as e:
                stats.error(None, f"{type(e).__name__}: {e}")
                sock.close()
                sock, buf = _connect(host, port), bytearray()
                continue
            stats.record(status, body, clock() - start)
    finally:
        wall = (clock() - t0) / 1e9
        cpu = _cpu_s() - cpu0
        server = tree_cpu_s(server_pid) - server0 if server_pid else None
        sock.close()
    return stats.result(wall, cpu, server)


class _Client(asyncio.Protocol):
    """One keep-alive connection; ``request`` resolves to ``(status, body)``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None:
            return
        try:
            parsed = parse_response(self.buf)
        except ValueError as e:
            self.waiter.set_exception(e)
            self.waiter = None
            return
        if parsed is not None:
            status, used, b0, b1 = parsed
            body = bytes(self.buf[b0:b1])
            del self.buf[:used]
            waiter, self.waiter = self.waiter, None
            waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))
            self.waiter = None

    def request(self, req: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(req)
        return self.waiter


async def _open(host: str, port: int) -> _Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(_Client, host, port)
    return client


async def _concurrent(
    host: str,
    port: int,
    reqs: list[bytes],
    conns: int,
    n: int,
    seconds: float,
    warmup: int,
    server_pid: int | None,
) -> dict[str, Any]:
    stats = _Stats()
    clients = [await _open(host, port) for _ in range(conns)]
    for i, c in enumerate(clients):  # warm every connection, untimed
        for k in range(max(1, warmup // conns)):
            await c.request(reqs[(i + k) % len(reqs)])
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    issued = 0

    async def drive(client: _Client, offset: int) -> None:
        nonlocal issued
        i = offset
        while issued < n and clock() < deadline:
            issued += 1
            if client.closed:
                try:
                    client = await _open(host, port)
                except OSError as e:
                    stats.error(None, f"reconnect failed: {e}")
                    return
            start = clock()
            try:
                status, body = await client.request(reqs[i % len(reqs)])
            except (OSError, ValueError) as e:
                stats.error(None, f"{type(e).__name__}: {e}")
                continue
            stats.record(status, body, clock() - start)
            i += 1

    server0 = tree_cpu_s(server_pid) if server_pid else 0.0
    cpu0, t0 = _cpu_s(), clock()
    await asyncio.gather(*(drive(c, k) for k, c in enumerate(clients)))
    wall = (clock() - t0) / 1e9
    cpu = _cpu_s() - cpu0
    server = tree_cpu_s(server_pid) - server0 if server_pid else None
    for c in clients:
        if c.transport is not None:
            c.transport.close()
    return stats.result(wall, cpu, server)


def run_concurrent(
    host: str,
    port: int,
    reqs: list[bytes],
    conns: int,
    n: int,
    seconds: float,
    warmup: int,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """``conns`` connections, each sending its next request as soon as it has an answer."""
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result: dict[str, Any] = runner(
        _concurrent(host, port, reqs, conns, n, seconds, warmup, server_pid)
    )
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--requests", required=True, help="JSON file: method, path, bodies")
    p.add_argument("--mode", choices=("seq", "conc"), default="seq")
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--n", type=int, default=2000, help="at most this many timed requests")
    p.add_argument("--seconds", type=float, default=30.0, help="and at most this long")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    p.add_argument(
        "--server-pid", type=int, default=None, help="also report this process tree's CPU use"
    )
    args = p.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    with open(args.requests) as f:
        spec = json.load(f)
    reqs = build_requests(spec, args.host, args.port)
    if args.mode == "seq":
        out = run_sequential(
            args.host, args.port, reqs, args.n, args.seconds, args.warmup, args.server_pid
        )
    else:
        out = run_concurrent(
            args.host,
            args.port,
            reqs,
            args.conns,
            args.n,
            args.seconds,
            args.warmup,
            args.server_pid,
        )
    out.update(mode=args.mode, conns=1 if args.mode == "seq" else args.conns)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
