"""Kafka exercises 3 and 4, about offsets: the lag of a consumer group, and a
replay from a point in time (``offsets_for_times``, and what it answers when
nothing is that recent).
"""

from __future__ import annotations

import numbers
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
from queue_exp.course.exercises.kafka_partitions import ENDLESS_LOOP_HINT, LEARNER_TIMEOUT_S, Task
from queue_exp.course.kafka import log as kafka_log
from queue_exp.course.run import Run

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
