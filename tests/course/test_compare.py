"""The side-by-side experiments of notebook 08 (queue_exp.compare) against the
real brokers: each test checks what the notebook tells the learner. Every test
gets its own uuid-named run; consumer threads must be gone when it ends."""

from __future__ import annotations

import threading
import uuid

import pytest
from matplotlib.figure import Figure

from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.course import compare
from queue_exp.course.compare.io import publish
from queue_exp.course.compare.io import read_queue
from queue_exp.course.compare.table import numbers
from queue_exp.course.compare.workers import DONE
from queue_exp.course.compare.workers import KafkaGroup
from queue_exp.course.compare.workers import RabbitWorkers
from queue_exp.course.run import Run


def compare_threads() -> list[str]:
    """Consumer threads still running (the comparison's are named consumer-N, worker-N)."""
    return [t.name for t in threading.enumerate()
            if t.name.startswith(("queue_exp-consumer-", "queue_exp-worker-"))]


def existing_topics(names):
    return sorted(set(names) & set(kafka_admin.list_names()["topics"]))


@pytest.fixture
def run():
    run = Run(f"test-compare-{uuid.uuid4().hex[:8]}")
    yield run
    assert compare_threads() == [], "a consumer thread outlived its experiment"
    run.clean_up()
    assert not any(rabbitmq.queue_exists(q, run.settings) for q in run.created["queues"])
    assert existing_topics(run.created["topics"]) == []


def reads(result, store):
    return [r["messages"] for r in result["reads"] if r["store"] == store]


def test_a_stream_keeps_what_a_classic_queue_forgets(run):
    result = compare.read_three_times(run, count=40)

    assert reads(result, "Kafka topic") == [40, 0, 40]  # same group resumes; new group replays
    assert reads(result, "RabbitMQ classic queue") == [40, 0, 0]
    assert reads(result, "RabbitMQ stream") == [40, 0, 40]  # default offset is "next"
    assert all(r["distinct"] == r["messages"] for r in result["reads"])
    assert result["still stored"] == {"Kafka topic (records in the log)": 40,
                                      "RabbitMQ classic queue (messages ready)": 0,
                                      "RabbitMQ stream (messages in the stream)": 40}


def test_a_stream_needs_a_prefetch_limit_and_manual_acks(run):
    stream = run.queue("rules", **compare.retention.STREAM)
    answers = [r["broker's answer"] for r in compare.stream_consumer_rules(run, stream)]

    assert answers[0].startswith("channel closed: 406 PRECONDITION_FAILED")
    assert answers[1].startswith("connection closed: 540 NOT_IMPLEMENTED")
    assert answers[2] == "accepted"
    assert all(run.namespace not in answer for answer in answers)


def test_reading_part_of_a_stream_and_stopping_is_not_an_error(run):
    stream = run.queue("partly", **compare.retention.STREAM)
    publish(run.settings, compare.numbered(300), queue=stream)

    # pika nacks what it received but did not hand out; a stream answers a nack
    # by closing the connection, which must not turn a good read into an error
    first = read_queue(run.settings, stream, offset="first", max_messages=5)
    again = read_queue(run.settings, stream, offset="first", max_messages=300)

    assert [m["message"] for m in first] == ["#1", "#2", "#3", "#4", "#5"]
    assert [m["stream_offset"] for m in first] == [0, 1, 2, 3, 4]
    assert len(again) == 300


def test_partitions_cap_a_group_but_not_a_queue(run):
    kafka = compare.split_work(run, "Kafka", 4, count=30, work_s=0.0)
    rabbit = compare.split_work(run, "RabbitMQ", 4, count=30, work_s=0.0)

    assert kafka["each task once"] and rabbit["each task once"]
    assert sorted(row["messages"] for row in kafka["per consumer"]) == [0, 10, 10, 10]
    assert kafka["busy"] == 3
    assert sorted(map(len, kafka["assignment"].values())) == [0, 1, 1, 1]
    assert rabbit["busy"] == 4
    assert sum(row["messages"] for row in rabbit["per consumer"]) == 30


def test_fan_out_a_late_group_reads_history_a_late_queue_gets_nothing(run):
    result = compare.fan_out(run, count=25)
    got = {row["subscriber"]: row for row in result["rows"]}

    assert [got[s]["Kafka: consumer group got"] for s in ("billing", "audit", "late")] \
        == [25, 25, 25]
    assert [got[s]["RabbitMQ: queue on a fanout exchange got"]
            for s in ("billing", "audit", "late")] == [25, 25, 0]
    assert result["stored"] == {"Kafka": 25, "RabbitMQ": 50}  # one log vs a copy per queue


def test_a_requeue_reorders_with_two_workers_a_kafka_retry_does_not(run):
    kafka = compare.retry_one(run, "Kafka", 2, fail_s=0.5)
    one = compare.retry_one(run, "RabbitMQ", 1, fail_s=0.5)
    two = compare.retry_one(run, "RabbitMQ", 2, fail_s=1.5)

    for result in (kafka, one, two):
        assert result["each event once"]
        assert result["attempts at it"] == 2
    assert kafka["each user in order"] and not kafka["send order kept"]
    assert kafka["retry flagged redelivered"] is None
    assert one["send order kept"]
    assert not two["each user in order"] and two["user's next event finished first"]
    assert one["retry flagged redelivered"] is True and two["retry flagged redelivered"] is True


@pytest.mark.parametrize(
    ("broker", "order", "lost", "twice", "flagged"),
    [
        ("Kafka", compare.AT_MOST_ONCE, [5], [], "(no such flag)"),
        ("Kafka", compare.AT_LEAST_ONCE, [], [5], "(no such flag)"),
        # auto-ack: the broker forgot all ten as it sent them
        ("RabbitMQ", compare.AT_MOST_ONCE, [5, 6, 7, 8, 9, 10], [], "0 of 0"),
        ("RabbitMQ", compare.AT_LEAST_ONCE, [], [5], "6 of 6"),
    ],
)
def test_a_crash_between_work_and_confirm(run, broker, order, lost, twice, flagged):
    result = compare.crash_between_steps(run, broker, order, count=10, crash_at=5)

    assert result["lost"] == lost
    assert result["worked on twice"] == twice
    assert result["B got flagged redelivered"] == flagged
    assert result["a consumer keeping done ids skips"] == twice


def test_kafka_transactions_are_exactly_once_inside_kafka_only(run):
    result = compare.kafka_transaction_crash(run, count=6, crash_after=3)

    assert result["receipts written by attempt 1 (crashed)"] == 3
    assert result["read_committed reader: receipts"] == 6
    assert result["read_committed reader: distinct"] == 6
    assert result["read_uncommitted reader: receipts"] == 9  # the aborted three are in the log
    assert result["payments committed as read by the group"] == 6
    assert result["emails sent twice"] == [1, 2, 3]  # outside Kafka: no help from transactions


def test_a_group_on_a_missing_topic_and_workers_on_a_missing_queue_fail_clearly(run):
    with pytest.raises(ValueError, match="does not exist"):
        KafkaGroup(run.settings.name("nope"), run.group("g"), 1, settings=run.settings).start()
    workers = RabbitWorkers(run.settings.name("nope"), 2, settings=run.settings)
    with pytest.raises(RuntimeError, match="worker-1 could not start consuming: .*404"):
        workers.start()
    assert compare_threads() == []


def test_workers_report_a_handler_that_raises(run):
    queue = run.queue("boom")

    def explode(_worker, item):
        raise ZeroDivisionError(item["message"])

    with RabbitWorkers(queue, 1, explode, settings=run.settings) as workers:
        workers.start()
        publish(run.settings, compare.numbered(1), queue=queue)
        with pytest.raises(RuntimeError, match="ZeroDivisionError: #1"):
            workers.wait_done(1, timeout_s=10)
    # the message was never acked: it is back in the queue
    assert rabbitmq.ready_count(queue, run.settings) == 1


def test_a_group_on_a_fresh_topic_settles_every_time(run):
    # Without fetching metadata before the first join, about one start in six
    # hung here: the leader assigned nothing, rejoined when the metadata came,
    # and kafka-python dropped that rejoin when poll() timed out mid-join.
    for attempt in range(8):
        topic = run.topic(f"fresh-{attempt}", partitions=3)
        with KafkaGroup(topic, run.group(f"fresh-{attempt}"), 2, settings=run.settings) as group:
            group.start(timeout_s=15)
            assert sorted(map(len, group.assignment().values())) == [1, 2]


def test_workers_close_within_their_timeouts(run):
    topic = run.topic("stop", partitions=1)
    with KafkaGroup(topic, run.group("stop"), 2, settings=run.settings) as group:
        group.start()
        assert sorted(map(len, group.assignment().values())) == [0, 1]
    with RabbitWorkers(run.queue("stop"), 2, lambda *_: DONE, settings=run.settings) as w:
        w.start()
    assert compare_threads() == []
    assert kafka_admin.partitions_of(topic, run.settings) == [0]
    assert rabbitmq.queue_exists(run.settings.name("stop"), run.settings)


# ------------------------------------------------------------ the table itself


def fake_results(stream_replay: int = 10, duplicate: bool = True):
    """Results shaped like the experiments' (no broker needed)."""
    retention = {"reads": [
        {"store": s, "read": n, "messages": m}
        for s, counts in (("Kafka topic", (10, 0, 10)), ("RabbitMQ classic queue", (10, 0, 0)),
                          ("RabbitMQ stream", (10, 0, stream_replay)))
        for n, m in zip((1, 2, 3), counts, strict=True)]}
    fan = {"rows": [{"subscriber": s, "Kafka: consumer group got": 10,
                     "RabbitMQ: queue on a fanout exchange got": 0 if s == "late" else 10}
                    for s in ("billing", "audit", "late")],
           "stored": {"Kafka": 10, "RabbitMQ": 20}}
    splits = [{"broker": "Kafka", "consumers": 4, "busy": 3,
               "assignment": {"c1": [0], "c2": [1], "c3": [2], "c4": []}},
              {"broker": "RabbitMQ", "consumers": 4, "busy": 4, "assignment": None}]
    orderings = [
        {"broker": "Kafka", "consumers": 2, "each user in order": True, "send order kept": False},
        {"broker": "RabbitMQ", "consumers": 1, "each user in order": True,
         "send order kept": True},
        {"broker": "RabbitMQ", "consumers": 2, "each user in order": False,
         "send order kept": False}]
    crashes = [
        {"broker": "Kafka", "consumer A": compare.AT_MOST_ONCE, "lost": [5],
         "worked on twice": []},
        {"broker": "Kafka", "consumer A": compare.AT_LEAST_ONCE, "lost": [],
         "worked on twice": [5]},
        {"broker": "RabbitMQ", "consumer A": compare.AT_MOST_ONCE, "lost": [5, 6, 7],
         "worked on twice": []},
        {"broker": "RabbitMQ", "consumer A": compare.AT_LEAST_ONCE, "lost": [],
         "worked on twice": [5] if duplicate else [], "B got flagged redelivered": "3 of 3"}]
    tx = {"read_committed reader: receipts": 10, "emails sent (outside Kafka)": 15,
          "emails sent twice": [1, 2]}
    replay = {"sent": 10, "read again from the start": {"RabbitMQ stream": 10, "Kafka topic": 10},
              "rows": [
                  {"consumer": c, "broker": b, "position found on the server": found,
                   "read": read}
                  for c, b, found, read in (
                      ("1st run", "RabbitMQ stream (rstream)", "none", "#1–#4"),
                      ("1st run", "Kafka topic (consumer group)", "none", "#1–#4"),
                      ("2nd run, after a restart", "RabbitMQ stream (rstream)", 3, "#5–#10"),
                      ("2nd run, after a restart", "Kafka topic (consumer group)", 4,
                       "#5–#10"))]}
    per_message = {
        "split": {"broker": "Kafka share group", "consumers": 3, "busy": 3},
        "deliveries": [{"record": r, "delivery count": n} for r, n in
                       (("#1", 1), ("#2", 1), ("#2", 2), ("#3 (poison)", 1),
                        ("#3 (poison)", 2), ("#3 (poison)", 3))],
        "limit": 3, "quorum limit": 2,
        "quorum": {"attempts": [{}, {}, {}], "dead letter": {"reason": "delivery_limit"}}}
    return {"retention": retention, "fan_out": fan, "splits": splits, "orderings": orderings,
            "crashes": crashes, "transaction": tx, "replay": replay, "per_message": per_message}


def test_the_table_quotes_the_results():
    rows = {r["feature"]: r for r in compare.comparison_rows(fake_results())}

    assert list(rows) == [*compare.QUOTED_TABLE, "Replay and resume",
                          "Per-message acks and a delivery limit"]
    assert rows["Scalability"]["Kafka (observed)"] == "4 consumers, 3 partitions: 3 busy, 1 idle"
    assert rows["Scalability"]["RabbitMQ (observed)"] == "4 workers, 1 queue: 4 busy"
    assert "lost #5–#7" in rows["Delivery guarantee"]["RabbitMQ (observed)"]
    assert "20 held for 2 subscribers" in rows["Model"]["RabbitMQ (observed)"]
    assert all(r["experiments"] for r in rows.values())


def test_the_rows_where_the_lines_cross_quote_notebooks_10_and_11():
    rows = {r["feature"]: r for r in compare.comparison_rows(fake_results())}
    replay, acks = rows["Replay and resume"], rows["Per-message acks and a delivery limit"]

    assert "found stored offset 3 and read #5–#10" in replay["RabbitMQ (observed)"]
    assert "from 'first' got 10 of 10 again" in replay["RabbitMQ (observed)"]
    assert "found committed offset 4 and read #5–#10" in replay["Kafka (observed)"]
    assert "3 of 3 consumers busy on 1 partition" in acks["Kafka (observed)"]
    assert "came back (delivery count 2)" in acks["Kafka (observed)"]
    assert "delivered 3 times and archived" in acks["Kafka (observed)"]
    assert "x-delivery-limit=2: delivered 3 times, then dead-lettered (delivery_limit)" \
        in acks["RabbitMQ (observed)"]


def test_the_crossings_experiments_give_what_the_rows_quote(run):
    from queue_exp.course.compare import crossings

    replay = crossings.replay(run, count=6, first_run=2)
    assert replay["read again from the start"] == {"RabbitMQ stream": 6, "Kafka topic": 6}
    assert [r["read"] for r in replay["rows"]] == ["#1, #2", "#1, #2", "#3–#6", "#3–#6"]

    result = crossings.per_message(run)
    counts = [r["delivery count"] for r in result["deliveries"] if r["record"] == crossings.POISON]
    assert counts == [1, 2, 3] and result["split"]["busy"] == 3
    assert len(result["quorum"]["attempts"]) == 3
    row = compare.comparison_rows({**fake_results(), "replay": replay, "per_message": result})
    assert row[-1]["feature"] == "Per-message acks and a delivery limit"


def test_the_verdicts_follow_the_results():
    as_seen = {r["feature"]: r["verdict"] for r in compare.check_claims(fake_results())}
    other = {r["feature"]: r["verdict"] for r in compare.check_claims(
        fake_results(stream_replay=0, duplicate=False))}

    assert as_seen["Message retention"].startswith("wrong for streams")
    assert other["Message retention"] == "right"
    assert "RabbitMQ has no exactly-once" in as_seen["Delivery guarantee"]
    assert "RabbitMQ has no exactly-once" not in other["Delivery guarantee"]


def test_numbers_read_like_prose():
    assert numbers([5, 6, 7, 8]) == "#5–#8"
    assert numbers([5]) == "#5"
    assert numbers([3, 1]) == "#1, #3"
    assert numbers([]) == "none"


def test_plots_draw_every_attempt_and_every_consumer(run):
    ordering = compare.retry_one(run, "RabbitMQ", 2, fail_s=1.5)
    split = compare.split_work(run, "RabbitMQ", 2, count=6, work_s=0.0)

    ordering_fig = compare.plot_ordering([ordering])
    assert isinstance(ordering_fig, Figure)
    ax = ordering_fig.axes[0]
    # one box per attempt (12 events, one of them tried twice), one label in each
    assert len(ordering["handled"]) == 13
    assert len(ax.patches) == len(ordering["handled"])
    labels = [t.get_text() for t in ax.texts]
    assert sum(label.startswith("c2") for label in labels) == 2  # carol #2: failed, then done
    assert sum("failed" in label for label in labels) == 1

    split_fig = compare.plot_split([split])
    bars = split_fig.axes[0].patches
    assert [round(b.get_height()) for b in bars] == [
        row["messages"] for row in split["per consumer"]]
    assert sum(b.get_height() for b in bars) == 6
