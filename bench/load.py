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
from urllib.parse import urlsplit

BODY = {"message": "Hello Kafka!", "timestamp": "2023-01-01T12:00:00", "source": "bench"}


def requests_per_second(url: str, clients: int, seconds: float) -> dict:
    """Successful requests per second against ``url`` (and how many failed)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.load", url, str(clients), str(seconds)],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )
    return json.loads(out.stdout)


async def _load(url: str, clients: int, seconds: float) -> dict:
    parts = urlsplit(url)
    body = json.dumps(BODY).encode()
    request = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
    ok = failed = 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal ok, failed
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.monotonic() < deadline:
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
                await reader.readexactly(length)
                if head.startswith(b"HTTP/1.1 2"):
                    ok += 1
                else:
                    failed += 1
        finally:
            writer.close()

    began = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return {"rps": ok / (time.monotonic() - began), "failed": failed}


if __name__ == "__main__":
    target, n, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(asyncio.run(_load(target, n, duration))))
