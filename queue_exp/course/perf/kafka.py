"""Kafka throughput (notebook 09): produce as fast as the client can, consume
from the beginning, and how batching, linger and compression change both."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from kafka import TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError
from kafka.errors import KafkaTimeoutError

from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.course.perf.cpu import Stopwatch
from queue_exp.course.perf.cpu import row


def _bodies_for(bodies: Sequence[bytes], seconds: float | None) -> Iterator[bytes]:
    """The bodies once, or (for a run of ``seconds``) over and over."""
    return itertools.cycle(bodies) if seconds is not None else iter(bodies)


def kafka_produce(
    topic: str,
    bodies: Sequence[bytes],
    *,
    seconds: float | None = None,
    what: str = "produce",
    timeout_s: float = 20.0,
    settings: Settings | None = None,
    **producer_config: Any,
) -> dict[str, Any]:
    """Send every body to ``topic`` as fast as the client can (no waiting per
    message), then ``flush()``: the run ends once the broker acknowledged them all.

    With ``seconds``, send the bodies over and over for that long instead, then
    flush: a run as long on a fast machine as on a slow one. Then at most
    :func:`unacked_window` bytes may wait for their acknowledgement at any
    time (the Java client's ``buffer.memory``; kafka-python's buffer has no
    limit, and a producer that runs far ahead of the broker only makes the
    final flush long).

    ``producer_config`` overrides kafka-python settings (``linger_ms``,
    ``batch_size``, ``compression_type``, ...). The row includes the producer's
    own metrics: records per request and the compression ratio."""
    settings = settings or get_settings()
    producer = kafka.make_producer(settings, **producer_config)
    window = unacked_window(producer.config["batch_size"], max(map(len, bodies)))
    futures: list[tuple[Any, int]] = []
    oldest = unacked = 0  # the first future not yet waited for; bytes sent since
    try:
        producer.partitions_for(topic)  # metadata first, so the clock measures sending
        deadline = time.monotonic() + timeout_s
        with Stopwatch(settings) as watch:
            stop_sending = time.monotonic() + (seconds if seconds is not None else timeout_s)
            for body in _bodies_for(bodies, seconds):
                if time.monotonic() > min(stop_sending, deadline):
                    break
                futures.append((producer.send(topic, value=body), len(body)))
                unacked += len(body)
                while seconds is not None and unacked > window:
                    future, size = futures[oldest]
                    try:
                        future.get(timeout=max(deadline - time.monotonic(), 0.1))
                    except KafkaError:
                        pass  # counted below as not acknowledged
                    oldest, unacked = oldest + 1, unacked - size
            try:
                producer.flush(timeout=max(deadline - time.monotonic(), 0.5))
            except KafkaTimeoutError:
                pass  # counted below: the futures that did not succeed
        acked = [size for future, size in futures if future.succeeded()]
        metrics = producer.metrics().get("producer-metrics", {})
    finally:
        producer.close(timeout=5)
    return row(
        "kafka", what, len(acked), sum(acked), watch,
        **{"all acknowledged": len(acked) == len(futures),
           "records per request": round(metrics.get("records-per-request-avg", 0), 1),
           "compressed/raw": round(metrics.get("compression-rate-avg", 1.0), 3)},
    )


def unacked_window(batch_size: int, largest_body: int) -> int:
    """How many bytes a timed :func:`kafka_produce` run lets wait for their
    acknowledgement: 8 batches (5 in flight, the next ones filling), at least
    256 KiB."""
    return max(256 << 10, 8 * max(batch_size, largest_body))


def kafka_consume(
    topic: str,
    count: int | None = None,
    *,
    seconds: float | None = None,
    what: str = "consume",
    timeout_s: float = 20.0,
    settings: Settings | None = None,
    **consumer_config: Any,
) -> dict[str, Any]:
    """Read ``topic`` from the beginning until ``count`` records arrived (or
    ``timeout_s``), without a group (nothing to commit or clean up). With
    ``seconds`` instead of ``count``: read it from the beginning for that long,
    starting again from the first offset whenever the end is reached (a log can
    be read as often as one likes), so that a fast reader's run is not over in
    a few milliseconds."""
    if (count is None) == (seconds is None):
        raise ValueError("give count or seconds")
    settings = settings or get_settings()
    consumer = kafka.make_consumer(settings=settings, **consumer_config)
    done = nbytes = 0
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)  # also connects to the leader before the clock
        reached = dict.fromkeys(tps, 0)  # the next offset of each partition
        with Stopwatch(settings) as watch:
            deadline = time.monotonic() + min(timeout_s, seconds or timeout_s)
            while count is None or done < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                batch = consumer.poll(timeout_ms=int(min(left, 0.5) * 1000),
                                      max_records=(count - done) if count else 10_000)
                for tp, records in batch.items():
                    done += len(records)
                    nbytes += sum(len(r.value) for r in records)
                    reached[tp] = records[-1].offset + 1
                if count is None and all(reached[tp] >= ends[tp] for tp in tps):
                    consumer.seek_to_beginning(*tps)  # the end: read it all again
                    reached = dict.fromkeys(tps, 0)
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
    seconds: float | None = None,
    timeout_s: float = 15.0,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """One :func:`kafka_produce` run per entry of ``grid`` (producer settings,
    e.g. ``{"linger_ms": 5, "batch_size": 16384}``), each sending ``bodies``
    (or for ``seconds``); each row starts with the settings."""
    rows = []
    for config in grid:
        row = kafka_produce(topic, bodies, seconds=seconds, timeout_s=timeout_s,
                            settings=settings, **config)
        rows.append({**config, **row})
    return rows


def kafka_compression(
    topics: Mapping[str, str],
    bodies: Sequence[bytes],
    *,
    seconds: float = 0.5,
    timeout_s: float = 15.0,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Per compression type (``topics``: codec -> an existing topic of its own,
    ``"none"`` first): produce ``bodies`` for ``seconds``, then read that topic
    for ``seconds``. Rows: producer and consumer msg/s and CPU, the producer's
    compressed/raw ratio, and the bytes the broker stores per message (its log's
    size on disk ÷ the records in it)."""
    settings = settings or get_settings()
    rows = []
    for codec, topic in topics.items():
        config = {} if codec == "none" else {"compression_type": codec}
        sent = kafka_produce(topic, bodies, seconds=seconds, timeout_s=timeout_s,
                             settings=settings, **config)
        read = kafka_consume(topic, seconds=seconds, timeout_s=timeout_s, settings=settings)
        rows.append({
            "compression": codec,
            "messages": sent["messages"],
            "all acknowledged": sent["all acknowledged"],
            "produce msg/s": sent["msg/s"],
            "consume msg/s": read["msg/s"],
            "compressed/raw": sent["compressed/raw"],
            "producer CPU %": sent["client CPU %"],
            "consumer CPU %": read["client CPU %"],
        })
    stored = stored_bytes_per_message(list(topics.values()), settings)
    for line in rows:
        line["bytes on disk per message"] = stored.get(topics[line["compression"]])
    return rows


def stored_bytes_per_message(topics: Sequence[str], settings: Settings | None = None
                             ) -> dict[str, int]:
    """Per topic: the size of its log segments on the broker's disk ÷ the records
    in them, rounded (one admin client for all the topics; a topic the broker
    reports nothing for is left out)."""
    with kafka_admin.admin_client(settings) as admin:
        tps = [TopicPartition(t["name"], p["partition_index"])
               for t in admin.describe_topics(list(topics)) if t["error_code"] == 0
               for p in t["partitions"]]
        dirs = admin.describe_log_dirs(topic_partitions=list(topics))
        first = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
        end = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
    on_disk: dict[str, int] = {}
    for broker in dirs:
        for log_dir in broker.get("log_dirs", []):
            for t in log_dir.get("topics", []):
                if t["name"] in topics:
                    size = sum(part["partition_size"] for part in t["partitions"])
                    on_disk[t["name"]] = on_disk.get(t["name"], 0) + size
    records = {t: sum(end[tp].offset - first[tp].offset for tp in tps if tp.topic == t)
               for t in topics}
    return {t: round(on_disk[t] / records[t]) for t in topics if on_disk.get(t) and records[t]}
