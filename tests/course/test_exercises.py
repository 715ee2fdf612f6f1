"""Exercises with instant feedback: on the real brokers, every check passes on its
solution, fails helpfully on the untouched student stub (its hint names what to
use), and answers typical wrong answers with a specific message. Each test has
a Run of its own, deleted afterwards.

The notebooks themselves run under nbval (notebooks/exercises: every check says
"Not yet"; teacher/solutions: every check says "✓"); the last tests here check
that the two copies differ only in the cells the learner edits.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
import uuid

import nbformat
import pika
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaAdminClient
from kafka import KafkaConsumer
from kafka import KafkaProducer
from kafka import TopicPartition
from kafka.admin import NewTopic
from pika.exceptions import NackError

from queue_exp.api import create_app
from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.config import REPO_ROOT
from queue_exp.course import kafka as kl
from queue_exp.course.exercises import Feedback
from queue_exp.course.exercises import choose
from queue_exp.course.exercises import first_steps
from queue_exp.course.exercises import kafka as kx
from queue_exp.course.exercises import rabbitmq as rx
from queue_exp.course.exercises import rabbitmq_worker_routing as wr
from queue_exp.course.run import Run
from queue_exp.messages import Message

BODY = {"timestamp": "2024-05-01T12:00:00", "source": "test"}


@pytest.fixture
def workspace():
    with Run("test-exercises") as run:
        yield run


def failed(fb: Feedback, *words: str) -> bool:
    """A failure whose text (✗ lines and hint) says each of ``words``, and names
    only what its task names."""
    assert isinstance(fb, Feedback), fb
    assert not fb.passed and fb.hint, str(fb)
    missing = [w for w in words if w not in fb.text]
    assert not missing, f"{missing} not in:\n{fb}"
    assert_names_as_in_task(fb)
    return True


def passed(fb: Feedback) -> bool:
    assert fb.passed, str(fb)
    assert_names_as_in_task(fb)
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
    task = kx.Task("t", "t", settings, group="g", group_label="g", expected={0: 1})
    assert failed(kx.check_lag(task, lag_of), "could not reach a broker", "make brokers")


# --------------------------------------------------------- helpers refused


def test_helpers_used_finds_the_course_helpers_a_function_calls():
    from queue_exp.course.exercises.feedback import helpers_used

    def through_a_helper(topic, key):
        return [r["message"] for r in kl.read_to_end(topic) if r["key"] == key]

    def mine(topic):
        return through_a_helper(topic, "alice")

    def raw(topic):
        consumer = KafkaConsumer(bootstrap_servers=kafka_settings().kafka_bootstrap_servers)
        consumer.close()
        return json.loads("[]")

    assert helpers_used(through_a_helper) == ["kl.read_to_end"]
    assert helpers_used(mine) == ["kl.read_to_end"]  # through a function of the learner's
    assert helpers_used(lambda topic: kafka_admin.partitions_of(topic)) == [
        "kafka_admin.partitions_of"]
    assert helpers_used(raw) == []  # the clients and the settings are what it should use
    assert helpers_used(print) == []


def kafka_settings():
    from queue_exp.config import get_settings

    return get_settings()


# --------------------------------------------------------------- first steps


@pytest.fixture
def api(workspace):
    with TestClient(create_app(workspace.settings)) as client:
        yield client


def send(api, text, **extra):
    return api.post("/kafka/send", json={"message": text, **BODY, **extra})


def producer_for(settings):
    return KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")


def test_first_message(api, workspace):
    task = first_steps.setup_first_message(workspace)
    assert passed(first_steps.check_first_message(task, send(api, "hello, queues")))
    assert failed(first_steps.check_first_message(task, None), "still None", "/kafka/send")
    missing = api.post("/kafka/send", json={"message": "hello, queues", "source": "me"})
    assert failed(first_steps.check_first_message(task, missing), "422", "timestamp")
    rabbit = api.post("/rabbitmq/send", json={"message": "hello, queues", **BODY})
    assert "RabbitMQ" in first_steps.check_first_message(task, rabbit).text
    assert failed(first_steps.check_first_message(task, send(api, "hi")), "'hi'",
                  "'hello, queues'")


def orders_sender(settings, keys=("customer-42",) * 3, wait=True):
    def send_orders(topic):
        producer = producer_for(settings)
        futures = [producer.send(topic, key=key and key.encode(),
                                 value=json.dumps({"message": f"order {n}", **BODY}).encode())
                   for n, key in zip((1, 2, 3), keys, strict=True)]
        producer.flush(timeout=10)
        replies = [f.get(timeout=10) for f in futures] if wait else futures
        producer.close(timeout=5)
        return replies
    return send_orders


def test_same_partition(api, workspace):
    settings = workspace.settings
    task = first_steps.setup_same_partition(workspace)
    fb = first_steps.check_same_partition(task, orders_sender(settings))
    assert passed(fb) and "the key 'customer-42'" in fb.text
    assert failed(first_steps.check_same_partition(task, lambda topic: None), "returned None",
                  "key=")
    assert failed(first_steps.check_same_partition(task, orders_sender(settings, (None,) * 3)),
                  "without a key", "key=")
    # two keys known to hash to different partitions of 3 (notebook 02: alice 0, dave 1)
    mixed = orders_sender(settings, ("alice", "dave", "alice"))
    assert failed(first_steps.check_same_partition(task, mixed), "keys differ",
                  "landed on partitions 0, 1")
    assert failed(first_steps.check_same_partition(task, orders_sender(settings, wait=False)),
                  "futures", ".get(timeout=")
    through_api = lambda topic: [send(api, f"order {n}", key="k") for n in (1, 2, 3)]  # noqa: E731
    assert failed(first_steps.check_same_partition(task, through_api), "the API's replies")

    def with_a_helper(topic):
        producer = kafka.make_producer(settings)
        return [kafka.send(producer, topic, Message.now(f"order {n}", key="k")) for n in (1, 2)]

    assert failed(first_steps.check_same_partition(task, with_a_helper),
                  "`kafka.make_producer`, `kafka.send`", "key=")


def taker(settings, ack=True, count=2):
    def take_two(queue):
        connection = pika.BlockingConnection(pika.URLParameters(settings.rabbitmq_url))
        channel = connection.channel()
        bodies = []
        for _ in range(count):
            method, _properties, body = channel.basic_get(queue)
            if method is None:
                break
            if ack:
                channel.basic_ack(method.delivery_tag)
            bodies.append(body)
        connection.close()
        return bodies
    return take_two


def test_take_two(workspace):
    settings = workspace.settings
    task = first_steps.setup_take_two(workspace)
    assert passed(first_steps.check_take_two(task, taker(settings)))
    assert passed(first_steps.check_take_two(task, taker(settings)))  # refilled for each try
    assert failed(first_steps.check_take_two(task, lambda queue: None), "returned None",
                  "basic_get")
    assert failed(first_steps.check_take_two(task, taker(settings, count=10)), "took 5",
                  "exactly two")
    assert failed(first_steps.check_take_two(task, taker(settings, ack=False)),
                  "never acknowledged", "basic_ack")
    helper = lambda queue: rabbitmq.consume(queue, max_messages=2, timeout_s=2)  # noqa: E731
    assert failed(first_steps.check_take_two(task, helper), "`rabbitmq.consume`", "pika")


# --------------------------------------------------------------------- Kafka


def read_key(topic, key):
    consumer = KafkaConsumer(bootstrap_servers=kafka_settings().kafka_bootstrap_servers)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        found, deadline = [], time.monotonic() + 10
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline
            for records in consumer.poll(timeout_ms=500).values():
                found += [json.loads(r.value)["message"] for r in records
                          if r.key == key.encode()]
        return found
    finally:
        consumer.close()


def test_read_key(workspace, monkeypatch):
    task = kx.setup_read_key(workspace)
    assert passed(kx.check_read_key(task, read_key))
    assert failed(kx.check_read_key(task, lambda topic, key: None), "returned None",
                  "KafkaConsumer", "end_offsets")

    def cut_short(topic, key):  # one poll is one batch, not the topic
        consumer = KafkaConsumer(bootstrap_servers=kafka_settings().kafka_bootstrap_servers)
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
        consumer.seek_to_beginning()
        batch = consumer.poll(timeout_ms=2000, max_records=3)
        consumer.close()
        return [json.loads(r.value)["message"] for records in batch.values() for r in records
                if r.key == key.encode()]

    assert failed(kx.check_read_key(task, cut_short), "missed", "One `poll` returns one batch")

    def whole_partition(topic, key):
        partition = {"alice": 0, "bob": 0, "dave": 1, "carol": 2}[key]
        rows = [(r, json.loads(r.value)["message"]) for r in all_records(topic)]
        return [text for r, text in rows if r.partition == partition]

    assert failed(kx.check_read_key(task, whole_partition), "'bob #1'", "alice and bob share")
    assert failed(kx.check_read_key(task, lambda topic, key: read_key(topic, key)[::-1]),
                  "not oldest first")
    assert failed(kx.check_read_key(task, lambda topic, key: {}[topic]),
                  "raised KeyError: 'user-events'", "traceback")
    helper = lambda topic, key: [  # noqa: E731
        r["message"] for r in kl.read_to_end(topic) if r.get("key") == key]
    assert failed(kx.check_read_key(task, helper), "`kl.read_to_end`", "KafkaConsumer")
    release = threading.Event()
    monkeypatch.setattr(kx, "LEARNER_TIMEOUT_S", 0.5)
    try:
        assert failed(kx.check_read_key(task, lambda topic, key: release.wait(30)),
                      "did not return", "for record in consumer")
    finally:
        release.set()


def all_records(topic):
    consumer = KafkaConsumer(bootstrap_servers=kafka_settings().kafka_bootstrap_servers)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends, out = consumer.end_offsets(partitions), []
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        for records in consumer.poll(timeout_ms=500).values():
            out += records
    consumer.close()
    return out


def topic_maker(settings, partitions=lambda consumers: consumers):
    def create_topic_for(name, consumers):
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        try:
            admin.create_topics([NewTopic(name, num_partitions=partitions(consumers),
                                          replication_factor=1)], timeout_ms=10_000)
        finally:
            admin.close()
    return create_topic_for


def test_partitions(workspace):
    settings = workspace.settings
    task = kx.setup_partitions(workspace)
    fb = kx.check_partitions(task, topic_maker(settings))
    assert passed(fb) and "consumer-3 of 3 reads partition 2" in fb.text
    assert "`create_topic_for(name, 5)` made 5 partitions" in fb.text
    assert task.group not in kafka_admin.list_names()["groups"]
    assert failed(kx.check_partitions(task, topic_maker(settings, lambda n: 2)),
                  "made 2 partitions", "consumer-3 of 3 got no partition", "at least 3")
    assert failed(kx.check_partitions(task, topic_maker(settings, lambda n: 3)),
                  "`create_topic_for(name, 5)` made 3 partitions", "2 consumers would sit idle")
    assert failed(kx.check_partitions(task, lambda name, consumers: None),
                  "no topic of that name", "NewTopic")
    helper = lambda name, consumers: kafka_admin.create_topic(name, consumers)  # noqa: E731
    assert failed(kx.check_partitions(task, helper), "`kafka_admin.create_topic`", "NewTopic")
    assert passed(kx.check_partitions(task, topic_maker(settings, lambda n: n + 1)))


def lag_of(group, topic):
    consumer = KafkaConsumer(bootstrap_servers=kafka_settings().kafka_bootstrap_servers,
                             group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(partitions)
        return sum(ends[tp] - (consumer.committed(tp) or 0) for tp in partitions)
    finally:
        consumer.close()


def test_lag(workspace):
    task = kx.setup_lag(workspace)
    fb = kx.check_lag(task, lag_of)
    assert passed(fb) and "`billing` is 6 records behind" in fb.text
    assert "after 3 more records it says 9" in fb.text  # the check wrote 3 more
    assert passed(kx.check_lag(task, lambda group, topic: {0: lag_of(group, topic)}))
    assert failed(kx.check_lag(task, lambda group, topic: None), "returned None", "committed(tp)")
    task = kx.setup_lag(workspace)  # 18 records, 12 of them committed
    assert failed(kx.check_lag(task, lambda group, topic: 6), "still says 6, not 9",
                  "committed(tp)")
    task = kx.setup_lag(workspace)
    assert failed(kx.check_lag(task, lambda group, topic: 18), "the sum of its end offsets")
    assert failed(kx.check_lag(task, lambda group, topic: 12), "the sum of its committed")
    assert failed(kx.check_lag(task, lambda group, topic: "6"), "give one number")
    helper = lambda group, topic: sum(  # noqa: E731
        r["lag"] for r in kafka_admin.group_offsets(group, topic))
    assert failed(kx.check_lag(task, helper), "`kafka_admin.group_offsets`", "committed(tp)")

    def joins_and_commits(group, topic):  # "measuring" the lag by reading in the group
        read_in_group_and_commit(topic, group)
        return 0

    assert failed(kx.check_lag(task, joins_and_commits), "moved group `billing`")
    assert failed(kx.check_lag(task, lag_of), "has moved since the setup", "without joining")


def read_in_group_and_commit(topic, group):
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_settings().kafka_bootstrap_servers,
                             group_id=group, enable_auto_commit=False)
    deadline = time.monotonic() + 10
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(timeout_ms=200)
    consumer.seek_to_end()
    for tp in consumer.assignment():
        consumer.position(tp)
    consumer.commit()
    consumer.close()


def replay(topic, since_ms):
    consumer = KafkaConsumer(bootstrap_servers=kafka_settings().kafka_bootstrap_servers)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        found = consumer.offsets_for_times({tp: since_ms for tp in partitions})
        ends = consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, ends[tp] if found[tp] is None else found[tp].offset)
        out = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=500).values():
                out += [json.loads(r.value)["message"] for r in records]
        return out
    finally:
        consumer.close()


def test_replay(workspace):
    task = kx.setup_replay(workspace)
    assert passed(kx.check_replay(task, replay))
    assert failed(kx.check_replay(task, lambda topic, since_ms: None), "returned None",
                  "offsets_for_times")
    everything = lambda topic, since_ms: [  # noqa: E731
        json.loads(r.value)["message"] for r in all_records(topic)]
    assert failed(kx.check_replay(task, everything), "7 messages older than `since_ms`")

    def seeks_blindly(topic, since_ms):  # the classic: no answer for a time after the last record
        consumer = KafkaConsumer(bootstrap_servers=kafka_settings().kafka_bootstrap_servers)
        try:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            consumer.assign(tps)
            found = consumer.offsets_for_times({tp: since_ms for tp in tps})
            for tp in tps:
                consumer.seek(tp, found[tp].offset)
            return replay(topic, since_ms)
        finally:
            consumer.close()

    assert failed(kx.check_replay(task, seeks_blindly), "raised AttributeError",
                  "answers None")
    helper = lambda topic, since_ms: kl.replay_from(topic, since_ms)  # noqa: E731
    assert failed(kx.check_replay(task, helper), "`kl.replay_from`", "offsets_for_times")


# ------------------------------------------------------------------ RabbitMQ

def bind(task, binding_key):
    connection = rabbitmq.connect()
    try:
        connection.channel().queue_bind(queue=task.queue, exchange=task.exchange,
                                        routing_key=binding_key)
    finally:
        connection.close()


def test_critical(workspace):
    def check(task):
        return rx.check_critical(task)

    task = rx.setup_critical(workspace)
    assert failed(check(task), "no binding", "queue_bind")
    bind(task, "#.critical")
    assert failed(check(task), "'critical', 'eu.disk.critical' arrived too",
                  "`#` matches zero or more")
    task = rx.setup_critical(workspace)
    bind(task, "payment.critical")
    assert failed(check(task), "'disk.critical' did not arrive")
    task = rx.setup_critical(workspace)
    bind(task, "*.critical")
    fb = check(task)
    assert passed(fb) and "'eu.disk.critical' stayed out" in fb.text
    assert rabbitmq.consume(task.queue, timeout_s=0.2) == []  # the probes are gone


def test_worker(workspace):
    task = rx.setup_worker(workspace)

    def check(on_message):
        return rx.check_worker(task, on_message)

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
    assert passed(check(careful))
    assert failed(check(lambda *args: None), "neither acknowledged nor rejected", "basic_ack")
    assert time.monotonic() - started < 10
    assert failed(check(acks_first), "acknowledged before it was processed")
    assert failed(check(requeues), "came straight back", "requeue=False")
    assert failed(check(acks_everything), "nobody will ever see it", "basic_nack")
    assert failed(check(lets_it_raise), "raised ValueError", "except ValueError")


def publish_all(queue, texts):
    confirmed = 0
    connection = rabbitmq.connect()
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for text in texts:
            try:
                channel.basic_publish(exchange="", routing_key=queue, body=text.encode())
                confirmed += 1
            except NackError:
                pass
    finally:
        connection.close()
    return confirmed


def test_confirms(workspace):
    task = rx.setup_confirms(workspace)

    def check(publish_all):
        return rx.check_confirms(task, publish_all)

    assert passed(check(publish_all))
    assert failed(check(lambda queue, texts: None), "returned None", "confirm_delivery",
                  "NackError")

    def without_confirms(queue, texts):
        connection = rabbitmq.connect()
        channel = connection.channel()
        for text in texts:
            rabbitmq.publish(channel, Message.now(text), queue)
        connection.close()
        return len(texts)

    assert failed(check(without_confirms), "refused 3", "confirm_delivery")

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

    assert failed(check(lets_nack_raise), "raised NackError", "catch it")


def worker(prefetch=1, ack_first=False, on_try_again="requeue", then_block=False):
    """A learner's ``start_worker``, right by default, wrong as asked."""

    def start_worker(channel, queue, work):
        if prefetch is not None:
            channel.basic_qos(prefetch_count=prefetch)

        def on_message(ch, method, properties, body):
            if ack_first:
                ch.basic_ack(delivery_tag=method.delivery_tag)
            try:
                work(body)
            except wr.TryAgain:
                if on_try_again == "raise":
                    raise
                ch.basic_nack(delivery_tag=method.delivery_tag,
                              requeue=on_try_again == "requeue")
                return
            if not ack_first:
                ch.basic_ack(delivery_tag=method.delivery_tag)

        channel.basic_consume(queue=queue, on_message_callback=on_message)
        if then_block:
            channel.start_consuming()

    return start_worker


def test_fair_worker(workspace):
    task = wr.setup_fair_worker(workspace)

    def check(start_worker):
        return wr.check_fair_worker(task, start_worker)

    started = time.monotonic()
    fb = check(worker())
    assert passed(fb) and "prefetch 1" in fb.text and "put the job back" in fb.text
    assert time.monotonic() - started < 10
    assert failed(check(lambda channel, queue, work: None), "registered no consumer",
                  "basic_consume")
    assert failed(check(worker(prefetch=None)), "no prefetch limit",
                  "the slow worker took 4 of the 8 jobs", "basic_qos(prefetch_count=1)")
    assert failed(check(worker(prefetch=3)), "prefetch 3 and 3")
    assert failed(check(worker(ack_first=True)), "acknowledged before the work started")
    assert failed(check(worker(on_try_again="raise")), "let it escape", "except TryAgain")
    assert failed(check(worker(on_try_again="drop")), "rejected without requeue",
                  "requeue=True")
    assert failed(check(worker(then_block=True)), "did not return", "start_consuming")
    assert rabbitmq.ready_count(task.queue) == 0  # every round cleaned up after itself


def asker(params, sequential=False, by_arrival=False, reply_queue=None):
    """A learner's ``ask``, right by default, wrong as asked."""

    def ask(queue, numbers):
        connection = pika.BlockingConnection(params)
        try:
            channel = connection.channel()
            if reply_queue:  # a queue of its own that outlives the connection
                replies = channel.queue_declare(queue=reply_queue, durable=True).method.queue
            else:
                replies = channel.queue_declare(queue="", exclusive=True).method.queue
            answers, arrived, asked = {}, [], {}

            def on_reply(ch, method, properties, body):
                answers[properties.correlation_id] = int(body)
                arrived.append(int(body))

            channel.basic_consume(queue=replies, on_message_callback=on_reply, auto_ack=True)

            def wait_for(ids):
                deadline = time.monotonic() + 5
                while not ids <= answers.keys() and time.monotonic() < deadline:
                    connection.process_data_events(time_limit=0.1)

            for n in numbers:
                correlation_id = str(uuid.uuid4())
                asked[correlation_id] = n
                channel.basic_publish("", queue, str(n).encode(), pika.BasicProperties(
                    reply_to=replies, correlation_id=correlation_id))
                if sequential:
                    wait_for({correlation_id})
            wait_for(set(asked))
            if by_arrival:
                return dict(zip(numbers, arrived, strict=False))
            return {n: answers[cid] for cid, n in asked.items() if cid in answers}
        finally:
            connection.close()

    return ask


def test_squares(workspace):
    task = wr.setup_squares(workspace)
    params = pika.URLParameters(workspace.settings.rabbitmq_url)

    def check(ask):
        return wr.check_squares(task, ask)

    assert passed(check(asker(params)))
    assert failed(check(lambda queue, numbers: None), "no request reached", "reply_to")
    assert failed(check(asker(params, by_arrival=True)), "stale answer", "correlation_id")
    assert failed(check(asker(params, sequential=True)), "waited for each answer")
    assert failed(check(asker(params, reply_queue=workspace.name("my-replies"))),
                  "still on the broker", "exclusive=True")
    with task.running():  # the service, for a learner trying `ask` by hand
        assert asker(params)(task.queue, [2, 5]) == {2: 4, 5: 25}


# ----------------------------------------------------------------- the notebooks

NAMES = sorted(p.name for p in (REPO_ROOT / "notebooks" / "exercises").glob("*.ipynb"))
# a span that is a name, or starts with one called or indexed: `billing`,
# `read_key(topic, 'carol')`, `kl.…` (kl); not a value ('carol'), a path (/kafka/send) or a
# command line (`make brokers`). A setup cell run again makes `alerts-2` where the task
# says `alerts` (a fresh, empty queue): the same name.
CODE_NAME = re.compile(r"[A-Za-z_][\w.\-]*(?=$|[(\[=…])")


def names_in(text: str) -> set[str]:
    """The names in ``text``'s `code spans` (see ``CODE_NAME``)."""
    names = set()
    for span in re.findall(r"`([^`]+)`", text):
        if match := CODE_NAME.match(span):
            names.add(re.sub(r"-\d+$", "", match.group(0).rstrip(".-")))
    return names


@functools.cache
def tasks(name: str) -> dict[str, str]:
    """Exercise title -> the task's text, from the student copy: the sheet's
    introduction (it says what holds for every exercise) and the exercise's own
    Markdown cells."""
    cells = nbformat.read(REPO_ROOT / "notebooks" / "exercises" / name, 4).cells
    found: dict[str, str] = {}
    title = None
    for cell in cells[1:]:
        if cell.cell_type != "markdown":
            continue
        if cell.source.startswith("## "):
            heading = cell.source.splitlines()[0][3:].strip()
            title = heading if heading.startswith("Exercise") else None
        if title:
            found[title] = found.get(title, cells[0].source) + "\n" + cell.source
    return found


def misnamed(feedback_text: str, task_text: str) -> list[str]:
    """Names that the ✓/✗ lines of a feedback use and its task never says: the
    learner must recognise what the check talks about (hints may bring new names)."""
    said = names_in(task_text)
    lines = [line for line in feedback_text.splitlines()
             if line.lstrip().startswith(("✓ ", "✗ ", "- ✓", "- ✗"))]
    return sorted(n for n in names_in("\n".join(lines))
                  if n not in said and n.split(".")[0] not in said)


def assert_names_as_in_task(fb: Feedback) -> None:
    for name in NAMES:
        if fb.title in tasks(name):
            wrong = misnamed(fb.text, tasks(name)[fb.title])
            assert not wrong, f"{wrong} are not named in the task of {fb.title}:\n{fb}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("copy", ["notebooks/exercises", "teacher/solutions"])
def test_feedback_names_what_the_task_names(name, copy):
    """In both copies, every check's stored feedback (the stub's "Not yet", the
    solution's "✓") names only the topics, groups, queues and functions its task names."""
    by_title = tasks(name)
    checked = 0
    for cell in nbformat.read(REPO_ROOT / copy / name, 4).cells:
        if "nbval-check-output" not in cell.metadata.get("tags", []):
            continue
        text = cell.outputs[0]["data"]["text/plain"]
        title = text.splitlines()[0].split(": ", 1)[1]
        assert title in by_title, f"no task titled {title!r} in {name}"
        assert not misnamed(text, by_title[title]), (misnamed(text, by_title[title]), text)
        checked += 1
    assert checked == len(by_title)


def test_misnamed_catches_a_name_the_task_does_not_say():
    task = "The group `payments.group` reads the topic `payments.topic`; write `lag_of`."
    assert misnamed("Not yet: X\n  ✗ group `billing` has moved", task) == ["billing"]
    assert misnamed("Not yet: X\n  ✗ `lag_of(group, topic)` returned None\n"
                    "  Hint: use `committed(tp)`", task) == []
    assert misnamed("Not yet: X\n  ✗ run `make brokers`, then `payments.group`", task) == []


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
