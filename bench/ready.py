"""brokers_ready_s: seconds from `python -m queue_exp brokers up` (both brokers
stopped, jars already downloaded) until both accept clients, in a private home."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from queue_exp import brokers


def brokers_ready_seconds(timeout_s: float = 180) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-ready-") as home:
        env = brokers.private_env(Path(home))  # the jars are there: measure the start
        cli = [sys.executable, "-m", "queue_exp", "brokers"]
        began = time.perf_counter()
        up = subprocess.run([*cli, "up"], env=env, capture_output=True, text=True,
                            timeout=timeout_s)
        took = time.perf_counter() - began
        subprocess.run([*cli, "down"], env=env, capture_output=True, timeout=120)
        if up.returncode != 0 or "already reachable" in up.stdout:
            raise RuntimeError(f"brokers up did not start both brokers:\n{up.stdout}{up.stderr}")
        return took
