"""``/rabbitmq``: send (a pipelined publisher with confirms), consume (a
background consumer thread) and the messages it received."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from fastapi import HTTPException
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pika.exceptions import ChannelClosedByBroker
from pika.exceptions import NackError
from pika.exceptions import UnroutableError
from pydantic import Field
from pydantic import field_validator

from queue_exp.api.consumers import MessageStore
from queue_exp.api.consumers import RabbitApiConsumer
from queue_exp.api.consumers import add_consumer_routes
from queue_exp.api.publisher import Publisher
from queue_exp.clients import rabbitmq
from queue_exp.config import Settings
from queue_exp.errors import BrokerUnavailable
from queue_exp.messages import Message

router = APIRouter(prefix="/rabbitmq", tags=["rabbitmq"])

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

    broker = "RabbitMQ"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue = settings.rabbitmq_queue
        self.store = MessageStore(settings.max_stored_messages)
        self.publisher = Publisher(self.queue, settings)
        self.consumer = RabbitApiConsumer(self.queue, self.store, settings)
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
            if not await run_in_threadpool(rabbitmq.exchange_exists, exchange,
                                           self.settings):
                raise HTTPException(404, str(rabbitmq.ExchangeNotFound(exchange)))
            self._known_exchanges.add(exchange)
        try:
            result = await self.publisher.publish(message, routing_key, exchange, mandatory=True)
        except TimeoutError as exc:
            raise BrokerUnavailable(
                "RabbitMQ", self.settings.rabbitmq_url_redacted, "no publisher confirm in time"
            ) from exc
        except NackError as exc:  # retry later: e.g. a quorum queue electing a new leader
            raise BrokerUnavailable(
                "RabbitMQ", self.settings.rabbitmq_url_redacted,
                "the broker could not take the message (negative confirm); not stored"
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
        except rabbitmq.ExchangeNotFound as exc:
            self._known_exchanges.discard(exchange)  # it was deleted since we checked
            raise HTTPException(404, str(exc)) from exc
        except ChannelClosedByBroker as exc:  # e.g. 403 ACCESS_REFUSED
            status = 403 if exc.reply_code == 403 else 400
            raise HTTPException(status, f"RabbitMQ refused the publish: {exc.reply_text}") from exc
        # through the default exchange the routing key is the queue; through a named
        # exchange, the bindings decide (at least one queue got it: it was mandatory)
        queue = routing_key if not exchange else None
        return {"status": "sent", **result, "queue": queue, "confirmed": True}

    def prepare(self) -> None:
        """Nothing to create first: the consumer declares the API's queue itself."""

    def ping(self) -> dict[str, Any]:
        return rabbitmq.ping(self.settings)

    def where(self) -> dict[str, Any]:
        """Where the background consumer reads from."""
        return {"queue": self.queue}

    async def close(self) -> None:
        await run_in_threadpool(self.consumer.stop)
        await self.publisher.close()


def _service(request: Request) -> RabbitService:
    return request.app.state.rabbitmq


@router.post("/send")
async def rabbitmq_send(body: RabbitSend, request: Request) -> dict[str, Any]:
    """Publish one persistent message and wait for the broker's publisher confirm.

    Optional ``exchange`` and ``routing_key`` in the body say where to publish
    (default: the API's queue). 422 if no queue receives the message, 404 if the
    exchange does not exist."""
    return await _service(request).send(body.to_message(), body.exchange, body.routing_key)


add_consumer_routes(router, "rabbitmq")
