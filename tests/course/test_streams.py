"""Streams (notebook 10, queue_exp.course.streams and queue_exp.clients.streams)
against the real RabbitMQ: where a consumer starts, what reading and retention
remove, and a consumer that stores its offset on the server and resumes from it."""

from __future__ import annotations

import threading
import time

import pytest

from queue_exp.clients import streams as stream_client
from queue_exp.course import streams
from queue_exp.course.compare.io import read_queue
from queue_exp.course.run import Run
from queue_exp.course.streams import features
from queue_exp.course.streams.retention import retention_by_size


@pytest.fixture
def run():
    with Run("test-streams") as run:
        yield run
    assert not [t.name for t in threading.enumerate() if t.name == "queue_exp-rstream"]


def test_connection_args_come_from_the_stream_url(settings):
    custom = settings.replace(rabbitmq_stream_url="rabbitmq-stream://ann:s%40cret@h:6000/dev")
    assert stream_client.connection_args(custom) == {
        "host": "h", "port": 6000, "username": "ann", "password": "s@cret", "vhost": "dev"}
    assert stream_client.connection_args(settings)["vhost"] == "/"


def test_run_sync_is_bounded_and_passes_errors_on():
    async def forever():
        await __import__("asyncio").sleep(60)

    async def fails():
        raise LookupError("no such stream")

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        stream_client.run_sync(forever, timeout_s=0.3)
    assert time.monotonic() - started < 5
    with pytest.raises(LookupError, match="no such stream"):
        stream_client.run_sync(fails, timeout_s=5)


def test_offset_is_stored_on_the_server_and_a_restarted_consumer_resumes(run):
    stream = run.queue("ledger", **streams.STREAM)
    stream_client.publish(stream, [f"#{n}" for n in range(1, 11)], run.settings)

    first = streams.stream_session(run, stream, "ledger-reader", max_messages=4)
    assert first["stored offset found"] == "none" and first["read"] == "#1–#4"
    stored = stream_client.stored_offset(stream, "ledger-reader", run.settings)
    assert stored == first["last offset read"]  # the last one processed, not the next

    stream_client.publish(stream, ["#11"], run.settings)  # written while it was away
    second = streams.stream_session(run, stream, "ledger-reader")  # "after a restart"
    assert second["stored offset found"] == stored and second["so it starts at"] == stored + 1
    assert second["read"] == "#5–#11"
    third = streams.stream_session(run, stream, "ledger-reader")
    assert third["read"] == "none"  # nothing new: nothing read twice

    # another name has no offset of its own, and reading removed nothing
    assert stream_client.stored_offset(stream, "someone-else", run.settings) is None
    assert len(read_queue(run.settings, stream, offset="first", idle_s=0.3)) == 11


def test_resume_after_restart_matches_a_kafka_groups_committed_offset(run):
    rows = streams.resume_after_restart(run, count=6, first_run=2)["rows"]
    by = {(r["consumer"][:3], r["broker"].split()[0]): r for r in rows}

    assert by["1st", "RabbitMQ"]["read"] == by["1st", "Kafka"]["read"] == "#1, #2"
    assert by["2nd", "RabbitMQ"]["read"] == by["2nd", "Kafka"]["read"] == "#3–#6"
    # a stream stores the last offset processed; a group commits the next one to read
    assert by["2nd", "RabbitMQ"]["starts at"] == by["2nd", "RabbitMQ"][
        "position found on the server"] + 1
    assert by["2nd", "Kafka"]["starts at"] == by["2nd", "Kafka"]["position found on the server"]


def test_five_starting_points_on_a_stream_and_on_a_kafka_topic(run):
    starts = streams.start_points(run)
    got = [row["got"] for row in starts["rows"]]
    assert got == ["#1–#12", "#12", "#8–#12", "#11, #12", "#13"]
    kafka = streams.kafka_start_points(run)
    assert [row["got"] for row in kafka] == got


def test_retention_keeps_the_newest_and_ages_out_only_when_a_segment_rolls(run):
    capped = retention_by_size(run, count=60)
    assert capped["fewer than published"] and capped["only the newest kept"]
    assert capped["newest left"] == "#60" and capped["offset of the newest"] >= 59

    aged = streams.retention_by_age(run, first=10, later=5, wait_s=1.2)
    assert [row["still stored"] for row in aged] == [10, 10, 5]
    assert aged[-1]["oldest left"] == "#11"


def test_a_segment_smaller_than_a_message_is_refused_before_the_broker_sees_it(run):
    with pytest.raises(ValueError, match="never stops"):
        retention_by_size(run, segment_bytes=1)


def test_newer_features_run_where_the_broker_has_them_and_say_so_where_not(run):
    version = features.broker_version(run.settings)
    table = features.feature_table(run.settings)
    assert [row["feature"] for row in table] == list(features.FEATURES)
    for name in features.FEATURES:
        shown = features.demo(name, run)
        if features.has(name, version):
            assert not isinstance(shown, features.Skipped)
        else:
            assert isinstance(shown, features.Skipped)
            assert repr(shown).startswith(f"skipped: {name} needs RabbitMQ")


@pytest.mark.parametrize("name", list(features.FEATURES))
def test_each_newer_feature_does_what_the_notebook_says(run, name):
    if not features.has(name, features.broker_version(run.settings)):
        pytest.skip(f"{name} needs RabbitMQ {features.version_text(features.FEATURES[name][0])}")
    rows = {"single active consumer": features.single_active_consumer,
            "super streams": features.super_stream, "filtering": features.filtering}[name](run)
    if name == "single active consumer":
        assert rows[0]["got"] == "#1, #2, #3"
        assert rows[1]["while both were subscribed"] == "waiting (0 messages)"
        assert rows[1]["got"] == "#4, #5, #6 (after A left)"
    elif name == "super streams":
        assert len(rows) == 3
        for row in rows:  # every key's messages in one partition stream
            keys = {m.split()[0] for m in row["messages"].split(", ")}
            assert all(f"{k} #1" in row["messages"] and f"{k} #2" in row["messages"]
                       for k in keys)
    else:
        broker_only, with_predicate = rows
        assert broker_only["got"] == "red 1, blue 1, red 2, blue 2, red 3, blue 3"
        assert with_predicate["got"] == "red 1, red 2, red 3"
