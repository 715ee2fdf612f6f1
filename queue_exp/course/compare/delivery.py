"""Delivery guarantees: a consumer that crashes halfway, and Kafka transactions.

A consumer does two things per message: the *work* (a side effect, e.g. an
email) and the *confirm* (Kafka: commit the offset after it; RabbitMQ: ack it).
Crash between the two and the order decides what is lost or repeated."""

from __future__ import annotations

import time
from typing import Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.course.compare.io import number_of
from queue_exp.course.compare.io import numbered
from queue_exp.course.compare.io import publish
from queue_exp.course.compare.io import read_queue
from queue_exp.course.kafka import log as kafka_log
from queue_exp.course.kafka.log import produce
from queue_exp.course.run import Run
from queue_exp.messages import Message
from queue_exp.messages import decode_lenient
from queue_exp.messages import encode

AT_MOST_ONCE = "confirm, then work"
AT_LEAST_ONCE = "work, then confirm"


def _kafka_first_consumer(
    run: Run, topic: str, group: str, order: str, count: int, crash_at: int, timeout_s: float
) -> list[int]:
    """Consumer A: fetch ``count`` records, handle them one at a time committing
    each, and crash at ``crash_at`` between the two steps. Returns the work done."""
    consumer = kafka.make_consumer(topic, group_id=group, enable_auto_commit=False,
                                          settings=run.settings)
    records: list[Any] = []
    worked: list[int] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        for record in records:
            n = number_of(decode_lenient(record.value)["message"])
            commit = {TopicPartition(topic, record.partition):
                      OffsetAndMetadata(record.offset + 1, "", -1)}
            if order == AT_MOST_ONCE:
                consumer.commit(commit)
                if n == crash_at:
                    return worked  # the crash: committed, never worked on
                worked.append(n)
            else:
                worked.append(n)
                if n == crash_at:
                    return worked  # the crash: worked on, never committed
                consumer.commit(commit)
        return worked
    finally:
        consumer.close(autocommit=False)


def _rabbit_first_consumer(
    run: Run, queue: str, order: str, count: int, crash_at: int, timeout_s: float
) -> list[int]:
    """Consumer A: receive ``count`` messages (auto-ack for "confirm, then work";
    manual acks, prefetch ``count`` otherwise), handle them one at a time, and
    crash at ``crash_at`` between the two steps. Returns the work done."""
    auto_ack = order == AT_MOST_ONCE
    connection = rabbitmq.connect(run.settings)
    worked: list[int] = []
    deliveries: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        channel = connection.channel()
        if not auto_ack:
            # up to `count` unacked messages with us: the whole batch at once
            channel.basic_qos(prefetch_count=count)
        for method, _props, body in channel.consume(queue, auto_ack=auto_ack,
                                                     inactivity_timeout=0.2):
            if method is not None:
                deliveries.append((method, body))
            if len(deliveries) >= count or time.monotonic() >= deadline:
                break
        for method, body in deliveries:
            n = number_of(decode_lenient(body)["message"])
            if auto_ack:  # the broker took the delivery itself as the confirm
                if n == crash_at:
                    return worked
                worked.append(n)
            else:
                worked.append(n)
                if n == crash_at:
                    return worked
                channel.basic_ack(method.delivery_tag)
        return worked
    finally:
        # the crash (or the end): a closed connection hands unacked messages back
        if connection.is_open:
            connection.close()


def crash_between_steps(
    run: Run, broker: str, order: str, *, count: int = 10, crash_at: int = 5,
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    """Messages #1..#count; consumer A handles them in ``order`` and crashes at
    #crash_at between work and confirm; consumer B (same group / queue) then
    handles whatever the broker gives it. What was lost, what was done twice?"""
    if order not in (AT_MOST_ONCE, AT_LEAST_ONCE):
        raise ValueError(f"order is {AT_MOST_ONCE!r} or {AT_LEAST_ONCE!r}")
    label = "crash-" + ("at-most-once" if order == AT_MOST_ONCE else "at-least-once")
    messages = numbered(count)
    if broker == "Kafka":
        topic, group = run.topic(label, partitions=1), run.group(label)
        produce(topic, messages, settings=run.settings)
        worked_a = _kafka_first_consumer(run, topic, group, order, count, crash_at, timeout_s)
        got_b = kafka_log.read_to_end(topic, group_id=group, commit=True,
                                          timeout_s=timeout_s, settings=run.settings)
        flagged = "(no such flag)"  # a Kafka record never says "you may have seen this"
    else:
        queue = run.queue(label)
        publish(run.settings, messages, queue=queue)
        worked_a = _rabbit_first_consumer(run, queue, order, count, crash_at, timeout_s)
        got_b = read_queue(run.settings, queue, max_messages=count, timeout_s=timeout_s)
        flagged = f"{sum(m['redelivered'] for m in got_b)} of {len(got_b)}"
    worked_b = [number_of(m["message"]) for m in got_b]
    work = worked_a + worked_b
    return {
        "broker": broker,
        "consumer A": order,
        "A worked on": worked_a,
        "B got": worked_b,
        "lost": [n for n in range(1, count + 1) if n not in work],
        "worked on twice": sorted({n for n in work if work.count(n) > 1}),
        "B got flagged redelivered": flagged,
        # what a consumer that records the ids it finished would skip
        "a consumer keeping done ids skips": [n for n in worked_b if n in worked_a],
    }


def kafka_transaction_crash(
    run: Run, count: int = 10, crash_after: int = 5, timeout_s: float = 15.0
) -> dict[str, Any]:
    """Read-process-write inside Kafka with a transaction: for each payment on
    ``payments`` write a receipt to ``receipts`` (and "send an email", a side
    effect outside Kafka). Attempt 1 crashes after ``crash_after`` receipts,
    transaction open; attempt 2 (same ``transactional_id``) fences it, redoes
    the work and commits receipts and input offsets in one transaction."""
    payments, receipts = run.topic("payments", 1), run.topic("receipts", 1)
    group = run.group("receipt-writer")
    produce(payments, numbered(count), settings=run.settings)
    emails: list[int] = []
    attempts = [_transactional_attempt(run, payments, receipts, group, emails, crash_after,
                                       count, timeout_s),
                _transactional_attempt(run, payments, receipts, group, emails, None,
                                       count, timeout_s)]
    uncommitted = _read_all(run, receipts, "read_uncommitted", timeout_s)
    committed = _read_all(run, receipts, "read_committed", timeout_s)
    offsets = kafka_admin.group_offsets(group, payments, run.settings)
    return {
        "receipts written by attempt 1 (crashed)": attempts[0],
        "receipts written by attempt 2 (committed)": attempts[1],
        "read_uncommitted reader: receipts": len(uncommitted),
        "read_uncommitted reader: distinct": len(set(uncommitted)),
        "read_committed reader: receipts": len(committed),
        "read_committed reader: distinct": len(set(committed)),
        "payments committed as read by the group": offsets[0]["committed"],
        "emails sent (outside Kafka)": len(emails),
        "emails sent twice": sorted({n for n in emails if emails.count(n) > 1}),
    }


def _transactional_attempt(
    run: Run, source: str, sink: str, group: str, emails: list[int],
    crash_after: int | None, count: int, timeout_s: float,
) -> int:
    producer = kafka.make_producer(
        run.settings, transactional_id=run.settings.name("receipt-writer"), linger_ms=0)
    consumer = None
    written = 0
    try:
        # fences any earlier producer with this id and aborts its open transaction
        producer.init_transactions()
        consumer = kafka.make_consumer(
            source, group_id=group, enable_auto_commit=False,
            isolation_level="read_committed", settings=run.settings)
        producer.begin_transaction()
        last: dict[TopicPartition, OffsetAndMetadata] = {}
        deadline = time.monotonic() + timeout_s
        while written < count and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                for record in records:
                    n = number_of(decode_lenient(record.value)["message"])
                    emails.append(n)  # the side effect outside Kafka
                    producer.send(sink, value=encode_receipt(n))
                    written += 1
                    last[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
                    if written == crash_after:
                        producer.flush()  # the receipts reach the log...
                        return written  # ...and the process dies, transaction open
        producer.send_offsets_to_transaction(last, consumer.group_metadata())
        producer.commit_transaction()
        return written
    finally:
        if consumer is not None:
            consumer.close(autocommit=False)
        producer.close(timeout=5)


def encode_receipt(n: int) -> bytes:
    return encode(Message.now(f"receipt for #{n}", source="receipt-writer"))


def _read_all(run: Run, topic: str, isolation_level: str, timeout_s: float) -> list[str]:
    """Every record of a topic a reader with ``isolation_level`` is shown."""
    consumer = kafka.make_consumer(enable_auto_commit=False,
                                          isolation_level=isolation_level,
                                          settings=run.settings)
    out: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        tps = [TopicPartition(topic, p) for p in kafka_admin.partitions_of(topic, run.settings)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s} s")
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(decode_lenient(r.value)["message"] for r in records)
    finally:
        consumer.close(autocommit=False)
    return out
