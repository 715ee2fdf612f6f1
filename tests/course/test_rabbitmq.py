"""The RabbitMQ chapter's experiments (queue_exp.course.rabbitmq) against the real
broker: each test checks the behaviour the notebook tells the learner about."""

from __future__ import annotations

import re
import time

import nbformat
import pytest

from queue_exp.clients import rabbitmq
from queue_exp.clients.rabbitmq_management import Management
from queue_exp.clients.rabbitmq_management import ManagementUnavailable
from queue_exp.config import REPO_ROOT
from queue_exp.config import get_settings
from queue_exp.course import rabbitmq as rl
from queue_exp.course.run import Run
from queue_exp.waiting import wait_until


@pytest.fixture
def run():
    with Run("test-rabbitmq") as run:
        yield run


def test_kafka_replays_and_the_queue_forgets(run):
    rows = {r["read from"]: r for r in rl.read_twice_side_by_side(run, count=3, timeout_s=3)}

    assert rows["Kafka topic"]["1st read got"] == rows["Kafka topic"]["2nd read got"] == "#1 #2 #3"
    assert rows["RabbitMQ queue"]["1st read got"] == "#1 #2 #3"
    assert rows["RabbitMQ queue"]["2nd read got"] == "(nothing)"


def test_round_robin_piles_slow_tasks_on_one_worker_and_prefetch_spreads_them(run):
    no_limit = rl.run_work_queue(run.name("a"), tasks=8, slow_s=0.3, fast_s=0.02)
    prefetch_1 = rl.run_work_queue(run.name("b"), tasks=8, slow_s=0.3, fast_s=0.02, prefetch=1)

    assert sorted(r["task"] for r in no_limit.records) == list(range(1, 9))
    assert [w["tasks"] for w in no_limit.per_worker()] == [[1, 3, 5, 7], [2, 4, 6, 8]]
    assert [w["slow tasks"] for w in no_limit.per_worker()] == [4, 0]
    assert all(w["slow tasks"] > 0 for w in prefetch_1.per_worker())
    assert prefetch_1.elapsed_s < no_limit.elapsed_s


def test_a_killed_worker_loses_the_task_with_auto_ack(run):
    row = rl.crash_mid_task(run.name("auto"), auto_ack=True, task="t1")

    assert row["killed worker 1 had"] == "t1"
    assert row["worker 2 got"] == "(nothing)"
    assert row["left in queue"] == 0


def test_a_killed_worker_gives_the_task_back_with_manual_acks(run):
    row = rl.crash_mid_task(run.name("manual"), auto_ack=False, task="t1")

    assert row["killed worker 1 had"] == "t1"
    assert (row["worker 2 got"], row["redelivered"]) == ("t1", True)


def test_a_forgotten_ack_keeps_messages_unacked_until_the_consumer_leaves(run):
    result = rl.forgotten_ack(run, run.name("forgetful"), batches=(2, 1))

    counters = [(s["ready"], s["unacked"], s["consumers"]) for s in result.timeline]
    assert counters == [(0, 0, 1), (0, 2, 1), (0, 3, 1), (3, 0, 0), (0, 0, 0)]
    assert sorted(m["message"] for m in result.reread) == ["job 1", "job 2", "job 3"]
    assert all(m["redelivered"] for m in result.reread)


def test_a_forgotten_ack_can_be_slowed_down_for_a_person_watching_the_ui(run):
    began = time.monotonic()
    result = rl.forgotten_ack(run, run.name("watched"), batches=(1,), hold_s=0.3)

    assert [s["unacked"] for s in result.timeline] == [0, 1, 0, 0]
    assert time.monotonic() - began >= 4 * 0.3  # every step stayed on screen


def test_management_shows_each_consumer_with_its_prefetch(run):
    name = run.queue("consumed")
    connection = rabbitmq.connect(run.settings)
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=3)  # before basic_consume: it applies to that consumer
        channel.basic_consume(name, lambda *args: None)
        # the management API learns of a new consumer a moment later
        consumers = wait_until(lambda: run.management.consumers(name), 5, 0.1)
    finally:
        connection.close()

    assert [(c["prefetch_count"], c["ack_required"]) for c in consumers] == [(3, True)]
    assert run.management.consumers(run.name("nobody-consumes")) == []


@pytest.mark.slow
def test_only_persistent_messages_in_a_durable_queue_survive_a_restart(run):
    experiment = rl.Durability(run, count=2)
    before = experiment.prepare()
    # nothing is reported before the broker has restarted
    [not_yet] = experiment.after()
    assert "has not restarted" in not_yet["after restart"]

    restart = experiment.restart()
    after = {row["queue"]: row["after restart"] for row in experiment.after()}

    assert [row["before restart"] for row in before] == [2, 2, 2]
    assert restart["new process"] and restart["same address"]
    assert after == {
        "exclusive-queue": "queue gone",
        "durable-queue-transient-messages": 0,
        "durable-queue-persistent-messages": 2,
    }


def test_a_broker_the_launcher_did_not_start_is_not_restarted_and_nothing_is_made_up(run):
    outside = Run("durability-outside")
    # the same broker, reached as if it were someone else's (the state file does not
    # name this URL): the experiment must not restart it, and must not guess
    outside.settings = outside.settings.replace(
        rabbitmq_url=outside.settings.rabbitmq_url.replace("127.0.0.1", "localhost"))
    try:
        experiment = rl.Durability(outside, count=1)
        experiment.prepare()
        answer = experiment.restart()
        assert answer["restarted by this notebook"] is False
        assert "docker compose restart rabbitmq" in answer["what to do"]
        [row] = experiment.after()
        assert "has not restarted" in row["after restart"]
    finally:
        experiment._owner.stop()
        outside.clean_up()


def test_topic_star_matches_one_word_and_hash_any_number(run):
    result = rl.routing_experiment(
        run, "topic",
        bindings=[("one", "kern.*"), ("critical", "*.critical"), ("all-kern", "kern.#")],
        messages=["kern.critical", "kern.disk.critical", "kern", "cron.info"],
    )
    table = {r["message"]: {q for q in ("one", "critical", "all-kern") if r[q]}
             for r in result["routing"]}

    assert table == {
        "kern.critical": {"one", "critical", "all-kern"},
        "kern.disk.critical": {"all-kern"},
        "kern": {"all-kern"},
        "cron.info": set(),
    }
    assert result["routing"][-1]["copies"].startswith("0 (returned")


def test_direct_exchange_copies_to_every_queue_with_that_key(run):
    result = rl.routing_experiment(
        run, "direct", bindings=[("errors", "error"), ("all", "info"), ("all", "error")],
        messages=["error", "info"],
    )

    assert [(r["errors"], r["all"], r["copies"]) for r in result["routing"]] == [
        ("✓", "✓", 2), ("", "✓", 1)
    ]


def test_headers_exchange_all_versus_any(run):
    result = rl.routing_experiment(
        run, "headers",
        bindings=[("all", {"x-match": "all", "format": "pdf", "type": "report"}),
                  ("any", {"x-match": "any", "format": "pdf", "type": "report"})],
        messages=[{"format": "pdf", "type": "report"}, {"format": "pdf", "type": "log"}],
    )

    assert [(r["all"], r["any"]) for r in result["routing"]] == [("✓", "✓"), ("", "✓")]


def test_fanout_gives_a_late_subscriber_only_later_messages(run):
    rows = rl.fanout_late_subscriber(run, early=["e1", "e2"], late=["l1"])

    assert [r["received"] for r in rows] == ["e1, e2, l1", "e1, e2, l1", "l1"]
    assert all(r["server-named queue"] for r in rows)
    assert not any(r["queue exists after disconnect"] for r in rows)


def test_rpc_replies_are_matched_by_correlation_id(run):
    rows = rl.rpc_round_trip(run, requests=[4, 1], servers=2, seconds_per_unit=0.1)

    assert sorted((r["request"], r["reply"]) for r in rows) == [(1, "1"), (4, "16")]
    assert [r["request"] for r in rows] == [1, 4]  # the quick one comes back first
    assert all(r["reply_to"].startswith(rl.DIRECT_REPLY_TO + ".") for r in rows)
    assert len({r["correlation_id"] for r in rows}) == 2


def test_confirm_modes_all_confirm_and_one_at_a_time_is_slowest(run):
    rows = {r["mode"]: r for r in rl.confirm_timings(run.name("c"), count=500, repeats=1)}

    assert all(r["all confirmed"] and r["messages"] == 500 for r in rows.values())
    assert rows["one at a time"]["seconds"] > rows["asynchronously"]["seconds"]
    assert rl.message_count(run.name("c"), run.settings) == 0  # purged after each run


def test_unroutable_message_is_confirmed_unless_mandatory(run):
    rows = rl.unroutable_publish(run)

    assert rows[0] == {"mandatory": False, "outcome": "confirmed (basic.ack)", "returned": ""}
    assert rows[1]["outcome"] == "UnroutableError raised"
    assert rows[1]["returned"] == "312 NO_ROUTE"


def test_rejected_and_expired_messages_are_dead_lettered_with_x_death(run):
    dlx, dlq = rl.dead_letter_exchange(run)

    rejected = rl.reject_into_dead_letters(run, dlx, dlq)
    expired = rl.expire_into_dead_letters(run, dlx, dlq, ttl_ms=200)

    assert (rejected["reason"], rejected["queue"], rejected["count"]) == ("rejected", "orders", 1)
    assert [(r["reason"], r["queue"]) for r in expired] == [
        ("expired", "parcels"), ("expired", "sessions")
    ]


def test_per_message_ttl_waits_for_the_head_of_the_queue(run):
    dlx, dlq = rl.dead_letter_exchange(run)

    rows = rl.ttl_head_of_line(run, dlx, dlq, ttl_ms=100)

    assert [(r["in the queue"], r["dead-lettered"]) for r in rows] == [(2, 0), (0, 1)]


def test_quorum_queue_dead_letters_after_the_delivery_limit(run):
    dlx, dlq = rl.dead_letter_exchange(run)

    result = rl.poison_in_quorum_queue(run, dlx, dlq, delivery_limit=1)

    # the first delivery carries no count (3.10 through 4.3), the redelivery says 1
    assert [(a["redelivered"], a["x-delivery-count"]) for a in result["attempts"]] == [
        (False, None), (True, 1)
    ]
    assert result["dead letter"]["reason"] == "delivery_limit"
    assert result["dead letter"]["queue"] == "payments"


def test_management_wait_names_the_values_it_saw(run):
    name = run.name("idle")
    with rabbitmq.open_channel(run.settings) as channel:
        rabbitmq.declare_queue(channel, name)

    with pytest.raises(TimeoutError, match="expected {'ready': 5}"):
        run.management.wait_for_counters(name, timeout_s=0.5, ready=5)
    with pytest.raises(LookupError):
        run.management.queue_counters(run.name("never-declared"))


def test_management_unreachable_says_so_quickly():
    settings = get_settings().replace(rabbitmq_management_url="http://127.0.0.1:9")

    with Management(settings, timeout_s=1) as management, pytest.raises(ManagementUnavailable):
        management.overview()


# ------------------------------------------------------------------ the lessons

LESSONS = ["05-rabbitmq-queues-acks-durability.ipynb", "06-rabbitmq-exchanges-routing-rpc.ipynb",
           "07-rabbitmq-confirms-dead-letters.ipynb"]
# what the chapter's code cells show of pika itself, before any helper repeats it
RAW_CALLS = ["BlockingConnection", "queue_declare", "basic_publish", "BasicProperties",
             "confirm_delivery", "basic_qos", "basic_consume", "basic_ack", "basic_nack",
             "basic_reject", "exchange_declare", "queue_bind", "reply_to", "correlation_id",
             "x-dead-letter-exchange", "x-message-ttl", "x-queue-type"]


def lesson(name: str) -> list:
    return nbformat.read(REPO_ROOT / "notebooks" / name, 4).cells


def test_the_chapter_shows_pika_itself():
    code = "\n".join(c.source for name in LESSONS for c in lesson(name) if c.cell_type == "code")

    assert [call for call in RAW_CALLS if call not in code] == []


@pytest.mark.parametrize("name", LESSONS)
def test_a_lesson_has_a_diagram_a_recap_and_short_lines(name):
    cells = lesson(name)
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    images = re.findall(r"\]\((img/[^)]+\.svg)\)", text)
    long_lines = [line for c in cells if c.cell_type == "code" for line in c.source.splitlines()
                  if len(line) > 100]

    assert images and all((REPO_ROOT / "notebooks" / image).is_file() for image in images)
    assert "**You will:**" in text and "**Time:**" in text
    assert "> **Predict, then run.**" in text
    assert "## Recap" in text and text.count("<details><summary>Answer</summary>") >= 2
    assert long_lines == []
    assert "NBVAL_CHECK_OUTPUT" not in "\n".join(c.source for c in cells)
