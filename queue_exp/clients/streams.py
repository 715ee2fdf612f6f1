"""RabbitMQ streams over their own protocol, on rstream (the client RabbitMQ's
stream tutorials use for Python): publish with confirms, read from an offset,
store and query a consumer's offset on the server.

A stream is also a queue to AMQP clients (``x-queue-type: stream``, read with
pika and ``x-stream-offset``: :func:`queue_exp.course.compare.io.read_queue`);
the stream protocol adds server-side offset tracking and, on newer brokers,
single active consumers, super streams and filtering.

rstream is asyncio. A notebook cell may ``await`` it directly (the kernel runs
an event loop); the synchronous helpers here run their coroutine on an event
loop of their own, in a thread (:func:`run_sync`), so that they work in a
notebook, a test and a script alike, and every one of them is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import TypeVar
from urllib.parse import unquote
from urllib.parse import urlsplit

from rstream import AMQPMessage
from rstream import Consumer
from rstream import ConsumerOffsetSpecification
from rstream import OffsetNotFound
from rstream import OffsetType
from rstream import Producer
from rstream import amqp_decoder

from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.messages import Message
from queue_exp.messages import decode_lenient
from queue_exp.messages import encode

log = logging.getLogger(__name__)

T = TypeVar("T")

# Where a stream consumer starts: the names RabbitMQ's docs use (and pika's
# x-stream-offset takes), mapped to rstream's offset types.
OFFSET_TYPES = {"first": OffsetType.FIRST, "last": OffsetType.LAST, "next": OffsetType.NEXT}


def connection_args(settings: Settings | None = None) -> dict[str, Any]:
    """``host``, ``port``, ``username``, ``password`` and ``vhost`` for rstream's
    ``Producer`` and ``Consumer``, from ``RABBITMQ_STREAM_URL`` (or the launcher's
    state file): no address is typed in a notebook cell."""
    url = urlsplit((settings or get_settings()).rabbitmq_stream_url)
    return {"host": url.hostname or "localhost", "port": url.port or 5552,
            "username": unquote(url.username or "guest"),
            "password": unquote(url.password or "guest"),
            "vhost": unquote(url.path.lstrip("/")) or "/"}


def run_sync(make: Callable[[], Awaitable[T]], timeout_s: float = 15.0) -> T:
    """Run the coroutine ``make()`` on an event loop of its own, in a thread, and
    return its result; ``TimeoutError`` after ``timeout_s`` (the coroutine is
    cancelled). Works where an event loop is already running (a notebook)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(asyncio.wait_for(make(), timeout_s))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="queue_exp-rstream", daemon=True)
    thread.start()
    thread.join(timeout_s + 5)
    if thread.is_alive():
        raise TimeoutError(f"the stream client did not finish within {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def offset_spec(start: str | int) -> ConsumerOffsetSpecification:
    """``"first"``, ``"last"``, ``"next"`` or an offset (a number) as rstream wants it."""
    if isinstance(start, bool) or not isinstance(start, str | int):
        raise ValueError(f"start is 'first', 'last', 'next' or an offset, not {start!r}")
    if isinstance(start, int):
        return ConsumerOffsetSpecification(OffsetType.OFFSET, start)
    return ConsumerOffsetSpecification(OFFSET_TYPES[start])


def message_text(message: Any) -> str:
    """The text of a message read with ``amqp_decoder`` (the course's JSON
    ``message`` field; anything else as it came)."""
    body = message.body if isinstance(message, AMQPMessage) else message
    raw = bytes(body) if isinstance(body, bytes | bytearray | memoryview) else str(body).encode()
    return str(decode_lenient(raw).get("message", raw.decode(errors="replace")))


async def publish_async(stream: str, texts: Sequence[str], settings: Settings) -> list[int]:
    """Publish one message per text, each confirmed by the broker (``send_wait``)."""
    async with Producer(**connection_args(settings)) as producer:
        return [await producer.send_wait(stream, AMQPMessage(body=encode(Message.now(t))))
                for t in texts]


def publish(stream: str, texts: Sequence[str], settings: Settings | None = None,
            timeout_s: float = 15.0) -> list[int]:
    """Publish ``texts`` to ``stream`` with confirms; returns each one's publishing id."""
    settings = settings or get_settings()
    return run_sync(lambda: publish_async(stream, texts, settings), timeout_s)


async def read_async(stream: str, start: str | int, settings: Settings, *,
                     max_messages: int = 1000, idle_s: float = 0.5,
                     name: str | None = None, store: bool = False) -> list[dict[str, Any]]:
    """Subscribe at ``start`` and collect messages until ``max_messages`` arrived or
    none came for ``idle_s``. With ``store``, consumer ``name`` stores the offset
    of each message it has read on the server (real code would store every few
    hundred: each store is a write to the stream)."""
    rows: list[dict[str, Any]] = []
    last = [time.monotonic()]

    async def on_message(message: Any, context: Any) -> None:
        if len(rows) >= max_messages:
            return  # the rest of a chunk the broker sent as a whole
        rows.append({"offset": context.offset, "message": message_text(message),
                     "timestamp_ms": context.timestamp})
        last[0] = time.monotonic()
        if store:
            await context.consumer.store_offset(context.stream, context.subscriber_name,
                                                context.offset)

    async with Consumer(**connection_args(settings)) as consumer:
        await consumer.subscribe(stream, on_message, decoder=amqp_decoder,
                                 offset_specification=offset_spec(start),
                                 subscriber_name=name)
        while len(rows) < max_messages and time.monotonic() - last[0] < idle_s:
            await asyncio.sleep(0.02)
    return rows


def read(stream: str, start: str | int = "first", settings: Settings | None = None, *,
         max_messages: int = 1000, idle_s: float = 0.5, name: str | None = None,
         store: bool = False, timeout_s: float = 15.0) -> list[dict[str, Any]]:
    """Read ``stream`` from ``start`` (see :func:`read_async`): rows with the
    message's ``offset``, ``message`` text and ``timestamp_ms``, in stream order."""
    settings = settings or get_settings()
    return run_sync(lambda: read_async(stream, start, settings, max_messages=max_messages,
                                       idle_s=idle_s, name=name, store=store), timeout_s)


async def stored_offset_async(stream: str, name: str, settings: Settings) -> int | None:
    """The offset consumer ``name`` last stored on ``stream``; ``None`` if it never did."""
    async with Consumer(**connection_args(settings)) as consumer:
        try:
            return await consumer.query_offset(stream, name)
        except OffsetNotFound:
            return None


def stored_offset(stream: str, name: str, settings: Settings | None = None,
                  timeout_s: float = 10.0) -> int | None:
    """See :func:`stored_offset_async`."""
    settings = settings or get_settings()
    return run_sync(lambda: stored_offset_async(stream, name, settings), timeout_s)
