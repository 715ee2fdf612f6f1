"""Experiments for the RabbitMQ chapter (notebooks 05-07), so that cells stay short.

Each helper runs one small experiment on the real broker and returns plain rows
(lists of dicts) the notebook turns into a table or a plot. Every wait is
bounded, every consume loop checks a stop flag, and every pika connection is
used only by the thread that opened it. Queue and exchange names come from a
:class:`Lab`, which remembers them and deletes them in :meth:`Lab.cleanup`.
"""

from __future__ import annotations

import argparse
import os
import selectors
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, UnroutableError

from queue_exp import brokers, kafka_client, rabbit_client, teaching
from queue_exp.config import Settings, get_settings, read_state
from queue_exp.messages import Message, decode_lenient
from queue_exp.rabbit_management import Management

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"  # RabbitMQ's pseudo-queue for RPC replies


# --------------------------------------------------------------------------- names


class Lab:
    """Fresh names for one run of a notebook (``<lesson>.run-xxxxxx.<label>``), and
    the list of what to delete at the end."""

    def __init__(
        self, lesson: str, settings: Settings | None = None, namespace: str | None = None
    ) -> None:
        self.settings = settings or get_settings()
        self.namespace = namespace or teaching.fresh_namespace(lesson)
        self.queues: list[str] = []
        self.exchanges: list[str] = []
        self.topics: list[str] = []
        self._management: Management | None = None

    def _name(self, label: str, into: list[str]) -> str:
        name = f"{self.namespace}.{label}"
        if name not in into:
            into.append(name)
        return name

    def queue(self, label: str) -> str:
        """The name of this run's queue ``label`` (remembered for cleanup)."""
        return self._name(label, self.queues)

    def exchange(self, label: str) -> str:
        return self._name(label, self.exchanges)

    def topic(self, label: str) -> str:
        """A Kafka topic name, for the side-by-side comparisons."""
        return self._name(label, self.topics)

    def label(self, name: str) -> str:
        """``<namespace>.tasks`` -> ``tasks``, for tables that should read the same every run."""
        return name.removeprefix(self.namespace + ".")

    @property
    def management(self) -> Management:
        """A client for the broker's management HTTP API (queue counters)."""
        if self._management is None:
            self._management = Management(self.settings)
        return self._management

    def cleanup(self, extra_queues: Sequence[str] = ()) -> dict[str, int]:
        """Delete every queue, exchange and topic this lab named (and ``extra_queues``,
        e.g. the API's); returns how many."""
        for name in extra_queues:
            if name not in self.queues:
                self.queues.append(name)
        rabbit_client.delete_queues(self.queues, settings=self.settings)
        rabbit_client.delete_exchanges(self.exchanges, settings=self.settings)
        if self.topics:
            kafka_client.delete_topics(self.topics, settings=self.settings)
        if self._management is not None:
            self._management.close()
            self._management = None
        return {
            "queues deleted": len(self.queues),
            "exchanges deleted": len(self.exchanges),
            "topics deleted": len(self.topics),
        }


@contextmanager
def open_channel(
    settings: Settings | None = None, confirm: bool = True
) -> Iterator[BlockingChannel]:
    """A channel on a connection of its own, closed afterwards. With ``confirm``,
    each publish returns only once the broker has confirmed it."""
    connection = rabbit_client.connect(settings)
    try:
        channel = connection.channel()
        if confirm:
            channel.confirm_delivery()
        yield channel
    finally:
        if connection.is_open:
            connection.close()


def publish(
    routing_key: str,
    texts: Sequence[str],
    *,
    exchange: str = "",
    persistent: bool = False,
    settings: Settings | None = None,
    source: str = "notebook",
    **options: Any,
) -> int:
    """Publish one message per text (confirmed); returns how many."""
    with open_channel(settings) as channel:
        for text in texts:
            rabbit_client.publish(
                channel, Message.now(text, source=source), routing_key, exchange,
                persistent=persistent, **options,
            )
    return len(texts)


def message_count(queue_name: str, settings: Settings | None = None) -> int | None:
    """Messages ready in a queue, or ``None`` if the queue does not exist."""
    try:
        with open_channel(settings, confirm=False) as channel:
            return channel.queue_declare(queue_name, passive=True).method.message_count
    except ChannelClosedByBroker as exc:
        if exc.reply_code == rabbit_client.NOT_FOUND:
            return None
        raise


def drain(channel: BlockingChannel, queue_name: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Take (and ack) everything ready in a queue right now, with ``basic_get``."""
    out = []
    for _ in range(limit):
        method, props, body = channel.basic_get(queue_name, auto_ack=True)
        if method is None:
            break
        item = rabbit_client.delivery_to_dict(method, body, queue_name)
        item["headers"] = dict(props.headers or {})
        out.append(item)
    return out


# ------------------------------------------------------------- consumer threads


class ConsumerThread(threading.Thread):
    """A consumer on a connection of its own: calls ``on_message(worker, channel,
    method, properties, body)`` for each delivery until :meth:`stop`."""

    def __init__(
        self,
        name: str,
        queue_name: str,
        on_message: Callable[..., None],
        *,
        prefetch: int | None = None,
        auto_ack: bool = False,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.queue_name = queue_name
        self.on_message = on_message
        self.prefetch = prefetch
        self.auto_ack = auto_ack
        self.settings = settings or get_settings()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        connection = None
        try:
            connection = rabbit_client.connect(self.settings)
            channel = connection.channel()
            if self.prefetch:
                channel.basic_qos(prefetch_count=self.prefetch)
            channel.basic_consume(
                self.queue_name,
                lambda ch, method, props, body: self.on_message(self, ch, method, props, body),
                auto_ack=self.auto_ack,
            )
            self.ready.set()  # the broker has registered us: deliveries may start
            while not self._halt.is_set():
                connection.process_data_events(time_limit=0.05)
        except Exception as exc:  # noqa: BLE001 - reported to the caller by start_all/stop
            self.error = exc
        finally:
            self.ready.set()
            # closing gives every delivery we have not acked back to the queue
            if connection is not None and connection.is_open:
                connection.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._halt.set()
        self.join(timeout_s)


def start_all(threads: Sequence[ConsumerThread], timeout_s: float = 10.0) -> None:
    """Start consumers one after another, each registered before the next starts
    (so the broker's round-robin order is the order given)."""
    for thread in threads:
        thread.start()
        if not thread.ready.wait(timeout_s) or thread.error:
            stop_all(threads)
            raise RuntimeError(f"{thread.name} could not start consuming: {thread.error!r}")


def stop_all(threads: Sequence[ConsumerThread]) -> None:
    for thread in threads:
        if thread.is_alive():
            thread.stop()
    errors = [t.error for t in threads if t.error]
    if errors:
        raise RuntimeError(f"a consumer failed: {errors[0]!r}") from errors[0]


# ------------------------------------------------------- 1. a queue forgets


def read_twice_side_by_side(lab: Lab, count: int = 5, timeout_s: float = 3.0) -> list[dict]:
    """Write ``count`` messages to a Kafka topic and to a RabbitMQ queue, then read
    each twice with a fresh reader. Rows: broker, what was read the 1st and 2nd time."""
    texts = [f"#{i}" for i in range(1, count + 1)]
    topic = lab.topic("read-twice")
    kafka_client.create_topic(topic, partitions=1, settings=lab.settings)
    producer = kafka_client.make_producer(lab.settings)
    try:
        for text in texts:
            kafka_client.send(producer, topic, Message.now(text))
    finally:
        producer.close(timeout=5)
    queue_name = lab.queue("read-twice")
    with open_channel(lab.settings) as channel:
        rabbit_client.declare_queue(channel, queue_name, durable=False)
    publish(queue_name, texts, settings=lab.settings)

    def kafka_read():
        got = kafka_client.consume(
            topic, max_messages=count, timeout_s=timeout_s, settings=lab.settings
        )
        return [m["message"] for m in got]

    def rabbit_read():
        got = rabbit_client.consume(
            queue_name, max_messages=count, timeout_s=timeout_s, settings=lab.settings
        )
        return [m["message"] for m in got]

    rows = []
    for broker, read in (("Kafka topic", kafka_read), ("RabbitMQ queue", rabbit_read)):
        first, second = read(), read()
        rows.append({"read from": broker, "1st read got": " ".join(first) or "(nothing)",
                     "2nd read got": " ".join(second) or "(nothing)"})
    return rows


# ------------------------------------------------------ 2. competing consumers


@dataclass
class WorkRun:
    """One work-queue experiment: who processed which task, and when."""

    prefetch: int | None
    records: list[dict[str, Any]]
    elapsed_s: float

    @property
    def title(self) -> str:
        limit = "no prefetch limit" if self.prefetch is None else f"prefetch_count={self.prefetch}"
        return f"{limit}: all done after {self.elapsed_s:.1f} s"

    def per_worker(self) -> list[dict[str, Any]]:
        """Per worker: tasks done, slow ones among them, and time spent working."""
        rows = []
        for worker in sorted({r["worker"] for r in self.records}):
            mine = [r for r in self.records if r["worker"] == worker]
            rows.append({
                "worker": worker,
                "tasks": sorted(r["task"] for r in mine),
                "slow tasks": sum(r["kind"] == "slow" for r in mine),
                "busy_s": round(sum(r["end_s"] - r["start_s"] for r in mine), 2),
            })
        return rows


def run_work_queue(
    queue_name: str,
    *,
    tasks: int = 10,
    slow_s: float = 0.5,
    fast_s: float = 0.05,
    prefetch: int | None = None,
    workers: int = 2,
    timeout_s: float = 20.0,
    settings: Settings | None = None,
) -> WorkRun:
    """Two (or more) workers compete for ``tasks`` tasks on one queue; odd-numbered
    tasks take ``slow_s`` seconds, even ones ``fast_s``. Each worker acks a task
    when it is done. ``prefetch`` limits how many unacked tasks a worker may hold
    (``None``: no limit, the broker pushes as many as it has)."""
    settings = settings or get_settings()
    with open_channel(settings) as channel:
        rabbit_client.declare_queue(channel, queue_name, durable=False)
    records: list[dict[str, Any]] = []
    t0 = [0.0]

    def on_task(worker, channel, method, props, _body):
        headers = props.headers or {}
        start = time.perf_counter()
        time.sleep(int(headers["work_ms"]) / 1000)  # the "work"
        end = time.perf_counter()
        records.append({
            "task": int(headers["task"]), "kind": headers["kind"], "worker": worker.name,
            "start_s": round(start - t0[0], 3), "end_s": round(end - t0[0], 3),
        })
        channel.basic_ack(method.delivery_tag)  # only now may the broker forget the task

    threads = [
        ConsumerThread(f"worker-{chr(ord('A') + i)}", queue_name, on_task,
                       prefetch=prefetch, settings=settings)
        for i in range(workers)
    ]
    start_all(threads)
    try:
        t0[0] = time.perf_counter()
        with open_channel(settings) as channel:
            for task in range(1, tasks + 1):
                slow = task % 2 == 1
                rabbit_client.publish(
                    channel, Message.now(f"task {task}", source="producer"), queue_name,
                    persistent=False,
                    headers={"task": task, "kind": "slow" if slow else "fast",
                             # AMQP tables carry no floats pika can encode: milliseconds
                             "work_ms": round(1000 * (slow_s if slow else fast_s))},
                )
        teaching.wait_for(lambda: len(records) >= tasks, timeout_s, 0.02)
        elapsed = max(r["end_s"] for r in records)
    finally:
        stop_all(threads)
    return WorkRun(prefetch, sorted(records, key=lambda r: r["task"]), elapsed)


def plot_work_runs(runs: Sequence[WorkRun]):
    """One timeline per run: a row per worker, a bar per task (slow ones orange)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 1.9 * len(runs) + 0.6), sharex=True,
                             squeeze=False)
    colors = {"slow": "tab:orange", "fast": "tab:blue"}
    for ax, run in zip(axes[:, 0], runs, strict=True):
        workers = sorted({r["worker"] for r in run.records})
        for r in run.records:
            y = workers.index(r["worker"])
            ax.barh(y, r["end_s"] - r["start_s"], left=r["start_s"], height=0.6,
                    color=colors[r["kind"]], edgecolor="white")
            ax.text(r["start_s"] + (r["end_s"] - r["start_s"]) / 2, y, str(r["task"]),
                    ha="center", va="center", fontsize=8, color="white")
        ax.set_yticks(range(len(workers)), workers)
        ax.set_xlim(left=0)
        ax.set_title(run.title, fontsize=10, loc="left")
        ax.invert_yaxis()
    axes[-1, 0].set_xlabel("seconds since the tasks were published")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    fig.legend(handles, [f"{k} task" for k in colors], loc="upper right", fontsize=8)
    fig.tight_layout()
    plt.close(fig)  # the caller displays the returned figure once
    return fig


# -------------------------------------------------- 3. acks: a worker dies


def _read_line(proc: subprocess.Popen, timeout_s: float) -> str | None:
    """The child's first stdout line, or None if it exits or stays silent."""
    deadline = time.monotonic() + timeout_s
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return None
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                return None
            buffer += chunk
    return buffer.split(b"\n", 1)[0].decode()


def kill_worker_mid_task(
    queue_name: str,
    *,
    count: int = 1,
    auto_ack: bool = False,
    settings: Settings | None = None,
    timeout_s: float = 15.0,
) -> list[str]:
    """Start a worker *process* that takes ``count`` messages and starts working on
    them, then kill it (SIGKILL) before it acks anything. Returns what it took."""
    settings = settings or get_settings()
    args = [sys.executable, "-m", "queue_exp.rabbit_lessons", "stuck-worker", queue_name,
            "--count", str(count)] + (["--auto-ack"] if auto_ack else [])
    env = {**os.environ, "RABBITMQ_URL": settings.rabbitmq_url}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    try:
        line = _read_line(proc, timeout_s)
    finally:
        proc.kill()  # the crash: no ack, no clean goodbye
        _out, err = proc.communicate(timeout=10)
    if not line or not line.startswith("took "):
        raise RuntimeError(f"the worker process took nothing from {queue_name!r}: "
                           f"{err.decode(errors='replace')[-500:]}")
    return line.removeprefix("took ").split("|") if line != "took " else []


def _stuck_worker(queue_name: str, count: int, auto_ack: bool, work_s: float = 60.0) -> int:
    """The worker process of :func:`kill_worker_mid_task`: take ``count`` messages,
    say which, then "work" (never ack) until killed, or at most ``work_s``."""
    connection = rabbit_client.connect()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=count)
    taken: list[str] = []
    deadline = time.monotonic() + 10
    for method, _props, body in channel.consume(queue_name, auto_ack=auto_ack,
                                                  inactivity_timeout=0.2):
        if method is not None:
            taken.append(decode_lenient(body).get("message", "?"))
        if len(taken) >= count or time.monotonic() > deadline:
            break
    sys.stdout.write("took " + "|".join(taken) + "\n")
    sys.stdout.flush()
    end = time.monotonic() + work_s
    while time.monotonic() < end:
        connection.process_data_events(time_limit=0.5)  # heartbeats while "working"
    return 0


def crash_mid_task(
    queue_name: str, *, auto_ack: bool, task: str = "resize photo 42",
    settings: Settings | None = None,
) -> dict[str, Any]:
    """One task; worker 1 (a process) takes it and is killed mid-task; worker 2
    then asks the queue for work. Returns what each of them saw."""
    settings = settings or get_settings()
    with open_channel(settings) as channel:
        rabbit_client.declare_queue(channel, queue_name, durable=False)
    publish(queue_name, [task], settings=settings)
    taken = kill_worker_mid_task(queue_name, auto_ack=auto_ack, settings=settings)
    second = rabbit_client.consume(queue_name, max_messages=1, timeout_s=2, settings=settings)
    return {
        "acks": "auto_ack=True" if auto_ack else "manual basic_ack",
        "killed worker 1 had": ", ".join(taken),
        "worker 2 got": second[0]["message"] if second else "(nothing)",
        "redelivered": second[0]["redelivered"] if second else None,
        "left in queue": message_count(queue_name, settings),
    }


# ------------------------------------------------- 3. acks: a forgotten ack


@dataclass
class ForgottenAck:
    timeline: list[dict[str, Any]]
    reread: list[dict[str, Any]] = field(default_factory=list)


def forgotten_ack(
    lab: Lab, queue_name: str, batches: Sequence[int] = (3, 3), timeout_s: float = 15.0
) -> ForgottenAck:
    """A consumer that never acks while messages arrive in ``batches``; the queue's
    counters (from the management API) after each step; then it disconnects and a
    new consumer reads everything again."""
    settings, management = lab.settings, lab.management
    with open_channel(settings) as channel:
        rabbit_client.declare_queue(channel, queue_name, durable=False)
    received: list[str] = []

    def forget(_worker, _channel, _method, _props, body):
        received.append(decode_lenient(body).get("message", "?"))  # ...and no basic_ack

    timeline = []

    def snapshot(step: str, **expected: int) -> None:
        counters = management.wait_for_counters(queue_name, timeout_s, **expected)
        timeline.append({"step": step, **counters})

    consumer = ConsumerThread("forgetful", queue_name, forget, settings=settings)
    start_all([consumer])
    try:
        snapshot("forgetful consumer connected", ready=0, unacked=0, consumers=1)
        sent = 0
        for size in batches:
            publish(queue_name, [f"job {sent + i + 1}" for i in range(size)], settings=settings)
            sent += size
            snapshot(f"{size} published ({sent} in total)", ready=0, unacked=sent, consumers=1)
    finally:
        stop_all([consumer])
    snapshot("consumer disconnected", ready=sent, unacked=0, consumers=0)
    reread = rabbit_client.consume(queue_name, max_messages=sent, timeout_s=5, settings=settings)
    snapshot("a new consumer read and acked them", ready=0, unacked=0, consumers=0)
    return ForgottenAck(timeline, reread)


# ----------------------------------------------------------------- 4. durability

DURABILITY_CASES = (
    ("scratch", False, False),
    ("durable-queue-transient-messages", True, False),
    ("durable-queue-persistent-messages", True, True),
)


def prepare_durability(lab: Lab, count: int = 3) -> list[dict[str, Any]]:
    """Three queues, ``count`` confirmed messages each: a non-durable queue, a durable
    queue with transient messages, a durable queue with persistent messages."""
    rows = []
    for label, durable, persistent in DURABILITY_CASES:
        name = lab.queue(label)
        with open_channel(lab.settings) as channel:
            rabbit_client.declare_queue(channel, name, durable=durable)
        publish(name, [f"{label} {i}" for i in range(1, count + 1)],
                persistent=persistent, settings=lab.settings)
        rows.append({"queue": label, "durable queue": durable,
                     "persistent messages": persistent,
                     "before restart": message_count(name, lab.settings)})
    return rows


def restart_rabbitmq(lab: Lab, timeout_s: float = 120.0) -> dict[str, Any]:
    """Stop the embedded RabbitMQ and start it again on the same ports, keeping its
    data directory (a broker restart, not a fresh install)."""
    before = read_state().get("rabbitmq") or {}
    started = time.monotonic()
    entry = brokers.restart("rabbitmq", timeout_s)
    management_up = lab.management.wait_until_up(30)
    return {
        "new process": entry.get("pid") != before.get("pid"),
        "same address": entry.get("url") == before.get("url"),
        "management API back": management_up,
        "took": f"{time.monotonic() - started:.1f} s",
    }


def after_restart(lab: Lab, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of :func:`prepare_durability` with what is left after the restart."""
    out = []
    for row in rows:
        count = message_count(lab.queue(row["queue"]), lab.settings)
        out.append({**row, "after restart": "queue gone" if count is None else count})
    return out


# ------------------------------------------------------------ 5. exchanges


def _shown_binding(binding: Any) -> str:
    if isinstance(binding, dict):
        return ", ".join(f"{k}={v}" for k, v in binding.items())
    return binding if binding != "" else "(none)"


def routing_experiment(
    lab: Lab,
    exchange_type: str,
    bindings: Sequence[tuple[str, Any]],
    messages: Sequence[Any],
) -> dict[str, list[dict[str, Any]]]:
    """Declare an exchange of ``exchange_type``, queues bound as in ``bindings``
    (``(queue_label, binding_key)``, or ``(queue_label, {headers})`` for a headers
    exchange), publish one message per item of ``messages`` (a routing key, or a
    dict of headers), then look into every queue.

    Returns ``{"bindings": [...], "routing": [...]}``: the routing table has one
    row per message and a ✓ under each queue that received it."""
    exchange = lab.exchange(f"{exchange_type}-demo")
    labels = list(dict.fromkeys(label for label, _ in bindings))
    received: dict[str, set[int]] = {}
    returned: set[int] = set()
    with open_channel(lab.settings) as channel:
        rabbit_client.declare_exchange(channel, exchange, exchange_type)
        for label in labels:
            rabbit_client.declare_queue(channel, lab.queue(label), durable=False)
        for label, binding in bindings:
            if isinstance(binding, dict):
                rabbit_client.bind_queue(channel, lab.queue(label), exchange, "", binding)
            else:
                rabbit_client.bind_queue(channel, lab.queue(label), exchange, binding)
        for number, item in enumerate(messages):
            headers = item if isinstance(item, dict) else None
            key = "" if headers is not None else item
            try:
                rabbit_client.publish(
                    channel, Message.now(f"message {number}"), key, exchange,
                    persistent=False, mandatory=True, headers={"n": number, **(headers or {})},
                )
            except UnroutableError:
                returned.add(number)
        for label in labels:
            received[label] = {int(m["headers"]["n"]) for m in drain(channel, lab.queue(label))}
    routing = []
    for number, item in enumerate(messages):
        row = {"message": _shown_binding(item) if isinstance(item, dict) else item}
        row.update({label: "✓" if number in received[label] else "" for label in labels})
        row["copies"] = sum(number in received[label] for label in labels)
        if number in returned:
            row["copies"] = "0 (returned: unroutable)"
        routing.append(row)
    shown = [{"queue": label, "bound with": _shown_binding(binding)} for label, binding in bindings]
    return {"bindings": shown, "routing": routing}


def bound_exchange(
    lab: Lab, label: str, exchange_type: str, queue_name: str, binding_key: str = ""
) -> str:
    """Declare this run's exchange ``label`` and bind an existing queue to it; returns
    the exchange's name."""
    exchange = lab.exchange(label)
    with open_channel(lab.settings) as channel:
        rabbit_client.declare_exchange(channel, exchange, exchange_type)
        rabbit_client.bind_queue(channel, queue_name, exchange, binding_key)
    return exchange


def fanout_late_subscriber(
    lab: Lab, early: Sequence[str] = ("news 1", "news 2"), late: Sequence[str] = ("news 3",)
) -> list[dict[str, Any]]:
    """A fanout exchange with two temporary subscriber queues (server-named,
    exclusive: they live as long as our connection); ``early`` is published, a third
    subscriber binds, ``late`` is published. What did each subscriber get, and are
    the temporary queues gone after we disconnect?"""
    exchange = lab.exchange("fanout-news")
    subscribers: dict[str, str] = {}
    got: dict[str, list[str]] = {}
    with open_channel(lab.settings) as channel:
        rabbit_client.declare_exchange(channel, exchange, "fanout")

        def subscribe(label: str) -> None:
            # queue "" = let the broker pick a name; exclusive = delete it with this connection
            name = channel.queue_declare("", exclusive=True).method.queue
            rabbit_client.bind_queue(channel, name, exchange)
            subscribers[label] = name

        subscribe("A (from the start)")
        subscribe("B (from the start)")
        for text in early:
            rabbit_client.publish(channel, Message.now(text), "", exchange, persistent=False)
        subscribe("C (bound later)")
        for text in late:
            rabbit_client.publish(channel, Message.now(text), "", exchange, persistent=False)
        for label, name in subscribers.items():
            got[label] = [m["message"] for m in drain(channel, name)]
    return [
        {
            "subscriber": label,
            "server-named queue": name.startswith("amq.gen-"),
            "received": ", ".join(got[label]),
            "queue exists after disconnect": rabbit_client.queue_exists(name, lab.settings),
        }
        for label, name in subscribers.items()
    ]


# ------------------------------------------------------ 8. request / reply


def rpc_round_trip(
    lab: Lab,
    requests: Sequence[int] = (6, 1, 3),
    *,
    servers: int = 2,
    seconds_per_unit: float = 0.1,
    timeout_s: float = 15.0,
) -> list[dict[str, Any]]:
    """RPC over RabbitMQ with *direct reply-to*: ``servers`` server threads square
    numbers (taking ``n * seconds_per_unit`` s for ``n``); the client sends all
    ``requests`` at once, each with a fresh correlation id and
    ``reply_to=amq.rabbitmq.reply-to``, and matches replies by correlation id.
    Rows in arrival order."""
    settings = lab.settings
    queue_name = lab.queue("rpc-requests")
    with open_channel(settings) as channel:
        rabbit_client.declare_queue(channel, queue_name, durable=False)
    served: dict[str, dict[str, Any]] = {}

    def serve(worker, channel, method, props, body):
        n = int(decode_lenient(body)["message"])
        time.sleep(n * seconds_per_unit)  # the "computation"
        served[props.correlation_id] = {"served by": worker.name, "reply_to": props.reply_to}
        channel.basic_publish(
            "", props.reply_to, rabbit_client.encode(Message.now(str(n * n), source=worker.name)),
            pika.BasicProperties(correlation_id=props.correlation_id,
                                 content_type="application/json"),
        )
        channel.basic_ack(method.delivery_tag)

    threads = [ConsumerThread(f"server-{i + 1}", queue_name, serve, prefetch=1,
                              settings=settings) for i in range(servers)]
    start_all(threads)
    try:
        pending = {str(uuid.uuid4()): n for n in requests}
        replies: list[dict[str, Any]] = []
        connection = rabbit_client.connect(settings)
        try:
            channel = connection.channel()

            def on_reply(_ch, _method, props, body):
                n = pending.pop(props.correlation_id, None)
                if n is None:
                    return  # a reply to a request we no longer wait for: drop it
                replies.append({"request": n, "reply": decode_lenient(body)["message"],
                                "correlation_id": props.correlation_id})

            # consume from the pseudo-queue *before* publishing with reply_to; no ack
            # is possible there, so auto_ack is required
            channel.basic_consume(DIRECT_REPLY_TO, on_reply, auto_ack=True)
            for correlation_id, n in list(pending.items()):
                channel.basic_publish(
                    "", queue_name, rabbit_client.encode(Message.now(str(n), source="client")),
                    pika.BasicProperties(reply_to=DIRECT_REPLY_TO, correlation_id=correlation_id,
                                         content_type="application/json"),
                )
            deadline = time.monotonic() + timeout_s
            while pending and time.monotonic() < deadline:
                connection.process_data_events(time_limit=0.05)
        finally:
            connection.close()
    finally:
        stop_all(threads)
    if pending:
        raise TimeoutError(f"no reply within {timeout_s} s for requests {sorted(pending.values())}")
    return [
        {"arrived": i + 1, **reply, **served[reply["correlation_id"]]}
        for i, reply in enumerate(replies)
    ]


# --------------------------------------------------------- 6. publisher confirms


def _publish_confirmed(
    queue_name: str,
    count: int,
    window: int,
    sliding: bool,
    settings: Settings,
    timeout_s: float,
) -> dict[str, Any]:
    """Publish ``count`` persistent messages on a ``SelectConnection`` (pika's
    callback-driven adapter) with publisher confirms, at most ``window``
    unconfirmed at any time. Without ``sliding`` the next batch goes out once the
    whole previous one is confirmed (window 1 = one at a time); with ``sliding``,
    every confirm makes room for more at once (asynchronous publishing)."""
    body = rabbit_client.encode(Message.now("confirm me", source="confirms"))
    props = pika.BasicProperties(delivery_mode=rabbit_client.PERSISTENT,
                                 content_type="application/json")
    state: dict[str, Any] = {"published": 0, "acked": 0, "nacked": 0, "start": None, "end": None,
                             "error": None}
    outstanding: set[int] = set()
    limit = window

    def publish_batch(channel) -> None:
        while state["published"] < count and len(outstanding) < limit:
            channel.basic_publish("", queue_name, body, props)
            state["published"] += 1
            outstanding.add(state["published"])  # delivery tags count 1, 2, 3, ...

    def on_confirm(frame) -> None:
        confirm = frame.method
        if confirm.multiple:  # one ack/nack may cover every tag up to this one
            done = {tag for tag in outstanding if tag <= confirm.delivery_tag}
        else:
            done = {confirm.delivery_tag} & outstanding
        outstanding.difference_update(done)
        key = "acked" if isinstance(confirm, pika.spec.Basic.Ack) else "nacked"
        state[key] += len(done)
        if state["acked"] + state["nacked"] >= count:
            state["end"] = time.perf_counter()
            connection.close()
        elif sliding or not outstanding:  # room again (or the whole batch is confirmed)
            publish_batch(channels[0])

    channels: list = []

    def on_channel(channel) -> None:
        channels.append(channel)
        channel.add_on_close_callback(lambda _ch, reason: fail(reason))

        def go(_frame) -> None:
            state["start"] = time.perf_counter()
            publish_batch(channel)

        channel.confirm_delivery(ack_nack_callback=on_confirm, callback=go)

    def fail(reason: Any) -> None:
        if state["end"] is None and state["error"] is None:
            state["error"] = reason
        if connection.is_open:
            connection.close()

    def on_timeout() -> None:
        if state["end"] is None:
            fail(f"not all confirmed within {timeout_s} s")
            if not connection.is_open and not connection.is_closing:
                connection.ioloop.stop()

    params = rabbit_client.connection_parameters(settings)
    connection = pika.SelectConnection(
        params,
        on_open_callback=lambda conn: conn.channel(on_open_callback=on_channel),
        on_open_error_callback=lambda conn, err: (fail(err), conn.ioloop.stop()),
        on_close_callback=lambda conn, reason: conn.ioloop.stop(),
    )
    connection.ioloop.call_later(timeout_s, on_timeout)
    connection.ioloop.start()
    if state["end"] is None:
        raise RuntimeError(f"confirmed publishing failed: {state['error']!r}")
    return {"confirmed": state["acked"], "nacked": state["nacked"],
            "seconds": state["end"] - state["start"]}


CONFIRM_MODES = ("one at a time", "in batches", "asynchronously")


def confirm_timings(
    queue_name: str,
    count: int = 1000,
    batch_size: int = 100,
    async_window: int = 1000,
    repeats: int = 3,
    settings: Settings | None = None,
    timeout_s: float = 20.0,
) -> list[dict[str, Any]]:
    """Publish the same ``count`` persistent messages to a durable queue in each
    confirm mode, ``repeats`` times; rows with the median time per mode."""
    settings = settings or get_settings()
    with open_channel(settings) as channel:
        rabbit_client.declare_queue(channel, queue_name, durable=True)
    modes = {  # mode: (at most this many unconfirmed, sliding window?)
        "one at a time": (1, False),
        "in batches": (batch_size, False),
        "asynchronously": (async_window, True),
    }
    rows = []
    for mode in CONFIRM_MODES:
        window, sliding = modes[mode]
        runs = []
        for _ in range(repeats):
            runs.append(
                _publish_confirmed(queue_name, count, window, sliding, settings, timeout_s)
            )
            with open_channel(settings, confirm=False) as channel:
                channel.queue_purge(queue_name)
        seconds = statistics.median(r["seconds"] for r in runs)
        rows.append({
            "mode": mode,
            "unconfirmed at most": window,
            "messages": count,
            "all confirmed": all(r["confirmed"] == count for r in runs),
            "seconds": round(seconds, 3),
            "msg/s": round(count / seconds),
        })
    return rows


def plot_confirm_timings(rows: Sequence[dict[str, Any]]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.4))
    modes = [r["mode"] for r in rows]
    bars = ax.barh(modes, [r["seconds"] for r in rows],
                   color=["tab:red", "tab:orange", "tab:green"][: len(rows)])
    for bar, r in zip(bars, rows, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f"  {r['msg/s']:,} msg/s",
                va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds to publish {rows[0]['messages']} messages, all confirmed")
    ax.set_xlim(0, max(r["seconds"] for r in rows) * 1.35)
    fig.tight_layout()
    plt.close(fig)
    return fig


def unroutable_publish(lab: Lab) -> list[dict[str, Any]]:
    """Publish to an exchange with no bindings, without and with ``mandatory``."""
    exchange = lab.exchange("nobody-listens")
    rows = []
    with open_channel(lab.settings) as channel:
        rabbit_client.declare_exchange(channel, exchange, "direct")
        for mandatory in (False, True):
            row: dict[str, Any] = {"mandatory": mandatory}
            try:
                rabbit_client.publish(channel, Message.now("order 7"), "orders", exchange,
                                      mandatory=mandatory)
                row.update(outcome="confirmed (basic.ack)", returned="")
            except UnroutableError as exc:
                returned = exc.messages[0].method
                row.update(outcome="UnroutableError raised",
                           returned=f"{returned.reply_code} {returned.reply_text}")
            rows.append(row)
    return rows


# ------------------------------------------------------------ 7. dead letters


def dead_letter_exchange(lab: Lab) -> tuple[str, str]:
    """A fanout exchange for dead letters and the one queue bound to it."""
    exchange, queue_name = lab.exchange("dead-letters"), lab.queue("dead-letters")
    with open_channel(lab.settings) as channel:
        rabbit_client.declare_exchange(channel, exchange, "fanout")
        rabbit_client.declare_queue(channel, queue_name, durable=False)
        rabbit_client.bind_queue(channel, queue_name, exchange)
    return exchange, queue_name


def read_dead_letters(
    lab: Lab, dead_letter_queue: str, count: int, timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    """Wait (bounded) for ``count`` dead letters and take them."""
    got: list[dict[str, Any]] = []
    with open_channel(lab.settings, confirm=False) as channel:

        def enough() -> bool:
            got.extend(drain(channel, dead_letter_queue, count - len(got)))
            return len(got) >= count

        teaching.wait_for(enough, timeout_s, 0.05)
    return got


def x_death(letter: dict[str, Any], lab: Lab) -> dict[str, Any]:
    """The first ``x-death`` entry of a dead letter, without its timestamp, with
    queue names shortened to their labels (``None`` if it has none)."""
    deaths = letter["headers"].get("x-death") or []
    if not deaths:
        return {"x-death": None}
    first = deaths[0]
    return {
        "reason": first.get("reason"),
        "queue": lab.label(first.get("queue", "")),
        "count": int(first.get("count", 0)),
        "exchange": first.get("exchange"),
        "routing-keys": [lab.label(k) for k in first.get("routing-keys", [])],
    }


def reject_into_dead_letters(lab: Lab, dlx: str, dlq: str) -> dict[str, Any]:
    """A consumer rejects a message it cannot handle: ``basic_nack(requeue=False)``."""
    queue_name = lab.queue("orders")
    with open_channel(lab.settings) as channel:
        rabbit_client.declare_queue(channel, queue_name, durable=False,
                                    **{"x-dead-letter-exchange": dlx})
    publish(queue_name, ["order with a bad address"], settings=lab.settings)
    with open_channel(lab.settings, confirm=False) as channel:
        method, _props, body = channel.basic_get(queue_name)
        channel.basic_nack(method.delivery_tag, requeue=False)  # "I can never process this"
    [letter] = read_dead_letters(lab, dlq, 1)
    return {"case": "basic_nack(requeue=False)", "message": letter["message"],
            **x_death(letter, lab)}


def expire_into_dead_letters(
    lab: Lab, dlx: str, dlq: str, ttl_ms: int = 300
) -> list[dict[str, Any]]:
    """A per-message TTL (``expiration``) and a per-queue TTL (``x-message-ttl``);
    nobody consumes, so both messages expire into the dead-letter exchange."""
    per_message, per_queue = lab.queue("parcels"), lab.queue("sessions")
    with open_channel(lab.settings) as channel:
        rabbit_client.declare_queue(channel, per_message, durable=False,
                                    **{"x-dead-letter-exchange": dlx})
        rabbit_client.declare_queue(channel, per_queue, durable=False,
                                    **{"x-dead-letter-exchange": dlx, "x-message-ttl": ttl_ms})
    publish(per_message, ["parcel with expiration"], expiration_ms=ttl_ms, settings=lab.settings)
    publish(per_queue, ["session in a TTL queue"], settings=lab.settings)
    letters = read_dead_letters(lab, dlq, 2)
    cases = {per_message: f"message expiration={ttl_ms} ms",
             per_queue: f"queue x-message-ttl={ttl_ms} ms"}
    rows = []
    for letter in sorted(letters, key=lambda m: m["message"]):
        death = x_death(letter, lab)
        rows.append({"case": cases[lab.queue(death["queue"])], "message": letter["message"],
                     **death})
    return rows


def ttl_head_of_line(lab: Lab, dlx: str, dlq: str, ttl_ms: int = 200) -> list[dict[str, Any]]:
    """A message without TTL, then one with a short per-message TTL behind it: the
    second expires only once it reaches the head of the queue."""
    queue_name = lab.queue("mixed-ttl")
    with open_channel(lab.settings) as channel:
        rabbit_client.declare_queue(channel, queue_name, durable=False,
                                    **{"x-dead-letter-exchange": dlx})
    publish(queue_name, ["no expiration"], settings=lab.settings)
    publish(queue_name, [f"expiration={ttl_ms} ms"], expiration_ms=ttl_ms, settings=lab.settings)
    rows = []
    waited = 5 * ttl_ms / 1000
    time.sleep(waited)  # the experiment: give the second message five times its TTL
    rows.append({"moment": f"{5 * ttl_ms} ms later",
                 "in the queue": message_count(queue_name, lab.settings),
                 "dead-lettered": message_count(dlq, lab.settings)})
    rabbit_client.consume(queue_name, max_messages=1, timeout_s=2, settings=lab.settings)
    teaching.wait_for(lambda: message_count(dlq, lab.settings) == 1, 5)
    rows.append({"moment": "after the head message was consumed",
                 "in the queue": message_count(queue_name, lab.settings),
                 "dead-lettered": message_count(dlq, lab.settings)})
    read_dead_letters(lab, dlq, 1)  # leave the dead-letter queue empty for the next lesson
    return rows


def poison_in_quorum_queue(
    lab: Lab, dlx: str, dlq: str, delivery_limit: int = 2, timeout_s: float = 10.0
) -> dict[str, Any]:
    """A quorum queue with ``x-delivery-limit``; a consumer that fails on the
    message every time (``basic_nack(requeue=True)``). Returns each delivery
    attempt and the dead letter that comes out at the end."""
    queue_name = lab.queue("payments")
    with open_channel(lab.settings) as channel:
        rabbit_client.declare_queue(
            channel, queue_name, durable=True,  # quorum queues are always durable
            **{"x-queue-type": "quorum", "x-delivery-limit": delivery_limit,
               "x-dead-letter-exchange": dlx},
        )
    publish(queue_name, ["payment that crashes the worker"], persistent=True,
            settings=lab.settings)
    attempts = []
    deadline = time.monotonic() + timeout_s
    with open_channel(lab.settings, confirm=False) as channel:
        while time.monotonic() < deadline:
            method, props, _body = channel.basic_get(queue_name)
            if method is None:
                if message_count(dlq, lab.settings):
                    break
                time.sleep(0.05)
                continue
            attempts.append({
                "attempt": len(attempts) + 1,
                "redelivered": method.redelivered,
                "x-delivery-count": (props.headers or {}).get("x-delivery-count"),
            })
            channel.basic_nack(method.delivery_tag, requeue=True)  # "failed, try again"
    [letter] = read_dead_letters(lab, dlq, 1)
    for attempt in attempts:
        if attempt["x-delivery-count"] is not None:
            attempt["x-delivery-count"] = int(attempt["x-delivery-count"])
    return {
        "attempts": attempts,
        "dead letter": {"case": f"quorum queue, x-delivery-limit={delivery_limit}",
                        "message": letter["message"], **x_death(letter, lab)},
        "headers": letter["headers"],
    }


# --------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m queue_exp.rabbit_lessons stuck-worker QUEUE [--count N] [--auto-ack]``:
    the worker process that :func:`kill_worker_mid_task` starts and kills."""
    parser = argparse.ArgumentParser(prog="python -m queue_exp.rabbit_lessons")
    sub = parser.add_subparsers(dest="command", required=True)
    stuck = sub.add_parser("stuck-worker", help="take messages, never ack, wait to be killed")
    stuck.add_argument("queue")
    stuck.add_argument("--count", type=int, default=1)
    stuck.add_argument("--auto-ack", action="store_true")
    stuck.add_argument("--work-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    return _stuck_worker(args.queue, args.count, args.auto_ack, args.work_s)


if __name__ == "__main__":
    sys.exit(main())
