"""A cheap HTTP/1.1 load generator for the benchmarks: raw asyncio streams over keep-alive
connections, run in worker processes of its own.

A general-purpose client (httpx) spends several hundred microseconds of Python per request,
which on a small machine is as much as the server under test spends, so it measures itself.
This one writes a prepared request and parses only the status line, the headers it needs
(Content-Length, Transfer-Encoding, Connection) and the body, on uvloop when it is installed.
Each worker process runs its share of the connections in an event loop of its own, so the load
never shares a loop with anything else; all workers start together after a warm-up.

    from http_load import run
    result = run("http://127.0.0.1:8000/api/v1/catalog/ping", headers={"Authorization": "Bearer ..."},
                 requests=4000, concurrency=16, processes=1)
    # {"requests", "errors", "rps", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "seconds", "cpu_s_per_request"}

or from the command line: `.venv/bin/python tests/bench/http_load.py URL -n 4000 -c 16 [-H 'Name: value']`.

`headers` may be a callable returning the headers (called in each worker, again every
`refresh_headers_s`), for headers that expire such as a signed identity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

HeadersArg = Mapping[str, str] | Callable[[], Mapping[str, str]]


class HttpError(Exception):
    pass


def _request_bytes(method: str, host: str, target: str, headers: Mapping[str, str], body: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Status code and whether the server keeps the connection open; the body is consumed."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = -1
    chunked = False
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep_alive = b"close" not in value.lower()
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length >= 0:
        await reader.readexactly(length)
    else:
        await reader.read()  # until close
        keep_alive = False
    return status, keep_alive


async def _worker_main(url: str, headers: HeadersArg, method: str, body: bytes, connections: int,
                       requests: int, warmup: int, refresh_s: float, start_at, results) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    built = {"at": 0.0, "bytes": b""}

    def request() -> bytes:
        now = time.monotonic()
        if not built["bytes"] or (callable(headers) and now - built["at"] > refresh_s):
            h = headers() if callable(headers) else headers
            built["bytes"] = _request_bytes(method, parts.netloc, target, h, body)
            built["at"] = now
        return built["bytes"]

    latencies: list[float] = []
    errors = 0
    remaining = requests

    async def connection(count_warmup: int) -> None:
        nonlocal remaining, errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for _ in range(count_warmup):
                writer.write(request())
                await _read_response(reader)
            await start_gate
            perf = time.perf_counter
            while remaining > 0:
                remaining -= 1
                started = perf()
                writer.write(request())
                try:
                    status, keep_alive = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    status, keep_alive = 0, False
                latencies.append(perf() - started)
                errors += status != 200
                if not keep_alive:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    loop = asyncio.get_running_loop()
    start_gate = loop.create_future()
    tasks = [asyncio.create_task(connection(warmup)) for _ in range(connections)]
    # Everyone warmed up: wait for the other workers, then go together.
    await asyncio.sleep(0)
    await loop.run_in_executor(None, start_at.wait)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    start_gate.set_result(None)
    await asyncio.gather(*tasks)
    results.put({"latencies": latencies, "errors": errors, "started": t0, "finished": time.perf_counter(),
                 "cpu_s": time.process_time() - cpu0})


def _worker(*args) -> None:
    try:
        import uvloop  # type: ignore[import-not-found]
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_worker_main(*args))


def run(url: str, headers: HeadersArg | None = None, *, requests: int = 4000, concurrency: int = 16,
        processes: int = 1, method: str = "GET", body: bytes = b"", warmup_per_connection: int = 5,
        refresh_headers_s: float = 10.0) -> dict:
    """Send `requests` requests over `concurrency` keep-alive connections spread over
    `processes` worker processes; latency percentiles in ms, throughput over the common run."""
    processes = max(1, min(processes, concurrency))
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    barrier = ctx.Barrier(processes + 1)
    workers = []
    for i in range(processes):
        conns = concurrency // processes + (i < concurrency % processes)
        share = requests // processes + (i < requests % processes)
        p = ctx.Process(target=_worker, args=(url, headers or {}, method, body, conns, share,
                                              warmup_per_connection, refresh_headers_s, barrier, results),
                        daemon=True)
        p.start()
        workers.append(p)
    barrier.wait()  # released once every worker has warmed up
    parts = [results.get(timeout=600) for _ in workers]
    for p in workers:
        p.join(30)
    latencies = sorted(x for part in parts for x in part["latencies"])
    seconds = max(p["finished"] for p in parts) - min(p["started"] for p in parts)
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {
        "requests": len(latencies),
        "errors": sum(p["errors"] for p in parts),
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p90_ms": round(q[89] * 1000, 3),
        "p99_ms": round(q[98] * 1000, 3),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
        "seconds": round(seconds, 3),
        "load_cpu_us_per_request": round(sum(p["cpu_s"] for p in parts) / len(latencies) * 1e6, 1),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc), for CPU per request."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _main() -> None:
    parser = argparse.ArgumentParser(description="HTTP/1.1 keep-alive load generator")
    parser.add_argument("url")
    parser.add_argument("-n", "--requests", type=int, default=4000)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("-p", "--processes", type=int, default=1)
    parser.add_argument("-H", "--header", action="append", default=[])
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    print(json.dumps(run(args.url, headers, requests=args.requests, concurrency=args.concurrency,
                         processes=args.processes), indent=2))


if __name__ == "__main__":
    sys.exit(_main())
