"""Ordering: keyed events, and one of them fails on its first attempt. A Kafka
group on 3 partitions retries it in place; RabbitMQ workers nack it back into
the queue. Which order were the events finished in?"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from queue_exp.course.compare.io import publish
from queue_exp.course.compare.workers import DONE
from queue_exp.course.compare.workers import RETRY
from queue_exp.course.compare.workers import KafkaGroup
from queue_exp.course.compare.workers import RabbitWorkers
from queue_exp.course.kafka import log as kafka_log
from queue_exp.course.kafka.log import produce
from queue_exp.course.run import Run
from queue_exp.waiting import wait_until

# With Kafka's default partitioner (murmur2 of the key) and 3 partitions these
# users land on partitions 0, 2 and 1: one user per partition.
KEYS = ("alice", "carol", "dave")


def _step(text: str) -> tuple[str, int]:
    key, step = text.split(" #")
    return key, int(step)


def in_order_per_key(done: list[str]) -> bool:
    """Did every key's events finish in their step order?"""
    last: dict[str, int] = {}
    for text in done:
        key, step = _step(text)
        if step < last.get(key, 0):
            return False
        last[key] = step
    return True


def retry_one(
    run: Run,
    broker: str,
    consumers: int,
    *,
    rounds: int = 4,
    fail: str = "carol #2",
    work_s: float = 0.02,
    fail_s: float = 1.5,
    timeout_s: float = 20.0,
) -> dict[str, Any]:
    """``rounds`` events per user in :data:`KEYS`, sent interleaved (``alice #1,
    carol #1, dave #1, alice #2, ...``); each takes ``work_s`` to handle. The
    first attempt at ``fail`` fails slowly: it gives up once the user's next
    event has been handled by someone else, or after ``fail_s``, whichever is
    first; the second attempt succeeds.

    ``broker`` ``"Kafka"``: a group of ``consumers`` on a 3-partition topic, the
    failed record retried by seeking back to it. ``"RabbitMQ"``: ``consumers``
    workers (prefetch 1) on one queue, the failed message nacked with requeue."""
    messages = kafka_log.keyed_messages(rounds=rounds, keys=KEYS)
    key, step = _step(fail)
    next_event = f"{key} #{step + 1}"
    attempts: Counter[str] = Counter()
    lock = threading.Lock()
    workers: KafkaGroup | RabbitWorkers

    def handle(_worker: str, item: dict[str, Any]) -> str:
        text = item["message"]
        with lock:
            attempts[text] += 1
            first = attempts[text] == 1
        if text == fail and first:
            try:
                wait_until(lambda: next_event in workers.done_messages(),
                                  timeout_s=fail_s, interval_s=0.01)
            except TimeoutError:
                pass  # nobody else could handle it: the failure took fail_s
            return RETRY
        time.sleep(work_s)
        return DONE

    label = f"orders-{consumers}"
    if broker == "Kafka":
        topic = run.topic(label, partitions=3)
        workers = KafkaGroup(topic, run.group(label), consumers, handle, settings=run.settings)
    else:
        workers = RabbitWorkers(run.queue(label), consumers, handle, prefetch=1,
                                settings=run.settings)
    with workers:
        workers.start()
        if broker == "Kafka":
            produce(topic, messages, settings=run.settings)
        else:
            publish(run.settings, messages, queue=workers.queue_name)
        handled = workers.wait_done(len(messages), timeout_s)
    done = [h["message"] for h in handled if h["outcome"] == DONE]
    sent = [m.message for m in messages]
    retried = [h for h in handled if h["message"] == fail]
    return {
        "broker": broker,
        "consumers": consumers,
        "sent": sent,
        "done": done,
        "handled": handled,
        "each event once": sorted(done) == sorted(sent),
        "each user in order": in_order_per_key(done),
        "send order kept": done == sent,
        "failed event": fail,
        "attempts at it": len(retried),
        "retry flagged redelivered": retried[-1]["redelivered"] if len(retried) > 1 else None,
        "user's next event finished first": done.index(next_event) < done.index(fail),
    }
