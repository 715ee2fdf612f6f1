"""HTTP load: N concurrent keep-alive clients POSTing the seed body for a fixed time.

Raw HTTP/1.1 over asyncio streams in a process of its own: light enough that the
server is the bottleneck (measured here: the same req/s against a bare endpoint
as wrk, the C load generator, about 5,500/s).

    python -m bench.load URL CLIENTS SECONDS   -> {"rps": ..., "failed": ...}
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

BODY = {"message": "Hello Kafka!", "timestamp": "2023-01-01T12:00:00", "source": "bench"}


def requests_per_second(url: str, clients: int, seconds: float) -> dict:
    """Successful requests per second against ``url`` (and how many failed)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.load", url, str(clients), str(seconds)],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )
    return json.loads(out.stdout)


async def drive(
    url: str, clients: int, seconds: float,
    make_body: Callable[[int, int], bytes] | None = None, max_per_client: int = 10**9,
) -> tuple[list[tuple[int, int]], int, float]:
    """``clients`` keep-alive connections each POST for ``seconds`` (at most
    ``max_per_client`` requests). Returns the (client, request) numbers that got a
    2xx, how many did not, and the elapsed time. ``make_body(client, request)``
    gives each body (default: the seed message)."""
    parts = urlsplit(url)
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n")
    seed = json.dumps(BODY).encode()
    acked: list[tuple[int, int]] = []
    failed = 0
    deadline = time.monotonic() + seconds

    async def client(number: int) -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for i in range(max_per_client):
                if time.monotonic() >= deadline:
                    return
                body = make_body(number, i) if make_body else seed
                writer.write(head.format(len(body)).encode() + body)
                reply = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                length = int(re.search(rb"(?i)content-length: (\d+)", reply).group(1))
                await reader.readexactly(length)
                if reply.startswith(b"HTTP/1.1 2"):
                    acked.append((number, i))
                else:
                    failed += 1
        finally:
            writer.close()

    began = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return acked, failed, time.monotonic() - began


async def _load(url: str, clients: int, seconds: float) -> dict:
    acked, failed, elapsed = await drive(url, clients, seconds)
    return {"rps": len(acked) / elapsed, "failed": failed}


if __name__ == "__main__":
    target, n, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(asyncio.run(_load(target, n, duration))))
