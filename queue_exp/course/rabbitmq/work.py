"""A queue hands out work (notebook 05): what was read is gone, unlike a Kafka
topic; competing workers share one queue, and ``prefetch`` decides how fairly."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from queue_exp.clients import kafka
from queue_exp.clients import rabbitmq
from queue_exp.clients.consumers import RabbitConsumerThread
from queue_exp.clients.consumers import start_in_order
from queue_exp.clients.consumers import stop_all
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.course.rabbitmq.channels import declared_queue
from queue_exp.course.rabbitmq.channels import open_channel
from queue_exp.course.rabbitmq.channels import publish
from queue_exp.course.run import Run
from queue_exp.messages import Message
from queue_exp.waiting import wait_until


def read_twice_side_by_side(run: Run, count: int = 5, timeout_s: float = 3.0) -> list[dict]:
    """Write ``count`` messages to a Kafka topic and to a RabbitMQ queue, then read
    each twice with a fresh reader. Rows: broker, what was read the 1st and 2nd time."""
    texts = [f"#{i}" for i in range(1, count + 1)]
    topic = run.topic("read-twice", partitions=1)
    producer = kafka.make_producer(run.settings)
    try:
        for text in texts:
            kafka.send(producer, topic, Message.now(text))
    finally:
        producer.close(timeout=5)
    queue_name = declared_queue(run.name("read-twice"), run.settings)
    publish(queue_name, texts, settings=run.settings)

    # the same bounded read from either broker; each call is a fresh reader
    readers = {
        "Kafka topic": lambda: kafka.consume(
            topic, max_messages=count, timeout_s=timeout_s, settings=run.settings
        ),
        "RabbitMQ queue": lambda: rabbitmq.consume(
            queue_name, max_messages=count, timeout_s=timeout_s, settings=run.settings
        ),
    }

    def shown(messages: list[dict[str, Any]]) -> str:
        return " ".join(m["message"] for m in messages) or "(nothing)"

    rows = []
    for broker, read in readers.items():
        first, second = shown(read()), shown(read())
        rows.append({"read from": broker, "1st read got": first, "2nd read got": second})
    return rows


@dataclass
class WorkRun:
    """One work-queue experiment: who processed which task, and when."""

    prefetch: int | None
    records: list[dict[str, Any]]
    elapsed_s: float

    @property
    def title(self) -> str:
        limit = "no prefetch limit" if self.prefetch is None else f"prefetch_count={self.prefetch}"
        return f"{limit}: all done after {self.elapsed_s:.1f} s"

    def per_worker(self) -> list[dict[str, Any]]:
        """Per worker: tasks done, slow ones among them, and time spent working."""
        rows = []
        for worker in sorted({r["worker"] for r in self.records}):
            mine = [r for r in self.records if r["worker"] == worker]
            rows.append({
                "worker": worker,
                "tasks": sorted(r["task"] for r in mine),
                "slow tasks": sum(r["kind"] == "slow" for r in mine),
                "busy_s": round(sum(r["end_s"] - r["start_s"] for r in mine), 2),
            })
        return rows


def run_work_queue(
    queue_name: str,
    *,
    tasks: int = 10,
    slow_s: float = 0.5,
    fast_s: float = 0.05,
    prefetch: int | None = None,
    workers: int = 2,
    timeout_s: float = 20.0,
    settings: Settings | None = None,
) -> WorkRun:
    """Two (or more) workers compete for ``tasks`` tasks on one queue; odd-numbered
    tasks take ``slow_s`` seconds, even ones ``fast_s``. Each worker acks a task
    when it is done. ``prefetch`` limits how many unacked tasks a worker may hold
    (``None``: no limit, the broker pushes as many as it has)."""
    settings = settings or get_settings()
    declared_queue(queue_name, settings)
    records: list[dict[str, Any]] = []
    t0 = [0.0]

    def on_task(worker, channel, method, props, _body):
        headers = props.headers or {}
        start = time.perf_counter()
        time.sleep(int(headers["work_ms"]) / 1000)  # the "work"
        end = time.perf_counter()
        records.append({
            "task": int(headers["task"]), "kind": headers["kind"], "worker": worker.name,
            "start_s": round(start - t0[0], 3), "end_s": round(end - t0[0], 3),
        })
        channel.basic_ack(method.delivery_tag)  # only now may the broker forget the task

    threads = [
        RabbitConsumerThread(queue_name, on_task, prefetch=prefetch,
                             name=f"worker-{chr(ord('A') + i)}", settings=settings)
        for i in range(workers)
    ]
    start_in_order(threads)
    try:
        t0[0] = time.perf_counter()
        with open_channel(settings) as channel:
            for task in range(1, tasks + 1):
                slow = task % 2 == 1
                rabbitmq.publish(
                    channel, Message.now(f"task {task}", source="producer"), queue_name,
                    persistent=False,
                    headers={"task": task, "kind": "slow" if slow else "fast",
                             # AMQP tables carry no floats pika can encode: milliseconds
                             "work_ms": round(1000 * (slow_s if slow else fast_s))},
                )
        wait_until(lambda: len(records) >= tasks, timeout_s, 0.02)
        elapsed = max(r["end_s"] for r in records)
    finally:
        stop_all(threads)
    return WorkRun(prefetch, sorted(records, key=lambda r: r["task"]), elapsed)
