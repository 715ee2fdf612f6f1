"""Kafka replication on the three-node cluster (notebook 12): who leads each
partition and who is in sync, watched over time, and a producer that keeps
sending with ``acks='all'`` while a leader is killed.

Every helper opens its own clients (an admin client that has seen a node die
may keep asking it; a fresh one does not), is bounded, and closes them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kafka import KafkaAdminClient
from kafka import KafkaProducer

from queue_exp.brokers.cluster import KafkaCluster
from queue_exp.clients.consumers import KafkaConsumerThread
from queue_exp.course.compare.io import numbers_in
from queue_exp.course.kafka.log import read_to_end
from queue_exp.course.run import Run
from queue_exp.messages import Message
from queue_exp.messages import decode_lenient
from queue_exp.messages import encode
from queue_exp.waiting import wait_until

log = logging.getLogger(__name__)


def admin(servers: str) -> KafkaAdminClient:
    """An admin client that gives up on a dead node quickly."""
    return KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=3000,
                            bootstrap_timeout_ms=5000, reconnect_backoff_max_ms=500)


def partitions(servers: str, topic: str) -> list[dict[str, Any]]:
    """One row per partition: its leader, its replicas, the in-sync replicas (ISR)
    and the eligible leader replicas (ELR, Kafka 4: replicas that left the ISR
    while it was below ``min.insync.replicas`` and still hold every committed record)."""
    client = admin(servers)
    try:
        described = client.describe_topic_partitions([topic])["topics"][0]["partitions"]
    finally:
        client.close()
    return [{"partition": p["partition_index"],
             "leader": p["leader_id"] if p["leader_id"] >= 0 else None,
             "replicas": sorted(p["replica_nodes"]), "ISR": sorted(p["isr_nodes"]),
             "ELR": sorted(p.get("eligible_leader_replicas") or [])}
            for p in sorted(described, key=lambda p: p["partition_index"])]


def active_controller(servers: str) -> int:
    """The node leading the KRaft quorum (the metadata log's Raft leader)."""
    client = admin(servers)
    try:
        return client.describe_metadata_quorum()["topics"][0]["partitions"][0]["leader_id"]
    finally:
        client.close()


def wait_in_sync(servers: str, topic: str, timeout_s: float = 60.0) -> float:
    """Wait until every replica of every partition is in sync again; returns how
    long that took."""
    began = time.monotonic()

    def in_sync() -> bool:
        try:
            rows = partitions(servers, topic)
        except Exception:  # noqa: BLE001 - a node still starting: ask again
            return False
        return all(row["ISR"] == row["replicas"] for row in rows)

    wait_until(in_sync, timeout_s, 0.2, what=f"every replica of {topic} in sync")
    return time.monotonic() - began


class PartitionWatch:
    """Samples every partition's leader and ISR in a thread, about every
    ``interval_s``, until :meth:`stop`; :meth:`mark` adds a labelled event."""

    def __init__(self, servers: str, topic: str, interval_s: float = 0.2) -> None:
        self.servers, self.topic, self.interval_s = servers, topic, interval_s
        self.t0 = time.monotonic()
        self.samples: list[dict[str, Any]] = []  # t, partition, leader, isr
        self.events: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="partition-watch", daemon=True)

    def start(self) -> PartitionWatch:
        self._thread.start()
        return self

    def __enter__(self) -> PartitionWatch:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    def mark(self, label: str) -> None:
        self.events.append((self.now(), label))

    def stop(self) -> None:
        """Stop sampling, after one last sample (the state the watch ends on)."""
        self._stop.set()
        self._thread.join(10)
        last = self._sample(None)
        if last is not None:
            last.close()

    def _run(self) -> None:
        client = None
        while not self._stop.wait(self.interval_s):
            client = self._sample(client)
        if client is not None:
            client.close()

    def _sample(self, client: KafkaAdminClient | None) -> KafkaAdminClient | None:
        """Record every partition's leader and ISR size; returns the client to reuse
        (``None`` after a failure: a node is down, the next sample opens a fresh one)."""
        try:
            client = client or admin(self.servers)
            described = client.describe_topic_partitions([self.topic])["topics"][0]
        except Exception as exc:  # noqa: BLE001 - whatever a dying node makes it say
            log.debug("partition watch: %r", exc)
            if client is not None:
                client.close()
            return None
        t = self.now()
        self.samples.extend({"t": t, "partition": p["partition_index"],
                             "leader": p["leader_id"], "isr": len(p["isr_nodes"])}
                            for p in described["partitions"])
        return client

    def first(self, since: float, test: Any) -> float | None:
        """The first sample time after ``since`` for which ``test(sample)`` holds."""
        return next((s["t"] for s in self.samples if s["t"] >= since and test(s)), None)


class _Producer(threading.Thread):
    """Sends ``#1``, ``#2``, … round-robin over the partitions, ``rate_hz`` a second,
    with ``acks='all'``; keeps each record's send time and ack time (or error)."""

    def __init__(self, servers: str, topic: str, partitions: int, rate_hz: float, t0: float):
        super().__init__(name="acks-all-producer", daemon=True)
        self.topic, self.partitions, self.rate_hz, self.t0 = topic, partitions, rate_hz, t0
        self.producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=0,
                                      reconnect_backoff_max_ms=500)
        self.sent: dict[int, tuple[int, float]] = {}  # n -> (partition, time sent)
        self.acked: dict[int, float] = {}
        self.failed: dict[int, str] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.wait(1 / self.rate_hz):
            n += 1
            message = Message.now(f"#{n}", source="failover")
            partition = n % self.partitions
            self.sent[n] = (partition, time.monotonic() - self.t0)
            future = self.producer.send(self.topic, encode(message), partition=partition)
            future.add_callback(lambda _meta, n=n: self.acked.setdefault(
                n, time.monotonic() - self.t0))
            future.add_errback(lambda exc, n=n: self.failed.setdefault(n, type(exc).__name__))

    def acked_since(self, since: float) -> int:
        return sum(t >= since for t in list(self.acked.values()))

    def finish(self, timeout_s: float = 40.0) -> None:
        self.stopping.set()
        self.join(5)
        self.producer.flush(timeout=timeout_s)  # every send acked or failed by now
        self.producer.close(timeout=5)


def produce_through_leader_kill(
    kc: KafkaCluster, run: Run, topic: str, partition: int = 0, rate_hz: float = 100.0,
    before_s: float = 2.0, after_s: float = 3.0, timeout_s: float = 40.0,
) -> dict[str, Any]:
    """Produce with ``acks='all'`` (and read with a consumer group) while the leader
    of ``partition`` is killed with SIGKILL; then read the whole topic back.

    Returns the victim, when each partition got a leader again, each record's
    send/ack times, and the counts: sent, acknowledged, failed, found in the topic,
    acknowledged but missing (must be 0), read by the consumer before and after."""
    servers = kc.bootstrap_servers
    count = len(partitions(servers, topic))
    victim = partitions(servers, topic)[partition]["leader"]
    controller = active_controller(servers)
    watch = PartitionWatch(servers, topic, 0.1)
    received: dict[int, float] = {}

    def new_leader(sample: dict[str, Any]) -> bool:
        return sample["partition"] == partition and sample["leader"] not in (victim, -1)

    def on_batch(_consumer: Any, batch: dict) -> None:
        for records in batch.values():
            for n in numbers_in([decode_lenient(r.value).get("message", "") for r in records]):
                received.setdefault(n, time.monotonic() - watch.t0)

    consumer = KafkaConsumerThread([topic], on_batch, group_id=run.group("readers"),
                                   settings=run.settings, reconnect=True)
    producer = _Producer(servers, topic, count, rate_hz, watch.t0)
    with watch:
        consumer.start()
        consumer.wait_ready(20)
        producer.start()
        # a steady flow of acks before the crash, and again after the new leader
        wait_until(lambda: producer.acked_since(0) >= rate_hz * before_s, timeout_s,
                   what="the first acknowledgements")
        killed_at = watch.now()
        kc.kill(victim)
        watch.mark(f"kill -9 node {victim}")
        elected = wait_until(lambda: watch.first(killed_at, new_leader), timeout_s, 0.05,
                             what=f"a new leader for partition {partition}")
        wait_until(lambda: producer.acked_since(elected) >= rate_hz * after_s, timeout_s,
                   what="acknowledgements after the failover")
        producer.finish(timeout_s)
        wait_until(lambda: set(producer.acked) <= set(received), timeout_s, 0.1,
                   what="the consumer to read every acknowledged record")
        consumer.stop()
    rows = read_to_end(topic, settings=run.settings)
    found = numbers_in([row.get("message", "") for row in rows])
    return {
        "victim": victim, "victim was the active controller": victim == controller,
        "partition": partition, "killed at": killed_at, "watch": watch, "producer": producer,
        "received": received,
        "new leader after s": round(elected - killed_at, 2),
        "sent": len(producer.sent), "acknowledged": len(producer.acked),
        "failed": len(producer.failed), "found": len(found), "duplicates": len(found)
        - len(set(found)), "acknowledged but missing": len(set(producer.acked) - set(found)),
        "read by the consumer after the kill": sum(t > killed_at for t in received.values()),
    }


def stall_per_partition(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per partition: its leader before, the longest wait for an ack, and the
    first ack after the kill of a record sent after it (seconds after the kill)."""
    producer, killed_at = result["producer"], result["killed at"]
    rows = []
    for p in sorted({part for part, _ in producer.sent.values()}):
        mine = [(n, sent) for n, (part, sent) in producer.sent.items() if part == p]
        waits = [producer.acked[n] - sent for n, sent in mine if n in producer.acked]
        after = [producer.acked[n] for n, sent in mine
                 if sent > killed_at and n in producer.acked]
        rows.append({"partition": p, "longest wait for an ack (s)": round(max(waits), 2),
                     "first ack after the kill (s)": round(min(after) - killed_at, 2)
                     if after else None})
    return rows
