"""Acknowledgements (notebooks 05 and 06): a worker process killed mid-task loses
the task with ``auto_ack`` and gives it back with manual acks; a consumer that
forgets to ack piles up unacked messages until it leaves.

The killed worker is a real process, this package run as
``python -m queue_exp.course.rabbitmq stuck-worker QUEUE`` (see :func:`main`).
"""

from __future__ import annotations

import argparse
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from queue_exp.clients import rabbitmq
from queue_exp.clients.consumers import RabbitConsumerThread
from queue_exp.clients.consumers import start_in_order
from queue_exp.clients.consumers import stop_all
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.course.rabbitmq.channels import declared_queue
from queue_exp.course.rabbitmq.channels import message_count
from queue_exp.course.rabbitmq.channels import publish
from queue_exp.course.run import Run
from queue_exp.messages import decode_lenient

# ------------------------------------------------------ a worker dies mid-task


def first_line(proc: subprocess.Popen, timeout_s: float) -> str | None:
    """The child's first stdout line, or None if it exits or stays silent."""
    deadline = time.monotonic() + timeout_s
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return None
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                return None
            buffer += chunk
    return buffer.split(b"\n", 1)[0].decode()


def kill_worker_mid_task(
    queue_name: str,
    *,
    count: int = 1,
    auto_ack: bool = False,
    settings: Settings | None = None,
    timeout_s: float = 15.0,
) -> list[str]:
    """Start a worker *process* that takes ``count`` messages and starts working on
    them, then kill it (SIGKILL) before it acks anything. Returns what it took."""
    settings = settings or get_settings()
    args = [sys.executable, "-m", "queue_exp.course.rabbitmq", "stuck-worker", queue_name,
            "--count", str(count)] + (["--auto-ack"] if auto_ack else [])
    env = {**os.environ, "RABBITMQ_URL": settings.rabbitmq_url}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    try:
        line = first_line(proc, timeout_s)
    finally:
        proc.kill()  # the crash: no ack, no clean goodbye
        _out, err = proc.communicate(timeout=10)
    if not line or not line.startswith("took "):
        raise RuntimeError(f"the worker process took nothing from {queue_name!r}: "
                           f"{err.decode(errors='replace')[-500:]}")
    return line.removeprefix("took ").split("|") if line != "took " else []


def _stuck_worker(queue_name: str, count: int, auto_ack: bool, work_s: float = 60.0) -> int:
    """The worker process of :func:`kill_worker_mid_task`: take ``count`` messages,
    say which, then "work" (never ack) until killed, or at most ``work_s``."""
    connection = rabbitmq.connect()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=count)
    taken: list[str] = []
    deadline = time.monotonic() + 10
    for method, _props, body in channel.consume(queue_name, auto_ack=auto_ack,
                                                  inactivity_timeout=0.2):
        if method is not None:
            taken.append(decode_lenient(body).get("message", "?"))
        if len(taken) >= count or time.monotonic() > deadline:
            break
    sys.stdout.write("took " + "|".join(taken) + "\n")
    sys.stdout.flush()
    end = time.monotonic() + work_s
    while time.monotonic() < end:
        connection.process_data_events(time_limit=0.5)  # heartbeats while "working"
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m queue_exp.course.rabbitmq stuck-worker QUEUE [--count N] [--auto-ack]``:
    the worker process that :func:`kill_worker_mid_task` starts and kills."""
    parser = argparse.ArgumentParser(prog="python -m queue_exp.course.rabbitmq")
    sub = parser.add_subparsers(dest="command", required=True)
    stuck = sub.add_parser("stuck-worker", help="take messages, never ack, wait to be killed")
    stuck.add_argument("queue")
    stuck.add_argument("--count", type=int, default=1)
    stuck.add_argument("--auto-ack", action="store_true")
    stuck.add_argument("--work-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    return _stuck_worker(args.queue, args.count, args.auto_ack, args.work_s)


def crash_mid_task(
    queue_name: str, *, auto_ack: bool, task: str = "resize photo 42",
    settings: Settings | None = None,
) -> dict[str, Any]:
    """One task; worker 1 (a process) takes it and is killed mid-task; worker 2
    then asks the queue for work. Returns what each of them saw."""
    settings = settings or get_settings()
    declared_queue(queue_name, settings)
    publish(queue_name, [task], settings=settings)
    taken = kill_worker_mid_task(queue_name, auto_ack=auto_ack, settings=settings)
    second = rabbitmq.consume(queue_name, max_messages=1, timeout_s=2, settings=settings)
    return {
        "acks": "auto_ack=True" if auto_ack else "manual basic_ack",
        "killed worker 1 had": ", ".join(taken),
        "worker 2 got": second[0]["message"] if second else "(nothing)",
        "redelivered": second[0]["redelivered"] if second else None,
        "left in queue": message_count(queue_name, settings),
    }


# ----------------------------------------------------------- a forgotten ack


@dataclass
class ForgottenAck:
    timeline: list[dict[str, Any]]
    reread: list[dict[str, Any]] = field(default_factory=list)


def forgotten_ack(
    run: Run, queue_name: str, batches: Sequence[int] = (3, 3), timeout_s: float = 15.0,
    hold_s: float = 0.0,
) -> ForgottenAck:
    """A consumer that never acks while messages arrive in ``batches``; the queue's
    counters (from the management API) after each step; then it disconnects and a
    new consumer reads everything again. Each step lasts at least ``hold_s``, so that
    a person watching the management UI (which refreshes every few seconds) sees it."""
    settings, management = run.settings, run.management
    declared_queue(queue_name, settings)
    received: list[str] = []

    def forget(_worker, _channel, _method, _props, body):
        received.append(decode_lenient(body).get("message", "?"))  # ...and no basic_ack

    timeline = []

    def snapshot(step: str, **expected: int) -> None:
        counters = management.wait_for_counters(queue_name, timeout_s, **expected)
        timeline.append({"step": step, **counters})
        time.sleep(hold_s)  # pacing for the person watching, not for the broker

    consumer = RabbitConsumerThread(queue_name, forget, name="forgetful", settings=settings)
    start_in_order([consumer])
    try:
        snapshot("forgetful consumer connected", ready=0, unacked=0, consumers=1)
        sent = 0
        for size in batches:
            publish(queue_name, [f"job {sent + i + 1}" for i in range(size)], settings=settings)
            sent += size
            snapshot(f"{size} published ({sent} in total)", ready=0, unacked=sent, consumers=1)
    finally:
        stop_all([consumer])
    snapshot("consumer disconnected", ready=sent, unacked=0, consumers=0)
    reread = rabbitmq.consume(queue_name, max_messages=sent, timeout_s=5, settings=settings)
    snapshot("a new consumer read and acked them", ready=0, unacked=0, consumers=0)
    return ForgottenAck(timeline, reread)
