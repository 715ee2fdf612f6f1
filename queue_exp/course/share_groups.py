"""A queue in Kafka (notebook 11): share groups, once the raw ``ShareConsumer``
code has been shown.

* :func:`new_share_group` - a group name with its settings (a share group starts at
  the end of the log unless told otherwise)
* :func:`acknowledge_each` - one share consumer decides per delivery: accept,
  release (hand it out again) or reject; every delivery with its count
* :func:`hold_and_crash` - a member takes records and is killed, or freezes; when
  do they come back, and to whom? (:func:`kill_and_freeze`: both at once)
* :func:`share_offsets` - ``kafka-share-groups --describe``: start offset and lag
* :func:`main` - the member that takes records and then dies or freezes, run as
  ``python -m queue_exp.course.share_groups hold TOPIC GROUP``

The side-by-side with consumer groups and RabbitMQ's competing consumers is
:func:`queue_exp.course.compare.split_work` (``"Kafka share group"``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import AcknowledgeType
from kafka import TopicPartition

from queue_exp.brokers.tools import tool
from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients import share
from queue_exp.clients.consumers import start_in_order
from queue_exp.clients.consumers import stop_all
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.course.kafka.log import produce
from queue_exp.course.rabbitmq.acks import first_line
from queue_exp.course.run import Run
from queue_exp.messages import Message
from queue_exp.messages import decode_lenient
from queue_exp.waiting import wait_until

ACKS = {"accept": AcknowledgeType.ACCEPT, "release": AcknowledgeType.RELEASE,
        "reject": AcknowledgeType.REJECT}
DEAD_LETTER_PREFIX = "dlq."  # the broker's errors.deadletterqueue.topic.name.prefix

Decide = Callable[[str, int], str]


def text(message: Any) -> str:
    """The text of a record the course wrote (its JSON ``message``), else its value."""
    return str(decode_lenient(message.value() or b"").get("message", message.value()))


def new_share_group(run: Run, label: str, configs: Mapping[str, Any] | None = None) -> str:
    """The name of share group ``label``, its settings set before any member joins:
    ``share.auto.offset.reset=earliest`` (Kafka's default is ``latest``: a new group
    would skip what is already in the topic) and ``configs``, e.g.
    ``{"share.delivery.count.limit": 3}``."""
    group = run.group(label)
    share.set_group_config(group, {share.AUTO_OFFSET_RESET: "earliest", **(configs or {})},
                           run.settings)
    return group


def dead_letter_topic(run: Run, label: str) -> str:
    """Create ``dlq.<run's namespace>.<label>``, a topic a share group may write its
    dead letters to (Kafka 4.4: the name must start with ``dlq.`` and the topic
    must say ``errors.deadletterqueue.group.enable=true``). The run deletes it."""
    name = DEAD_LETTER_PREFIX + run.name(label)
    kafka_admin.create_topic(name, 1, {"errors.deadletterqueue.group.enable": "true"},
                             settings=run.settings)
    run.created["topics"].append(name)  # outside the namespace: the run must remember it
    return name


def acknowledge_each(
    run: Run, texts: Sequence[str], decide: Decide, *, label: str = "acks",
    limit: int | None = None, dead_letters: bool = False, quiet_s: float = 1.0,
    timeout_s: float = 20.0,
) -> dict[str, Any]:
    """Write ``texts`` to a new one-partition topic; one share consumer asks
    ``decide(text, delivery_count)`` what to do with each delivery (``"accept"``,
    ``"release"`` or ``"reject"``) and acknowledges it so. The group archives a
    record after ``limit`` deliveries (``share.delivery.count.limit``; Kafka's
    default 5); with ``dead_letters`` it also writes rejected and archived records
    to a dead-letter topic. Once every record is finished, the consumer goes on
    polling for ``quiet_s`` seconds: any further delivery would show in the rows.

    Returns ``deliveries`` (one row per delivery, by record then count), the
    group's ``offsets`` afterwards and, with ``dead_letters``, what the dead-letter
    topic holds."""
    configs: dict[str, Any] = {}
    if limit is not None:
        configs[share.DELIVERY_COUNT_LIMIT] = limit
    dlq = dead_letter_topic(run, f"{label}-dead-letters") if dead_letters else None
    if dlq is not None:
        configs.update({"errors.deadletterqueue.topic.name": dlq,
                        "errors.deadletterqueue.copy.record.enable": "true"})
    topic = run.topic(label, partitions=1)
    group = new_share_group(run, f"{label}-workers", configs)
    limit = int(share.group_config(group, [share.DELIVERY_COUNT_LIMIT],
                                   run.settings)[share.DELIVERY_COUNT_LIMIT])
    deliveries: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_batch(consumer: Any, messages: list[Any]) -> None:
        for message in messages:
            said = decide(text(message), message.delivery_count())
            consumer.acknowledge(message, ACKS[said])
            with lock:
                deliveries.append({"record": text(message), "offset": message.offset(),
                                   "delivery count": message.delivery_count(),
                                   "acknowledged": said.upper()})
        consumer.commit_sync(10)

    def settled() -> bool:
        with lock:
            last = {row["record"]: row for row in deliveries}
        return len(last) == len(texts) and all(
            row["acknowledged"] != "RELEASE" or row["delivery count"] >= limit
            for row in last.values())

    produce(topic, [Message.now(t) for t in texts], settings=run.settings)
    member = share.ShareConsumerThread([topic], on_batch, group_id=group, name="worker",
                                       settings=run.settings)
    start_in_order([member])
    try:
        wait_until(settled, timeout_s, 0.05, what="every record accepted, rejected or archived")
        time.sleep(quiet_s)  # the experiment: does anything come back after that?
    finally:
        stop_all([member])
    order = {t: i for i, t in enumerate(texts)}
    result: dict[str, Any] = {
        "deliveries": sorted(deliveries, key=lambda r: (order[r["record"]], r["delivery count"])),
        "group": group, "topic": topic,
        "offsets": share_offsets(group, run.settings),
    }
    if dlq is not None:
        with lock:
            last = {row["record"]: row for row in deliveries}
        dead = sum(row["acknowledged"] != "ACCEPT" for row in last.values())
        result["dead letters"] = _dead_letters(run, dlq, dead)
    return result


def _dead_letters(run: Run, topic: str, expected: int, timeout_s: float = 10.0
                  ) -> list[dict[str, Any]]:
    """Wait (bounded) for ``expected`` records in the dead-letter topic; each with
    its text and the headers the broker added."""
    found: list[Any] = []
    tp = TopicPartition(topic, 0)

    def arrived() -> bool:
        consumer = kafka.make_consumer(settings=run.settings, enable_auto_commit=False)
        try:
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            batch = consumer.poll(timeout_ms=500, max_records=100)
            found[:] = [r for records in batch.values() for r in records]
        finally:
            consumer.close(autocommit=False)
        return len(found) >= expected

    wait_until(arrived, timeout_s, 0.2, what=f"{expected} dead letters in {topic}")
    return [{"record": decode_lenient(r.value).get("message"),
             "headers": {k: (v or b"").decode(errors="replace") for k, v in r.headers}}
            for r in found]


def share_offsets(group: str, settings: Settings | None = None) -> list[dict[str, Any]]:
    """``kafka-share-groups --describe``: per partition, the start offset (the first
    record the group has not finished with) and the lag (records not yet
    finished: neither accepted, rejected nor archived)."""
    settings = settings or get_settings()
    run = tool("kafka-share-groups", "--describe", "--group", group,
               "--bootstrap-server", settings.kafka_bootstrap_servers, timeout_s=30)
    rows = []
    for line in str(run).splitlines():
        fields = line.split()  # GROUP TOPIC PARTITION START-OFFSET LAG
        if len(fields) == 5 and fields[0] == group and fields[2].isdigit():
            rows.append({"partition": int(fields[2]),
                         "start offset": None if fields[3] == "-" else int(fields[3]),
                         "lag": None if fields[4] == "-" else int(fields[4])})
    return rows


# ------------------------------------------------- a member dies holding records


def hold_and_crash(run: Run, how: str, *, count: int = 3, lock_ms: int = 4000,
                   session_ms: int = 6000, timeout_s: float = 30.0) -> dict[str, Any]:
    """A member *process* takes ``count`` records and, without acknowledging them,
    is killed (``how="kill"``: SIGKILL, its connection closes) or freezes
    (``"freeze"``: SIGSTOP, alive to the operating system, its connection open,
    silent). A second member, a thread here, accepts whatever it gets.

    The group's record lock is ``lock_ms`` (``share.record.lock.duration.ms``).
    A killed member stays listed until ``session_ms`` without a heartbeat
    (``share.session.timeout.ms``); this waits until the broker dropped it, so the
    run can delete the group. A frozen one is thawed and closed at the end.

    Returns a row per record (who had it, who got it back, its delivery count,
    seconds from the crash and from the first delivery until it came back) and,
    for a kill, how long the dead member stayed listed."""
    if how not in ("kill", "freeze"):
        raise ValueError("how is 'kill' or 'freeze'")
    topic = run.topic(f"{how}-jobs", partitions=1)
    configs = {share.LOCK_DURATION_MS: lock_ms}
    if how == "kill":  # a frozen member keeps Kafka's 45 s: it is thawed long before
        configs[share.SESSION_TIMEOUT_MS] = session_ms
    group = new_share_group(run, f"{how}-workers", configs)
    holder = _start_holder(run, topic, group)
    came_back: list[dict[str, Any]] = []
    try:
        produce(topic, [Message.now(f"job {i}") for i in range(1, count + 1)],
                settings=run.settings)  # one batch: the first fetch takes all of it
        line = first_line(holder, timeout_s)
        if not line or not line.startswith("took "):
            raise RuntimeError(f"the holding member took nothing: {_stderr(holder)}")
        took = json.loads(line.removeprefix("took "))
        if how == "freeze":  # at once: the lock runs from the first delivery
            holder.send_signal(signal.SIGSTOP)
            crashed = time.time()

        def on_batch(consumer: Any, messages: list[Any]) -> None:
            for message in messages:
                came_back.append({"record": text(message), "t": time.time(),
                                  "delivery count": message.delivery_count()})
                consumer.acknowledge(message, AcknowledgeType.ACCEPT)
            consumer.commit_sync(10)

        survivor = share.ShareConsumerThread([topic], on_batch, group_id=group,
                                             name="survivor", settings=run.settings)
        start_in_order([survivor])
        try:
            if how == "kill":  # once the survivor is in, so it is there to take them
                wait_until(lambda: len(share.members(group, run.settings)) == 2, timeout_s,
                           what="both members listed")
                holder.kill()
                crashed = time.time()
            wait_until(lambda: len(came_back) >= count, timeout_s, 0.02,
                       what="the records back at the survivor")
        finally:
            stop_all([survivor])
        listed_for = None
        if how == "kill":
            holder.wait(10)
            wait_until(lambda: not share.members(group, run.settings), timeout_s, 0.5,
                       what="the killed member dropped from the group")
            listed_for = round(time.time() - crashed, 1)
    finally:
        _end_holder(holder)
    rows = [{"record": row["record"], "taken by": f"member process ({how})",
             "came back to": "survivor", "delivery count": row["delivery count"],
             "seconds after the crash": round(row["t"] - crashed, 1),
             "seconds after it was taken": round(row["t"] - took["at"], 1)}
            for row in sorted(came_back, key=lambda r: r["record"])]
    return {"how": how, "took": took["records"], "rows": rows, "lock_ms": lock_ms,
            "dead member listed for s": listed_for}


def kill_and_freeze(run: Run, **options: Any) -> list[dict[str, Any]]:
    """:func:`hold_and_crash` for a killed and a frozen member at the same time
    (each with its own topic, group and processes: the waits overlap)."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="queue_exp-crash") as pool:
        futures = [pool.submit(hold_and_crash, run, how, **options) for how in ("kill", "freeze")]
        return [future.result() for future in futures]


def _start_holder(run: Run, topic: str, group: str) -> subprocess.Popen:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": run.settings.kafka_bootstrap_servers}
    return subprocess.Popen(
        [sys.executable, "-m", "queue_exp.course.share_groups", "hold", topic, group],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)


def _stderr(proc: subprocess.Popen) -> str:
    proc.kill()
    _out, err = proc.communicate(timeout=10)
    return err.decode(errors="replace")[-500:]


def _end_holder(proc: subprocess.Popen) -> None:
    """Thaw and stop the holding member (it closes its consumer), or kill it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _hold(topic: str, group: str, max_s: float) -> int:
    """The member process of :func:`hold_and_crash`: take one batch of records,
    print them, then hold them unacknowledged until SIGTERM (or ``max_s``)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    consumer = share.share_consumer(group, get_settings())
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + max_s
        batch: list[Any] = []
        while not batch and not stop.is_set() and time.monotonic() < deadline:
            batch = [m for m in consumer.poll(0.1) if m.error() is None]
        took = {"records": [text(m) for m in batch], "at": time.time()}
        sys.stdout.write(f"took {json.dumps(took)}\n")
        sys.stdout.flush()
        stop.wait(max(0.0, deadline - time.monotonic()))  # "working": never acknowledges
    finally:
        consumer.close()  # a clean stop: its records go back, it leaves the group
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m queue_exp.course.share_groups hold TOPIC GROUP [--max-s S]``:
    the member that :func:`hold_and_crash` starts, then kills or freezes."""
    parser = argparse.ArgumentParser(prog="python -m queue_exp.course.share_groups")
    sub = parser.add_subparsers(dest="command", required=True)
    hold = sub.add_parser("hold", help="take a batch of records, never acknowledge them")
    hold.add_argument("topic")
    hold.add_argument("group")
    hold.add_argument("--max-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    return _hold(args.topic, args.group, args.max_s)


if __name__ == "__main__":
    sys.exit(main())
