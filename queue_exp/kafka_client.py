"""Kafka helpers on kafka-python: producer, bounded consume, admin, background consumer.

Kafka vocabulary (topic, partition, offset, consumer group) stays in this module.
Every call here is bounded by a timeout, so a notebook cell can never hang on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from queue_exp.background import BackgroundWorker, MessageStore, utc_now_iso
from queue_exp.config import Settings, get_settings
from queue_exp.errors import BrokerUnavailable
from queue_exp.messages import Message, decode_lenient, encode

log = logging.getLogger(__name__)

BROKER = "Kafka"


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _unavailable(settings: Settings, exc: Exception) -> BrokerUnavailable:
    return BrokerUnavailable(BROKER, settings.kafka_bootstrap_servers, f"{type(exc).__name__}")


def make_producer(settings: Settings | None = None, **overrides: Any) -> KafkaProducer:
    """A producer that waits for every in-sync replica (``acks='all'``) and never
    writes a retried record twice (idempotence). Raises ``BrokerUnavailable``."""
    settings = settings or get_settings()
    timeout = _ms(settings.broker_timeout_s)
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
    }
    config.update(overrides)
    try:
        return KafkaProducer(**config)
    except KafkaTimeoutError as exc:
        raise _unavailable(settings, exc) from exc


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
    timeout = _ms(settings.broker_timeout_s)
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "group_id": group_id,
        "auto_offset_reset": "earliest" if from_beginning else "latest",
        "bootstrap_timeout_ms": timeout,
        "request_timeout_ms": max(timeout, 10_000),
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 500,
        "client_id": settings.name("queue_exp-consumer"),
    }
    config.update(overrides)
    try:
        return KafkaConsumer(*topics, **config)
    except KafkaTimeoutError as exc:
        raise _unavailable(settings, exc) from exc


def make_admin(settings: Settings | None = None) -> KafkaAdminClient:
    settings = settings or get_settings()
    timeout = _ms(settings.broker_timeout_s)
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            bootstrap_timeout_ms=timeout,
            request_timeout_ms=timeout,
            client_id=settings.name("queue_exp-admin"),
        )
    except KafkaTimeoutError as exc:
        raise _unavailable(settings, exc) from exc


def create_topic(
    name: str,
    partitions: int = 1,
    config: dict[str, str] | None = None,
    settings: Settings | None = None,
) -> bool:
    """Create a topic (replication factor 1); returns False if it already existed."""
    admin = make_admin(settings)
    try:
        admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=config or {})],
            timeout_ms=10_000,
            wait_for_metadata=True,
        )
        return True
    except TopicAlreadyExistsError:
        return False
    finally:
        admin.close()


def delete_topics(names: Iterable[str], settings: Settings | None = None) -> None:
    """Delete topics; names that do not exist are ignored."""
    names = list(names)
    if not names:
        return
    admin = make_admin(settings)
    try:
        admin.delete_topics(names, timeout_ms=10_000, raise_errors=False)
    finally:
        admin.close()


def delete_groups(group_ids: Iterable[str], settings: Settings | None = None) -> None:
    """Delete consumer groups (they must have no live members); unknown ids are ignored."""
    group_ids = list(group_ids)
    if not group_ids:
        return
    admin = make_admin(settings)
    try:
        for group_id, error in admin.delete_groups(group_ids).items():
            if error not in ("OK", "GroupIdNotFoundError"):
                log.warning("could not delete group %s: %s", group_id, error)
    finally:
        admin.close()


def record_to_dict(record: Any) -> dict[str, Any]:
    """A ConsumerRecord as the API and the notebooks show it: the message plus
    where it sits in the log (topic, partition, offset)."""
    item = decode_lenient(record.value)
    if record.key is not None and "key" not in item:
        item["key"] = record.key.decode("utf-8", errors="replace")
    item.update(topic=record.topic, partition=record.partition, offset=record.offset)
    return item


def submit(producer: KafkaProducer, topic: str, message: Message) -> Any:
    """Hand one message to the producer without waiting; returns kafka-python's
    future (``.get(timeout)``, ``add_callback``, ``add_errback``).

    The message's ``key`` (if any) becomes the record key, which picks the partition.
    """
    key = message.key.encode() if message.key is not None else None
    return producer.send(topic, value=encode(message), key=key)


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
                timeout_ms=_ms(min(left, 0.5)), max_records=max_messages - len(out)
            )
            for records in batch.values():
                out.extend(record_to_dict(r) for r in records)
    finally:
        consumer.close()
    return sorted(out, key=lambda m: (m["partition"], m["offset"]))


def ping(settings: Settings | None = None) -> dict[str, Any]:
    """Is Kafka reachable? Returns ``{"reachable", "address", ...}``; never raises."""
    settings = settings or get_settings()
    result: dict[str, Any] = {"reachable": False, "address": settings.kafka_bootstrap_servers}
    try:
        admin = make_admin(settings)
    except BrokerUnavailable as exc:
        result["error"] = str(exc)
        return result
    try:
        cluster = admin.describe_cluster()
        result.update(
            reachable=True,
            cluster_id=cluster.get("cluster_id"),
            brokers=len(cluster.get("brokers", [])),
        )
    except KafkaError as exc:
        result["error"] = str(_unavailable(settings, exc))
    finally:
        admin.close()
    return result


class BackgroundConsumer(BackgroundWorker):
    """The API's consumer: a thread that reads ``topic`` in group ``group_id``
    into a bounded store. Offsets are committed automatically after the records
    are stored, so a restart resumes where it left off (at-least-once)."""

    name = "queue_exp-kafka-consumer"

    def __init__(self, topic: str, group_id: str, store: MessageStore, settings: Settings):
        super().__init__()
        self.topic = topic
        self.group_id = group_id
        self.store = store
        self.settings = settings

    def run_session(self) -> None:
        consumer = make_consumer(self.topic, group_id=self.group_id, settings=self.settings)
        try:
            self.connected.set()
            while not self.stopping:
                # the poll timeout bounds how long stop() waits for this thread
                batch = consumer.poll(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        item = record_to_dict(record)
                        item["received_at"] = utc_now_iso()
                        self.store.add(item)
        finally:
            consumer.close()
