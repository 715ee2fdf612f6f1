"""The exercises after notebooks 10 and 11, in the style of test_exercises.py: on
the real brokers, each check passes on its solution, fails helpfully on the
untouched stub, and names the mistake in typical wrong answers."""

from __future__ import annotations

import asyncio
import json

import pika
import pytest
from confluent_kafka import AcknowledgeType
from kafka.admin import ConfigResource
from kafka.admin import ConfigResourceType
from rstream import Consumer
from rstream import ConsumerOffsetSpecification
from rstream import OffsetNotFound
from rstream import OffsetType
from rstream import amqp_decoder

from queue_exp.clients import kafka_admin
from queue_exp.clients.streams import connection_args
from queue_exp.course.compare.io import read_queue
from queue_exp.course.exercises import share_groups as gx
from queue_exp.course.exercises import streams as sx
from queue_exp.course.run import Run
from tests.course.test_exercises import failed
from tests.course.test_exercises import passed


@pytest.fixture
def workspace():
    with Run("test-exercises-10-11") as run:
        yield run


# ------------------------------------------------------------------ streams


def reader(settings, offset=None, qos=True, auto_ack=False):
    """A ``read_since`` as a learner might write it; ``offset``: what it starts at
    (``None``: the ``since`` it is given)."""

    def read_since(stream, since):
        connection = pika.BlockingConnection(pika.URLParameters(settings.rabbitmq_url))
        try:
            channel = connection.channel()
            if qos:
                channel.basic_qos(prefetch_count=100)
            texts = []
            start = since if offset is None else offset
            for method, _props, body in channel.consume(
                    stream, auto_ack=auto_ack, arguments={"x-stream-offset": start},
                    inactivity_timeout=1):
                if method is None:
                    break
                texts.append(json.loads(body)["message"])
                if not auto_ack:
                    channel.basic_ack(method.delivery_tag)
            return texts
        finally:
            if connection.is_open:
                connection.close()

    return read_since


def test_replay_since_a_moment(workspace):
    task = sx.setup_replay(workspace)
    settings = workspace.settings
    fb = sx.check_replay(task, reader(settings))
    assert passed(fb) and "still holds all 10 events" in fb.text
    assert failed(sx.check_replay(task, lambda stream, since: None), "returned None",
                  "x-stream-offset")
    assert failed(sx.check_replay(task, reader(settings, offset="first")),
                  "6 events older than `since`", "not \"first\"")
    assert failed(sx.check_replay(task, reader(settings, offset="next")),
                  "returned nothing", "starts at `next`")
    assert failed(sx.check_replay(task, reader(settings, qos=False)), "406",
                  "basic_qos(prefetch_count=100)")
    assert workspace.namespace not in sx.check_replay(task, reader(settings, qos=False)).text
    assert failed(sx.check_replay(task, reader(settings, auto_ack=True)), "540",
                  "auto_ack=False")
    reverse = reader(settings)
    assert failed(sx.check_replay(task, lambda s, t: reverse(s, t)[::-1]),
                  "not oldest first")

    def with_a_helper(stream, since):
        return [m["message"] for m in read_queue(settings, stream, offset=since)]

    assert failed(sx.check_replay(task, with_a_helper), "`read_queue`", "write it with pika")


def processor(address, query=True, store=True, plus=1):
    """A ``process_new`` as a learner might write it."""

    async def process_new(stream, name):
        processed = []
        async with Consumer(**address) as consumer:
            start = ConsumerOffsetSpecification(OffsetType.FIRST)
            if query:
                try:
                    start = ConsumerOffsetSpecification(
                        OffsetType.OFFSET, await consumer.query_offset(stream, name) + plus)
                except OffsetNotFound:
                    pass

            async def on_message(message, context):
                processed.append((context.offset, json.loads(bytes(message.body))["message"]))

            await consumer.subscribe(stream, on_message, decoder=amqp_decoder,
                                     offset_specification=start, subscriber_name=name)
            await asyncio.sleep(0.8)
            if processed and store:
                await consumer.store_offset(stream, name, processed[-1][0])
        return [text for _offset, text in processed]

    return process_new


def test_carry_on_after_a_restart(workspace):
    task = sx.setup_resume(workspace)
    address = connection_args(workspace.settings)
    fb = sx.check_resume(task, processor(address))
    assert passed(fb) and "the offset of 'invoice 8'" in fb.text
    assert failed(sx.check_resume(task, lambda stream, name: None), "returned None",
                  "query_offset")
    assert failed(sx.check_resume(task, processor(address, store=False)),
                  "started from the beginning again (nothing stored on the server)",
                  "store_offset")
    assert failed(sx.check_resume(task, processor(address, query=False)),
                  "stored, but your run did not start after it", "query_offset")
    assert failed(sx.check_resume(task, processor(address, plus=0)),
                  "processed 'invoice 5' again", "stored + 1")


# ------------------------------------------------------------ share groups


def answering(work, on_try_again, on_error, commit=True):
    """An ``on_batch`` that answers a failure for now with ``on_try_again`` and a
    permanent one with ``on_error``."""

    def on_batch(consumer, messages):
        for message in messages:
            try:
                work.process(message.value())
            except work.TryAgain:
                consumer.acknowledge(message, on_try_again)
            except ValueError:
                consumer.acknowledge(message, on_error)
            else:
                consumer.acknowledge(message, AcknowledgeType.ACCEPT)
        if commit:
            consumer.commit_sync(10)

    return on_batch


def test_a_careful_share_consumer(workspace):
    work = gx.setup_careful(workspace)
    ack = AcknowledgeType
    fb = gx.check_careful(work, answering(work, ack.RELEASE, ack.REJECT))
    assert passed(fb) and "came back with delivery count 2" in fb.text
    assert failed(gx.check_careful(work, lambda consumer, messages: None),
                  "got no answer", "AcknowledgeType")
    assert failed(gx.check_careful(work, answering(work, ack.ACCEPT, ack.REJECT)),
                  "'payment 3' failed (TryAgain), yet you accepted it", "RELEASE")
    assert failed(gx.check_careful(work, answering(work, ack.REJECT, ack.REJECT)),
                  "yet you rejected it: it will never be tried again")
    assert failed(gx.check_careful(work, answering(work, ack.RELEASE, ack.RELEASE)),
                  "'payment 4' can never work, but you released it 5 times", "REJECT")

    def lets_it_raise(consumer, messages):
        for message in messages:
            work.process(message.value())
            consumer.acknowledge(message)

    assert failed(gx.check_careful(work, lets_it_raise), "raised TryAgain",
                  "except work.TryAgain")


def configure(task, **configs):
    with kafka_admin.admin_client(task.settings) as admin:
        admin.alter_configs([ConfigResource(ConfigResourceType.GROUP, task.group,
                                            {k.replace("_", "."): str(v)
                                             for k, v in configs.items()})])


def test_give_up_after_three_tries(workspace):
    task = gx.setup_limit(workspace)
    assert failed(gx.check_limit(task), "starts at the end of the log (latest",
                  "after 5 deliveries (the default)", "share.delivery.count.limit")
    configure(task, share_auto_offset_reset="earliest")
    fb = gx.check_limit(task)
    assert failed(fb, "the task says 3") and "✓ `emails-senders` starts at the oldest" in fb.text
    configure(task, share_delivery_count_limit=3)
    fb = gx.check_limit(task)
    assert passed(fb) and "delivery counts 1, 2, 3" in fb.text and "lag 0" in fb.text
