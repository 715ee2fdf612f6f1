"""brokers_ready_s: seconds from `python -m queue_exp brokers up` (both brokers
stopped, jars already downloaded) until both accept clients, in a private home."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from queue_exp.config import get_settings


def brokers_ready_seconds(timeout_s: float = 180) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-ready-") as home:
        libs = next((get_settings().home / "kafka").glob("libs-*"), None)
        if libs is not None:  # measure the start, not Maven's download
            (Path(home) / "kafka").mkdir()
            (Path(home) / "kafka" / libs.name).symlink_to(libs)
        env = {k: v for k, v in os.environ.items()
               if k not in ("KAFKA_BOOTSTRAP_SERVERS", "RABBITMQ_URL")}
        env["QUEUE_EXP_HOME"] = home
        cli = [sys.executable, "-m", "queue_exp", "brokers"]
        began = time.perf_counter()
        up = subprocess.run([*cli, "up"], env=env, capture_output=True, text=True,
                            timeout=timeout_s)
        took = time.perf_counter() - began
        subprocess.run([*cli, "down"], env=env, capture_output=True, timeout=120)
        if up.returncode != 0 or "already reachable" in up.stdout:
            raise RuntimeError(f"brokers up did not start both brokers:\n{up.stdout}{up.stderr}")
        return took
