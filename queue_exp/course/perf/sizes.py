"""Message bodies of a given size (compressible like real events, the same bytes
every run), and throughput per message size on both brokers."""

from __future__ import annotations

import random
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from datetime import datetime
from datetime import timezone
from typing import Any

from queue_exp.clients import kafka_admin
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.messages import Message
from queue_exp.messages import encode

Progress = Callable[..., Iterable[Any]]

_WORDS = (
    "order shipped customer payment invoice warehouse parcel delayed refund "
    "accepted rejected pending retry account balance update created deleted "
    "queue topic partition offset consumer producer broker message event stream "
    "alpha beta gamma delta north south east west red green blue small large"
).split()


def make_bodies(count: int, size: int, seed: int = 9) -> list[bytes]:
    """``count`` encoded messages of about ``size`` bytes each: JSON whose text is
    made of common words and numbers (compressible like real events, unlike
    random bytes; seeded, so every run sends the same bytes)."""
    rng = random.Random(seed)
    pool_words = [
        rng.choice(_WORDS) if rng.random() < 0.8 else str(rng.randrange(100_000))
        for _ in range(max(2000, 3 * size // 5))
    ]
    pool = " ".join(pool_words)
    stamp = datetime(2025, 1, 1, tzinfo=timezone.utc)
    overhead = len(encode(Message(message="", timestamp=stamp, source="perf")))
    text_len = max(1, size - overhead)
    bodies = []
    for i in range(count):
        start = rng.randrange(max(1, len(pool) - text_len))
        text = f"#{i} " + pool[start:start + text_len]
        bodies.append(encode(Message(message=text[:text_len], timestamp=stamp, source="perf")))
    return bodies


def size_sweep(
    topic_of: Callable[[int], str],
    queue: str,
    sizes: Sequence[int] = (100, 1_000, 10_000, 60_000),
    *,
    seconds: float = 0.5,
    pool_bytes: int = 2_000_000,
    progress: Progress | None = None,
    timeout_s: float = 15.0,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Per message size: send messages of that size for ``seconds`` to a topic
    of its own (``topic_of(size)``), read that topic for ``seconds``, publish
    them for ``seconds`` to ``queue``, then consume every message the queue got.
    The bodies are a pool of about ``pool_bytes`` bytes, sent over and over.
    ``queue`` must exist and have no consumer. Rows: size, broker, direction,
    messages, seconds, msg/s, MB/s, CPU, for Kafka's producer the records per
    request, and whether everything sent arrived (and was read, on RabbitMQ)."""
    settings = settings or get_settings()
    from queue_exp.course.perf.kafka import kafka_consume
    from queue_exp.course.perf.kafka import kafka_produce
    from queue_exp.course.perf.rabbitmq import rabbit_consume
    from queue_exp.course.perf.rabbitmq import rabbit_publish

    rows = []
    for size in progress(sizes, desc="message sizes") if progress else sizes:
        bodies = make_bodies(max(10, pool_bytes // size), size)
        topic = topic_of(size)
        kafka_admin.create_topic(topic, 1, settings=settings)
        timed = {"seconds": seconds, "timeout_s": timeout_s, "settings": settings}
        runs = [kafka_produce(topic, bodies, what="send", **timed),
                kafka_consume(topic, what="receive", **timed),  # the log, over and over
                rabbit_publish(queue, bodies, what="send", **timed)]
        runs.append(rabbit_consume(queue, runs[-1]["messages"], what="receive",
                                   timeout_s=timeout_s, settings=settings))
        for run in runs:
            rows.append({
                "size B": size,
                **{k: run[k] for k in ("broker", "what", "messages", "seconds", "msg/s", "MB/s",
                                       "client CPU %", "broker CPU %")},
                "records per request": run.get("records per request"),
                # everything sent reached the broker / everything published was read
                "complete": run.get("all acknowledged", run.get("all arrived",
                                                                run.get("all read"))),
            })
    return rows
