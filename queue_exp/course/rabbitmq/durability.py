"""Durability (notebook 05): which messages survive a broker restart - only
persistent ones, and only in a durable queue; an exclusive queue goes with the
connection that owns it.

Three queues, each with the same confirmed messages: an exclusive queue (owned
by a connection this experiment keeps open, in a thread), a durable queue with
transient messages, a durable queue with persistent messages. The broker is
restarted by the launcher if it started it; a broker elsewhere (Docker, a
teacher's) is restarted by the learner, and :meth:`Durability.after` only
reports counts once the broker really has restarted since the messages went in.
"""

from __future__ import annotations

import time
from typing import Any

from queue_exp import brokers
from queue_exp.clients import rabbitmq
from queue_exp.clients.consumers import ConsumerThread
from queue_exp.config import read_state
from queue_exp.course.rabbitmq.channels import declared_queue
from queue_exp.course.rabbitmq.channels import message_count
from queue_exp.course.rabbitmq.channels import publish
from queue_exp.course.run import Run
from queue_exp.messages import Message
from queue_exp.waiting import wait_until

DURABILITY_CASES = (  # label, durable queue, persistent messages
    ("durable-queue-transient-messages", True, False),
    ("durable-queue-persistent-messages", True, True),
)
EXCLUSIVE = "exclusive-queue"
RESTART_ELSEWHERE = (
    "This RabbitMQ was not started by the course's launcher, so this notebook cannot "
    "restart it. Restart it where it runs (with Docker: `docker compose restart rabbitmq`), "
    "wait until it answers again, then run the next cell.")


class _ExclusiveOwner(ConsumerThread):
    """The connection that owns an exclusive queue with ``texts`` in it, kept
    alive (heartbeats answered) until stopped or until the broker goes away."""

    def __init__(self, texts: list[str], settings: Any) -> None:
        super().__init__("exclusive-owner", settings)
        self.texts = texts
        self.queue: str | None = None
        self.count: int | None = None

    def _session(self) -> None:
        with rabbitmq.open_channel(self.settings) as channel:
            # "": the broker names it; exclusive: only this connection may use it,
            # and it is deleted when the connection closes
            self.queue = channel.queue_declare("", exclusive=True).method.queue
            for text in self.texts:
                rabbitmq.publish(channel, Message.now(text), self.queue, persistent=True)
            self.count = channel.queue_declare(self.queue, passive=True).method.message_count
            self.ready.set()
            while not self.stopping:
                channel.connection.process_data_events(time_limit=self.poll_s)


class Durability:
    """One run of the durability experiment: ``prepare()``, ``restart()``, ``after()``."""

    def __init__(self, run: Run, count: int = 3) -> None:
        self.run = run
        self.count = count
        self.rows: list[dict[str, Any]] = []
        self._owner: _ExclusiveOwner | None = None
        self._started_at: float | None = None

    def prepare(self) -> list[dict[str, Any]]:
        """The three queues and their confirmed messages; one row each."""
        settings = self.run.settings
        texts = [f"message {i}" for i in range(1, self.count + 1)]
        self._owner = _ExclusiveOwner(texts, settings)
        self._owner.start()
        self._owner.wait_ready(15)
        self.rows = [{"queue": EXCLUSIVE, "durable queue": False, "persistent messages": True,
                      "before restart": self._owner.count}]
        for label, durable, persistent in DURABILITY_CASES:
            name = declared_queue(self.run.name(label), settings)
            publish(name, texts, persistent=persistent, settings=settings)
            self.rows.append({"queue": label, "durable queue": durable,
                              "persistent messages": persistent,
                              "before restart": message_count(name, settings)})
        self._started_at = self.run.management.started_at()
        return self.rows

    def restart(self, timeout_s: float = 120.0) -> dict[str, Any]:
        """Stop the embedded RabbitMQ and start it again on the same ports, keeping
        its data directory (a restart, not a fresh install). A broker the launcher
        did not start is not touched: the answer says how to restart it."""
        entry = read_state().get("rabbitmq") or {}
        if not entry.get("managed") or entry.get("url") != self.run.settings.rabbitmq_url:
            return {"restarted by this notebook": False, "what to do": RESTART_ELSEWHERE}
        began = time.monotonic()
        restarted = brokers.restart("rabbitmq", timeout_s)
        return {
            "restarted by this notebook": True,
            "new process": restarted.get("pid") != entry.get("pid"),
            "same address": restarted.get("url") == entry.get("url"),
            "management API back": self.run.management.wait_until_up(30),
            "took": f"{time.monotonic() - began:.1f} s",
        }

    def after(self) -> list[dict[str, Any]]:
        """The rows of :meth:`prepare` with what is left, measured only once the
        broker has restarted since then (else one row saying what to do)."""
        if self._started_at is None:
            raise RuntimeError("run prepare() first")
        management = self.run.management
        if not management.wait_until_up(30):
            return [{"after restart": "RabbitMQ's management API does not answer yet: "
                                      "wait until the broker is up, then run this cell again"}]
        if management.started_at() <= self._started_at + 1:
            return [{"after restart": "RabbitMQ has not restarted since the messages were "
                                      "published, so there is nothing to measure yet. "
                                      + RESTART_ELSEWHERE}]
        try:  # the owner's connection died with the broker: its thread has ended
            wait_until(lambda: not self._owner.running, 10)
        finally:
            self._owner.stop()
        out = []
        for row in self.rows:
            name = self._owner.queue if row["queue"] == EXCLUSIVE else self.run.name(row["queue"])
            count = message_count(name, self.run.settings)
            out.append({**row, "after restart": "queue gone" if count is None else count})
        return out
