"""The API's RabbitMQ publisher: publisher confirms, pipelined, on the API's event loop.

Waiting for each confirm before the next publish caps a publisher at one
message per broker round trip (the "one at a time" mode of notebook 07). This
publisher keeps many messages in flight on one channel and resolves each
request when the broker's ``basic.ack`` covering its delivery tag arrives
(``multiple=True`` acks cover a whole run of tags at once).

Given several nodes of a cluster (``RABBITMQ_URLS``), it connects to the first
that answers, and after losing that node, to the next one that does.

It runs on pika's ``AsyncioConnection``, i.e. on the same event loop as the
API: a publish is a frame written by the request's own coroutine and a confirm
completes an ``asyncio.Future`` directly, with no thread hand-offs. Mandatory
publishes the broker cannot route come back as ``basic.return`` *before* their
ack; the message id (= delivery tag) ties the two together, so such a message
fails with ``UnroutableError``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.exceptions import ChannelClosedByBroker
from pika.exceptions import NackError
from pika.exceptions import UnroutableError
from pika.spec import Basic

from queue_exp.clients.rabbitmq import BROKER
from queue_exp.clients.rabbitmq import NOT_FOUND
from queue_exp.clients.rabbitmq import PERSISTENT
from queue_exp.clients.rabbitmq import ExchangeNotFound
from queue_exp.clients.rabbitmq import cluster_parameters
from queue_exp.config import Settings
from queue_exp.errors import BrokerUnavailable
from queue_exp.messages import Message
from queue_exp.messages import encode

log = logging.getLogger(__name__)


@dataclass
class _InFlight:
    future: asyncio.Future
    exchange: str
    routing_key: str
    returned: bool = False


class Publisher:
    """Publishes with confirms, many messages in flight; use from one event loop.

    ``await publish(...)`` returns ``{"exchange", "routing_key"}`` once the broker
    confirmed the message, or raises ``BrokerUnavailable``, ``UnroutableError``,
    ``NackError`` or ``ExchangeNotFound``. The connection opens on first use and
    again after a failure, so the API starts (and recovers) without a broker.
    """

    def __init__(self, queue_name: str, settings: Settings) -> None:
        self.queue_name = queue_name
        self.settings = settings
        self._connection: AsyncioConnection | None = None
        self._channel: Any = None
        self._ready: asyncio.Future | None = None  # resolves to the channel
        self._in_flight: dict[int, _InFlight] = {}  # delivery tag -> unconfirmed publish
        self._next_tag = 1
        self._waiting = 0  # publishes waiting for the channel to open

    @property
    def connected(self) -> bool:
        return self._channel is not None and self._channel.is_open

    async def publish(
        self,
        message: Message,
        routing_key: str | None = None,
        exchange: str = "",
        mandatory: bool = True,
    ) -> dict[str, str]:
        """Publish one persistent message (to this publisher's queue unless a routing
        key is given) and wait for the broker's confirm. With ``mandatory`` a message
        no queue receives fails with ``UnroutableError`` instead of vanishing."""
        routing_key = self.queue_name if routing_key is None else routing_key
        # bounded: while the broker is slow or away, callers get a fast 503 instead
        # of an ever-growing backlog
        if len(self._in_flight) + self._waiting >= self.settings.max_pending_publishes:
            raise self._unavailable("publisher busy")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.broker_timeout_s + 2
        channel = await self._open_channel(deadline)
        while not channel.is_open:  # replaced while this publish waited for it
            channel = await self._open_channel(deadline)
        tag = self._next_tag
        self._next_tag += 1
        entry = _InFlight(loop.create_future(), exchange, routing_key)
        timer = loop.call_at(deadline, self._expire, entry.future)
        try:
            self._in_flight[tag] = entry
            channel.basic_publish(
                exchange=exchange,
                routing_key=routing_key,
                body=encode(message),
                properties=pika.BasicProperties(
                    content_type="application/json", delivery_mode=PERSISTENT,
                    message_id=str(tag)),
                mandatory=mandatory,
            )
            return await entry.future
        finally:
            timer.cancel()
            self._in_flight.pop(tag, None)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Close the connection (unconfirmed publishes fail with ``BrokerUnavailable``)."""
        connection = self._connection
        if connection is not None and connection.is_open:
            closed = asyncio.get_running_loop().create_future()
            connection.add_on_close_callback(
                lambda *_: closed.done() or closed.set_result(None))
            connection.close()
            try:
                await asyncio.wait_for(closed, timeout_s)
            except TimeoutError:
                log.warning("RabbitMQ publisher connection did not close in %.0f s", timeout_s)
        self._reset("publisher closed")

    # -- connection and channel ----------------------------------------------

    async def _open_channel(self, deadline: float) -> Any:
        if self.connected:
            return self._channel
        loop = asyncio.get_running_loop()
        if self._ready is None or self._ready.done():
            # one attempt at a time: every waiting publish shares it
            self._ready = loop.create_future()
            self._connect(loop)
        self._waiting += 1
        try:
            # shielded: one caller's deadline must not cancel the attempt for the others
            # (the attempt itself is bounded by pika's socket and handshake timeouts)
            return await asyncio.wait_for(asyncio.shield(self._ready),
                                          max(0.0, deadline - loop.time()))
        finally:
            self._waiting -= 1

    def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        nodes = cluster_parameters(self.settings)
        if len(nodes) > 1:
            # a cluster: pika tries the nodes in order and opens the first that answers
            AsyncioConnection.create_connection(nodes, self._on_cluster_connection,
                                                custom_ioloop=loop)
            return
        self._connection = AsyncioConnection(
            nodes[0],
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
            custom_ioloop=loop,
        )

    def _on_cluster_connection(self, outcome: Any) -> None:
        if isinstance(outcome, BaseException):  # no node answered
            self._on_open_error(None, outcome)
            return
        self._connection = outcome
        outcome.add_on_close_callback(self._on_closed)
        self._on_open(outcome)

    def _on_open(self, connection: AsyncioConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, _connection: Any, error: BaseException) -> None:
        self._connection = None
        self._settle_ready(self._unavailable(type(error).__name__))

    def _on_closed(self, connection: Any, reason: BaseException) -> None:
        if connection is self._connection:
            self._connection = None
            self._reset(f"connection lost ({type(reason).__name__})")

    def _on_channel_open(self, channel: Any) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm,
                                 callback=lambda _frame: self._on_confirm_mode(channel))

    def _on_confirm_mode(self, channel: Any) -> None:
        # the API's own queue must exist before the first default-exchange publish
        channel.queue_declare(self.queue_name, durable=True,
                              arguments=self.settings.rabbitmq_queue_arguments or None,
                              callback=lambda _frame: self._on_queue_ready(channel))

    def _on_queue_ready(self, channel: Any) -> None:
        self._channel = channel
        self._next_tag = 1  # delivery tags count from 1 on every channel
        self._settle_ready(channel)

    def _settle_ready(self, outcome: Any) -> None:
        ready = self._ready
        if ready is None or ready.done():
            return
        if isinstance(outcome, BaseException):
            ready.set_exception(outcome)
            ready.exception()  # retrieved: no "never retrieved" warning if nobody waits
        else:
            ready.set_result(outcome)

    def _reset(self, reason: str) -> None:
        """Fail everything in flight; the next publish reconnects."""
        self._channel = None
        self._settle_ready(self._unavailable(reason))
        self._fail([entry for _tag, entry in sorted(self._in_flight.items())], reason)

    # -- confirms, returns, channel errors -------------------------------------

    def _on_return(self, _channel: Any, _method: Any, properties: Any, _body: bytes) -> None:
        entry = self._in_flight.get(int(properties.message_id or 0))
        if entry is not None:
            entry.returned = True  # its ack follows; it then fails as unroutable

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if method.multiple:
            tags = [tag for tag in self._in_flight if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag] if method.delivery_tag in self._in_flight else []
        acked = isinstance(method, Basic.Ack)
        for tag in tags:
            entry = self._in_flight.pop(tag)
            if entry.future.done():
                continue
            if not acked:
                entry.future.set_exception(NackError([]))
            elif entry.returned:
                entry.future.set_exception(UnroutableError([]))
            else:
                entry.future.set_result(
                    {"exchange": entry.exchange, "routing_key": entry.routing_key})
        if not acked:
            # A nack: the queue could not take the message (a quorum queue whose
            # leader is moving to another node). A channel opened while the leader
            # was away keeps nacking after a new one is elected (RabbitMQ 3.10,
            # measured here), so the next publishes go to a fresh channel.
            self._renew_channel()

    def _renew_channel(self) -> None:
        """Swap the channel for a fresh one on the same connection; what is still
        in flight on the old one fails (503: it may or may not be stored)."""
        channel, self._channel = self._channel, None  # its close callback: nothing to do
        in_flight = [entry for _tag, entry in sorted(self._in_flight.items())]
        self._in_flight.clear()
        self._fail(in_flight, "channel renewed after a negative confirm")
        if channel is not None and channel.is_open:
            channel.close()
        self._open_new_channel()

    def _on_channel_closed(self, channel: Any, reason: BaseException) -> None:
        """The broker closed the channel (e.g. 404: a publish named a missing
        exchange). Frames after the bad publish were discarded; confirms of the
        ones before it may be lost with the channel. So the oldest unconfirmed
        publish gets the broker's reason and the others a 503 ("may or may not be
        stored"); the next publish opens a fresh channel."""
        if channel is not self._channel:
            return
        self._channel = None
        in_flight = [entry for _tag, entry in sorted(self._in_flight.items())]
        self._in_flight.clear()
        if isinstance(reason, ChannelClosedByBroker) and in_flight:
            first, in_flight = in_flight[0], in_flight[1:]
            missing = reason.reply_code == NOT_FOUND and "exchange" in str(reason.reply_text)
            if not first.future.done():
                first.future.set_exception(ExchangeNotFound(first.exchange) if missing
                                           else reason)
        self._fail(in_flight, "channel closed before the broker confirmed")
        self._open_new_channel()

    def _open_new_channel(self) -> None:
        """A new channel on the open connection; publishes wait for it meanwhile."""
        connection = self._connection
        if connection is not None and connection.is_open:
            self._ready = asyncio.get_running_loop().create_future()
            connection.channel(on_open_callback=self._on_channel_open)

    def _fail(self, entries: list[_InFlight], reason: str) -> None:
        for entry in entries:
            if not entry.future.done():
                entry.future.set_exception(self._unavailable(reason))

    def _unavailable(self, reason: str) -> BrokerUnavailable:
        return BrokerUnavailable(BROKER, self.settings.rabbitmq_url_redacted, reason)

    @staticmethod
    def _expire(future: asyncio.Future) -> None:
        if not future.done():
            future.set_exception(TimeoutError())
