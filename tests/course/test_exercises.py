"""Exercises with instant feedback: on the real brokers, every check passes on its
solution, fails helpfully on the untouched student stub (its hint names what to
use), and answers typical wrong answers with a specific message. Each test has
a Run of its own, deleted afterwards.

The notebooks themselves run under nbval (notebooks/exercises: every check says
"Not yet"; teacher/solutions: every check says "✓"); the last tests here check
that the two copies differ only in the cells the learner edits.
"""

from __future__ import annotations

import re
import threading
import time
import uuid

import nbformat
import pika
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
from queue_exp.course.exercises import first_steps
from queue_exp.course.exercises import kafka as kx
from queue_exp.course.exercises import rabbitmq as rx
from queue_exp.course.exercises import rabbitmq_worker_routing as wr
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

EX05_06 = "06-rabbitmq-worker-routing-exercises.ipynb"
EX07 = "07-rabbitmq-exercises.ipynb"


def task_texts(name: str) -> dict[str, str]:
    """Each exercise of a student notebook (its heading, as a Feedback's title) ->
    the text of its task: the Markdown under the heading, up to the next one."""
    texts: dict[str, str] = {}
    current = None
    for cell in nbformat.read(REPO_ROOT / "notebooks" / "exercises" / name, 4).cells:
        if cell.cell_type != "markdown":
            continue
        if cell.source.startswith("## "):
            heading = cell.source.splitlines()[0].removeprefix("## ").strip()
            current = heading if heading.startswith("Exercise") else None
        if current:
            texts[current] = texts.get(current, "") + "\n" + cell.source
    return texts


def names_in(lines: list[str]) -> set[str]:
    """The names lines mention: `backticked` words (a queue, an exchange, a function,
    an argument), not `code(…)` or `key=value`. A setup run again makes `alerts-2`
    where the task says `alerts` (fresh, empty queues): the same name."""
    return {re.sub(r"-\d+$", "", n) for line in lines for n in re.findall(r"`([^`]+)`", line)
            if re.fullmatch(r"[\w.*#-]+", n)}


def in_task(fb: Feedback, notebook: str) -> Feedback:
    """``fb``, once every name its ✓ and ✗ lines mention is found in its task's text:
    feedback speaks of the queues, exchanges and functions the task names."""
    task = task_texts(notebook)[fb.title]
    missing = sorted(n for n in names_in(fb.right + fb.wrong) if n not in task)
    assert not missing, f"{fb.title}: feedback names {missing}, the task does not:\n{fb}"
    return fb


def bind(task, binding_key):
    connection = rabbitmq.connect()
    try:
        connection.channel().queue_bind(queue=task.queue, exchange=task.exchange,
                                        routing_key=binding_key)
    finally:
        connection.close()


def test_critical(workspace):
    def check(task):
        return in_task(rx.check_critical(task), EX07)

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
        return in_task(rx.check_worker(task, on_message), EX07)

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
        return in_task(rx.check_confirms(task, publish_all), EX07)

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
        return in_task(wr.check_fair_worker(task, start_worker), EX05_06)

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
        return in_task(wr.check_squares(task, ask), EX05_06)

    assert passed(check(asker(params)))
    assert failed(check(lambda queue, numbers: None), "no request reached", "reply_to")
    assert failed(check(asker(params, by_arrival=True)), "stale answer", "correlation_id")
    assert failed(check(asker(params, sequential=True)), "waited for each answer")
    assert failed(check(asker(params, reply_queue=workspace.name("my-replies"))),
                  "still on the broker", "exclusive=True")
    with task.running():  # the service, for a learner trying `ask` by hand
        assert asker(params)(task.queue, [2, 5]) == {2: 4, 5: 25}


@pytest.mark.parametrize("name", [EX05_06, EX07])
def test_stored_feedback_names_what_the_task_names(name):
    """The feedback kept in both copies of a RabbitMQ exercise notebook (the stub's
    and the solution's) names only what the task names."""
    for copy in (REPO_ROOT / "notebooks" / "exercises", REPO_ROOT / "teacher" / "solutions"):
        cells = nbformat.read(copy / name, 4).cells
        checks = [c for c in cells if "nbval-check-output" in c.metadata.get("tags", [])]
        assert checks
        for cell in checks:
            text = cell.outputs[0]["data"]["text/plain"]
            title = text.splitlines()[0].split(": ", 1)[1]
            lines = [line for line in text.splitlines()[1:] if line.strip()[:1] in "✓✗"]
            missing = sorted(n for n in names_in(lines) if n not in task_texts(name)[title])
            assert not missing, f"{copy.name}/{name}, {title}: {missing} not in the task"


# ----------------------------------------------------------------- the notebooks

NAMES = ["01-first-steps-exercises.ipynb", "04-kafka-exercises.ipynb",
         "06-rabbitmq-worker-routing-exercises.ipynb", "07-rabbitmq-exercises.ipynb"]


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
