"""Kafka helpers on kafka-python: producer, bounded consume, admin, background consumer.

Kafka vocabulary (topic, partition, offset, consumer group) stays in this module.
Every call here is bounded by a timeout, so a notebook cell can never hang on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic, OffsetSpec
from kafka.errors import KafkaError, KafkaTimeoutError, RetriableError, TopicAlreadyExistsError

from queue_exp.background import BackgroundWorker, Deferred, MessageStore, iso_from_epoch
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
        # after an outage, retry the broker every ≤2 s (production default: up to 30 s)
        "reconnect_backoff_max_ms": 2000,
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
        "reconnect_backoff_max_ms": 2000,
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
    deadline = time.monotonic() + 15
    try:
        while True:
            try:
                results = admin.delete_groups(group_ids)
                break
            except RetriableError:
                # right after a broker (re)start the group coordinator is still loading
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        for group_id, error in results.items():
            if error not in ("OK", "GroupIdNotFoundError"):
                log.warning("could not delete group %s: %s", group_id, error)
    finally:
        admin.close()


def partitions_of(topic: str, settings: Settings | None = None) -> list[int]:
    """The partition numbers of ``topic``, sorted (empty if the topic does not exist)."""
    admin = make_admin(settings)
    try:
        described = admin.describe_topics([topic])
    finally:
        admin.close()
    return sorted(
        p["partition_index"] for t in described if t["error_code"] == 0 for p in t["partitions"]
    )


def log_offsets(topic: str, settings: Settings | None = None) -> list[dict[str, int]]:
    """Per partition: the first offset still stored, the end offset (the next one to
    be written) and how many records lie between. Retention moves the first offset."""
    tps = [TopicPartition(topic, p) for p in partitions_of(topic, settings)]
    admin = make_admin(settings)
    try:
        first = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
        end = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
    finally:
        admin.close()
    return [
        {
            "partition": tp.partition,
            "first_offset": first[tp].offset,
            "end_offset": end[tp].offset,
            "records": end[tp].offset - first[tp].offset,
        }
        for tp in tps
    ]


def group_offsets(
    group_id: str, topic: str, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Per partition of ``topic``: the group's committed offset (the next record it
    will read; ``None`` if it never committed one), the end offset, and the lag
    (records written that the group has not yet committed as read)."""
    ends = {row["partition"]: row["end_offset"] for row in log_offsets(topic, settings)}
    admin = make_admin(settings)
    try:
        committed = admin.list_group_offsets({group_id: None}).get(group_id, {})
    finally:
        admin.close()
    by_partition = {tp.partition: meta.offset for tp, meta in committed.items()
                    if tp.topic == topic and meta.offset >= 0}
    rows = []
    for partition, end in sorted(ends.items()):
        done = by_partition.get(partition)
        rows.append({
            "partition": partition,
            "committed": done,
            "end_offset": end,
            "lag": None if done is None else end - done,
        })
    return rows


def offsets_for_time(
    topic: str, timestamp_ms: int, settings: Settings | None = None
) -> dict[int, int | None]:
    """Per partition: the first offset whose record timestamp is at or after
    ``timestamp_ms`` (``KafkaConsumer.offsets_for_times``); ``None`` where no
    record is that recent."""
    consumer = make_consumer(settings=settings)
    try:
        tps = [TopicPartition(topic, p) for p in partitions_of(topic, settings)]
        timeout = _ms((settings or get_settings()).broker_timeout_s)
        found = consumer.offsets_for_times({tp: timestamp_ms for tp in tps}, timeout_ms=timeout)
    finally:
        consumer.close()
    return {tp.partition: (found[tp].offset if found.get(tp) else None) for tp in tps}


def config_values(
    kind: str, name: str | None, keys: Iterable[str], settings: Settings | None = None
) -> list[dict[str, Any]]:
    """The effective value of each config ``key`` of a topic (``kind='topic'``, ``name``
    its name) or of the broker (``kind='broker'``, ``name`` ignored: the first broker),
    where the value comes from, and Kafka's built-in default where the broker reports
    it (it does for broker settings, not for a topic's own overrides: ``None``)."""
    keys = list(keys)
    admin = make_admin(settings)
    try:
        if kind == "broker":
            name = str(admin.describe_cluster()["brokers"][0]["broker_id"])
        types = {"topic": ConfigResourceType.TOPIC, "broker": ConfigResourceType.BROKER}
        found = admin.describe_configs(
            [ConfigResource(types[kind], name, dict.fromkeys(keys))],
            include_synonyms=True, config_filter="all",
        )[kind][name]
    finally:
        admin.close()
    rows = []
    for key in keys:
        entry = found[key]
        defaults = [s["value"] for s in entry["synonyms"] if s["source"] == "DEFAULT_CONFIG"]
        rows.append({
            "setting": key,
            "value": entry["value"],
            "set by": entry["config_source"],
            "Kafka default": defaults[0] if defaults
            else entry["value"] if entry["config_source"] == "DEFAULT_CONFIG" else None,
        })
    return rows


def record_to_dict(record: Any) -> dict[str, Any]:
    """A ConsumerRecord as the API and the notebooks show it: the message plus
    where it sits in the log (topic, partition, offset)."""
    item = decode_lenient(record.value)
    if record.key is not None and "key" not in item:
        item["key"] = record.key.decode("utf-8", errors="replace")
    item.update(topic=record.topic, partition=record.partition, offset=record.offset)
    return item


def _received_record(record: Any, received_at: float) -> dict[str, Any]:
    item = record_to_dict(record)
    item["received_at"] = iso_from_epoch(received_at)
    return item


def submit(
    producer: KafkaProducer, topic: str, message: Message, timestamp_ms: int | None = None
) -> Any:
    """Hand one message to the producer without waiting; returns kafka-python's
    future (``.get(timeout)``, ``add_callback``, ``add_errback``).

    The message's ``key`` (if any) becomes the record key, which picks the partition.
    ``timestamp_ms`` sets the record's timestamp (default: now, set by the producer).
    """
    key = message.key.encode() if message.key is not None else None
    return producer.send(topic, value=encode(message), key=key, timestamp_ms=timestamp_ms)


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
                if not batch:
                    continue
                received_at = time.time()  # one poll, one arrival time
                # decoded only if someone reads them (the store keeps the newest few)
                self.store.extend(Deferred(_received_record, r, received_at)
                                  for records in batch.values() for r in records)
        finally:
            consumer.close()
