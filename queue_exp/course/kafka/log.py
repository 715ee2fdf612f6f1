"""The Kafka chapter's reads and writes (notebooks 02-04): produce keyed events,
read a topic to its end, replay it, watch retention delete it.

Each helper opens its own clients, uses them in the calling thread, closes them,
and is bounded by ``timeout_s``: a cell that calls one cannot hang. Reads stop as
soon as they reach the end of the log (the end offsets seen when reading
started), so reading an empty topic returns at once instead of after a timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

from kafka import KafkaConsumer
from kafka import TopicPartition

from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.config import Settings
from queue_exp.messages import Message
from queue_exp.waiting import wait_until

log = logging.getLogger(__name__)

# Four users whose events the chapter follows. With 3 partitions and Kafka's
# default partitioner (murmur2 of the key), alice and bob share partition 0,
# dave gets 1 and carol 2: every partition is used and one holds two keys.
USERS = ("alice", "bob", "carol", "dave")


def record_ids(rows: Iterable[dict[str, Any]]) -> list[tuple[int, int]]:
    """Each record's identity in a topic: its (partition, offset), sorted."""
    return sorted((r["partition"], r["offset"]) for r in rows)


def lag_table(group_id: str, topic: str, settings: Settings | None = None) -> Any:
    """``kafka_admin.group_offsets`` as a pandas table; ``<NA>`` where the group
    has committed nothing yet (as ``kafka-consumer-groups.sh`` shows ``-``)."""
    import pandas as pd

    table = pd.DataFrame(kafka_admin.group_offsets(group_id, topic, settings))
    return table.astype({"committed": "Int64", "lag": "Int64"})


def log_table(topics: dict[str, str], settings: Settings | None = None) -> Any:
    """``kafka_admin.log_offsets`` of several topics as one pandas table, one row
    per (topic, partition); ``topics`` maps a short label to each topic's name."""
    import pandas as pd

    return pd.DataFrame([
        {"topic": label, **row}
        for label, name in topics.items()
        for row in kafka_admin.log_offsets(name, settings)
    ])


def keyed_messages(
    rounds: int = 3, keys: Sequence[str] = USERS, first_round: int = 1, source: str = "notebook"
) -> list[Message]:
    """``rounds`` events per key, interleaved the way they would arrive:
    ``alice #1, bob #1, carol #1, dave #1, alice #2, ...``."""
    return [
        Message.now(f"{key} #{n}", source=source, key=key)
        for n in range(first_round, first_round + rounds)
        for key in keys
    ]


def produce(
    topic: str,
    messages: Iterable[Message],
    *,
    timestamps_ms: Sequence[int] | None = None,
    spread: bool = False,
    one_at_a_time: bool = False,
    timeout_s: float = 10.0,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Send ``messages`` in order and wait for every acknowledgement.

    One row per message, in send order: ``seq`` (1, 2, ...), ``key``, ``message``,
    and where the broker stored it (``partition``, ``offset``). The key picks the
    partition, as usual; ``spread=True`` puts message *i* on partition *i* mod *n*
    instead (an even split). ``timestamps_ms`` sets each record's timestamp
    (default: the producer's clock). ``one_at_a_time`` waits for each
    acknowledgement before the next send, so every record is a batch of its own."""
    messages = list(messages)
    stamps = list(timestamps_ms) if timestamps_ms is not None else [None] * len(messages)
    if len(stamps) != len(messages):
        raise ValueError("give one timestamp per message")
    partitions = kafka_admin.partitions_of(topic, settings) if spread else []
    producer = kafka.make_producer(settings)
    try:
        # The idempotent producer keeps send order within a partition even with
        # several requests in flight, so all sends can go out before any reply.
        futures = []
        for i, (message, stamp) in enumerate(zip(messages, stamps, strict=True)):
            futures.append(kafka.submit(
                producer, topic, message, timestamp_ms=stamp,
                partition=partitions[i % len(partitions)] if spread else None))
            if one_at_a_time:
                futures[-1].get(timeout=timeout_s)
        metas = [future.get(timeout=timeout_s) for future in futures]
    finally:
        producer.close(timeout=5)
    return [
        {"seq": seq, "key": message.key, "message": message.message,
         "partition": meta.partition, "offset": meta.offset}
        for seq, (message, meta) in enumerate(zip(messages, metas, strict=True), start=1)
    ]


def _row(record: Any) -> dict[str, Any]:
    return {**kafka.record_to_dict(record), "timestamp_ms": record.timestamp}


def _poll_into(consumer: KafkaConsumer, out: list[dict[str, Any]], deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the read did not finish in time")
    batch = consumer.poll(timeout_ms=int(min(left, 0.2) * 1000))
    for records in batch.values():
        out.extend(_row(r) for r in records)


def _wait_for_assignment(
    consumer: KafkaConsumer, out: list[dict[str, Any]], deadline: float
) -> set[TopicPartition]:
    """Poll until the group (or, without a group, the consumer itself) has
    assigned partitions; records that arrive meanwhile go into ``out``."""
    while not consumer.assignment():
        _poll_into(consumer, out, deadline)
    return consumer.assignment()


def _drain(consumer: KafkaConsumer, out: list[dict[str, Any]], deadline: float) -> None:
    """Poll until the consumer's position reaches the end offset that each of its
    partitions had when this call started."""
    partitions = _wait_for_assignment(consumer, out, deadline)
    timeout_ms = max(1, int((deadline - time.monotonic()) * 1000))
    ends = consumer.end_offsets(list(partitions), timeout_ms=timeout_ms)
    while any(consumer.position(tp, timeout_ms=timeout_ms) < end for tp, end in ends.items()):
        _poll_into(consumer, out, deadline)


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda m: (m["partition"], m["offset"]))


def _reader(
    topic: str, group_id: str | None, offset_reset: str, settings: Settings | None
) -> KafkaConsumer:
    if offset_reset not in ("earliest", "latest"):
        raise ValueError("offset_reset is 'earliest' or 'latest'")
    # Commits happen only where a helper says so, never on a background timer.
    return kafka.make_consumer(
        topic,
        group_id=group_id,
        from_beginning=offset_reset == "earliest",
        enable_auto_commit=False,
        settings=settings,
    )


def read_to_end(
    topic: str,
    *,
    group_id: str | None = None,
    commit: bool = False,
    offset_reset: str = "earliest",
    arrival_order: bool = False,
    timeout_s: float = 15.0,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Read what ``topic`` holds now and stop; rows sorted by (partition, offset),
    or as they arrived with ``arrival_order=True``.

    With a ``group_id`` reading starts at the group's committed offsets (where it
    has none: at ``offset_reset``), and ``commit=True`` commits what was read, as
    a consumer that finished its work would. Without a group it starts at the
    beginning and commits nothing."""
    consumer = _reader(topic, group_id, offset_reset, settings)
    out: list[dict[str, Any]] = []
    try:
        _drain(consumer, out, time.monotonic() + timeout_s)
        if commit and group_id is not None:
            consumer.commit(timeout_ms=int(timeout_s * 1000))
    finally:
        consumer.close(autocommit=False)
    return out if arrival_order else _sorted(out)


def read_twice(
    topic: str, *, group_id: str | None = None, timeout_s: float = 15.0,
    settings: Settings | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read ``topic`` to its end, ``seek_to_beginning()``, and read it again with
    the same consumer. Returns both reads."""
    consumer = _reader(topic, group_id, "earliest", settings)
    deadline = time.monotonic() + timeout_s
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    try:
        _drain(consumer, first, deadline)
        consumer.seek_to_beginning()
        _drain(consumer, second, deadline)
    finally:
        consumer.close(autocommit=False)
    return _sorted(first), _sorted(second)


def join_then_produce(
    topic: str,
    group_id: str,
    offset_reset: str,
    messages: Iterable[Message],
    *,
    timeout_s: float = 15.0,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """A consumer of a new group joins ``topic`` and fixes its starting position
    (``offset_reset`` applies: the group has no committed offset); *then*
    ``messages`` are produced; it reads to the new end. Returns what it read."""
    consumer = _reader(topic, group_id, offset_reset, settings)
    deadline = time.monotonic() + timeout_s
    out: list[dict[str, Any]] = []
    try:
        for tp in _wait_for_assignment(consumer, out, deadline):
            consumer.position(tp, timeout_ms=int(timeout_s * 1000))  # resolve the start now
        produce(topic, messages, timeout_s=timeout_s, settings=settings)
        _drain(consumer, out, deadline)
    finally:
        consumer.close(autocommit=False)
    return _sorted(out)


def replay_from(
    topic: str, timestamp_ms: int, *, timeout_s: float = 15.0, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Time travel: in each partition, look up the first record at or after
    ``timestamp_ms`` (``offsets_for_times``), ``seek`` there and read to the end.
    Uses no group: nothing is committed."""
    partitions = [TopicPartition(topic, p) for p in kafka_admin.partitions_of(topic, settings)]
    consumer = kafka.make_consumer(settings=settings, enable_auto_commit=False)
    deadline = time.monotonic() + timeout_s
    out: list[dict[str, Any]] = []
    try:
        consumer.assign(partitions)
        found = consumer.offsets_for_times(
            {tp: timestamp_ms for tp in partitions}, timeout_ms=int(timeout_s * 1000)
        )
        for tp in partitions:
            if found.get(tp) is None:  # nothing that recent in this partition
                consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, found[tp].offset)
        _drain(consumer, out, deadline)
    finally:
        consumer.close(autocommit=False)
    return _sorted(out)


def now_ms() -> int:
    """The current time as Kafka timestamps it: milliseconds since the Unix epoch."""
    return int(time.time() * 1000)


def wait_for_retention(
    topic: str,
    up_to: dict[int, int] | None = None,
    timeout_s: float = 20.0,
    settings: Settings | None = None,
) -> float:
    """Wait until retention has deleted the records before offset ``up_to[partition]``
    in every partition (default: every record stored now), i.e. until each
    partition's first offset has reached it. Returns the seconds it took."""
    if up_to is None:
        up_to = {r["partition"]: r["end_offset"] for r in kafka_admin.log_offsets(topic, settings)}
    started = time.monotonic()

    def deleted() -> bool:
        rows = kafka_admin.log_offsets(topic, settings)
        return bool(rows) and all(r["first_offset"] >= up_to.get(r["partition"], 0) for r in rows)

    try:
        wait_until(deleted, timeout_s=timeout_s, interval_s=0.25)
    except TimeoutError:
        raise TimeoutError(
            f"retention deleted nothing on {topic} within {timeout_s:.0f} s; the broker "
            "looks for expired segments every log.retention.check.interval.ms (Kafka's "
            "default: 5 minutes; the course's embedded broker: 1 s)"
        ) from None
    return time.monotonic() - started
