"""Kafka throughput (notebook 09): produce as fast as the client can, consume
from the beginning, and how batching, linger and compression change both."""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.course.perf.cpu import Stopwatch
from queue_exp.course.perf.cpu import row
from queue_exp.course.perf.sizes import Progress


def kafka_produce(
    topic: str,
    bodies: Sequence[bytes],
    *,
    what: str = "produce",
    timeout_s: float = 20.0,
    settings: Settings | None = None,
    **producer_config: Any,
) -> dict[str, Any]:
    """Send every body to ``topic`` as fast as the client can (no waiting per
    message), then ``flush()``: the run ends once the broker acknowledged them all.
    ``producer_config`` overrides kafka-python settings (``linger_ms``,
    ``batch_size``, ``compression_type``, ...). The row includes the producer's
    own metrics: records per request and the compression ratio."""
    settings = settings or get_settings()
    producer = kafka.make_producer(settings, **producer_config)
    futures = []
    try:
        producer.partitions_for(topic)  # metadata first, so the clock measures sending
        deadline = time.monotonic() + timeout_s
        with Stopwatch(settings) as watch:
            for i, body in enumerate(bodies):
                if i % 500 == 0 and time.monotonic() > deadline:
                    break
                futures.append(producer.send(topic, value=body))
            try:
                producer.flush(timeout=max(deadline - time.monotonic(), 0.5))
            except KafkaTimeoutError:
                pass  # counted below: the futures that did not succeed
        acked = [f.succeeded() for f in futures]
        metrics = producer.metrics().get("producer-metrics", {})
    finally:
        producer.close(timeout=5)
    nbytes = sum(len(b) for b, ok in zip(bodies[:len(acked)], acked, strict=True) if ok)
    return row(
        "kafka", what, sum(acked), nbytes, watch,
        **{"records per request": round(metrics.get("records-per-request-avg", 0), 1),
           "compressed/raw": round(metrics.get("compression-rate-avg", 1.0), 3)},
    )


def kafka_consume(
    topic: str,
    count: int,
    *,
    what: str = "consume",
    timeout_s: float = 20.0,
    settings: Settings | None = None,
    **consumer_config: Any,
) -> dict[str, Any]:
    """Read ``topic`` from the beginning until ``count`` records arrived (or
    ``timeout_s``), without a group (nothing to commit or clean up)."""
    settings = settings or get_settings()
    consumer = kafka.make_consumer(settings=settings, **consumer_config)
    done = nbytes = 0
    try:
        tps = [TopicPartition(topic, p) for p in kafka_admin.partitions_of(topic, settings)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        consumer.beginning_offsets(tps)  # connect to the partition leader before the clock
        deadline = time.monotonic() + timeout_s
        with Stopwatch(settings) as watch:
            while done < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                batch = consumer.poll(timeout_ms=int(min(left, 0.5) * 1000),
                                      max_records=count - done)
                for records in batch.values():
                    done += len(records)
                    nbytes += sum(len(r.value) for r in records)
    finally:
        consumer.close()
    return row("kafka", what, done, nbytes, watch)


def available_codecs() -> list[str]:
    """Compression types kafka-python can use in this environment (gzip is in the
    standard library; the others need lz4, python-snappy, zstandard)."""
    from kafka import codec

    checks = {"gzip": codec.has_gzip, "snappy": codec.has_snappy,
              "lz4": codec.has_lz4, "zstd": codec.has_zstd}
    return [name for name, available in checks.items() if available()]


def kafka_settings_grid(
    topic: str,
    bodies: Sequence[bytes],
    grid: Sequence[dict[str, Any]],
    *,
    progress: Progress | None = None,
    timeout_s: float = 15.0,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """One :func:`kafka_produce` run per entry of ``grid`` (producer settings,
    e.g. ``{"linger_ms": 5, "batch_size": 16384}``); each row starts with them."""
    rows = []
    items = progress(grid, desc="producer settings") if progress else grid
    for config in items:
        row = kafka_produce(topic, bodies, timeout_s=timeout_s, settings=settings, **config)
        rows.append({**config, **row})
    return rows


def kafka_compression(
    topic_of: Callable[[str], str],
    bodies: Sequence[bytes],
    codecs: Sequence[str],
    *,
    progress: Progress | None = None,
    timeout_s: float = 15.0,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Per compression type (``"none"`` first): produce ``bodies`` to a topic of
    its own (``topic_of(codec)``), then read them back. Rows: producer and
    consumer msg/s, the producer's compressed/raw ratio, and the bytes the
    broker stored on disk for that topic."""
    settings = settings or get_settings()
    rows = []
    items = progress(["none", *codecs], desc="compression") if progress else ["none", *codecs]
    for codec in items:
        topic = topic_of(codec)
        kafka_admin.create_topic(topic, 1, settings=settings)
        config = {} if codec == "none" else {"compression_type": codec}
        sent = kafka_produce(topic, bodies, timeout_s=timeout_s, settings=settings, **config)
        read = kafka_consume(topic, len(bodies), timeout_s=timeout_s, settings=settings)
        rows.append({
            "compression": codec,
            "messages": sent["messages"],
            "read back": read["messages"],
            "produce msg/s": sent["msg/s"],
            "consume msg/s": read["msg/s"],
            "compressed/raw": sent["compressed/raw"],
            "bytes on disk": kafka_admin.topic_bytes_on_disk(topic, settings),
            "producer CPU %": sent["client CPU %"],
            "consumer CPU %": read["client CPU %"],
        })
    return rows
