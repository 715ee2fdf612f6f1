"""Exercises for the first steps (after notebook 01): the API and both brokers'
clients.

1. Your first message: send one message to Kafka through the API.
2. Same key, same partition: ``send_orders(topic)``, a ``KafkaProducer`` that sends
   three keyed messages so they land together, in order.
3. Take two: ``take_two(queue)``, pika code that takes exactly two tasks from a
   RabbitMQ queue and leaves the rest.

Each ``setup_…()`` takes the notebook's :class:`~queue_exp.course.run.Run` (the API
runs on its namespace) and returns the task; each ``check_…()`` looks at the
learner's answer *and* at what the broker holds, and returns a
:class:`~queue_exp.course.exercises.feedback.Feedback`. Exercises 2 and 3 ask for
the clients' own code: an answer that calls the course's helpers is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from queue_exp.clients import kafka_admin
from queue_exp.config import Settings
from queue_exp.course.exercises import probes
from queue_exp.course.exercises.feedback import Feedback
from queue_exp.course.exercises.feedback import count
from queue_exp.course.exercises.feedback import friendly_errors
from queue_exp.course.exercises.feedback import kind
from queue_exp.course.exercises.feedback import not_finished
from queue_exp.course.exercises.feedback import quoted
from queue_exp.course.exercises.feedback import run_learner_code
from queue_exp.course.exercises.feedback import unusable
from queue_exp.course.run import Run

__all__ = [
    "setup_first_message", "check_first_message", "setup_same_partition",
    "check_same_partition", "setup_take_two", "check_take_two",
]

# as the API creates its topic (queue_exp.api.kafka.KAFKA_TOPIC_PARTITIONS)
API_TOPIC_PARTITIONS = 3
LEARNER_TIMEOUT_S = 15.0
SEND_HINT = ('`api.post("/kafka/send", json={"message": …, "timestamp": …, "source": …})` '
             "sends one message; assign what it returns")
KEY_HINT = ("send each message with the same `key=` (bytes, e.g. `b'customer-42'`): the "
            "producer hashes the key to pick the partition; `send(…)` returns a future, and "
            "`.get(timeout=…)` waits for the broker's answer, a `RecordMetadata` with the "
            "partition and offset")
TAKE_HINT = ("`channel.basic_get(queue)` takes the oldest ready message (or `(None, None, "
             "None)`); acknowledge it with `channel.basic_ack(method.delivery_tag)`, and "
             "close the connection at the end")


@dataclass(frozen=True)
class KafkaTask:
    """Messages to send; ``topic`` is where they must go."""

    topic: str
    texts: tuple[str, ...]
    settings: Settings



def _reply(reply: Any) -> tuple[int | None, Any] | None:
    """(status, body) of an API reply: an ``httpx.Response``, or its ``.json()``
    (status ``None`` when that is an error body: it has no status)."""
    if isinstance(reply, httpx.Response):
        try:
            return reply.status_code, reply.json()
        except ValueError:
            return reply.status_code, reply.text
    if isinstance(reply, dict):
        return (None if "detail" in reply else 200), reply
    return None


def _judge_reply(fb: Feedback, what: str, reply: Any) -> dict[str, Any] | None:
    """The body of a successful Kafka send reply; else says in ``fb`` what is wrong."""
    parsed = _reply(reply)
    if parsed is None:
        fb.fail(f"{what} is {kind(reply)}, not a reply of the API", SEND_HINT)
        return None
    status, body = parsed
    if status != 200:
        detail = body.get("detail") if isinstance(body, dict) else body
        if isinstance(detail, list):  # 422: one entry per invalid field
            detail = "; ".join(f"{'.'.join(map(str, e.get('loc', [])[1:]))}: {e.get('msg')}"
                               for e in detail)
        answered = f"answered {status}" if status else "refused"
        fb.fail(f"the API {answered} {what}: {detail}",
                "a message needs `message`, `timestamp` (ISO 8601, e.g. "
                "`2024-05-01T12:00:00`) and `source`")
        return None
    if not isinstance(body, dict) or "partition" not in body:
        where = "RabbitMQ (`/rabbitmq/send`)" if isinstance(body, dict) and "exchange" in body \
            else "somewhere else"
        fb.fail(f"{what} came from {where}; this exercise is about Kafka: `/kafka/send`")
        return None
    return body


def setup_first_message(run: Run) -> KafkaTask:
    """Exercise 1: send ``hello, queues`` to Kafka through the API (which runs on the
    run's namespace). Makes the API's topic now, as the API would, so the check can
    read it even before the first send."""
    topic = run.settings.kafka_topic
    kafka_admin.create_topic(topic, API_TOPIC_PARTITIONS, settings=run.settings)
    return KafkaTask(topic, ("hello, queues",), run.settings)


@friendly_errors
def check_first_message(task: KafkaTask, reply: Any) -> Feedback:
    """Exercise 1 · Your first message"""
    fb = Feedback("Exercise 1 · Your first message")
    if reply is None:
        return fb.fail("`reply` is still None: nothing was sent yet", SEND_HINT)
    body = _judge_reply(fb, "your request", reply)
    if body is None:
        return fb
    fb.ok("the API accepted it (200) and its reply says where Kafka stored it")
    stored = {(r["partition"], r["offset"]): r for r in probes.read_topic(task.topic,
                                                                         task.settings)}
    record = stored.get((body["partition"], body["offset"]))
    if record is None:
        return fb.fail("the API's topic has no record where the reply says")
    if record.get("message") != task.texts[0]:
        return fb.fail(f"Kafka stored '{record.get('message')}'; the task asks for "
                       f"'{task.texts[0]}'", "send exactly that text as `message`")
    return fb.ok(f"Kafka holds '{task.texts[0]}' from '{record.get('source')}' on the "
                 "API's topic")


def setup_same_partition(run: Run) -> KafkaTask:
    """Exercise 2: topic ``orders`` (3 partitions), for ``order 1``, ``order 2``,
    ``order 3`` on one partition, in order."""
    topic = run.fresh_name("orders")
    kafka_admin.create_topic(topic, API_TOPIC_PARTITIONS, settings=run.settings)
    return KafkaTask(topic, ("order 1", "order 2", "order 3"), run.settings)


def _where(meta: Any) -> tuple[str | None, int, int] | None:
    """(topic, partition, offset) of what a send answered, kafka-python's
    ``RecordMetadata``; ``None`` for anything else."""
    partition, offset = getattr(meta, "partition", None), getattr(meta, "offset", None)
    if isinstance(partition, int) and isinstance(offset, int):
        return getattr(meta, "topic", None), partition, offset
    return None


@friendly_errors
def check_same_partition(task: KafkaTask, send_orders: Any) -> Feedback:
    """Exercise 2 · Same key, same partition"""
    fb = Feedback("Exercise 2 · Same key, same partition")
    if unusable(fb, "send_orders", send_orders, "def send_orders(topic):",
                KEY_HINT, "kafka-python"):
        return fb
    run = run_learner_code(send_orders, task.topic, timeout_s=LEARNER_TIMEOUT_S)
    if not run.finished:
        return not_finished(fb, "send_orders", run, LEARNER_TIMEOUT_S)
    replies = run.value
    if replies is None:
        return fb.fail("`send_orders(topic)` returned None", KEY_HINT)
    if not isinstance(replies, list | tuple) or not replies:
        return fb.fail(f"`send_orders(topic)` returned {kind(replies)}; expected the list "
                       "of what the three sends answered", KEY_HINT)
    if any(isinstance(r, httpx.Response) or _reply(r) is not None for r in replies):
        return fb.fail("`send_orders` returned the API's replies; this exercise asks for "
                       "kafka-python's `KafkaProducer` itself", KEY_HINT)
    if any(callable(getattr(r, "get", None)) and not isinstance(r, dict) for r in replies):
        return fb.fail("`send_orders` returned futures: the broker has not answered them yet",
                       "call `.get(timeout=…)` on each future: it waits for the broker's "
                       "answer and returns a `RecordMetadata`")
    where = [_where(r) for r in replies]
    if None in where:
        return fb.fail(f"`send_orders` returned {quoted([kind(r) for r in replies])}; "
                       "expected three `RecordMetadata`", KEY_HINT)
    if len(where) != len(task.texts):
        return fb.fail(f"`send_orders` sent {count(len(where), 'message')}; the task asks "
                       "for three")
    if any(topic not in (None, task.topic) for topic, _p, _o in where):
        return fb.fail("`send_orders` wrote to another topic than the `topic` it was given")
    stored = {(r["partition"], r["offset"]): r
              for r in probes.read_topic(task.topic, task.settings)}
    records = [stored.get((p, o)) for _t, p, o in where]
    if any(r is None for r in records):
        return fb.fail("the topic has no record where a `RecordMetadata` says")
    texts = [r.get("message") for r in records]
    if texts != list(task.texts):
        return fb.fail(f"the messages are {quoted(texts)}; the task asks for "
                       f"{quoted(list(task.texts))}, in that order",
                       'each value is JSON with a `"message"`: '
                       '`json.dumps({"message": "order 1", …}).encode()`')
    fb.ok("Kafka stored 'order 1', 'order 2' and 'order 3'")
    keys = [r.get("key") for r in records]
    if None in keys:
        fb.fail(f"{quoted([t for t, k in zip(texts, keys, strict=True) if k is None])} "
                "went without a key", KEY_HINT)
    elif len(set(keys)) > 1:
        fb.fail(f"the keys differ ({quoted(keys)}): different keys may hash to different "
                "partitions", KEY_HINT)
    else:
        fb.ok(f"all three have the key '{keys[0]}'")
    partitions = sorted({r["partition"] for r in records})
    if len(partitions) > 1:
        return fb.fail(f"they landed on partitions {', '.join(map(str, partitions))}",
                       KEY_HINT)
    if keys[0] is not None and len(set(keys)) == 1:
        fb.ok(f"all three landed on partition {partitions[0]}")
    offsets = [r["offset"] for r in records]
    if offsets != sorted(offsets):
        return fb.fail("they are stored out of order: send 'order 1' first, then 2, then 3")
    return fb.ok("in the order you sent them: their offsets increase")


@dataclass(frozen=True)
class QueueTask:
    """Exercise 3: five tasks wait in the API's queue."""

    queue: str
    texts: tuple[str, ...]
    settings: Settings


def setup_take_two(run: Run) -> QueueTask:
    """Exercise 3: the API's queue (``tasks.queue``), declared as the API declares it.
    The check puts ``task 1`` … ``task 5`` (and nothing else) in it before each try."""
    texts = tuple(f"task {n}" for n in range(1, 6))
    queue = run.settings.rabbitmq_queue
    task = QueueTask(queue, texts, run.settings)
    _refill(task)
    return task


def _refill(task: QueueTask) -> None:
    with probes.open_channel(task.settings) as channel:
        channel.queue_declare(task.queue, durable=True)  # as the API declares it
        channel.queue_purge(task.queue)
    probes.publish_texts(task.settings, [task.queue] * len(task.texts), task.texts)


@friendly_errors
def check_take_two(task: QueueTask, take_two: Any) -> Feedback:
    """Exercise 3 · Take two"""
    fb = Feedback("Exercise 3 · Take two")
    if unusable(fb, "take_two", take_two, "def take_two(queue):", TAKE_HINT, "pika"):
        return fb
    _refill(task)  # the same five tasks for every try
    run = run_learner_code(take_two, task.queue, timeout_s=LEARNER_TIMEOUT_S)
    if not run.finished:
        return not_finished(fb, "take_two", run, LEARNER_TIMEOUT_S, waits_hint=(
            "`basic_get` never waits; a `basic_consume` loop needs "
            "`connection.process_data_events(time_limit=…)` or a consumer with "
            "`inactivity_timeout=…`"))
    taken = run.value
    if taken is None:
        return fb.fail("`take_two(queue)` returned None", TAKE_HINT)
    texts = probes.texts_of(taken)
    if texts is None:
        return fb.fail(f"`take_two(queue)` returned {kind(taken)}; expected the list of "
                       "the messages' bodies", TAKE_HINT)
    if texts == list(task.texts[:2]):
        fb.ok("`take_two` took 'task 1' and 'task 2': the two oldest, as a queue is first "
              "in, first out")
    elif len(texts) != 2:
        fb.fail(f"`take_two` took {count(len(texts), 'message')}: {quoted(texts)}",
                "take exactly two: two `basic_get` calls, or stop a consumer after two")
    else:
        fb.fail(f"`take_two` took {quoted(texts)}; the two oldest are 'task 1' and 'task 2'")
    expected_left = len(task.texts) - len(texts)
    left = probes.ready_count(task.queue, task.settings)
    if left is None:
        fb.fail("the queue is gone", "run the setup cell again")
    elif left == len(task.texts) and texts:
        fb.fail("the queue still holds all five: your code received messages but never "
                "acknowledged them, so RabbitMQ gave them back when the connection closed",
                TAKE_HINT)
    elif left == 0 and len(texts) < len(task.texts):
        fb.fail("the queue is empty, yet `take_two` took fewer than five: something else "
                "took the others (did you start the API's consumer with `/rabbitmq/consume`?)",
                "run the setup cell again, then take two with pika, not through the API")
    elif left == expected_left and len(texts) != 2:
        fb.fail(f"the queue now holds {count(left, 'task')} of five; the task asks to leave "
                "three in it")
    elif left == expected_left:
        fb.ok(f"{count(left, 'task')} still wait in the queue: RabbitMQ deleted the ones "
              "you acknowledged, and only those")
    else:
        fb.fail(f"the queue holds {count(left, 'task')}; after taking {len(texts)} of five "
                f"it should hold {expected_left}", "run the check again")
    return fb
