"""Kafka share groups (notebook 11, queue_exp.course.share_groups and
queue_exp.clients.share) against the real Kafka: per-record acknowledgement,
redelivery with a rising delivery count, the delivery limit, and members that
die or hang holding records. Every wait is bounded; no thread or process
outlives its test."""

from __future__ import annotations

import threading
import time

import pytest

from queue_exp.clients import kafka_admin
from queue_exp.clients import share
from queue_exp.course import share_groups
from queue_exp.course.compare import split_work
from queue_exp.course.run import Run


def share_threads() -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.name.startswith(("queue_exp-worker", "queue_exp-survivor", "queue_exp-member",
                                  "queue_exp-crash"))]


@pytest.fixture
def run():
    run = Run("test-share-groups", brokers=["kafka"])
    yield run
    assert share_threads() == [], "a share consumer outlived its test"
    run.clean_up()
    leftovers = set(run.created["topics"]) & set(kafka_admin.list_names(run.settings)["topics"])
    assert not leftovers  # the dead-letter topics (outside the namespace) too


def deliveries(result, record):
    return [(r["delivery count"], r["acknowledged"]) for r in result["deliveries"]
            if r["record"] == record]


def test_a_released_record_comes_back_with_delivery_count_2_a_rejected_one_never(run):
    def decide(text, delivery_count):
        if text == "b":
            return "release" if delivery_count == 1 else "accept"
        return "reject" if text == "c" else "accept"

    result = share_groups.acknowledge_each(run, ["a", "b", "c"], decide)

    assert deliveries(result, "a") == [(1, "ACCEPT")]
    assert deliveries(result, "b") == [(1, "RELEASE"), (2, "ACCEPT")]
    assert deliveries(result, "c") == [(1, "REJECT")]
    assert {r["offset"] for r in result["deliveries"] if r["record"] == "b"} == {1}
    assert [row["lag"] for row in result["offsets"]] == [0]


def test_the_delivery_limit_archives_a_poison_record_into_the_dead_letter_topic(run):
    result = share_groups.acknowledge_each(
        run, ["ok", "poison"], lambda text, _n: "release" if text == "poison" else "accept",
        label="limit", limit=2, dead_letters=True)

    assert deliveries(result, "poison") == [(1, "RELEASE"), (2, "RELEASE")]
    assert [row["lag"] for row in result["offsets"]] == [0]  # nothing left: archived
    [letter] = result["dead letters"]
    assert letter["record"] == "poison"
    assert letter["headers"]["__dlq.errors.delivery.count"] == "2"
    assert letter["headers"]["__dlq.errors.topic"] == run.name("limit")
    assert any(t.startswith("dlq.") for t in run.created["topics"])


def test_a_share_group_keeps_every_member_busy_on_one_partition(run):
    shared = split_work(run, "Kafka share group", 3, count=24, work_s=0.01, partitions=1)
    group = split_work(run, "Kafka", 3, count=24, work_s=0.01, partitions=1)

    assert shared["each task once"] and group["each task once"]
    assert shared["busy"] == 3 and group["busy"] == 1
    assert shared["assignment"] == {"member-1": [0], "member-2": [0], "member-3": [0]}
    assert sorted(map(len, group["assignment"].values())) == [0, 0, 1]


def test_the_broker_refuses_a_setting_out_of_range_and_says_why(run):
    group = run.group("refused")
    with pytest.raises(ValueError, match="share.delivery.count.limit"):
        share.set_group_config(group, {share.DELIVERY_COUNT_LIMIT: 99}, run.settings)
    share.set_group_config(group, {share.DELIVERY_COUNT_LIMIT: 4}, run.settings)
    assert share.group_config(group, [share.DELIVERY_COUNT_LIMIT], run.settings) == {
        share.DELIVERY_COUNT_LIMIT: "4"}


def test_a_share_consumer_thread_stops_within_a_poll(run):
    topic = run.topic("idle", partitions=1)
    member = share.ShareConsumerThread([topic], lambda *_: None,
                                       group_id=run.group("idle"), name="member-idle",
                                       settings=run.settings)
    member.start()
    member.wait_ready()
    started = time.monotonic()
    member.stop(timeout_s=10)
    assert not member.running and member.error is None
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_records_of_a_killed_member_come_back_at_once_of_a_frozen_one_after_the_lock(run):
    killed, frozen = share_groups.kill_and_freeze(run, lock_ms=3000)

    for result in (killed, frozen):
        assert result["took"] == ["job 1", "job 2", "job 3"]
        assert [r["delivery count"] for r in result["rows"]] == [2, 2, 2]
        assert {r["came back to"] for r in result["rows"]} == {"survivor"}
    # killed: the closed connection frees them long before the lock would
    assert max(r["seconds after the crash"] for r in killed["rows"]) < 2.5
    assert killed["dead member listed for s"] >= 5  # until the 6 s session timeout
    # frozen: not before the lock ran out, counted from when it took them
    assert min(r["seconds after it was taken"] for r in frozen["rows"]) >= 2.5
    assert frozen["dead member listed for s"] is None
