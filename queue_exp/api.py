"""The FastAPI service: ``/kafka`` and ``/rabbitmq`` (send, consume, messages) and ``/health``.

Run it with ``make serve`` (``uvicorn queue_exp.api:app``) or, from a notebook,
``queue_exp.server.start_api()``. Broker clients are opened lazily on first use
and closed in the lifespan, so the service starts even while a broker is down
and answers 503 (naming the address and ``make brokers``) until it is back.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kafka.errors import KafkaError, MessageSizeTooLargeError, RetriableError
from pika.exceptions import ChannelClosedByBroker, NackError, UnroutableError
from pydantic import Field, field_validator

from queue_exp import kafka_client, rabbit_client
from queue_exp.background import MessageStore
from queue_exp.bridge import LoopResolver
from queue_exp.config import START_HINT, Settings, get_settings
from queue_exp.errors import BrokerUnavailable
from queue_exp.http_guards import BodyGuard, validation_error
from queue_exp.messages import Message
from queue_exp.rabbit_publisher import Publisher

log = logging.getLogger(__name__)

KAFKA_TOPIC_PARTITIONS = 3


class KafkaService:
    """The shared producer (thread-safe, opened on first send) and the consumer thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.kafka_topic
        self.store = MessageStore(settings.max_stored_messages)
        self.consumer = kafka_client.BackgroundConsumer(
            self.topic, settings.kafka_group, self.store, settings
        )
        self._producer = None
        self._lock = threading.Lock()
        self._resolver: LoopResolver | None = None

    def producer(self):
        """Open the producer (and the API's topic) once; blocking, call off the loop."""
        with self._lock:
            if self._producer is None:
                kafka_client.create_topic(
                    self.topic, partitions=KAFKA_TOPIC_PARTITIONS, settings=self.settings
                )
                producer = kafka_client.make_producer(self.settings)
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
            future = kafka_client.submit(producer, self.topic, message)
            future.add_callback(lambda meta: resolver.post(done, meta))
            future.add_errback(lambda exc: resolver.post(done, exc, failed=True))

        address = self.settings.kafka_bootstrap_servers
        try:
            if self._producer is None:
                # the first send opens the producer (bootstrap, topic): blocking, off the loop
                await run_in_threadpool(lambda: submit(self.producer()))
            else:
                # metadata is cached: send() only appends to a batch for the sender thread
                submit(self._producer)
            meta = await resolver.wait(done, self.settings.broker_timeout_s + 2)
        except TimeoutError as exc:
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

    def close(self) -> None:
        self.consumer.stop()
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None


# AMQP's limit for exchange names and routing keys (a "short string")
AMQP_SHORTSTR_BYTES = 255
EXCHANGE_NAME = re.compile(r"[A-Za-z0-9_.:\-]*")


class RabbitSend(Message):
    """A message plus, optionally, where RabbitMQ should publish it. Only the
    message fields travel in the body; ``exchange`` and ``routing_key`` address it."""

    exchange: str | None = Field(
        default=None,
        max_length=AMQP_SHORTSTR_BYTES,
        description="Exchange to publish to (letters, digits, `-_.:`); default: the "
        "default exchange `\"\"`, which delivers to the queue named by the routing key.",
        examples=["amq.topic"],
    )
    routing_key: str | None = Field(
        default=None,
        description="Routing key (at most 255 bytes); default: the API's queue name.",
        examples=["kern.critical"],
    )

    @field_validator("exchange")
    @classmethod
    def _exchange_name(cls, value: str | None) -> str | None:
        if value is not None and not EXCHANGE_NAME.fullmatch(value):
            raise ValueError("may contain only letters, digits and - _ . :")
        return value

    @field_validator("routing_key")
    @classmethod
    def _fits_amqp(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) > AMQP_SHORTSTR_BYTES:
            raise ValueError(f"must be at most {AMQP_SHORTSTR_BYTES} bytes in UTF-8")
        return value

    def to_message(self) -> Message:
        return Message.model_validate(self.model_dump(exclude={"exchange", "routing_key"}))


class RabbitService:
    """The publisher (pipelined confirms, on the event loop) and the consumer thread,
    on one durable queue."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue = settings.rabbitmq_queue
        self.store = MessageStore(settings.max_stored_messages)
        self.publisher = Publisher(self.queue, settings)
        self.consumer = rabbit_client.BackgroundConsumer(self.queue, self.store, settings)
        self._known_exchanges: set[str] = set()

    async def send(
        self, message: Message, exchange: str | None = None, routing_key: str | None = None
    ) -> dict[str, Any]:
        """Publish (mandatory, confirmed). By default to the API's queue through the
        default exchange; a message no queue receives is an error, not a silent loss."""
        exchange = exchange or ""
        routing_key = self.queue if routing_key is None else routing_key
        if exchange and exchange not in self._known_exchanges:
            # A publish to a missing exchange makes the broker close the channel, and
            # with it the confirms of every other message in flight: ask first.
            if not await run_in_threadpool(rabbit_client.exchange_exists, exchange,
                                           self.settings):
                raise HTTPException(404, str(rabbit_client.ExchangeNotFound(exchange)))
            self._known_exchanges.add(exchange)
        try:
            result = await self.publisher.publish(message, routing_key, exchange, mandatory=True)
        except TimeoutError as exc:
            raise BrokerUnavailable(
                "RabbitMQ", self.settings.rabbitmq_url_redacted, "no publisher confirm in time"
            ) from exc
        except UnroutableError as exc:
            where = (
                f"there is no queue named {routing_key!r} (the default exchange routes "
                "by queue name)"
                if not exchange
                else f"no queue is bound to exchange {exchange!r} for routing key {routing_key!r}"
            )
            raise HTTPException(
                422, f"RabbitMQ could not route the message: {where}; it was returned, not stored"
            ) from exc
        except rabbit_client.ExchangeNotFound as exc:
            self._known_exchanges.discard(exchange)  # it was deleted since we checked
            raise HTTPException(404, str(exc)) from exc
        except ChannelClosedByBroker as exc:  # e.g. 403 ACCESS_REFUSED
            status = 403 if exc.reply_code == 403 else 400
            raise HTTPException(status, f"RabbitMQ refused the publish: {exc.reply_text}") from exc
        # through the default exchange the routing key is the queue; through a named
        # exchange, the bindings decide (at least one queue got it: it was mandatory)
        queue = routing_key if not exchange else None
        return {"status": "sent", **result, "queue": queue, "confirmed": True}

    async def close(self) -> None:
        await run_in_threadpool(self.consumer.stop)
        await self.publisher.close()


async def start_consumer(broker: str, worker, ping, extra: dict[str, Any]) -> dict[str, Any]:
    if worker.running:
        return {"status": "already running", **extra}
    health = await run_in_threadpool(ping)
    if not health["reachable"]:
        raise BrokerUnavailable(broker, health["address"])
    started = worker.start()
    # wait (bounded) until it is connected, so "started" means it is reading
    await run_in_threadpool(worker.connected.wait, 5.0)
    return {"status": "started" if started else "already running", **extra}


def messages_reply(worker, store: MessageStore) -> dict[str, Any]:
    return {
        "consumer_running": worker.running,
        "received": store.received,
        "capacity": store.capacity,
        "messages": store.snapshot(),
    }


kafka_router = APIRouter(prefix="/kafka", tags=["kafka"])
rabbit_router = APIRouter(prefix="/rabbitmq", tags=["rabbitmq"])
health_router = APIRouter(tags=["health"])


def _kafka(request: Request) -> KafkaService:
    return request.app.state.kafka


def _rabbit(request: Request) -> RabbitService:
    return request.app.state.rabbitmq


@kafka_router.post("/send")
async def kafka_send(message: Message, request: Request) -> dict[str, Any]:
    """Produce one message (``acks='all'``); replies with its topic, partition and offset."""
    return await _kafka(request).send(message)


@kafka_router.post("/consume")
async def kafka_consume(request: Request) -> dict[str, Any]:
    """Start the background consumer (a second call leaves the running one alone)."""
    service = _kafka(request)
    return await start_consumer(
        "Kafka",
        service.consumer,
        lambda: kafka_client.ping(service.settings),
        {"topic": service.topic, "group_id": service.consumer.group_id},
    )


@kafka_router.get("/messages")
async def kafka_messages(request: Request) -> dict[str, Any]:
    """Messages the background consumer has received, oldest first (the newest N kept)."""
    service = _kafka(request)
    return messages_reply(service.consumer, service.store)


@rabbit_router.post("/send")
async def rabbitmq_send(body: RabbitSend, request: Request) -> dict[str, Any]:
    """Publish one persistent message and wait for the broker's publisher confirm.

    Optional ``exchange`` and ``routing_key`` in the body say where to publish
    (default: the API's queue). 422 if no queue receives the message, 404 if the
    exchange does not exist."""
    return await _rabbit(request).send(body.to_message(), body.exchange, body.routing_key)


@rabbit_router.post("/consume")
async def rabbitmq_consume(request: Request) -> dict[str, Any]:
    """Start the background consumer (a second call leaves the running one alone)."""
    service = _rabbit(request)
    return await start_consumer(
        "RabbitMQ",
        service.consumer,
        lambda: rabbit_client.ping(service.settings),
        {"queue": service.queue},
    )


@rabbit_router.get("/messages")
async def rabbitmq_messages(request: Request) -> dict[str, Any]:
    """Messages the background consumer has received, oldest first (the newest N kept)."""
    service = _rabbit(request)
    return messages_reply(service.consumer, service.store)


@health_router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """Each broker: reachable or not, its address, and how to start it."""
    settings: Settings = request.app.state.settings
    kafka, rabbit = await asyncio.gather(
        run_in_threadpool(kafka_client.ping, settings),
        run_in_threadpool(rabbit_client.ping, settings),
    )
    kafka["consumer_running"] = _kafka(request).consumer.running
    rabbit["consumer_running"] = _rabbit(request).consumer.running
    for broker in (kafka, rabbit):
        if not broker["reachable"]:
            broker["how_to_start"] = START_HINT
    ok = kafka["reachable"] and rabbit["reachable"]
    return {"status": "ok" if ok else "degraded", "kafka": kafka, "rabbitmq": rabbit}


async def broker_unavailable(_request: Request, exc: BrokerUnavailable) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(exc)})


async def broker_refused(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, MessageSizeTooLargeError):
        return JSONResponse(status_code=413, content={"detail": f"Kafka refused: {exc}"})
    if isinstance(exc, UnroutableError):
        return JSONResponse(status_code=422, content={"detail": "RabbitMQ could not route it"})
    return JSONResponse(status_code=502, content={"detail": f"broker refused: {exc!r}"})


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings = app.state.settings_override or get_settings()
    app.state.settings = settings
    app.state.kafka = KafkaService(settings)
    app.state.rabbitmq = RabbitService(settings)
    try:
        yield
    finally:
        await run_in_threadpool(app.state.kafka.close)
        await app.state.rabbitmq.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; ``settings`` (default: read from env vars at startup) fixes its
    brokers, namespace and limits."""
    app = FastAPI(
        title="queue_exp",
        description="Send and consume through Apache Kafka and RabbitMQ side by side.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings_override = settings
    app.include_router(kafka_router)
    app.include_router(rabbit_router)
    app.include_router(health_router)
    app.add_middleware(BodyGuard, max_body_bytes=(settings or get_settings()).max_body_bytes)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(BrokerUnavailable, broker_unavailable)
    app.add_exception_handler(KafkaError, broker_refused)
    app.add_exception_handler(NackError, broker_refused)
    app.add_exception_handler(UnroutableError, broker_refused)
    return app


app = create_app()
