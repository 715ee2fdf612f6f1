"""RabbitMQ replication on the three-node cluster (notebook 13): a quorum queue's
leader and members, a publisher with confirms and a consumer, each on another
node, that carry on while the leader's node is killed, and a returning member
catching up.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pika
from pika.exceptions import AMQPError

from queue_exp.brokers.cluster import RabbitCluster
from queue_exp.clients.consumers import RabbitConsumerThread
from queue_exp.clients.rabbitmq_management import Management
from queue_exp.clients.rabbitmq_management import ManagementUnavailable
from queue_exp.course.compare.io import numbers_in
from queue_exp.messages import Message
from queue_exp.messages import decode_lenient
from queue_exp.messages import encode
from queue_exp.waiting import wait_until


def leader_and_members(rc: RabbitCluster, queue: str, via: int = 1) -> dict[str, Any]:
    """A queue's node (a classic queue's home; a quorum queue's leader), and for a
    quorum queue its leader, members and the members online, as node ``via``'s
    management API reports them."""
    with Management(rc.node_settings(via)) as management:
        info = management.queue(queue) or {}
    return {"node": info.get("node"), "leader": info.get("leader"),
            "members": sorted(info.get("members") or []),
            "online": sorted(info.get("online") or [])}


def quorum_status(rc: RabbitCluster, via: int, queue: str) -> list[dict[str, Any]]:
    """``rabbitmq-queues quorum_status`` run against node ``via``: one row per
    member (its Raft state, log and commit index). The tool's JSON output, since
    its table is drawn for a terminal."""
    out = rc.tool(via, "rabbitmq-queues", "quorum_status", queue, "--formatter", "json")
    if not out.ok:
        raise RuntimeError(f"rabbitmq-queues quorum_status failed: {out}")
    rows = json.loads(out.stdout[out.stdout.index("["):])
    return [{"member": row["Node Name"], "Raft state": _state(row["Raft State"]),
             "log index": row["Log Index"] or None, "commit index": row["Commit Index"] or None}
            for row in sorted(rows, key=lambda r: r["Node Name"])]


def _state(value: Any) -> str:
    # a member on a node that is down shows as ["nodedown", "rabbit1@localhost"]
    return value[0] if isinstance(value, list) else str(value)


def wait_caught_up(rc: RabbitCluster, via: int, queue: str, timeout_s: float = 60.0) -> float:
    """Wait until every member is leader or follower at the same commit index;
    returns how long that took."""
    began = time.monotonic()

    def caught_up() -> bool:
        rows = quorum_status(rc, via, queue)
        states = {row["Raft state"] for row in rows}
        return states <= {"leader", "follower"} and len({row["commit index"] for row in rows}) == 1

    wait_until(caught_up, timeout_s, 0.2, what="every member at the same commit index")
    return time.monotonic() - began


class _Publisher(threading.Thread):
    """Publishes ``#1``, ``#2``, … to ``queue`` through node ``node`` only, with
    publisher confirms, ``rate_hz`` a second; keeps when each was confirmed, or
    what the broker said instead."""

    def __init__(self, url: str, queue: str, rate_hz: float, t0: float) -> None:
        super().__init__(name="confirming-publisher", daemon=True)
        self.url, self.queue, self.rate_hz, self.t0 = url, queue, rate_hz, t0
        self.sent: dict[int, float] = {}
        self.confirmed: dict[int, float] = {}
        self.refused: dict[int, str] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        channel, n = None, 0
        try:
            while not self.stopping.wait(1 / self.rate_hz):
                if channel is None or not channel.is_open:
                    channel = connection.channel()
                    channel.confirm_delivery()
                n += 1
                self.sent[n] = time.monotonic() - self.t0
                try:  # returns once the broker confirmed it (or raises)
                    channel.basic_publish("", self.queue, encode(Message.now(f"#{n}")),
                                          pika.BasicProperties(delivery_mode=2), mandatory=True)
                    self.confirmed[n] = time.monotonic() - self.t0
                except AMQPError as exc:  # nacked or returned: not the broker's responsibility
                    self.refused[n] = type(exc).__name__
                    channel = None  # a fresh channel for the next one
        finally:
            connection.close()

    def confirmed_since(self, since: float) -> int:
        return sum(t >= since for t in list(self.confirmed.values()))


def publish_through_leader_kill(
    rc: RabbitCluster, queue: str, rate_hz: float = 200.0, before_s: float = 2.0,
    after_s: float = 2.0, timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Kill (SIGKILL) the node of the quorum queue's leader while a publisher with
    confirms (connected to a second node) and a consumer that acks (on the third)
    keep going: ``rate_hz * before_s`` confirms before the kill, as many after the
    new leader for ``after_s``. Returns the nodes, the timings and the counts:
    confirmed, refused, received, confirmed but never received (must be 0)."""
    t0 = time.monotonic()
    victim = rc.node_id(leader_and_members(rc, queue)["leader"])
    publisher_node, consumer_node = [n for n in rc.running() if n != victim][:2]
    received: dict[int, float] = {}
    others: list[bytes] = []  # what was in the queue before (not numbered)

    def on_message(_thread: Any, channel: Any, method: Any, _props: Any, body: bytes) -> None:
        numbered = numbers_in([decode_lenient(body).get("message")])
        if not numbered:
            others.append(body)
        for n in numbered:
            received.setdefault(n, time.monotonic() - t0)
        channel.basic_ack(method.delivery_tag)

    consumer = RabbitConsumerThread(queue, on_message, prefetch=50, reconnect=True,
                                    settings=rc.node_settings(consumer_node))
    publisher = _Publisher(rc.url(publisher_node), queue, rate_hz, t0)
    consumer.start()
    consumer.wait_ready(15)
    publisher.start()
    try:
        wait_until(lambda: publisher.confirmed_since(0) >= rate_hz * before_s, timeout_s,
                   what="the first confirms")
        killed_at = time.monotonic() - t0
        rc.kill(victim)

        def new_leader() -> float | None:
            try:
                leader = leader_and_members(rc, queue, via=publisher_node)["leader"]
            except ManagementUnavailable:
                return None
            return time.monotonic() - t0 if leader and rc.node_id(leader) != victim else None

        elected = wait_until(new_leader, timeout_s, 0.05, what="a new leader")
        wait_until(lambda: publisher.confirmed_since(elected) >= rate_hz * after_s, timeout_s,
                   what="confirms after the failover")
    finally:
        publisher.stopping.set()
        publisher.join(timeout_s)
    wait_until(lambda: set(publisher.confirmed) <= set(received), timeout_s, 0.1,
               what="the consumer to receive every confirmed message")
    consumer.stop()
    after = [t for n, t in publisher.confirmed.items() if publisher.sent[n] > killed_at]
    waits = [publisher.confirmed[n] - publisher.sent[n] for n in publisher.confirmed]
    return {
        "killed": rc.name(victim), "publisher on": rc.name(publisher_node),
        "consumer on": rc.name(consumer_node), "killed at": killed_at,
        "new leader": leader_and_members(rc, queue, via=publisher_node)["leader"],
        "new leader shown after s": round(elected - killed_at, 2),
        "first confirm after the kill (s)": round(min(after) - killed_at, 2),
        "longest wait for a confirm (s)": round(max(waits), 2),
        "published": len(publisher.sent), "confirmed": len(publisher.confirmed),
        "refused": len(publisher.refused), "received": len(received),
        "confirmed but never received": len(set(publisher.confirmed) - set(received)),
        "received after the kill": sum(t > killed_at for t in received.values()),
        "other messages received": len(others),
        "publisher": publisher, "receipts": received,
    }
