"""Integration tests of the Kafka chapter's helpers (kafka_lessons, kafka_group_lab,
the offset/config helpers in kafka_client) against the real broker, plus the
pictures. Every test uses its own uuid-named topics and groups."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from matplotlib.figure import Figure

from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.course.kafka import log as kafka_log
from queue_exp.course.kafka import plots as kafka_plots
from queue_exp.course.kafka.groups import ConsumerGroupLab
from queue_exp.course.kafka.log import USERS
from queue_exp.course.kafka.log import keyed_messages
from queue_exp.course.run import Run


@pytest.fixture
def names():
    """Unique topic/group names for one test (a Run); everything is deleted afterwards."""
    with Run("test-kafka", brokers=["kafka"]) as run:

        class Names:
            def topic(self, partitions: int = 3, config: dict[str, str] | None = None) -> str:
                return run.topic(f"t{len(run.created['topics'])}", partitions, config)

            def group(self) -> str:
                return run.group(f"g{len(run.created['groups'])}")

        yield Names()


def by_key(rows):
    out: dict[str, set[int]] = {}
    for row in rows:
        out.setdefault(row["key"], set()).add(row["partition"])
    return out


def test_each_key_stays_on_one_partition_and_offsets_count_per_partition(names):
    topic = names.topic(partitions=3)
    sent = kafka_log.produce(topic, keyed_messages(rounds=3))

    assert [r["seq"] for r in sent] == list(range(1, 13))
    assert all(len(parts) == 1 for parts in by_key(sent).values())
    assert set(by_key(sent)) == set(USERS)
    # the chapter's prose relies on the four users using all three partitions
    assert {p for parts in by_key(sent).values() for p in parts} == {0, 1, 2}
    for partition in (0, 1, 2):
        in_send_order = [r["offset"] for r in sent if r["partition"] == partition]
        assert in_send_order == list(range(len(in_send_order)))


def test_produce_sets_record_timestamps_and_checks_their_number(names):
    topic = names.topic(partitions=1)
    # recent: a record older than the topic's retention (7 days) would be deleted
    # within a second by the embedded broker
    now = kafka_log.now_ms()
    stamps = [now - 120_000, now - 60_000]
    kafka_log.produce(topic, keyed_messages(rounds=1, keys=["a", "b"]), timestamps_ms=stamps)
    assert [r["timestamp_ms"] for r in kafka_log.read_to_end(topic)] == stamps
    with pytest.raises(ValueError):
        kafka_log.produce(topic, keyed_messages(rounds=1, keys=["a"]), timestamps_ms=[])


def test_reading_does_not_remove(names):
    topic = names.topic()
    kafka_log.produce(topic, keyed_messages(rounds=3))

    first, again = kafka_log.read_twice(topic, group_id=names.group())
    newcomer = kafka_log.read_to_end(topic, group_id=names.group())
    no_group = kafka_log.read_to_end(topic)

    ids = kafka_log.record_ids(first)
    assert len(ids) == 12
    assert kafka_log.record_ids(again) == ids
    assert kafka_log.record_ids(newcomer) == ids
    assert kafka_log.record_ids(no_group) == ids
    assert [r["records"] for r in kafka_admin.log_offsets(topic)] == [6, 3, 3]


def test_reads_keep_partition_order_and_sort_unless_asked(names):
    topic = names.topic()
    kafka_log.produce(topic, keyed_messages(rounds=3))
    arrived = kafka_log.read_to_end(topic, arrival_order=True)
    for key in USERS:
        assert [m["message"] for m in arrived if m["key"] == key] == [
            f"{key} #{n}" for n in (1, 2, 3)
        ]
    sorted_rows = kafka_log.read_to_end(topic)
    assert [(m["partition"], m["offset"]) for m in sorted_rows] == kafka_log.record_ids(arrived)


def test_reading_an_empty_topic_returns_at_once(names):
    topic = names.topic()
    started = time.monotonic()
    assert kafka_log.read_to_end(topic, group_id=names.group(), timeout_s=15) == []
    # it stops at the end of the log instead of waiting for the timeout
    assert time.monotonic() - started < 10


def test_latest_sees_only_new_messages_earliest_sees_all(names):
    topic = names.topic()
    kafka_log.produce(topic, keyed_messages(rounds=3))

    latest = kafka_log.join_then_produce(
        topic, names.group(), "latest", keyed_messages(rounds=1, first_round=4)
    )
    earliest = kafka_log.join_then_produce(
        topic, names.group(), "earliest", keyed_messages(rounds=1, first_round=5)
    )

    assert sorted(m["message"] for m in latest) == [f"{u} #4" for u in sorted(USERS)]
    assert len(earliest) == 20
    with pytest.raises(ValueError):
        kafka_log.join_then_produce(topic, names.group(), "beginning", [])


def test_uncommitted_reads_repeat_and_a_commit_resumes(names):
    topic = names.topic()
    group = names.group()
    kafka_log.produce(topic, keyed_messages(rounds=3))

    first = kafka_log.read_to_end(topic, group_id=group, commit=False)
    assert [r["committed"] for r in kafka_admin.group_offsets(group, topic)] == [None] * 3
    again = kafka_log.read_to_end(topic, group_id=group, commit=False)
    assert len(first) == 12
    assert kafka_log.record_ids(again) == kafka_log.record_ids(first)

    kafka_log.read_to_end(topic, group_id=group, commit=True)
    assert [(r["committed"], r["lag"]) for r in kafka_admin.group_offsets(group, topic)] == [
        (6, 0), (3, 0), (3, 0)
    ]

    kafka_log.produce(topic, keyed_messages(rounds=1, first_round=4))
    assert [r["lag"] for r in kafka_admin.group_offsets(group, topic)] == [2, 1, 1]
    table = kafka_log.lag_table(group, topic)
    assert list(table["lag"]) == [2, 1, 1]

    resumed = kafka_log.read_to_end(topic, group_id=group, commit=True)
    assert sorted(m["message"] for m in resumed) == [f"{u} #4" for u in sorted(USERS)]
    assert [r["lag"] for r in kafka_admin.group_offsets(group, topic)] == [0, 0, 0]


def test_offsets_for_time_and_replay(names):
    topic = names.topic()
    now = kafka_log.now_ms()
    stamps = [now - m * 60_000 for m in range(12, 0, -1)]
    sent = kafka_log.produce(topic, keyed_messages(rounds=3), timestamps_ms=stamps)
    since = now - 6 * 60_000

    found = kafka.offsets_for_time(topic, since)
    recent = [r for r, stamp in zip(sent, stamps, strict=True) if stamp >= since]
    for partition in (0, 1, 2):
        assert found[partition] == min(r["offset"] for r in recent if r["partition"] == partition)

    replayed = kafka_log.replay_from(topic, since)
    assert kafka_log.record_ids(replayed) == kafka_log.record_ids(recent)
    assert kafka.offsets_for_time(topic, now + 60_000) == {0: None, 1: None, 2: None}
    assert kafka_log.replay_from(topic, now + 60_000) == []


def test_retention_deletes_records_whether_read_or_not(names):
    topic = names.topic(config={"retention.ms": "2000", "segment.ms": "1000"})
    reader = names.group()
    kafka_log.produce(topic, keyed_messages(rounds=3))
    assert len(kafka_log.read_to_end(topic, group_id=reader, commit=True)) == 12

    took = kafka_log.wait_for_retention(topic, timeout_s=20)

    assert took < 20
    assert kafka_admin.log_offsets(topic) == [
        {"partition": 0, "first_offset": 6, "end_offset": 6, "records": 0},
        {"partition": 1, "first_offset": 3, "end_offset": 3, "records": 0},
        {"partition": 2, "first_offset": 3, "end_offset": 3, "records": 0},
    ]
    assert kafka_log.log_table({"short": topic})["records"].tolist() == [0, 0, 0]
    assert kafka_log.read_to_end(topic, group_id=names.group()) == []
    # offsets are not reused after deletion
    more = kafka_log.produce(topic, keyed_messages(rounds=1, first_round=4))
    assert sorted(r["offset"] for r in more if r["partition"] == 0) == [6, 7]


def test_wait_for_retention_names_the_setting_when_nothing_expires(names):
    topic = names.topic()
    kafka_log.produce(topic, keyed_messages(rounds=1))
    with pytest.raises(TimeoutError, match="log.retention.check.interval.ms"):
        kafka_log.wait_for_retention(topic, timeout_s=1)


def test_config_values_show_value_source_and_default(names):
    topic = names.topic(config={"retention.ms": "6000"})
    rows = {r["setting"]: r for r in kafka_admin.config_values(
        "topic", topic, ["retention.ms", "segment.ms"])}
    assert rows["retention.ms"]["value"] == "6000"
    assert rows["retention.ms"]["set by"] == "DYNAMIC_TOPIC_CONFIG"
    assert rows["segment.ms"]["set by"] == "DEFAULT_CONFIG"
    assert rows["segment.ms"]["Kafka default"] == rows["segment.ms"]["value"]

    broker = kafka_admin.config_values("broker", None, ["log.retention.check.interval.ms"])
    assert broker[0]["Kafka default"] == "300000"


def test_group_lab_splits_partitions_and_hands_them_over(names):
    topic = names.topic(partitions=3)
    threads_before = set(threading.enumerate())
    with ConsumerGroupLab(topic, names.group()) as lab:
        steps = []
        for _ in range(4):
            lab.add_consumer(timeout_s=20)
            steps.append({r["consumer"]: r["partitions"] for r in lab.assignment()})
            lab.send(12, timeout_s=20)
        assert steps == [
            {"consumer-1": [0, 1, 2]},
            {"consumer-1": [0, 1], "consumer-2": [2]},
            {"consumer-1": [0], "consumer-2": [1], "consumer-3": [2]},
            {"consumer-1": [0], "consumer-2": [1], "consumer-3": [2], "consumer-4": []},
        ]
        assert [r["idle"] for r in lab.assignment()] == [False, False, False, True]

        lab.stop_consumer("consumer-1", timeout_s=20)
        after = lab.send(12, timeout_s=20)
        assert {r["consumer"]: r["messages"] for r in after} == {
            "consumer-2": 6, "consumer-3": 3, "consumer-4": 3
        }
        assert [e["event"] for e in lab.events] == [
            "+ consumer-1", "+ consumer-2", "+ consumer-3", "+ consumer-4", "- consumer-1"
        ]
    handled = lab.handled()
    assert sorted(h["n"] for h in handled) == list(range(1, 61))  # each once
    # every consumer thread, and each consumer's own network thread, has stopped
    assert not [t.name for t in threading.enumerate() if t not in threads_before and t.is_alive()
                and (t.name.startswith("queue_exp-consumer") or lab.group_id in t.name)]
    # the lab's consumers committed on the way out: nothing left to read
    assert [r["lag"] for r in kafka_admin.group_offsets(lab.group_id, topic)] == [0, 0, 0]


def test_two_groups_each_get_every_message(names):
    topic = names.topic()
    kafka_log.produce(topic, keyed_messages(rounds=3))
    one = kafka_log.read_to_end(topic, group_id=names.group(), commit=True)
    two = kafka_log.read_to_end(topic, group_id=names.group(), commit=True)
    assert len(one) == 12
    assert kafka_log.record_ids(one) == kafka_log.record_ids(two)


def test_group_lab_rejects_a_missing_topic(names):
    with pytest.raises(ValueError, match="does not exist"):
        ConsumerGroupLab(f"test-kafka-lessons.missing.{uuid.uuid4().hex}", names.group())


def test_plots_draw_every_record():
    rows = [
        {"partition": p, "offset": o, "key": k, "message": f"{k} #{o + 1}",
         "timestamp_ms": o * 60_000}
        for p, k, n in ((0, "alice", 4), (1, "dave", 2), (2, "carol", 2)) for o in range(n)
    ]
    log_fig = kafka_plots.plot_log(rows)
    assert isinstance(log_fig, Figure)
    assert len(log_fig.axes[0].patches) == len(rows)

    handled = [{"n": i + 1, "consumer": f"consumer-{1 + i % 2}", "partition": i % 3}
               for i in range(6)]
    events = [{"n": 0, "event": "+ consumer-1"}, {"n": 3, "event": "+ consumer-2"}]
    handled_fig = kafka_plots.plot_handled(handled, events)
    assert len(handled_fig.axes[0].collections) == len(handled)

    replay_fig = kafka_plots.plot_replay(rows, rows[:3], since_ms=0, now_ms=240_000)
    assert len(replay_fig.axes[0].collections) == len(rows)
