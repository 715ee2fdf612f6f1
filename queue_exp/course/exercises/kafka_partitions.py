"""Kafka exercises 1 and 2, about partitions: one user's events (a key picks a
partition, a partition holds several keys) and enough partitions for a group of
three consumers. Also the :class:`Task` every Kafka exercise's setup returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from queue_exp.clients import kafka_admin
from queue_exp.config import Settings
from queue_exp.course.exercises import probes
from queue_exp.course.exercises.feedback import (
    Feedback,
    count,
    describe_error,
    friendly_errors,
    kind,
    not_finished,
    quoted,
    run_learner_code,
)
from queue_exp.course.kafka import log as kafka_log
from queue_exp.course.kafka.groups import ConsumerGroupLab
from queue_exp.course.run import Run

__all__ = ["Task", "setup_read_key", "check_read_key", "setup_partitions", "check_partitions"]

LEARNER_TIMEOUT_S = 15.0
ENDLESS_LOOP_HINT = ("a `for record in consumer:` loop waits for new records forever; stop "
                     "at the end of the topic (`kl.read_to_end(topic)` does), or "
                     "give the consumer `consumer_timeout_ms=…`")


@dataclass(frozen=True)
class Task:
    """A topic (and maybe a group) made for one exercise; ``label`` is its short name."""

    topic: str
    label: str
    settings: Settings = field(repr=False)
    group: str | None = None
    expected: Any = None  # what the broker said right after the setup

    def label_of(self, text: str) -> str:
        """``text`` with the workspace's namespace left out of every name in it."""
        return text.replace(self.settings.namespace + ".", "")


# ----------------------------------------------------------- 1. one user's events


def setup_read_key(run: Run) -> Task:
    """Topic ``user-events`` (3 partitions): four rounds of the four users' events."""
    topic = run.fresh_name("user-events")
    kafka_admin.create_topic(topic, 3, settings=run.settings)
    kafka_log.produce(topic, kafka_log.keyed_messages(rounds=4),
                          settings=run.settings)
    return Task(topic, run.label(topic), run.settings)


@friendly_errors
def check_read_key(task: Task, read_key: Any, keys: tuple[str, ...] = ("carol", "alice")
                   ) -> Feedback:
    """Exercise 1 · One user's events"""
    fb = Feedback("Exercise 1 · One user's events")
    if not callable(read_key):
        return fb.fail("`read_key` is not a function", "define `def read_key(topic, key):`")
    run = run_learner_code(lambda: {key: read_key(task.topic, key) for key in keys},
                           timeout_s=LEARNER_TIMEOUT_S)
    if not run.finished:
        return not_finished(fb, "read_key", run, LEARNER_TIMEOUT_S, task.label_of,
                            ENDLESS_LOOP_HINT)
    records = probes.read_topic(task.topic, task.settings)
    for key in keys:
        expected = [r["message"] for r in records if r.get("key") == key]
        _judge_key(fb, key, run.value[key], expected)
    return fb


def _judge_key(fb: Feedback, key: str, answer: Any, expected: list[str]) -> None:
    call = f"`read_key(topic, '{key}')`"
    got = probes.texts_of(answer)
    if answer is None:
        fb.fail(f"{call} returned None",
                "read the topic to its end (`kl.read_to_end(topic)` returns every "
                "record as a dict with its `key` and `message`), keep the records with the "
                "key asked for, and return their messages")
    elif got is None:
        fb.fail(f"{call} returned {kind(answer)}; expected a list of message texts "
                f"like ['{key} #1', …]")
    elif got == expected:
        fb.ok(f"{call}: all {count(len(expected), 'message')} of {key}, oldest first")
    elif extra := [t for t in got if t not in expected]:
        fb.fail(f"{call} also returned other users' messages: {quoted(extra[:3])}",
                "a partition holds several keys (alice and bob share one): keep a record "
                "only if its own key is the one asked for")
    elif missing := [t for t in expected if t not in got]:
        fb.fail(f"{call} missed {len(missing)} of {key}'s {len(expected)} messages: "
                f"{quoted(missing)}",
                "did the read stop before the end of the topic? `max_messages` or a short "
                "time limit can cut it off; read until every partition's end offset")
    elif len(got) != len(expected):
        fb.fail(f"{call} returned some messages more than once: {quoted(got)}")
    else:
        fb.fail(f"{call} has them all, but not oldest first: {quoted(got)}",
                "one key's records sit in one partition; keep them in offset order")


# ------------------------------------------------------- 2. enough partitions


def setup_partitions(run: Run) -> Task:
    """A name for topic ``orders`` (not created: that is the exercise) and the group
    ``order-workers`` the check runs three consumers in."""
    topic = run.fresh_name("orders")
    return Task(topic, run.label(topic), run.settings,
                group=run.fresh_name("order-workers"))


@friendly_errors
def check_partitions(task: Task, consumers: int = 3) -> Feedback:
    """Exercise 2 · Enough partitions"""
    fb = Feedback("Exercise 2 · Enough partitions")
    partitions = kafka_admin.partitions_of(task.topic, task.settings)
    if not partitions:
        return fb.fail(f"there is no topic `{task.label}` yet",
                       "`kafka_admin.create_topic(name, partitions=…)` creates one: how many "
                       f"partitions does a group of {consumers} need so that none sits idle?")
    fb.ok(f"topic `{task.label}` exists, with {count(len(partitions), 'partition')}")
    assert task.group is not None
    try:
        with ConsumerGroupLab(task.topic, task.group, task.settings) as lab:
            for _ in range(consumers):
                lab.add_consumer(timeout_s=10)
            rows = lab.assignment()
    except (TimeoutError, RuntimeError) as exc:
        return fb.fail(f"the check's {consumers} consumers could not settle on the topic "
                       f"({describe_error(exc, task.label_of)})", "run this cell again")
    finally:
        kafka_admin.delete_groups([task.group], settings=task.settings)
    for row in rows:
        if row["partitions"]:
            fb.ok(f"{row['consumer']} reads {_partitions(row['partitions'])}")
        else:
            fb.fail(f"{row['consumer']} got no partition: it sits idle")
    if fb.wrong:
        hint = (f"in a group each partition is read by one consumer only, so {consumers} "
                f"consumers need at least {consumers} partitions. A topic can gain partitions "
                "(`make_admin().create_partitions(…)`) but never lose any; or run the setup "
                "cell again for a fresh name")
        if len(partitions) == 1:
            hint += (". One partition is also what the broker gives a topic it creates by "
                     "itself when something writes to or reads a topic that does not exist "
                     "(`num.partitions=1`)")
        fb.hint = hint
    return fb


def _partitions(numbers_: list[int]) -> str:
    return ("partition " if len(numbers_) == 1 else "partitions ") + ", ".join(
        map(str, numbers_))
