"""Exercises for the first steps (after notebook 01): the API and both brokers.

1. Your first message: send one message to Kafka through the API.
2. Same key, same partition: three keyed messages that land together, in order.
3. Take two: take exactly two tasks from a RabbitMQ queue and leave the rest.

Each ``setup_…()`` takes the settings of the running API (``api.settings``) and
returns the task; each ``check_…()`` looks at the learner's answer *and* at what
the broker holds, and returns a :class:`~queue_exp.course.exercises.feedback.Feedback`.
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
from queue_exp.course.exercises.feedback import quoted

__all__ = [
    "setup_first_message", "check_first_message", "setup_same_partition",
    "check_same_partition", "setup_take_two", "check_take_two",
]

# as the API creates its topic (queue_exp.api.kafka.KAFKA_TOPIC_PARTITIONS)
API_TOPIC_PARTITIONS = 3
SEND_HINT = ('`api.post("/kafka/send", json={"message": …, "timestamp": …, "source": …})` '
             "sends one message; assign what it returns")


@dataclass(frozen=True)
class KafkaTask:
    """Messages to send through the API; ``topic`` is where the API writes them."""

    topic: str
    texts: tuple[str, ...]
    settings: Settings


def _kafka_task(api_settings: Settings, texts: tuple[str, ...]) -> KafkaTask:
    # the API's topic, made now as the API would make it, so the check can read it
    # even before the first send (reading a missing topic would create it wrongly)
    kafka_admin.create_topic(api_settings.kafka_topic, API_TOPIC_PARTITIONS,
                              settings=api_settings)
    return KafkaTask(api_settings.kafka_topic, texts, api_settings)


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


def setup_first_message(api_settings: Settings) -> KafkaTask:
    """Exercise 1: send ``hello, queues`` to Kafka through the API."""
    return _kafka_task(api_settings, ("hello, queues",))


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


def setup_same_partition(api_settings: Settings) -> KafkaTask:
    """Exercise 2: ``order 1``, ``order 2``, ``order 3`` on one partition, in order."""
    return _kafka_task(api_settings, ("order 1", "order 2", "order 3"))


@friendly_errors
def check_same_partition(task: KafkaTask, replies: Any) -> Feedback:
    """Exercise 2 · Same key, same partition"""
    fb = Feedback("Exercise 2 · Same key, same partition")
    hint = ('send each message with the same `"key"` in its body (any text, e.g. a '
            "customer id): the producer hashes the key to pick the partition")
    if not isinstance(replies, list | tuple):
        return fb.fail(f"`replies` is {kind(replies)}; expected a list of the "
                       "three replies", f"{hint}; collect the three replies in a list")
    if not replies:
        return fb.fail("`replies` is empty: nothing was sent yet",
                       f"{hint}; collect the three replies in a list")
    bodies = [_judge_reply(fb, f"message {i}", reply) for i, reply in enumerate(replies, 1)]
    if fb.wrong:
        return fb
    if len(bodies) != len(task.texts):
        return fb.fail(f"you sent {count(len(bodies), 'message')}; the task asks for three")
    stored = {(r["partition"], r["offset"]): r for r in probes.read_topic(task.topic,
                                                                         task.settings)}
    records = [stored.get((b["partition"], b["offset"])) for b in bodies]
    if any(r is None for r in records):
        return fb.fail("the API's topic has no record where a reply says")
    texts = [r.get("message") for r in records]
    if texts != list(task.texts):
        return fb.fail(f"the messages are {quoted(texts)}; the task asks for "
                       f"{quoted(list(task.texts))}, in that order")
    fb.ok("Kafka stored 'order 1', 'order 2' and 'order 3'")
    keys = [r.get("key") for r in records]
    if None in keys:
        fb.fail(f"{quoted([t for t, k in zip(texts, keys, strict=True) if k is None])} "
                "went without a key", hint)
    elif len(set(keys)) > 1:
        fb.fail(f"the keys differ ({quoted(keys)}): different keys may hash to different "
                "partitions", hint)
    else:
        fb.ok(f"all three have the key '{keys[0]}'")
    partitions = sorted({r["partition"] for r in records})
    if len(partitions) > 1:
        return fb.fail(f"they landed on partitions {', '.join(map(str, partitions))}", hint)
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


def setup_take_two(api_settings: Settings) -> QueueTask:
    """Exercise 3: put ``task 1`` … ``task 5`` (and nothing else) in the API's queue."""
    texts = tuple(f"task {n}" for n in range(1, 6))
    queue = api_settings.rabbitmq_queue
    with probes.open_channel(api_settings) as channel:
        channel.queue_declare(queue, durable=True)  # as the API declares it
        channel.queue_purge(queue)
    probes.publish_texts(api_settings, [queue] * len(texts), texts)
    return QueueTask(queue, texts, api_settings)


@friendly_errors
def check_take_two(task: QueueTask, taken: Any) -> Feedback:
    """Exercise 3 · Take two"""
    fb = Feedback("Exercise 3 · Take two")
    hint = ("`rabbitmq.consume(queue, max_messages=…, timeout_s=…)` takes messages "
            "from a queue and acknowledges each one")
    if taken is None:
        return fb.fail("`taken` is still None: you have not taken anything yet", hint)
    texts = probes.texts_of(taken)
    if texts is None:
        return fb.fail(f"`taken` is {kind(taken)}; expected the list of messages "
                       "you took", hint)
    if texts == list(task.texts[:2]):
        fb.ok("you took 'task 1' and 'task 2': the two oldest, as a queue is first in, "
              "first out")
    elif len(texts) != 2:
        fb.fail(f"you took {count(len(texts), 'message')}: {quoted(texts)}",
                "ask for exactly two: `max_messages=2`; run the setup cell again to put "
                "the five tasks back")
    else:
        fb.fail(f"you took {quoted(texts)}; the two oldest are 'task 1' and 'task 2'")
    expected_left = len(task.texts) - len(texts)
    left = probes.ready_count(task.queue, task.settings)
    if left is None:
        fb.fail("the queue is gone", "run the setup cell again")
    elif left == len(task.texts) and texts:
        fb.fail("the queue still holds all five: you received messages but never "
                "acknowledged them, so RabbitMQ gave them back when your connection closed",
                hint)
    elif left == 0 and len(texts) < len(task.texts):
        fb.fail("the queue is empty, yet you show fewer than five: something else took "
                "the others (did you start the API's consumer with `/rabbitmq/consume`?)",
                "run the setup cell again, then take two with the client, not the API")
    elif left == expected_left and len(texts) != 2:
        fb.fail(f"the queue now holds {count(left, 'task')} of five; the task asks to leave "
                "three in it")
    elif left == expected_left:
        fb.ok(f"{count(left, 'task')} still wait in the queue: RabbitMQ deleted the ones "
              "you acknowledged, and only those")
    else:
        fb.fail(f"the queue holds {count(left, 'task')}; after taking {len(texts)} of five "
                f"it should hold {expected_left}", "run the setup cell again and retry")
    return fb
