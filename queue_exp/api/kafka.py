"""``/kafka``: send (one shared producer), consume (a background consumer
thread) and the messages it received."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from fastapi import APIRouter
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from kafka.errors import RetriableError

from queue_exp.api.bridge import LoopResolver
from queue_exp.api.consumers import KafkaApiConsumer
from queue_exp.api.consumers import MessageStore
from queue_exp.api.consumers import add_consumer_routes
from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.config import Settings
from queue_exp.errors import BrokerUnavailable
from queue_exp.messages import Message

log = logging.getLogger(__name__)

router = APIRouter(prefix="/kafka", tags=["kafka"])

KAFKA_TOPIC_PARTITIONS = 3


class KafkaService:
    """The shared producer (thread-safe, opened on first send) and the consumer thread."""

    broker = "Kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.kafka_topic
        self.store = MessageStore(settings.max_stored_messages)
        self.consumer = KafkaApiConsumer(self.topic, settings.kafka_group, self.store, settings)
        self._producer = None
        self._topic_ready = False
        self._lock = threading.Lock()
        self._resolver: LoopResolver | None = None

    def prepare(self) -> None:
        """Create the API's topic once (blocking, call off the loop). Before the
        consumer starts too: a group that joins before its topic exists gets no
        partitions until its next metadata refresh, minutes later."""
        with self._lock:
            if not self._topic_ready:
                # on a cluster: replicated, so that a send survives the loss of a node
                replicas, config = kafka_admin.replication_here(self.settings)
                kafka_admin.create_topic(
                    self.topic, partitions=KAFKA_TOPIC_PARTITIONS, config=config,
                    settings=self.settings, replication_factor=replicas,
                )
                self._topic_ready = True

    def producer(self):
        """Open the producer (and the API's topic) once; blocking, call off the loop."""
        self.prepare()
        with self._lock:
            if self._producer is None:
                producer = kafka.make_producer(self.settings)
                # fetch the topic's metadata now, so that send() never waits for it
                producer.partitions_for(self.topic)
                self._producer = producer
            return self._producer

    async def send(self, message: Message) -> dict[str, Any]:
        if self._resolver is None:
            self._resolver = LoopResolver(asyncio.get_running_loop())
        resolver = self._resolver
        done: asyncio.Future = asyncio.get_running_loop().create_future()

        def submit(producer) -> None:
            future = kafka.submit(producer, self.topic, message)
            future.add_callback(lambda meta: resolver.post(done, meta))
            future.add_errback(lambda exc: resolver.post(done, exc, failed=True))

        address = self.settings.kafka_bootstrap_servers
        producer = self._producer
        try:
            if producer is None:
                # the first send opens the producer (bootstrap, topic): blocking, off the loop
                producer = await run_in_threadpool(self.producer)
            # metadata is cached: send() only appends to a batch for the sender thread
            submit(producer)
            meta = await resolver.wait(done, self.settings.broker_timeout_s + 2)
        except TimeoutError as exc:
            # the producer's own delivery timeout should have answered first: it is stuck
            self._renew(producer)
            raise BrokerUnavailable("Kafka", address, "no acknowledgement in time") from exc
        except RetriableError as exc:  # timeouts and lost connections, not bad requests
            raise BrokerUnavailable("Kafka", address, type(exc).__name__) from exc
        return {
            "status": "sent",
            "topic": meta.topic,
            "partition": meta.partition,
            "offset": meta.offset,
            "key": message.key,
        }

    def ping(self) -> dict[str, Any]:
        return kafka.ping(self.settings)

    def where(self) -> dict[str, Any]:
        """Where the background consumer reads from."""
        return {"topic": self.topic, "group_id": self.consumer.group_id}

    def _renew(self, stuck: Any) -> None:
        """Replace a producer whose send outlived its delivery timeout: kafka-python
        3.0's idempotent producer can stop sending for good after it expires a batch
        that was in flight to a broker that died (seen on the 3-node cluster when a
        leader is killed: every later send stays pending). The next send opens a
        new producer; the stuck one is closed in the background."""
        with self._lock:
            if self._producer is not stuck or stuck is None:
                return
            self._producer = None
        log.warning("the Kafka producer stopped answering; opening a new one")
        threading.Thread(target=kafka.close_producer, args=(stuck,), daemon=True,
                         name="close-stuck-producer").start()

    def close(self) -> None:
        self.consumer.stop()
        with self._lock:
            if self._producer is not None:
                kafka.close_producer(self._producer, timeout_s=5)
                self._producer = None


def _service(request: Request) -> KafkaService:
    return request.app.state.kafka


@router.post("/send")
async def kafka_send(message: Message, request: Request) -> dict[str, Any]:
    """Produce one message (``acks='all'``); replies with its topic, partition and offset."""
    return await _service(request).send(message)


add_consumer_routes(router, "kafka")
