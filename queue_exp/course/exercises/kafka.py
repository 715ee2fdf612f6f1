"""Exercises for the Kafka chapter (after notebooks 02-04), each answered with
kafka-python itself (a check refuses an answer that calls the course's helpers,
which would do the whole task in one call):

1. One user's events: ``read_key(topic, key)``, a ``KafkaConsumer`` that reads
   every record with a given key.
2. Enough partitions: ``create_topic_for(name, consumers)``, a
   ``KafkaAdminClient`` that makes a topic on which a group of that many
   consumers all get work.
3. How far behind? ``lag_of(group, topic)``: a group's lag as the broker counts
   it, found without moving the group.
4. Replay: ``replay(topic, since_ms)``, everything written since a point in time
   (``offsets_for_times``, ``seek``).

Setups write deterministic data (the chapter's four users, keyed, so each key's
partition is fixed); checks read the topic themselves and compare. Feedback
names topics and groups as the tasks do (their labels: ``payments``, ``billing``).
"""

from __future__ import annotations

import numbers
import secrets
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
from queue_exp.course.exercises.feedback import returned_texts
from queue_exp.course.exercises.feedback import run_learner_code
from queue_exp.course.exercises.feedback import unusable
from queue_exp.course.kafka import log as kafka_log
from queue_exp.course.kafka.groups import ConsumerGroupLab
from queue_exp.course.run import Run

__all__ = [
    "Task", "setup_read_key", "check_read_key", "setup_partitions", "check_partitions",
    "setup_lag", "check_lag", "setup_replay", "check_replay",
]

LEARNER_TIMEOUT_S = 15.0
ENDLESS_LOOP_HINT = ("a `for record in consumer:` loop waits for new records forever; stop "
                     "at the end of the topic instead: `poll(timeout_ms=…)` until each "
                     "partition's `position(tp)` has reached its `end_offsets(…)`")
READ_HINT = ("make a `KafkaConsumer` without a group, `assign` it every partition of the "
             "topic (`partitions_for_topic`), `seek_to_beginning()`, note the "
             "`end_offsets(…)`, then `poll(timeout_ms=…)` until each partition's "
             "`position(tp)` reaches its end offset; keep the records whose `key` is the one "
             "asked for (keys are bytes: `key.encode()`)")


@dataclass(frozen=True)
class Task:
    """A topic (and maybe a group) made for one exercise. ``label`` and ``group_label``
    are their names as the task says them (``payments``, ``billing``), also when a
    setup run again made fresh ones (``payments-2``)."""

    topic: str
    label: str
    settings: Settings = field(repr=False)
    group: str | None = None
    group_label: str | None = None
    expected: Any = None  # what the broker said right after the setup

    def label_of(self, text: str) -> str:
        """``text`` with the workspace's namespace left out of every name in it."""
        return text.replace(self.settings.namespace + ".", "")



# ----------------------------------------------------------- 1. one user's events


def setup_read_key(run: Run) -> Task:
    """Topic ``user-events`` (3 partitions): four rounds of the four users' events."""
    topic = run.fresh_name("user-events")
    kafka_admin.create_topic(topic, 3, settings=run.settings)
    kafka_log.produce(topic, kafka_log.keyed_messages(rounds=4), settings=run.settings)
    return Task(topic, "user-events", run.settings)


@friendly_errors
def check_read_key(task: Task, read_key: Any, keys: tuple[str, ...] = ("carol", "alice")
                   ) -> Feedback:
    """Exercise 1 · One user's events"""
    fb = Feedback("Exercise 1 · One user's events")
    if unusable(fb, "read_key", read_key, "def read_key(topic, key):", READ_HINT, "kafka-python"):
        return fb
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
        fb.fail(f"{call} returned None", READ_HINT)
    elif got is None:
        fb.fail(f"{call} returned {kind(answer)}; expected a list of message texts "
                f"like ['{key} #1', …]", "decode each record's value: "
                "`json.loads(record.value)['message']`")
    elif got == expected:
        fb.ok(f"{call}: all {count(len(expected), 'message')} of {key}, oldest first")
    elif extra := [t for t in got if t not in expected]:
        fb.fail(f"{call} also returned other users' messages: {quoted(extra[:3])}",
                "a partition holds several keys (alice and bob share one): keep a record "
                "only if its own key is the one asked for")
    elif missing := [t for t in expected if t not in got]:
        fb.fail(f"{call} missed {len(missing)} of {key}'s {len(expected)} messages: "
                f"{quoted(missing)}",
                "did the read stop before the end of the topic? One `poll` returns one "
                "batch, not everything: poll until each partition's `position(tp)` reaches "
                "its `end_offsets(…)`")
    elif len(got) != len(expected):
        fb.fail(f"{call} returned some messages more than once: {quoted(got)}")
    else:
        fb.fail(f"{call} has them all, but not oldest first: {quoted(got)}",
                "one key's records sit in one partition; keep them in offset order")


# ------------------------------------------------------- 2. enough partitions

CREATE_HINT = ("`KafkaAdminClient(bootstrap_servers=…).create_topics([NewTopic(name, "
               "num_partitions=…, replication_factor=1)], timeout_ms=…)`, as in notebook 02: "
               "in a group each partition is read by one consumer only")


def setup_partitions(run: Run) -> Task:
    """The name ``orders`` the check builds its topics' names on (one fresh topic per
    call of the learner's function) and the group ``order-workers`` it runs its
    consumers in."""
    topic = run.fresh_name("orders")
    return Task(topic, "orders", run.settings, group=run.fresh_name("order-workers"),
                group_label="order-workers")


@friendly_errors
def check_partitions(task: Task, create_topic_for: Any, consumers: tuple[int, ...] = (3, 5)
                     ) -> Feedback:
    """Exercise 2 · Enough partitions"""
    fb = Feedback("Exercise 2 · Enough partitions")
    if unusable(fb, "create_topic_for", create_topic_for, "def create_topic_for(name, consumers):",
                CREATE_HINT, "kafka-python"):
        return fb
    for n in consumers:
        name = f"{task.topic}-{secrets.token_hex(3)}"  # fresh on every check
        call = f"`create_topic_for(name, {n})`"
        run = run_learner_code(create_topic_for, name, n, timeout_s=LEARNER_TIMEOUT_S)
        if not run.finished:
            return not_finished(fb, "create_topic_for", run, LEARNER_TIMEOUT_S,
                                task.label_of)
        partitions = kafka_admin.partitions_of(name, task.settings)
        if not partitions:
            return fb.fail(f"after {call} the broker has no topic of that name", CREATE_HINT)
        if len(partitions) < n:
            fb.fail(f"{call} made {count(len(partitions), 'partition')}: in a group of {n}, "
                    f"{count(n - len(partitions), 'consumer')} would sit idle",
                    f"in a group each partition is read by one consumer only, so {n} "
                    f"consumers need at least {n} partitions")
        else:
            fb.ok(f"{call} made {count(len(partitions), 'partition')}"
                  + ("" if len(partitions) == n else
                     f" (more than {n} works too; each partition costs the broker files)"))
        if n == consumers[0]:  # watch the first group at work: who gets what
            _run_group(fb, task, name, n)
    return fb


def _run_group(fb: Feedback, task: Task, topic: str, consumers: int) -> None:
    """Start ``consumers`` consumers of one group on ``topic`` and say who got what."""
    assert task.group is not None
    try:
        with ConsumerGroupLab(topic, task.group, task.settings) as lab:
            for _ in range(consumers):
                lab.add_consumer(timeout_s=10)
            rows = lab.assignment()
    except (TimeoutError, RuntimeError) as exc:
        fb.fail(f"the check's {consumers} consumers could not settle on the topic "
                f"({describe_error(exc, task.label_of)})", "run this cell again")
        return
    finally:
        kafka_admin.delete_groups([task.group], settings=task.settings)
    for row in rows:
        if row["partitions"]:
            fb.ok(f"{row['consumer']} of {consumers} reads {_partitions(row['partitions'])}")
        else:
            fb.fail(f"{row['consumer']} of {consumers} got no partition: it sits idle")


def _partitions(numbers_: list[int]) -> str:
    return ("partition " if len(numbers_) == 1 else "partitions ") + ", ".join(
        map(str, numbers_))


# ------------------------------------------------------------------ 3. the lag

LAG_HINT = ("a `KafkaConsumer` with `group_id=group` that never subscribes does not join "
            "the group, yet `committed(tp)` gives the group's committed offset of a "
            "partition and `end_offsets([…])` the partitions' ends: the lag is end minus "
            "committed, summed over the partitions")


def setup_lag(run: Run) -> Task:
    """Topic ``payments``: twelve events, all read and committed by group ``billing``,
    then six more that nobody has read; ``expected`` is the group's committed offsets."""
    settings = run.settings
    topic, group = run.fresh_name("payments"), run.fresh_name("billing")
    kafka_admin.create_topic(topic, 3, settings=settings)
    kafka_log.produce(topic, kafka_log.keyed_messages(rounds=3), settings=settings)
    kafka_log.read_to_end(topic, group_id=group, commit=True, settings=settings)
    later = kafka_log.keyed_messages(rounds=2, keys=("alice", "bob", "carol"), first_round=4)
    kafka_log.produce(topic, later, settings=settings)
    return Task(topic, "payments", settings, group=group, group_label="billing",
                expected=_committed(group, topic, settings))


def _committed(group: str, topic: str, settings: Settings) -> dict[int, int | None]:
    return {row["partition"]: row["committed"]
            for row in kafka_admin.group_offsets(group, topic, settings)}


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
def check_lag(task: Task, lag_of: Any, more: int = 3) -> Feedback:
    """Exercise 3 · How far behind?"""
    fb = Feedback("Exercise 3 · How far behind?")
    assert task.group is not None
    group = task.group_label
    if unusable(fb, "lag_of", lag_of, "def lag_of(group, topic):", LAG_HINT, "kafka-python"):
        return fb
    if _committed(task.group, task.topic, task.settings) != task.expected:
        return fb.fail(f"group `{group}` has moved since the setup: its committed offsets "
                       "changed. Did your code read in that group and commit? Measuring a lag "
                       "must not change it",
                       "run the setup cell again (fresh topic and group), then look at "
                       "offsets without joining the group")
    answer = _ask_lag(fb, task, lag_of)
    if answer is None:
        return fb
    expected = sum(_lags(task.group, task.topic, task.settings).values())
    if _committed(task.group, task.topic, task.settings) != task.expected:
        return fb.fail(f"`lag_of` moved group `{group}`: its committed offsets changed. "
                       "Measuring a lag must not change it", LAG_HINT)
    if answer != expected:
        return _judge_wrong_lag(fb, task, answer)
    fb.ok(f"`lag_of` says `{group}` is {count(answer, 'record')} behind: the broker agrees")
    kafka_log.produce(task.topic, kafka_log.keyed_messages(rounds=1, keys=("dave",) * more,
                                                           first_round=90),
                      settings=task.settings)
    later = _ask_lag(fb, task, lag_of)
    if later is None:
        return fb
    if later == expected + more:
        return fb.ok(f"after {count(more, 'more record')} it says {later}: it asks the "
                     "broker each time")
    return fb.fail(f"after {count(more, 'more record')} `lag_of` still says {later}, not "
                   f"{expected + more}: does it return a number written down once?", LAG_HINT)


def _ask_lag(fb: Feedback, task: Task, lag_of: Any) -> int | None:
    """Call the learner's ``lag_of``; its answer as one number, else ``None`` (and ``fb``
    says why)."""
    assert task.group is not None
    run = run_learner_code(lag_of, task.group, task.topic, timeout_s=LEARNER_TIMEOUT_S)
    if not run.finished:
        not_finished(fb, "lag_of", run, LEARNER_TIMEOUT_S, task.label_of)
        return None
    value = run.value
    if isinstance(value, dict):  # per partition: fine, it is the sum that counts
        parts = [_as_int(v) for v in value.values()]
        value = None if None in parts else sum(parts)  # type: ignore[arg-type]
    answer = _as_int(value)
    if run.value is None:
        fb.fail("`lag_of(group, topic)` returned None", LAG_HINT)
    elif answer is None:
        fb.fail(f"`lag_of(group, topic)` returned {kind(run.value)}; give one number: "
                "the total over all partitions", LAG_HINT)
    return answer


def _judge_wrong_lag(fb: Feedback, task: Task, answer: int) -> Feedback:
    assert task.group is not None
    rows = kafka_admin.group_offsets(task.group, task.topic, task.settings)
    ends = sum(r["end_offset"] for r in rows)
    committed = sum(r["committed"] or 0 for r in rows)
    lags = _lags(task.group, task.topic, task.settings)
    if answer == ends:
        return fb.fail(f"`lag_of` said {answer}: how many records the topic holds (the sum of "
                       "its end offsets), not how many the group has still to read", LAG_HINT)
    if answer == committed:
        return fb.fail(f"`lag_of` said {answer}: how far the group has read (the sum of its "
                       "committed offsets), not how far it is behind", LAG_HINT)
    if answer in lags.values():
        return fb.fail(f"`lag_of` said {answer}: the lag of one partition; the group reads "
                       "all of them", LAG_HINT)
    return fb.fail(f"`lag_of` said {answer}; the broker counts {sum(lags.values())} for "
                   f"`{task.group_label}`", LAG_HINT)


# --------------------------------------------------------------------- 4. replay

SEEK_HINT = ("assign a `KafkaConsumer` (no group) every partition; "
             "`offsets_for_times({tp: since_ms, …})` gives, per partition, the first record "
             "at or after that time: `seek(tp, found[tp].offset)` there, then poll until each "
             "`position(tp)` reaches its `end_offsets(…)`")


def setup_replay(run: Run) -> Task:
    """Topic ``clicks``: twelve events, one a minute, the first twelve minutes ago;
    ``expected`` is the moment to replay from (five and a half minutes ago)."""
    topic = run.fresh_name("clicks")
    kafka_admin.create_topic(topic, 3, settings=run.settings)
    now = kafka_log.now_ms()
    messages = kafka_log.keyed_messages(rounds=3)
    stamps = [now - (len(messages) - i) * 60_000 for i in range(len(messages))]
    kafka_log.produce(topic, messages, timestamps_ms=stamps, settings=run.settings)
    return Task(topic, "clicks", run.settings, expected=now - 5 * 60_000 - 30_000)


@friendly_errors
def check_replay(task: Task, replay: Any) -> Feedback:
    """Exercise 4 · Replay the last five minutes"""
    fb = Feedback("Exercise 4 · Replay the last five minutes")
    if unusable(fb, "replay", replay, "def replay(topic, since_ms):", SEEK_HINT, "kafka-python"):
        return fb
    since, future = task.expected, kafka_log.now_ms() + 3_600_000
    records = probes.read_topic(task.topic, task.settings)
    expected = sorted(r["message"] for r in records if r["timestamp_ms"] >= since)
    run = run_learner_code(replay, task.topic, since, timeout_s=LEARNER_TIMEOUT_S)
    if not run.finished:
        return not_finished(fb, "replay", run, LEARNER_TIMEOUT_S, task.label_of,
                            ENDLESS_LOOP_HINT)
    got = returned_texts(fb, "replay(topic, since_ms)", run.value, SEEK_HINT)
    if got is None:
        return fb
    if sorted(got) == expected:
        fb.ok(f"since five and a half minutes ago: the {count(len(expected), 'message')} "
              "written since, and none older")
    else:
        if too_old := sorted(set(got) - set(expected)):
            fb.fail(f"{count(len(too_old), 'message')} older than `since_ms` came back too: "
                    f"{quoted(too_old[:3])}", SEEK_HINT)
        if missing := sorted(set(expected) - set(got)):
            fb.fail(f"{count(len(missing), 'message')} written since `since_ms` are missing: "
                    f"{quoted(missing[:3])}", SEEK_HINT)
        if not too_old and not missing:
            fb.fail("some messages came back more than once", SEEK_HINT)
        return fb
    later = run_learner_code(replay, task.topic, future, timeout_s=LEARNER_TIMEOUT_S)
    none_hint = ("for a time after the newest record, `offsets_for_times` answers None for "
                 "a partition: nothing there is that recent, so skip it (or `seek_to_end`)")
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
