"""Durability (notebook 05): which messages survive a broker restart - only
persistent ones, and only in a durable queue."""

from __future__ import annotations

import time
from typing import Any

from queue_exp import brokers
from queue_exp.config import read_state
from queue_exp.course.rabbitmq.channels import declared_queue
from queue_exp.course.rabbitmq.channels import message_count
from queue_exp.course.rabbitmq.channels import publish
from queue_exp.course.run import Run

DURABILITY_CASES = (
    ("scratch", False, False),
    ("durable-queue-transient-messages", True, False),
    ("durable-queue-persistent-messages", True, True),
)


def prepare_durability(run: Run, count: int = 3) -> list[dict[str, Any]]:
    """Three queues, ``count`` confirmed messages each: a non-durable queue, a durable
    queue with transient messages, a durable queue with persistent messages."""
    rows = []
    for label, durable, persistent in DURABILITY_CASES:
        name = declared_queue(run.name(label), run.settings, durable=durable)
        publish(name, [f"{label} {i}" for i in range(1, count + 1)],
                persistent=persistent, settings=run.settings)
        rows.append({"queue": label, "durable queue": durable,
                     "persistent messages": persistent,
                     "before restart": message_count(name, run.settings)})
    return rows


def restart_rabbitmq(run: Run, timeout_s: float = 120.0) -> dict[str, Any]:
    """Stop the embedded RabbitMQ and start it again on the same ports, keeping its
    data directory (a broker restart, not a fresh install)."""
    before = read_state().get("rabbitmq") or {}
    started = time.monotonic()
    entry = brokers.restart("rabbitmq", timeout_s)
    management_up = run.management.wait_until_up(30)
    return {
        "new process": entry.get("pid") != before.get("pid"),
        "same address": entry.get("url") == before.get("url"),
        "management API back": management_up,
        "took": f"{time.monotonic() - started:.1f} s",
    }


def after_restart(run: Run, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of :func:`prepare_durability` with what is left after the restart."""
    out = []
    for row in rows:
        count = message_count(run.name(row["queue"]), run.settings)
        out.append({**row, "after restart": "queue gone" if count is None else count})
    return out
