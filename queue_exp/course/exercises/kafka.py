"""Exercises for the Kafka chapter (after notebooks 02-04).

1. One user's events: a function that reads every message with a given key.
2. Enough partitions: a topic on which a group of three consumers all get work.
3. How far behind? The lag of a consumer group, as the broker counts it.
4. Replay: a function that reads everything written since a point in time.

Setups write deterministic data (the chapter's four users, keyed, so each key's
partition is fixed); checks read the topic themselves and compare.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from queue_exp.clients import kafka_admin
from queue_exp.config import Settings
from queue_exp.course.exercises import probes
from queue_exp.course.exercises.feedback import Feedback
from queue_exp.course.exercises.feedback import count
from queue_exp.course.exercises.feedback import describe_error
from queue_exp.course.exercises.feedback import friendly_errors
from queue_exp.course.exercises.feedback import kind
from queue_exp.course.exercises.feedback import not_finished
from queue_exp.course.exercises.feedback import quoted
from queue_exp.course.exercises.feedback import run_learner_code
from queue_exp.course.kafka import log as kafka_log
from queue_exp.course.kafka.groups import ConsumerGroupLab
from queue_exp.course.run import Run

__all__ = [
    "Task", "setup_read_key", "check_read_key", "setup_partitions", "check_partitions",
    "setup_lag", "check_lag", "setup_replay", "check_replay",
]

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


# ------------------------------------------------------------------ 3. the lag


def setup_lag(run: Run) -> Task:
    """Topic ``payments``: twelve events, all read and committed by group ``billing``,
    then six more that nobody has read."""
    settings = run.settings
    topic, group = run.fresh_name("payments"), run.fresh_name("billing")
    kafka_admin.create_topic(topic, 3, settings=settings)
    kafka_log.produce(topic, kafka_log.keyed_messages(rounds=3), settings=settings)
    kafka_log.read_to_end(topic, group_id=group, commit=True, settings=settings)
    later = kafka_log.keyed_messages(rounds=2, keys=("alice", "bob", "carol"), first_round=4)
    kafka_log.produce(topic, later, settings=settings)
    lag = _lags(group, topic, settings)
    return Task(topic, run.label(topic), settings, group=group, expected=lag)


def _lags(group: str, topic: str, settings: Settings) -> dict[int, int]:
    return {row["partition"]: row["lag"] if row["lag"] is not None else row["end_offset"]
            for row in kafka_admin.group_offsets(group, topic, settings)}


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(value)
    return None


@friendly_errors
def check_lag(task: Task, lag: Any) -> Feedback:
    """Exercise 3 · How far behind?"""
    fb = Feedback("Exercise 3 · How far behind?")
    hint = ("`kafka_admin.group_offsets(group, topic)` lists, per partition, the group's "
            "committed offset and the partition's end offset; the lag is the difference, "
            "summed over the partitions")
    assert task.group is not None
    rows = kafka_admin.group_offsets(task.group, task.topic, task.settings)
    now = _lags(task.group, task.topic, task.settings)
    if now != task.expected:
        fb.fail(f"group `{task.label_of(task.group)}` has moved since the setup: its lag went from "
                f"{sum(task.expected.values())} to {sum(now.values())}. Did your code read "
                "in that group and commit? Measuring a lag must not change it",
                "run the setup cell again (fresh topic and group), then look at offsets "
                "without joining the group")
    if lag is None:
        return fb.fail("`lag` is still None", hint)
    if isinstance(lag, dict):
        return _judge_per_partition(fb, lag, task.expected, hint)
    answer = _as_int(lag)
    if answer is None:
        return fb.fail(f"`lag` is {kind(lag)}; give one number: the total over "
                       "all partitions", hint)
    total = sum(task.expected.values())
    if answer == total:
        return fb.ok(f"{answer} records are written but not yet committed by "
                     f"`{task.label_of(task.group)}`: the broker agrees")
    ends = sum(r["end_offset"] for r in rows)
    committed = sum(r["committed"] or 0 for r in rows)
    if answer == ends:
        return fb.fail(f"{answer} is how many records the topic holds (the sum of its end "
                       "offsets), not how many the group has still to read", hint)
    if answer == committed:
        return fb.fail(f"{answer} is how far the group has read (the sum of its committed "
                       "offsets), not how far it is behind", hint)
    if answer in task.expected.values():
        return fb.fail(f"{answer} is the lag of one partition; the group reads all of them",
                       hint)
    return fb.fail(f"{answer} is not the lag the broker reports for "
                   f"`{task.label_of(task.group)}`", hint)


def _judge_per_partition(fb: Feedback, lag: dict, expected: dict[int, int], hint: str
                         ) -> Feedback:
    for partition, lag_there in sorted(expected.items()):
        given = _as_int(lag.get(partition))
        if given == lag_there:
            fb.ok(f"partition {partition}: lag {given}")
        else:
            fb.fail(f"partition {partition}: you say {lag.get(partition)!r}", hint)
    return fb


# --------------------------------------------------------------------- 4. replay


def setup_replay(run: Run) -> Task:
    """Topic ``clicks``: twelve events, one a minute, the first twelve minutes ago;
    ``expected`` is the moment to replay from (five and a half minutes ago)."""
    topic = run.fresh_name("clicks")
    kafka_admin.create_topic(topic, 3, settings=run.settings)
    now = kafka_log.now_ms()
    messages = kafka_log.keyed_messages(rounds=3)
    stamps = [now - (len(messages) - i) * 60_000 for i in range(len(messages))]
    kafka_log.produce(topic, messages, timestamps_ms=stamps, settings=run.settings)
    return Task(topic, run.label(topic), run.settings,
                expected=now - 5 * 60_000 - 30_000)


@friendly_errors
def check_replay(task: Task, replay: Any) -> Feedback:
    """Exercise 4 · Replay the last five minutes"""
    fb = Feedback("Exercise 4 · Replay the last five minutes")
    if not callable(replay):
        return fb.fail("`replay` is not a function", "define `def replay(topic, since_ms):`")
    since, future = task.expected, kafka_log.now_ms() + 3_600_000
    records = probes.read_topic(task.topic, task.settings)
    expected = sorted(r["message"] for r in records if r["timestamp_ms"] >= since)
    run = run_learner_code(replay, task.topic, since, timeout_s=LEARNER_TIMEOUT_S)
    if not run.finished:
        return not_finished(fb, "replay", run, LEARNER_TIMEOUT_S, task.label_of,
                            ENDLESS_LOOP_HINT)
    got = probes.texts_of(run.value)
    seek_hint = ("`kafka.offsets_for_time(topic, since_ms)` gives, per partition, the "
                 "first offset at or after that time: seek each partition there, then read "
                 "to its end")
    if run.value is None:
        return fb.fail("`replay(topic, since_ms)` returned None", seek_hint)
    if got is None:
        return fb.fail(f"`replay` returned {kind(run.value)}; expected a list of "
                       "message texts", seek_hint)
    if sorted(got) == expected:
        fb.ok(f"since five and a half minutes ago: the {count(len(expected), 'message')} "
              "written since, and none older")
    else:
        if too_old := sorted(set(got) - set(expected)):
            fb.fail(f"{count(len(too_old), 'message')} older than `since_ms` came back too: "
                    f"{quoted(too_old[:3])}", seek_hint)
        if missing := sorted(set(expected) - set(got)):
            fb.fail(f"{count(len(missing), 'message')} written since `since_ms` are missing: "
                    f"{quoted(missing[:3])}", seek_hint)
        if not too_old and not missing:
            fb.fail("some messages came back more than once", seek_hint)
        return fb
    later = run_learner_code(replay, task.topic, future, timeout_s=LEARNER_TIMEOUT_S)
    none_hint = ("for a time after the newest record, `offsets_for_times` answers None for "
                 "a partition: nothing there is that recent, so skip it (or seek to its end)")
    if later.timed_out:
        return not_finished(fb, "replay", later, LEARNER_TIMEOUT_S, task.label_of, none_hint)
    if later.error is not None:
        return fb.fail("for a time an hour from now, `replay` raised "
                       f"{describe_error(later.error, task.label_of)}", none_hint)
    if later.value:
        shown = quoted(probes.texts_of(later.value) or [])
        return fb.fail(f"an hour from now, `replay` returned {shown}; nothing is that recent",
                       none_hint)
    return fb.ok("an hour from now: nothing to replay, and `replay` says so")
