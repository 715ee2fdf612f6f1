"""Several consumers on the same data: sharing the work (a consumer group, a
share group, or competing consumers on a queue), scaling past the partition
count, and fan-out (two groups vs a fanout exchange with two queues)."""

from __future__ import annotations

import threading
import time
from typing import Any

from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.course.compare.io import numbered
from queue_exp.course.compare.io import publish
from queue_exp.course.compare.io import read_queue
from queue_exp.course.compare.workers import DONE
from queue_exp.course.compare.workers import KafkaGroup
from queue_exp.course.compare.workers import RabbitWorkers
from queue_exp.course.compare.workers import ShareGroup
from queue_exp.course.kafka import log as kafka_log
from queue_exp.course.kafka.log import produce
from queue_exp.course.run import Run

KAFKA = "Kafka"
KAFKA_SHARE = "Kafka share group"
RABBITMQ = "RabbitMQ"
BROKERS = (KAFKA, KAFKA_SHARE, RABBITMQ)


def split_work(
    run: Run,
    broker: str,
    consumers: int,
    count: int = 300,
    work_s: float = 0.004,
    partitions: int = 3,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """``consumers`` consumers share ``count`` tasks of ``work_s`` seconds each:
    one Kafka consumer group (``broker="Kafka"``) or share group (``"Kafka share
    group"``, each fetch taking one record) on a topic of ``partitions``
    partitions (tasks spread evenly over them), or competing workers (prefetch 1)
    on one RabbitMQ queue.

    The clock starts once every task is stored and every consumer is ready (the
    consumers wait at a gate until then) and stops when the last task is done.
    Returns per-consumer counts, how many were busy, whether every task was done
    exactly once, and the seconds it took."""
    tasks = numbered(count)
    gate = threading.Event()

    def work(_worker: str, _item: dict[str, Any]) -> str:
        gate.wait(timeout_s)  # hold the first message until every task is stored
        time.sleep(work_s)  # the "work": I/O-like, so threads really overlap
        return DONE

    label = f"work-{consumers}" if broker != KAFKA_SHARE else f"share-work-{consumers}"
    workers: KafkaGroup | ShareGroup | RabbitWorkers
    if broker == KAFKA:
        topic = run.topic(label, partitions=partitions)
        workers = KafkaGroup(topic, run.group(label), consumers, work, settings=run.settings)
    elif broker == KAFKA_SHARE:
        topic = run.topic(label, partitions=partitions)
        workers = ShareGroup(topic, run.group(label), consumers, work, settings=run.settings)
    elif broker == RABBITMQ:
        workers = RabbitWorkers(run.queue(label), consumers, work, prefetch=1,
                                settings=run.settings)
    else:
        raise ValueError(f"broker is one of {BROKERS}")
    with workers:
        workers.start()
        if broker != RABBITMQ:
            # a share consumer is handed a whole batch of records at a time, however
            # few it asked for: with one batch per task, each member takes one
            produce(topic, tasks, spread=True, one_at_a_time=broker == KAFKA_SHARE,
                    settings=run.settings)
        else:
            publish(run.settings, tasks, queue=workers.queue_name)
        started = workers.clock()
        gate.set()
        handled = workers.wait_done(count, timeout_s)
        assignment = workers.assignment() if broker != RABBITMQ else None
    done = [h for h in handled if h["outcome"] == DONE]
    per_consumer = workers.per_worker()
    return {
        "broker": broker,
        "consumers": consumers,
        "per consumer": per_consumer,
        "busy": sum(row["messages"] > 0 for row in per_consumer),
        "each task once": sorted(h["message"] for h in done)
        == sorted(t.message for t in tasks),
        "seconds": round(max(h["t"] for h in done) - started, 3),
        "assignment": assignment,
    }


def fan_out(run: Run, count: int = 1000, timeout_s: float = 20.0) -> dict[str, Any]:
    """Two subscribers that exist before ``count`` messages are sent, one that
    turns up after: Kafka consumer groups on one topic vs queues bound to a
    fanout exchange. Returns a row per subscriber (what each got) and how many
    messages each broker holds for them."""
    messages = numbered(count)
    early, late = ("billing", "audit"), "late"

    # Kafka: one single-consumer group per subscriber, joined before the send
    topic = run.topic("news", partitions=3)
    groups = [KafkaGroup(topic, run.group(name), 1, settings=run.settings) for name in early]
    try:
        for group in groups:
            group.start()
        produce(topic, messages, spread=True, settings=run.settings)
        kafka_got = {}
        for name, group in zip(early, groups, strict=True):
            group.wait_done(count, timeout_s)
            kafka_got[name] = len(group.done_messages())
    finally:
        for group in groups:
            group.close()
    kafka_got[late] = len(kafka_log.read_to_end(
        topic, group_id=run.group(late), timeout_s=timeout_s, settings=run.settings))
    kafka_stored = sum(r["records"] for r in kafka_admin.log_offsets(topic, run.settings))

    # RabbitMQ: a queue per subscriber, bound to the exchange before the send
    queues = {name: run.queue(f"news-{name}") for name in early}
    exchange = run.exchange("news", "fanout", bind=queues.values())
    publish(run.settings, messages, exchange=exchange)
    rabbit_stored = sum(rabbitmq.ready_count(q, run.settings) for q in queues.values())
    queues[late] = run.queue(f"news-{late}")
    run.exchange("news", "fanout", bind=[queues[late]])  # bound only now, after the send
    rabbit_got = {name: len(read_queue(run.settings, q, max_messages=count, timeout_s=timeout_s))
                  for name, q in queues.items()}

    rows = [
        {"subscriber": name, "set up": "after the send" if name == late else "before the send",
         "Kafka: consumer group got": kafka_got[name],
         "RabbitMQ: queue on a fanout exchange got": rabbit_got[name]}
        for name in (*early, late)
    ]
    stored = {KAFKA: kafka_stored, RABBITMQ: rabbit_stored}
    return {"rows": rows, "stored": stored}
