"""Exercises with instant feedback: on the real brokers, every check passes on its
solution, fails helpfully on the untouched student stub (its hint names what to
use), and answers typical wrong answers with a specific message. Each test has
a Run of its own, deleted afterwards.

The notebooks themselves run under nbval (notebooks/exercises: every check says
"Not yet"; teacher/solutions: every check says "✓"); the last tests here check
that the two copies differ only in the cells the learner edits.
"""

from __future__ import annotations

import threading
import time

import nbformat
import pytest
from fastapi.testclient import TestClient
from kafka import TopicPartition
from pika.exceptions import NackError

from queue_exp.api import create_app
from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.config import REPO_ROOT
from queue_exp.course.exercises import Feedback
from queue_exp.course.exercises import choose
from queue_exp.course.exercises import first_steps
from queue_exp.course.exercises import kafka as kx
from queue_exp.course.exercises import rabbitmq as rx
from queue_exp.course.kafka import log as kafka_log
from queue_exp.course.run import Run
from queue_exp.messages import Message

BODY = {"timestamp": "2024-05-01T12:00:00", "source": "test"}


@pytest.fixture
def workspace():
    with Run("test-exercises") as run:
        yield run


def failed(fb: Feedback, *words: str) -> bool:
    """A failure whose text (✗ lines and hint) says each of ``words``."""
    assert isinstance(fb, Feedback), fb
    assert not fb.passed and fb.hint, str(fb)
    missing = [w for w in words if w not in fb.text]
    assert not missing, f"{missing} not in:\n{fb}"
    return True


def passed(fb: Feedback) -> bool:
    assert fb.passed, str(fb)
    return "✗" not in fb.text and fb.text.startswith("✓ Well done")


# ------------------------------------------------------------------ Feedback


def test_feedback_shows_right_wrong_and_hint_as_text_and_markdown():
    fb = Feedback("Exercise 9 · Demo").ok("this is right").fail("this is wrong", "try this")
    assert not fb and str(fb) == repr(fb) == (
        "Not yet: Exercise 9 · Demo\n  ✓ this is right\n  ✗ this is wrong\n  Hint: try this")
    assert fb._repr_markdown_().splitlines() == [
        "**Not yet: Exercise 9 · Demo**", "", "- ✓ this is right", "- ✗ this is wrong", "",
        "<details><summary>💡 Hint</summary>", "", "try this", "", "</details>"]
    assert Feedback("Nothing checked").passed is False
    assert Feedback("Done").ok("fine").passed


def test_an_unreachable_broker_is_feedback_not_a_traceback(workspace, dead_address):
    host, port = dead_address
    settings = workspace.settings.replace(kafka_bootstrap_servers=f"{host}:{port}",
                       broker_timeout_ms=1000)
    task = kx.Task("t", "t", settings, group="g", expected={0: 1})
    assert failed(kx.check_lag(task, 1), "could not reach a broker", "make brokers")


# --------------------------------------------------------------- first steps


@pytest.fixture
def api(workspace):
    with TestClient(create_app(workspace.settings)) as client:
        yield client


def send(api, text, **extra):
    return api.post("/kafka/send", json={"message": text, **BODY, **extra})


def test_first_message(api, workspace):
    task = first_steps.setup_first_message(workspace.settings)
    assert passed(first_steps.check_first_message(task, send(api, "hello, queues")))
    assert failed(first_steps.check_first_message(task, None), "still None", "/kafka/send")
    missing = api.post("/kafka/send", json={"message": "hello, queues", "source": "me"})
    assert failed(first_steps.check_first_message(task, missing), "422", "timestamp")
    rabbit = api.post("/rabbitmq/send", json={"message": "hello, queues", **BODY})
    assert "RabbitMQ" in first_steps.check_first_message(task, rabbit).text
    assert failed(first_steps.check_first_message(task, send(api, "hi")), "'hi'",
                  "'hello, queues'")


def test_same_partition(api, workspace):
    task = first_steps.setup_same_partition(workspace.settings)
    orders = [f"order {n}" for n in (1, 2, 3)]
    keyed = [send(api, text, key="customer-42") for text in orders]
    assert passed(first_steps.check_same_partition(task, keyed))
    assert failed(first_steps.check_same_partition(task, []), "nothing was sent", '"key"')
    unkeyed = [send(api, text) for text in orders]
    assert failed(first_steps.check_same_partition(task, unkeyed), "without a key", '"key"')
    # two keys known to hash to different partitions of 3 (notebook 02: alice 0, dave 1)
    mixed = [send(api, text, key=key) for text, key in zip(orders, ("alice", "dave", "alice"),
                                                            strict=True)]
    assert failed(first_steps.check_same_partition(task, mixed), "keys differ",
                  "landed on partitions 0, 1")


def test_take_two(api, workspace):
    task = first_steps.setup_take_two(workspace.settings)
    taken = rabbitmq.consume(task.queue, max_messages=2, timeout_s=2)
    assert passed(first_steps.check_take_two(task, taken))
    task = first_steps.setup_take_two(workspace.settings)
    assert failed(first_steps.check_take_two(task, None), "still None", "rabbitmq.consume")
    everything = rabbitmq.consume(task.queue, max_messages=10, timeout_s=1)
    assert failed(first_steps.check_take_two(task, everything), "you took 5", "max_messages=2")
    task = first_steps.setup_take_two(workspace.settings)
    connection = rabbitmq.connect(workspace.settings)
    unacked = [connection.channel().basic_get(task.queue) for _ in range(2)]
    connection.close()
    assert failed(first_steps.check_take_two(task, unacked), "never acknowledged")


# --------------------------------------------------------------------- Kafka


def read_key(topic, key):
    return [r["message"] for r in kafka_log.read_to_end(topic) if r.get("key") == key]


def test_read_key(workspace, monkeypatch):
    task = kx.setup_read_key(workspace)
    assert passed(kx.check_read_key(task, read_key))
    assert failed(kx.check_read_key(task, lambda topic, key: None), "returned None",
                  "read_to_end")

    def cut_short(topic, key):
        rows = kafka.consume(topic, max_messages=3, timeout_s=2)  # carol has 4
        return [r["message"] for r in rows if r.get("key") == key]

    assert failed(kx.check_read_key(task, cut_short), "missed", "max_messages")

    def whole_partition(topic, key):
        rows = kafka_log.read_to_end(topic)
        partition = next(r["partition"] for r in rows if r.get("key") == key)
        return [r["message"] for r in rows if r["partition"] == partition]

    assert failed(kx.check_read_key(task, whole_partition), "'bob #1'", "alice and bob share")
    assert failed(kx.check_read_key(task, lambda topic, key: read_key(topic, key)[::-1]),
                  "not oldest first")
    assert failed(kx.check_read_key(task, lambda topic, key: {}[topic]),
                  "raised KeyError: 'user-events'", "traceback")
    release = threading.Event()
    monkeypatch.setattr(kx, "LEARNER_TIMEOUT_S", 0.5)
    try:
        assert failed(kx.check_read_key(task, lambda topic, key: release.wait(30)),
                      "did not return", "for record in consumer")
    finally:
        release.set()


def test_partitions(workspace):
    task = kx.setup_partitions(workspace)
    assert failed(kx.check_partitions(task), "no topic `orders`", "create_topic")
    kafka_admin.create_topic(task.topic, 2, settings=workspace.settings)
    assert failed(kx.check_partitions(task), "consumer-3 got no partition",
                  "at least 3 partitions")
    task = kx.setup_partitions(workspace)
    kafka_admin.create_topic(task.topic, 1, settings=workspace.settings)
    assert failed(kx.check_partitions(task), "num.partitions=1")
    task = kx.setup_partitions(workspace)
    kafka_admin.create_topic(task.topic, 3, settings=workspace.settings)
    fb = kx.check_partitions(task)
    assert passed(fb) and "consumer-3 reads partition 2" in fb.text
    assert task.group not in kafka_admin.list_names()["groups"]


def test_lag(workspace):
    task = kx.setup_lag(workspace)
    rows = kafka_admin.group_offsets(task.group, task.topic)
    assert passed(kx.check_lag(task, sum(row["lag"] for row in rows)))
    assert passed(kx.check_lag(task, {row["partition"]: row["lag"] for row in rows}))
    assert failed(kx.check_lag(task, None), "still None", "group_offsets")
    assert failed(kx.check_lag(task, 18), "end offsets")
    assert failed(kx.check_lag(task, 12), "committed offsets")
    assert failed(kx.check_lag(task, "6"), "give one number")
    # "measuring" the lag by reading in the group and committing moves the group
    kafka_log.read_to_end(task.topic, group_id=task.group, commit=True)
    assert failed(kx.check_lag(task, 6), "has moved since the setup", "without joining")


def replay(topic, since_ms):
    return [r["message"] for r in kafka_log.replay_from(topic, since_ms)]


def test_replay(workspace):
    task = kx.setup_replay(workspace)
    assert passed(kx.check_replay(task, replay))
    assert failed(kx.check_replay(task, lambda topic, since_ms: None), "returned None",
                  "offsets_for_time")
    everything = lambda topic, since_ms: [r["message"] for r in kafka_log.read_to_end(topic)]  # noqa: E731
    assert failed(kx.check_replay(task, everything), "7 messages older than `since_ms`")

    def seeks_blindly(topic, since_ms):  # the classic: no answer for a time after the last record
        consumer = kafka.make_consumer(enable_auto_commit=False)
        try:
            tps = [TopicPartition(topic, p) for p in kafka_admin.partitions_of(topic)]
            consumer.assign(tps)
            found = consumer.offsets_for_times({tp: since_ms for tp in tps})
            for tp in tps:
                consumer.seek(tp, found[tp].offset)
            return replay(topic, since_ms)
        finally:
            consumer.close()

    assert failed(kx.check_replay(task, seeks_blindly), "raised AttributeError",
                  "answers None")


# ------------------------------------------------------------------ RabbitMQ


def bind(task, binding_key):
    connection = rabbitmq.connect()
    try:
        rabbitmq.bind_queue(connection.channel(), task.queue, task.exchange, binding_key)
    finally:
        connection.close()


def test_critical(workspace):
    task = rx.setup_critical(workspace)
    assert failed(rx.check_critical(task), "no binding", "bind_queue")
    bind(task, "#.critical")
    assert failed(rx.check_critical(task), "'critical', 'eu.disk.critical' arrived too",
                  "`#` matches zero or more")
    task = rx.setup_critical(workspace)
    bind(task, "payment.critical")
    assert failed(rx.check_critical(task), "'disk.critical' did not arrive")
    task = rx.setup_critical(workspace)
    bind(task, "*.critical")
    fb = rx.check_critical(task)
    assert passed(fb) and "'eu.disk.critical' stayed out" in fb.text
    assert rabbitmq.consume(task.queue, timeout_s=0.2) == []  # the probes are gone


def test_worker(workspace):
    task = rx.setup_worker(workspace)

    def careful(channel, method, properties, body):
        try:
            task.process(body)
        except ValueError:
            channel.basic_nack(delivery_tag=method.delivery_tag, requeue=False)
        else:
            channel.basic_ack(delivery_tag=method.delivery_tag)

    def acks_first(channel, method, properties, body):
        channel.basic_ack(method.delivery_tag)
        task.process(body)

    def requeues(channel, method, properties, body):
        try:
            task.process(body)
            channel.basic_ack(method.delivery_tag)
        except ValueError:
            channel.basic_nack(method.delivery_tag)

    def acks_everything(channel, method, properties, body):
        try:
            task.process(body)
        except ValueError:
            pass
        channel.basic_ack(method.delivery_tag)

    def lets_it_raise(channel, method, properties, body):
        task.process(body)
        channel.basic_ack(method.delivery_tag)

    started = time.monotonic()
    assert passed(rx.check_worker(task, careful))
    assert failed(rx.check_worker(task, lambda *args: None),
                  "neither acknowledged nor rejected", "basic_ack")
    assert time.monotonic() - started < 10
    assert failed(rx.check_worker(task, acks_first), "acknowledged before it was processed")
    assert failed(rx.check_worker(task, requeues), "came straight back", "requeue=False")
    assert failed(rx.check_worker(task, acks_everything), "nobody will ever see it",
                  "basic_nack")
    assert failed(rx.check_worker(task, lets_it_raise), "raised ValueError",
                  "except ValueError")


def publish_all(queue, texts):
    confirmed = 0
    connection = rabbitmq.connect()
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for text in texts:
            try:
                rabbitmq.publish(channel, Message.now(text), queue)
                confirmed += 1
            except NackError:
                pass
    finally:
        connection.close()
    return confirmed


def test_confirms(workspace):
    task = rx.setup_confirms(workspace)
    assert passed(rx.check_confirms(task, publish_all))
    assert failed(rx.check_confirms(task, lambda queue, texts: None), "returned None",
                  "confirm_delivery", "NackError")

    def without_confirms(queue, texts):
        connection = rabbitmq.connect()
        channel = connection.channel()
        for text in texts:
            rabbitmq.publish(channel, Message.now(text), queue)
        connection.close()
        return len(texts)

    assert failed(rx.check_confirms(task, without_confirms), "refused 3", "confirm_delivery")

    def lets_nack_raise(queue, texts):
        connection = rabbitmq.connect()
        channel = connection.channel()
        channel.confirm_delivery()
        try:
            for text in texts:
                rabbitmq.publish(channel, Message.now(text), queue)
        finally:
            connection.close()
        return len(texts)

    assert failed(rx.check_confirms(task, lets_nack_raise), "raised NackError",
                  "catch it")


# ----------------------------------------------------------------- the notebooks

NAMES = sorted(p.name for p in (REPO_ROOT / "notebooks" / "exercises").glob("*.ipynb"))


@pytest.mark.parametrize("name", NAMES)
def test_student_and_teacher_copies_differ_only_in_the_learner_cells(name):
    student = nbformat.read(REPO_ROOT / "notebooks" / "exercises" / name, 4).cells
    teacher = [c for c in nbformat.read(REPO_ROOT / "teacher" / "solutions" / name, 4).cells
               if not c.source.startswith("> **Teacher's copy.**")]
    assert student[0].source.startswith("# Exercises · ")
    assert [c.cell_type for c in student] == [c.cell_type for c in teacher]
    checks = [i for i, c in enumerate(student)
              if "nbval-check-output" in c.metadata.get("tags", [])]
    assert len(checks) in (2, 3, 4)
    for i, (mine, theirs) in enumerate(zip(student, teacher, strict=True)):
        if i + 1 in checks:  # the cell the learner edits
            assert "your code here" in mine.source and "your code here" not in theirs.source
        else:
            assert mine.source == theirs.source
    for i in checks:  # executed: the stub's feedback is "Not yet", the solution's "✓"
        assert student[i].outputs[0]["data"]["text/plain"].startswith("Not yet: Exercise")
        assert teacher[i].outputs[0]["data"]["text/plain"].startswith("✓ Well done: Exercise")
    assert "clean_up()" in student[-1].source


def test_a_send_to_a_missing_topic_gets_a_hint_about_creating_it(settings):
    from queue_exp.course.exercises.feedback import Feedback
    from queue_exp.course.exercises.feedback import not_finished
    from queue_exp.course.exercises.feedback import run_learner_code

    def send_one():
        producer = kafka.make_producer(settings)
        try:
            producer.send(settings.name("no-such-topic"), b"hello").get(10)
        finally:
            producer.close(timeout=2)

    run = run_learner_code(send_one, timeout_s=15)
    assert type(run.error).__name__ == "KafkaTimeoutError", run
    text = str(not_finished(Feedback("send"), "send_one", run, 15))
    assert "does not create topics" in text and "create_topic" in text, text


# ------------------------------------------------------------ choose a broker


RIGHT = {1: ("either", ["replay"]), 2: ("rabbitmq", ["competing consumers", "per-message ack"]),
         3: ("kafka", ["per-key order"]), 4: ("either", ["idempotent consumer"]),
         5: ("rabbitmq", ["routing patterns"])}


def test_choices_pass_when_the_deciding_reasons_are_given():
    assert passed(choose.check_choices(RIGHT))
    assert passed(choose.check_choices({**RIGHT, 1: ("kafka", "replay")}))  # one reason, a str


@pytest.mark.parametrize(("change", "words"), [
    ({2: ("kafka", ["competing consumers", "per-message ack"])}, ("scenario 2", "not 'kafka'")),
    ({3: ("kafka", ["per-key order", "unlimited group members"])}, ("scenario 3", "not true")),
    ({4: ("rabbitmq", ["exactly-once to anything"])}, ("scenario 4", "not true", "missing")),
    ({5: ("rabbitmq", ["routing"])}, ("scenario 5", "'routing'", "ex.REASONS")),
    ({1: ("kafka", [])}, ("scenario 1", "deciding reason is missing")),
])
def test_choices_name_the_scenario_and_what_is_wrong(change, words):
    assert failed(choose.check_choices({**RIGHT, **change}), *words)


def test_no_choices_yet_is_a_hint_not_a_traceback():
    assert failed(choose.check_choices({}), "empty", "answers = {1:")
    assert failed(choose.check_choices(None), "not a dict")


def test_every_reason_a_scenario_needs_is_offered_and_true():
    for scenario in choose.SCENARIOS:
        assert set(scenario.needs) <= set(choose.REASONS) - choose.FALSE


def test_reading_a_stream_twice_passes_and_a_queue_style_read_is_told_why(workspace):
    import pika

    audit = choose.setup_replay(workspace)

    def read_all(stream):
        params = pika.URLParameters(workspace.settings.rabbitmq_url)
        with pika.BlockingConnection(params) as connection:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=100)
            bodies = []
            for method, _props, body in channel.consume(
                    stream, arguments={"x-stream-offset": "first"}, inactivity_timeout=1):
                if method is None:
                    break
                bodies.append(body)
                channel.basic_ack(method.delivery_tag)
        return bodies

    def without_offset(stream):  # a stream consumer starts at "next": nothing old comes
        params = pika.URLParameters(workspace.settings.rabbitmq_url)
        with pika.BlockingConnection(params) as connection:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=100)
            bodies = []
            for method, _props, body in channel.consume(stream, inactivity_timeout=1):
                if method is None:
                    break
                bodies.append(body)
        return bodies

    assert passed(choose.check_replay(audit, read_all))
    assert failed(choose.check_replay(audit, without_offset), "got nothing", "x-stream-offset")
    assert failed(choose.check_replay(audit, "not a function"), "not a function")
