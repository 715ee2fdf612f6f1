"""HTTP load on the API: N keep-alive clients POSTing JSON bodies, for a number
of requests or for a time; used by notebook 09, ``bench/`` and the no-loss test.

Raw HTTP/1.1 over asyncio streams, in a process of its own (so it does not
compete with an in-process API for this interpreter's lock): light enough that
the server is the bottleneck (measured here: the same requests/s against a bare
endpoint as wrk, the C load generator).

    python -m queue_exp.course.perf URL --clients 16 --count 1000 [--marker perf]
    python -m queue_exp.course.perf URL --clients 32 --seconds 8
        -> JSON: ok, failed, seconds, rps, latencies_ms, cpu_s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timezone
from typing import Any
from urllib.parse import urlsplit

from queue_exp.config import Settings
from queue_exp.course.perf.cpu import MIN_BROKER_WALL_S
from queue_exp.course.perf.cpu import Stopwatch
from queue_exp.course.perf.latency import percentiles

SEED_BODY = {"message": "Hello Kafka!", "timestamp": "2023-01-01T12:00:00", "source": "load"}

BodyMaker = Callable[[int, int], bytes]  # (client number, request number) -> body


@dataclass
class LoadResult:
    """What came back: the (client, request) numbers that got the expected status,
    how many did not, each successful request's latency, the elapsed time, and
    every reply as (``time.monotonic()`` when sent, status, latency in ms)."""

    acked: list[tuple[int, int]] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    failed: int = 0
    seconds: float = 0.0
    replies: list[tuple[float, int, float]] = field(default_factory=list)
    cpu_s: float = 0.0  # this process's CPU while sending (not its start-up)

    def summary(self) -> dict[str, Any]:
        return {"ok": len(self.acked), "failed": self.failed, "seconds": self.seconds,
                "rps": len(self.acked) / max(self.seconds, 1e-9),
                "latencies_ms": self.latencies_ms, "cpu_s": self.cpu_s}


def marked_body(marker: str, invalid: bool = False) -> BodyMaker:
    """Bodies whose text is ``"<marker> <n> <unix time sent>"`` (see
    :func:`api_end_to_end`); ``invalid``: without the required ``source``."""

    def make(client: int, request: int) -> bytes:
        body = {"message": f"{marker} {client}-{request} {time.time():.6f}",
                "timestamp": datetime.now(timezone.utc).isoformat(), "source": "perf"}
        if invalid:
            del body["source"]
        return json.dumps(body).encode()

    return make


async def drive(
    url: str, clients: int, *, count: int | None = None, seconds: float | None = None,
    make_body: BodyMaker | None = None, expected: int = 200, timeout_s: float = 60.0,
    result: LoadResult | None = None,
) -> LoadResult:
    """``clients`` keep-alive connections POST to ``url`` until ``count`` requests
    were made in all, or for ``seconds`` (at most ``timeout_s``). ``result``: the
    object to fill (another thread may watch it fill)."""
    parts = urlsplit(url)
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n")
    seed = json.dumps(SEED_BODY).encode()
    status = f"HTTP/1.1 {expected}".encode()
    result = result if result is not None else LoadResult()
    deadline = time.monotonic() + min(seconds or timeout_s, timeout_s)
    tickets = iter(range(count if count is not None else 10**12))  # shared: each taken once

    async def client(number: int) -> None:
        try:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        except OSError:  # nobody listens: this client's requests all fail
            result.failed += 1
            return
        try:
            for i, _ticket in enumerate(tickets):
                if time.monotonic() >= deadline:
                    return
                body = make_body(number, i) if make_body else seed
                sent, start = time.monotonic(), time.perf_counter()
                writer.write(head.format(len(body)).encode() + body)
                reply = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                length = int(re.search(rb"(?i)content-length: (\d+)", reply).group(1))
                await reader.readexactly(length)
                latency_ms = 1000 * (time.perf_counter() - start)
                result.replies.append((sent, int(reply[9:12]), latency_ms))
                if reply.startswith(status):
                    result.latencies_ms.append(latency_ms)
                    result.acked.append((number, i))
                else:
                    result.failed += 1
        finally:
            writer.close()

    began, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(client(n) for n in range(clients)))
    result.seconds = time.monotonic() - began
    result.cpu_s = time.process_time() - cpu
    return result


def run_load(url: str, clients: int, *, count: int | None = None, seconds: float | None = None,
             marker: str | None = None, invalid: bool = False,
             timeout_s: float = 60.0) -> dict[str, Any]:
    """:func:`drive` in a process of its own; its JSON summary."""
    command = [sys.executable, "-m", "queue_exp.course.perf", url, "--clients",
               str(clients), "--timeout", str(timeout_s)]
    command += ["--count", str(count)] if count is not None else ["--seconds", str(seconds)]
    command += ["--marker", marker] if marker else []
    command += ["--invalid"] if invalid else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s + 30,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def api_load(
    base_url: str,
    path: str,
    count: int | None = None,
    concurrency: int = 16,
    *,
    seconds: float | None = None,
    marker: str = "perf",
    invalid: bool = False,
    timeout_s: float = 15.0,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """POST ``count`` messages (or as many as fit in ``seconds``) to
    ``base_url + path`` from ``concurrency`` clients (:func:`run_load`). Each
    text carries ``marker`` so that :func:`api_end_to_end` can find them among
    the API's received messages. With ``invalid`` every body lacks a required
    field: the API answers 422 without touching a broker (the HTTP cost alone),
    and 422 counts as ok. The row has requests/s, request latency percentiles
    (send to reply), and CPU of the load generator, of this process (the
    in-process API) and of the broker, in % of one core while the requests ran
    (not while the load generator's process started)."""
    if (count is None) == (seconds is None):
        raise ValueError("give count or seconds")
    with Stopwatch(settings) as watch:
        result = run_load(base_url + path, concurrency, count=count, seconds=seconds,
                          marker=marker, invalid=invalid, timeout_s=timeout_s)
    broker = "kafka" if path.startswith("/kafka") else "rabbitmq"
    latencies = result["latencies_ms"]
    busy = max(result["seconds"], 1e-9)  # the API and the broker idle while it starts up
    broker_s = watch.broker_cpu_s.get(broker)
    return {
        "endpoint": f"POST {path}" + (" (invalid body: 422)" if invalid else ""),
        "clients": concurrency,
        "requests": result["ok"] + result["failed"],
        "ok": result["ok"],
        "failed": result["failed"],
        "seconds": round(result["seconds"], 3),
        "req/s": round(result["rps"]),
        "mean ms": round(sum(latencies) / max(len(latencies), 1), 1),
        **{f"{k} ms": round(v, 1) for k, v in percentiles(latencies).items()},
        "load generator CPU %": round(100 * result["cpu_s"] / busy),
        "API process CPU %": round(100 * watch.client_cpu_s / busy),
        "broker CPU %": None if broker_s is None or busy < MIN_BROKER_WALL_S
        else round(100 * broker_s / busy),
        "latencies_ms": latencies,
    }


def api_end_to_end(messages: Sequence[dict[str, Any]], marker: str) -> list[float]:
    """From ``GET /{broker}/messages`` items: for each message an :func:`api_load`
    run with ``marker`` sent, milliseconds from the client's send to the API
    consumer's ``received_at`` (wall clocks of one machine; ``received_at`` has
    millisecond resolution)."""
    out = []
    for item in messages:
        parts = str(item.get("message", "")).split()
        if len(parts) == 3 and parts[0] == marker and "received_at" in item:
            received = datetime.fromisoformat(item["received_at"]).timestamp()
            out.append(1000 * (received - float(parts[2])))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m queue_exp.course.perf",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=16)
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--count", type=int, help="requests in all")
    amount.add_argument("--seconds", type=float, help="send for this long")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--marker", help="marked bodies (default: the seed message)")
    parser.add_argument("--invalid", action="store_true", help="bodies the API answers with 422")
    args = parser.parse_args(argv)
    make_body = marked_body(args.marker or "load", args.invalid) \
        if args.marker or args.invalid else None
    result = asyncio.run(drive(args.url, args.clients, count=args.count, seconds=args.seconds,
                               make_body=make_body, expected=422 if args.invalid else 200,
                               timeout_s=args.timeout))
    print(json.dumps(result.summary()))
    return 0
