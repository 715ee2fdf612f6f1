"""Who is busy during a measurement: a :class:`Stopwatch` records wall time, the
CPU time of this process (the Python client, and an in-process API) and of each
broker process tree the launcher started here, and makes the row a throughput
run reports."""

from __future__ import annotations

import os
import time
from typing import Any

from queue_exp import brokers
from queue_exp.brokers import procs
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.config import read_state

# /proc counts a process's CPU in clock ticks (10 ms at the usual 100 Hz), so a
# figure taken over a run of 20 ticks may be off by 2 ticks either way: 10 %.
# Shorter runs get no broker figure rather than a wrong one ("0 %").
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
MIN_BROKER_WALL_S = 20 * TICK_S


def broker_pids(settings: Settings | None = None) -> dict[str, int]:
    """The process ids of the brokers the launcher started here (by name), if the
    settings point at them. External brokers (Docker, a teacher's) are not ours
    to measure: they are left out."""
    settings = settings or get_settings()
    state = read_state()
    addresses = {"kafka": settings.kafka_bootstrap_servers, "rabbitmq": settings.rabbitmq_url}
    pids = {}
    for name, address in addresses.items():
        entry = state.get(name) or {}
        ours = entry.get("bootstrap_servers", entry.get("url")) == address
        if entry.get("managed") and ours and procs.pid_alive(entry.get("pid")):
            pids[name] = int(entry["pid"])
    return pids


class Stopwatch:
    """Measure a ``with`` block: wall seconds, CPU seconds of this process (all
    its threads: the client libraries' I/O threads, an in-process API) and of
    each local broker. ``percent()`` gives CPU as % of one core."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.pids = broker_pids(settings)
        self.wall_s = 0.0
        self.client_cpu_s = 0.0
        self.broker_cpu_s: dict[str, float] = {}

    def _sample(self) -> tuple[float, float, dict[str, float | None]]:
        brokers_cpu = {name: procs.cpu_seconds(pid) for name, pid in self.pids.items()}
        return time.perf_counter(), time.process_time(), brokers_cpu

    def __enter__(self) -> Stopwatch:
        self._start = self._sample()
        return self

    def __exit__(self, *_exc: object) -> None:
        wall, cpu, used = self._sample()
        wall0, cpu0, used0 = self._start
        self.wall_s = wall - wall0
        self.client_cpu_s = cpu - cpu0
        # a broker that stopped or restarted during the block has no figure
        self.broker_cpu_s = {
            name: used[name] - used0[name] for name in self.pids
            if used[name] is not None and used0[name] is not None and used[name] >= used0[name]
        }

    def percent(self, broker: str | None = None) -> dict[str, float | None]:
        """CPU use during the block, in % of one core (200 % = both cores of
        a 2-core machine): this process, and ``broker`` (or every local broker).
        A broker's figure is ``None`` for a block shorter than
        ``MIN_BROKER_WALL_S`` (too few clock ticks to count)."""
        wall = max(self.wall_s, 1e-9)
        out: dict[str, float | None] = {"client CPU %": round(100 * self.client_cpu_s / wall)}
        names = [broker] if broker else sorted(brokers.BROKERS)
        for name in names:
            used = self.broker_cpu_s.get(name) if self.wall_s >= MIN_BROKER_WALL_S else None
            label = "broker CPU %" if broker else f"{_BROKER_NAMES[name]} CPU %"
            out[label] = None if used is None else round(100 * used / wall)
        return out


_BROKER_NAMES = {"kafka": "Kafka", "rabbitmq": "RabbitMQ"}


def row(broker: str, what: str, done: int, nbytes: int, watch: Stopwatch,
         **extra: Any) -> dict[str, Any]:
    seconds = max(watch.wall_s, 1e-9)
    return {
        "broker": _BROKER_NAMES[broker],
        "what": what,
        "messages": done,
        "seconds": round(watch.wall_s, 3),
        "msg/s": round(done / seconds),
        "MB/s": round(nbytes / seconds / 1e6, 2),
        **watch.percent(broker),
        **extra,
    }
