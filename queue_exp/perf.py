"""Throughput and latency measurements for notebook 09, each small and bounded.

Every helper sends or reads a fixed number of messages with a time limit, and
returns plain rows (dicts) the notebook turns into tables and plots. A
:class:`Stopwatch` around each run records wall time, the CPU time of this
process (the Python client) and of the local broker processes, so a row says
not only how fast, but who was busy. Every pika connection is used only by the
thread that opened it; every thread stops on a flag within a poll interval.

``python -m queue_exp.perf api-load URL PATH --count N --concurrency C`` is the
HTTP load generator (concurrent httpx clients in a process of its own, so that it
does not compete with the API for this process's interpreter lock).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pika
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from queue_exp import brokers, kafka_client, procs, rabbit_client, teaching
from queue_exp.config import Settings, get_settings, read_state
from queue_exp.messages import Message, decode_lenient, encode

Progress = Callable[..., Iterable[Any]]

# ------------------------------------------------------------------ who is busy

_TICKS = os.sysconf("SC_CLK_TCK")


def broker_pids(settings: Settings | None = None) -> dict[str, int]:
    """The process ids of the brokers the launcher started here (by name), if the
    settings point at them. External brokers (Docker, a teacher's) are not ours
    to measure: they are left out."""
    settings = settings or get_settings()
    state = read_state()
    addresses = {"kafka": settings.kafka_bootstrap_servers, "rabbitmq": settings.rabbitmq_url}
    pids = {}
    for name, address in addresses.items():
        entry = state.get(name) or {}
        ours = entry.get("bootstrap_servers", entry.get("url")) == address
        if entry.get("managed") and ours and procs.pid_alive(entry.get("pid")):
            pids[name] = int(entry["pid"])
    return pids


def group_cpu_seconds(pgids: Iterable[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by every live process in each
    process group (the launcher starts each broker as a group leader: the
    RabbitMQ script and its Erlang VM, the Kafka JVM)."""
    wanted = set(pgids)
    totals = dict.fromkeys(wanted, 0.0)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        pgrp = int(fields[2])
        if pgrp in wanted:
            totals[pgrp] += (int(fields[11]) + int(fields[12])) / _TICKS
    return totals


class Stopwatch:
    """Measure a ``with`` block: wall seconds, CPU seconds of this process (all
    its threads: the client libraries' I/O threads, an in-process API) and of
    each local broker. ``percent()`` gives CPU as % of one core."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.pids = broker_pids(settings)
        self.wall_s = 0.0
        self.client_cpu_s = 0.0
        self.broker_cpu_s: dict[str, float] = {}

    def _sample(self) -> tuple[float, float, dict[int, float]]:
        return time.perf_counter(), time.process_time(), group_cpu_seconds(self.pids.values())

    def __enter__(self) -> Stopwatch:
        self._start = self._sample()
        return self

    def __exit__(self, *_exc: object) -> None:
        wall, cpu, groups = self._sample()
        wall0, cpu0, groups0 = self._start
        self.wall_s = wall - wall0
        self.client_cpu_s = cpu - cpu0
        # a broker restarted during the block (a new process group) has no figure
        self.broker_cpu_s = {
            name: groups[pid] - groups0[pid]
            for name, pid in self.pids.items() if groups[pid] >= groups0[pid] > 0
        }

    def percent(self, broker: str | None = None) -> dict[str, float | None]:
        """CPU use during the block, in % of one core (200 % = both cores of
        a 2-core machine): this process, and ``broker`` (or every local broker)."""
        wall = max(self.wall_s, 1e-9)
        out: dict[str, float | None] = {"client CPU %": round(100 * self.client_cpu_s / wall)}
        names = [broker] if broker else sorted(brokers.BROKERS)
        for name in names:
            used = self.broker_cpu_s.get(name)
            label = "broker CPU %" if broker else f"{_BROKER_NAMES[name]} CPU %"
            out[label] = None if used is None else round(100 * used / wall)
        return out


_BROKER_NAMES = {"kafka": "Kafka", "rabbitmq": "RabbitMQ"}


def _row(broker: str, what: str, done: int, nbytes: int, watch: Stopwatch,
         **extra: Any) -> dict[str, Any]:
    seconds = max(watch.wall_s, 1e-9)
    return {
        "broker": _BROKER_NAMES[broker],
        "what": what,
        "messages": done,
        "seconds": round(watch.wall_s, 3),
        "msg/s": round(done / seconds),
        "MB/s": round(nbytes / seconds / 1e6, 2),
        **watch.percent(broker),
        **extra,
    }


# ------------------------------------------------------------------ messages

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


# ------------------------------------------------------------------ Kafka


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
    producer = kafka_client.make_producer(settings, **producer_config)
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
    return _row(
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
    consumer = kafka_client.make_consumer(settings=settings, **consumer_config)
    done = nbytes = 0
    try:
        tps = [TopicPartition(topic, p) for p in kafka_client.partitions_of(topic, settings)]
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
    return _row("kafka", what, done, nbytes, watch)


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
        kafka_client.create_topic(topic, 1, settings=settings)
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
            "bytes on disk": topic_bytes_on_disk(topic, settings),
            "producer CPU %": sent["client CPU %"],
            "consumer CPU %": read["client CPU %"],
        })
    return rows


def topic_bytes_on_disk(topic: str, settings: Settings | None = None) -> int | None:
    """What the broker reports as the size of ``topic``'s log segments, in bytes."""
    admin = kafka_client.make_admin(settings)
    try:
        dirs = admin.describe_log_dirs(topic_partitions=[topic])
    finally:
        admin.close()
    sizes = [
        part["partition_size"]
        for broker in dirs for log_dir in broker.get("log_dirs", [])
        for t in log_dir.get("topics", []) if t["name"] == topic
        for part in t["partitions"]
    ]
    return sum(sizes) if sizes else None


# ------------------------------------------------------------------ RabbitMQ


def declare_queue(queue: str, durable: bool = False, settings: Settings | None = None) -> None:
    """Create ``queue`` (no-op if it exists with the same settings)."""
    with rabbit_client.open_channel(settings, confirm=False) as channel:
        rabbit_client.declare_queue(channel, queue, durable=durable)


def rabbit_publish(
    queue: str,
    bodies: Sequence[bytes],
    *,
    what: str = "publish",
    persistent: bool = False,
    timeout_s: float = 20.0,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Publish every body to ``queue`` (through the default exchange) without
    publisher confirms, then wait until the queue holds them all: the run ends
    when the broker has every message, as with Kafka's acknowledged batches.
    The queue must exist, and nobody may be consuming from it."""
    settings = settings or get_settings()
    connection = rabbit_client.connect(settings)
    done = 0
    try:
        channel = connection.channel()

        def ready() -> int:
            return channel.queue_declare(queue, passive=True).method.message_count

        before = ready()
        props = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=rabbit_client.PERSISTENT if persistent else pika.DeliveryMode.Transient,
        )
        deadline = time.monotonic() + timeout_s
        with Stopwatch(settings) as watch:
            for i, body in enumerate(bodies):
                if i % 500 == 0 and time.monotonic() > deadline:
                    break
                channel.basic_publish("", queue, body, props)
                done += 1
            try:
                left = max(deadline - time.monotonic(), 0.5)
                teaching.wait_for(lambda: ready() - before >= done, left, 0.005)
            except TimeoutError:
                done = ready() - before
    finally:
        if connection.is_open:
            connection.close()
    return _row("rabbitmq", what, done, sum(len(b) for b in bodies[:done]), watch)


def rabbit_consume(
    queue: str,
    count: int,
    *,
    what: str = "consume",
    prefetch: int = 1000,
    timeout_s: float = 20.0,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Consume ``count`` messages from ``queue`` (or until ``timeout_s``), acking
    each one after it is read; at most ``prefetch`` unacked messages in flight."""
    settings = settings or get_settings()
    connection = rabbit_client.connect(settings)
    got = {"messages": 0, "bytes": 0}
    try:
        channel = connection.channel()
        # the window of unacked deliveries: too small and the consumer waits for the
        # broker to refill it, too large and a crash redelivers a lot
        channel.basic_qos(prefetch_count=prefetch)

        def on_message(ch, method, _props, body) -> None:
            got["messages"] += 1
            got["bytes"] += len(body)
            ch.basic_ack(method.delivery_tag)  # only now may the broker forget it
            if got["messages"] >= count:
                ch.stop_consuming()

        deadline = time.monotonic() + timeout_s
        with Stopwatch(settings) as watch:
            tag = channel.basic_consume(queue, on_message)
            while got["messages"] < count and time.monotonic() < deadline:
                connection.process_data_events(time_limit=0.1)
        if channel.is_open and tag in channel.consumer_tags:
            channel.basic_cancel(tag)  # unacked prefetched messages go back to the queue
    finally:
        if connection.is_open:
            connection.close()
    return _row("rabbitmq", what, got["messages"], got["bytes"], watch, prefetch=prefetch)


def confirm_modes(
    queue: str,
    count: int = 1000,
    repeats: int = 1,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Notebook 07's three publisher-confirm modes (persistent messages, durable
    queue) plus a run without confirms, in the same row shape. Without confirms
    the run ends when the queue holds every message (counted, not yet known to
    be on disk)."""
    from queue_exp.rabbit_lessons import confirm_timings

    settings = settings or get_settings()
    rows = confirm_timings(queue, count=count, repeats=repeats, settings=settings)
    for row in rows:
        row["all arrived"] = row["all confirmed"]  # a confirmed message is in the queue
    bodies = [encode(Message.now("confirm me", source="confirms"))] * count
    runs = []
    for _ in range(repeats):
        runs.append(rabbit_publish(queue, bodies, persistent=True, settings=settings))
        _purge(queue, settings)
    seconds = sorted(r["seconds"] for r in runs)[len(runs) // 2]
    rows.append({
        "mode": "no confirms",
        "unconfirmed at most": None,
        "messages": count,
        "all confirmed": None,
        "seconds": seconds,
        "all arrived": all(r["messages"] == count for r in runs),
        "msg/s": round(count / max(seconds, 1e-9)),
    })
    return rows


def _purge(queue: str, settings: Settings) -> None:
    with rabbit_client.open_channel(settings, confirm=False) as channel:
        channel.queue_purge(queue)


# ------------------------------------------------------------------ message size


def size_sweep(
    topic_of: Callable[[int], str],
    queue: str,
    sizes: Sequence[int] = (100, 1_000, 10_000, 60_000),
    *,
    bytes_per_run: int = 10_000_000,
    max_count: int = 20_000,
    min_count: int = 100,
    progress: Progress | None = None,
    timeout_s: float = 15.0,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Per message size: send about ``bytes_per_run`` bytes of messages that
    size (between ``min_count`` and ``max_count`` messages) to a topic of its own
    (``topic_of(size)``) and to ``queue``, then read them back from each.
    ``queue`` must exist and have no consumer. Rows: size, broker, direction,
    msg/s, MB/s, CPU, and for Kafka's producer the records per request."""
    settings = settings or get_settings()
    rows = []
    for size in progress(sizes, desc="message sizes") if progress else sizes:
        count = min(max_count, max(min_count, bytes_per_run // size))
        bodies = make_bodies(count, size)
        topic = topic_of(size)
        kafka_client.create_topic(topic, 1, settings=settings)
        runs = [
            kafka_produce(topic, bodies, what="send", timeout_s=timeout_s, settings=settings),
            kafka_consume(topic, count, what="receive", timeout_s=timeout_s, settings=settings),
            rabbit_publish(queue, bodies, what="send", timeout_s=timeout_s, settings=settings),
            rabbit_consume(queue, count, what="receive", timeout_s=timeout_s, settings=settings),
        ]
        for run in runs:
            rows.append({"size B": size, **{k: run[k] for k in (
                "broker", "what", "messages", "msg/s", "MB/s", "client CPU %", "broker CPU %")},
                "records per request": run.get("records per request")})
    return rows


# ------------------------------------------------------------------ latency


def percentiles(samples: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (each is one of the samples, so p50 <= p95 <= p99
    <= max always holds) and the maximum; NaN for no samples."""
    ordered = sorted(samples)
    out = {}
    for p in points:
        out[f"p{p}"] = ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)] if ordered \
            else math.nan
    out["max"] = ordered[-1] if ordered else math.nan
    return out


@dataclass
class LatencyRun:
    """One latency experiment: how many messages were sent, and each received
    message's latency in milliseconds (send call to consumer callback)."""

    label: str
    sent: int
    latencies_ms: list[float] = field(default_factory=list)
    rate: float | None = None

    @property
    def received(self) -> int:
        return len(self.latencies_ms)

    def summary(self) -> dict[str, Any]:
        stats = percentiles(self.latencies_ms)
        return {
            "run": self.label,
            "sent": self.sent,
            "received": self.received,
            **{f"{k} ms": round(v, 2) for k, v in stats.items()},
        }


def _seq(body: bytes) -> int:
    """The sequence number a latency run puts first in each message's text."""
    return int(decode_lenient(body)["message"].split(" ", 1)[0])


def _paced_send(count: int, rate: float, send: Callable[[int], None], sent_at: list[float],
                deadline: float) -> int:
    """Call ``send(i)`` ``count`` times at ``rate`` per second (stopping at
    ``deadline``), recording when each send started; returns how many were sent."""
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing: the gap between two sends *is* the experiment
        if time.monotonic() > deadline:
            return i
        sent_at[i] = time.perf_counter()
        send(i)
    return count


def _latency_body(i: int, size: int) -> bytes:
    text = f"{i} " + "x" * max(0, size - 80)
    return encode(Message(message=text, timestamp=datetime(2025, 1, 1), source="latency"))


class _KafkaReader(threading.Thread):
    """A consumer thread (its own KafkaConsumer) reading new records of ``topic``."""

    def __init__(self, topic: str, on_value: Callable[[bytes], None], settings: Settings) -> None:
        super().__init__(name="perf-kafka-reader", daemon=True)
        self.topic, self.on_value, self.settings = topic, on_value, settings
        self.ready = threading.Event()
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        consumer = None
        try:
            consumer = kafka_client.make_consumer(settings=self.settings, fetch_max_wait_ms=100)
            tps = [TopicPartition(self.topic, p)
                   for p in kafka_client.partitions_of(self.topic, self.settings)]
            consumer.assign(tps)
            consumer.seek_to_end(*tps)
            for tp in tps:
                consumer.position(tp)  # resolve "end" now: later records are ours
            self.ready.set()
            while not self.halt.is_set():
                # the poll timeout bounds how long stop() waits for this thread
                for records in consumer.poll(timeout_ms=100).values():
                    for record in records:
                        self.on_value(record.value)
        except Exception as exc:  # noqa: BLE001 - reported by kafka_latency
            self.error = exc
        finally:
            self.ready.set()
            if consumer is not None:
                consumer.close()


def kafka_latency(
    topic: str,
    count: int = 500,
    rate: float = 500.0,
    *,
    size: int = 200,
    label: str = "Kafka",
    timeout_s: float = 15.0,
    settings: Settings | None = None,
    **producer_config: Any,
) -> LatencyRun:
    """End-to-end latency: send ``count`` messages at ``rate`` per second (no
    waiting for acknowledgements), while a consumer thread in this process reads
    them; latency = consumer callback time - send call time, per message."""
    settings = settings or get_settings()
    sent_at = [math.nan] * count
    received: dict[int, float] = {}

    def on_value(value: bytes) -> None:
        received.setdefault(_seq(value), time.perf_counter())

    reader = _KafkaReader(topic, on_value, settings)
    producer = kafka_client.make_producer(settings, **producer_config)
    reader.start()
    try:
        if not reader.ready.wait(timeout_s) or reader.error:
            raise RuntimeError(f"the Kafka reader did not start: {reader.error!r}")
        producer.partitions_for(topic)
        bodies = [_latency_body(i, size) for i in range(count)]
        deadline = time.monotonic() + timeout_s
        sent = _paced_send(count, rate, lambda i: producer.send(topic, value=bodies[i]),
                           sent_at, deadline)
        producer.flush(timeout=max(deadline - time.monotonic(), 0.5))
        _await_arrivals(received, sent, deadline)
    finally:
        reader.halt.set()
        reader.join(10)
        producer.close(timeout=5)
    return LatencyRun(label, sent, _latencies(sent_at, received), rate)


def _await_arrivals(received: dict[int, float], sent: int, deadline: float) -> None:
    """Wait (bounded: until ``deadline``, and at least a short grace period for
    the last ones in flight) until ``sent`` messages have been received."""
    left = max(deadline - time.monotonic(), 2.0)
    try:
        teaching.wait_for(lambda: len(received) >= sent, left, 0.005)
    except TimeoutError:
        pass  # the caller reports what arrived


def _latencies(sent_at: Sequence[float], received: dict[int, float]) -> list[float]:
    return [1000 * (received[i] - sent_at[i]) for i in sorted(received)
            if i < len(sent_at) and not math.isnan(sent_at[i])]


def rabbit_latency(
    queue: str,
    count: int = 500,
    rate: float = 500.0,
    *,
    size: int = 200,
    label: str = "RabbitMQ",
    prefetch: int = 100,
    timeout_s: float = 15.0,
    settings: Settings | None = None,
) -> LatencyRun:
    """End-to-end latency through a (non-durable) queue: publish ``count`` transient
    messages at ``rate`` per second without confirms, while a consumer thread
    with its own connection reads (and acks) them."""
    from queue_exp.rabbit_lessons import ConsumerThread, start_all, stop_all

    settings = settings or get_settings()
    declare_queue(queue, durable=False, settings=settings)
    sent_at = [math.nan] * count
    received: dict[int, float] = {}

    def on_message(_worker, channel, method, _props, body) -> None:
        now = time.perf_counter()
        channel.basic_ack(method.delivery_tag)
        received.setdefault(_seq(body), now)

    reader = ConsumerThread("perf-rabbit-reader", queue, on_message, prefetch=prefetch,
                            settings=settings)
    start_all([reader], timeout_s)
    connection = None
    try:
        connection = rabbit_client.connect(settings)
        channel = connection.channel()
        props = pika.BasicProperties(content_type="application/json")
        bodies = [_latency_body(i, size) for i in range(count)]
        deadline = time.monotonic() + timeout_s
        sent = _paced_send(count, rate,
                           lambda i: channel.basic_publish("", queue, bodies[i], props),
                           sent_at, deadline)
        _await_arrivals(received, sent, deadline)
    finally:
        if connection is not None and connection.is_open:
            connection.close()
        stop_all([reader])
    return LatencyRun(label, sent, _latencies(sent_at, received), rate)


# ------------------------------------------------------------------ through the API


def api_load(
    base_url: str,
    path: str,
    count: int = 1000,
    concurrency: int = 16,
    *,
    marker: str = "perf",
    invalid: bool = False,
    timeout_s: float = 15.0,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """POST ``count`` messages to ``base_url + path`` from ``concurrency``
    concurrent httpx clients in a separate process (at most ``timeout_s``).

    Each message's text is ``"<marker> <i> <unix time sent>"`` so that
    :func:`api_end_to_end` can find them among the API's received messages.
    With ``invalid`` every body lacks a required field: the API answers 422
    without touching a broker (the HTTP cost alone), and 422 counts as ok.
    The row has requests/s, request latency percentiles (send to reply), and CPU
    of the load generator, of this process (the in-process API) and the broker."""
    command = [sys.executable, "-m", "queue_exp.perf", "api-load", base_url, path,
               "--count", str(count), "--concurrency", str(concurrency),
               "--timeout", str(timeout_s), "--marker", marker]
    if invalid:
        command.append("--invalid")
    with Stopwatch(settings) as watch:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s + 30,
                              check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr.strip()[-500:]}")
    result = json.loads(done.stdout)
    broker = "kafka" if path.startswith("/kafka") else "rabbitmq"
    stats = percentiles(result["latencies_ms"])
    cpu = watch.percent(broker)
    return {
        "endpoint": f"POST {path}" + (" (invalid body: 422)" if invalid else ""),
        "clients": concurrency,
        "requests": count,
        "ok": result["ok"],
        "failed": result["failed"],
        "req/s": round(result["ok"] / max(result["seconds"], 1e-9)),
        "mean ms": round(sum(result["latencies_ms"]) / max(len(result["latencies_ms"]), 1), 1),
        **{f"{k} ms": round(v, 1) for k, v in stats.items()},
        "load generator CPU %": round(100 * result["cpu_s"] / max(watch.wall_s, 1e-9)),
        "API process CPU %": cpu["client CPU %"],
        "broker CPU %": cpu["broker CPU %"],
        "latencies_ms": result["latencies_ms"],
    }


def api_end_to_end(messages: Sequence[dict[str, Any]], marker: str) -> list[float]:
    """From ``GET /{broker}/messages`` items: for each message an
    :func:`api_load` run with ``marker`` sent, milliseconds from the client's
    send to the API consumer's ``received_at`` (wall clocks of one machine;
    ``received_at`` has millisecond resolution)."""
    out = []
    for item in messages:
        parts = str(item.get("message", "")).split()
        if len(parts) == 3 and parts[0] == marker and "received_at" in item:
            received = datetime.fromisoformat(item["received_at"]).timestamp()
            out.append(1000 * (received - float(parts[2])))
    return out


async def _drive(base_url: str, path: str, count: int, concurrency: int, timeout_s: float,
                 marker: str, invalid: bool) -> dict[str, Any]:
    import httpx

    expected = 422 if invalid else 200
    deadline = time.monotonic() + timeout_s
    numbers = iter(range(count))  # shared: each request number is taken once
    latencies: list[float] = []
    failed = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0, limits=limits) as client:

        async def one_client() -> None:
            nonlocal failed
            for i in numbers:
                if time.monotonic() > deadline:
                    return
                body = {"message": f"{marker} {i} {time.time():.6f}",
                        "timestamp": datetime.now(timezone.utc).isoformat(), "source": "perf"}
                if invalid:
                    del body["source"]
                start = time.perf_counter()
                try:
                    reply = await client.post(path, json=body)
                except httpx.HTTPError:
                    failed += 1
                    continue
                if reply.status_code == expected:
                    latencies.append(1000 * (time.perf_counter() - start))
                else:
                    failed += 1

        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    return {"ok": len(latencies), "failed": failed, "seconds": seconds,
            "latencies_ms": latencies, "cpu_s": time.process_time()}


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m queue_exp.perf")
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("api-load", help="POST messages from concurrent httpx clients; "
                               "prints a JSON result")
    load.add_argument("base_url")
    load.add_argument("path")
    load.add_argument("--count", type=int, default=1000)
    load.add_argument("--concurrency", type=int, default=16)
    load.add_argument("--timeout", type=float, default=15.0)
    load.add_argument("--marker", default="perf")
    load.add_argument("--invalid", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(_drive(args.base_url, args.path, args.count, args.concurrency,
                                args.timeout, args.marker, args.invalid))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
