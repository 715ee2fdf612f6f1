"""Kafka clients on kafka-python: a producer, a consumer, a bounded read, a ping.

Kafka vocabulary (topic, partition, offset, consumer group) stays in this module
and :mod:`~queue_exp.clients.kafka_admin`. Every call here is bounded by a
timeout, so a notebook cell can never hang on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaConsumer
from kafka import KafkaProducer
from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.errors import KafkaTimeoutError

from queue_exp.clients.kafka_admin import BROKER
from queue_exp.clients.kafka_admin import make_admin
from queue_exp.clients.kafka_admin import ms
from queue_exp.clients.kafka_admin import partitions_of
from queue_exp.clients.kafka_admin import unavailable
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.errors import BrokerUnavailable
from queue_exp.errors import ping_result
from queue_exp.messages import Message
from queue_exp.messages import decode_lenient
from queue_exp.messages import encode

log = logging.getLogger(__name__)


def make_producer(settings: Settings | None = None, **overrides: Any) -> KafkaProducer:
    """A producer that waits for every in-sync replica (``acks='all'``) and never
    writes a retried record twice (idempotence). Raises ``BrokerUnavailable``."""
    settings = settings or get_settings()
    timeout = ms(settings.broker_timeout_s)
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "bootstrap_timeout_ms": timeout,
        # how long send() may block waiting for topic metadata
        "max_block_ms": timeout,
        "request_timeout_ms": max(timeout - 1000, 1000),
        # give up on a record (and fail its future) after this long, so an outage
        # surfaces within seconds instead of the 2-minute production default
        "delivery_timeout_ms": timeout,
        "client_id": settings.name("queue_exp-producer"),
        # after an outage, retry the broker every ≤2 s (production default: up to 30 s)
        "reconnect_backoff_max_ms": 2000,
    }
    config.update(overrides)
    try:
        return KafkaProducer(**config)
    except KafkaTimeoutError as exc:
        raise unavailable(settings, exc) from exc


def close_producer(producer: KafkaProducer, timeout_s: float = 5.0) -> None:
    """Close a producer, waiting at most ``timeout_s`` for what it still has to send.
    Records that cannot be sent by then fail (their futures get an error) instead of
    keeping the producer open: kafka-python 3.0's ``close()`` raises, and leaves
    its sender running, when its buffered records cannot be flushed in time."""
    try:
        producer.close(timeout=timeout_s)
    except KafkaTimeoutError:
        log.info("the Kafka producer could not send everything within %.0f s; "
                    "failing the rest", timeout_s)
        producer._accumulator.abort_incomplete_batches()  # no public way to do this
        producer.close(timeout=0)


def make_consumer(
    *topics: str,
    group_id: str | None = None,
    from_beginning: bool = True,
    settings: Settings | None = None,
    **overrides: Any,
) -> KafkaConsumer:
    """A consumer subscribed to ``topics`` (or unsubscribed if none is given).

    Group timings are shortened so that a join or rebalance takes about a second
    (production defaults: 45 s session timeout, 3 s heartbeat)."""
    settings = settings or get_settings()
    timeout = ms(settings.broker_timeout_s)
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "group_id": group_id,
        "auto_offset_reset": "earliest" if from_beginning else "latest",
        "bootstrap_timeout_ms": timeout,
        "request_timeout_ms": max(timeout, 10_000),
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 500,
        "client_id": settings.name("queue_exp-consumer"),
        "reconnect_backoff_max_ms": 2000,
    }
    config.update(overrides)
    try:
        consumer = KafkaConsumer(*topics, **config)
    except KafkaTimeoutError as exc:
        raise unavailable(settings, exc) from exc
    know_partitions(consumer, topics)
    return consumer


def know_partitions(consumer: KafkaConsumer, topics: Iterable[str]) -> None:
    """Fetch the topics' partitions before a group consumer's first join: otherwise
    the group leader may assign from empty metadata and rejoin when it arrives,
    and kafka-python 3.0 can drop that rejoin when a poll's timeout ends mid-join,
    leaving the member without partitions (seen here in about one start in six)."""
    for topic in topics:
        consumer.partitions_for_topic(topic)


def offsets_for_time(
    topic: str, timestamp_ms: int, settings: Settings | None = None
) -> dict[int, int | None]:
    """Per partition: the first offset whose record timestamp is at or after
    ``timestamp_ms`` (``KafkaConsumer.offsets_for_times``); ``None`` where no
    record is that recent."""
    consumer = make_consumer(settings=settings)
    try:
        tps = [TopicPartition(topic, p) for p in partitions_of(topic, settings)]
        timeout = ms((settings or get_settings()).broker_timeout_s)
        found = consumer.offsets_for_times({tp: timestamp_ms for tp in tps}, timeout_ms=timeout)
    finally:
        consumer.close()
    return {tp.partition: (found[tp].offset if found.get(tp) else None) for tp in tps}


def record_to_dict(record: Any) -> dict[str, Any]:
    """A ConsumerRecord as the API and the notebooks show it: the message plus
    where it sits in the log (topic, partition, offset)."""
    item = decode_lenient(record.value)
    if record.key is not None and item.get("key") is None:
        # the record's own key (a client that sends a key but no "key" in its JSON)
        item["key"] = record.key.decode("utf-8", errors="replace")
    item.update(topic=record.topic, partition=record.partition, offset=record.offset)
    return item


def submit(
    producer: KafkaProducer, topic: str, message: Message, timestamp_ms: int | None = None,
    partition: int | None = None,
) -> Any:
    """Hand one message to the producer without waiting; returns kafka-python's
    future (``.get(timeout)``, ``add_callback``, ``add_errback``).

    The message's ``key`` (if any) becomes the record key, which picks the partition
    unless ``partition`` names one. ``timestamp_ms`` sets the record's timestamp
    (default: now, set by the producer).
    """
    key = message.key.encode() if message.key is not None else None
    return producer.send(topic, value=encode(message), key=key, timestamp_ms=timestamp_ms,
                         partition=partition)


def send(
    producer: KafkaProducer, topic: str, message: Message, timeout_s: float = 10.0
) -> dict[str, Any]:
    """Send one message and wait for the broker's acknowledgement."""
    try:
        meta = submit(producer, topic, message).get(timeout=timeout_s)
    except KafkaTimeoutError as exc:
        raise BrokerUnavailable(BROKER, _bootstrap_of(producer), "send timed out") from exc
    return {"topic": meta.topic, "partition": meta.partition, "offset": meta.offset}


def _bootstrap_of(client: Any) -> str:
    servers = client.config.get("bootstrap_servers", "?")
    return servers if isinstance(servers, str) else ",".join(servers)


def consume(
    topic: str,
    *,
    group_id: str | None = None,
    max_messages: int = 100,
    timeout_s: float = 5.0,
    from_beginning: bool = True,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Read up to ``max_messages`` from ``topic``, for at most ``timeout_s`` seconds.

    With a ``group_id`` the group's committed offset is used (and advanced);
    without one the read starts at the beginning (or end) and commits nothing.
    """
    consumer = make_consumer(
        topic, group_id=group_id, from_beginning=from_beginning, settings=settings
    )
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < max_messages:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            batch = consumer.poll(
                timeout_ms=ms(min(left, 0.5)), max_records=max_messages - len(out)
            )
            for records in batch.values():
                out.extend(record_to_dict(r) for r in records)
    finally:
        consumer.close()
    return sorted(out, key=lambda m: (m["partition"], m["offset"]))


def ping(settings: Settings | None = None) -> dict[str, Any]:
    """Is Kafka reachable? ``{"reachable", "address", "cluster_id", "brokers"}``
    (or ``"error"``); never raises."""
    settings = settings or get_settings()

    def probe() -> dict[str, Any]:
        admin = make_admin(settings)
        try:
            cluster = admin.describe_cluster()
        except KafkaError as exc:
            raise unavailable(settings, exc) from exc
        finally:
            admin.close()
        return {"cluster_id": cluster.get("cluster_id"),
                "brokers": len(cluster.get("brokers", []))}

    return ping_result(settings.kafka_bootstrap_servers, probe)
