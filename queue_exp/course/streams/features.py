"""Stream features that need a newer RabbitMQ than Debian bookworm's 3.10
(notebook 10): single active consumer, super streams, filtering. Each demo runs
when the broker has the feature; otherwise :func:`demo` answers with one line
saying which version it needs (RabbitMQ 3.10 refuses some of them and silently
ignores others, so the version is checked first).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from rstream import AMQPMessage
from rstream import ConfirmationStatus
from rstream import Consumer
from rstream import FilterConfiguration
from rstream import OffsetNotFound
from rstream import OffsetSpecification
from rstream import OffsetType
from rstream import Producer
from rstream import RouteType
from rstream import SuperStreamConsumer
from rstream import SuperStreamCreationOption
from rstream import SuperStreamProducer
from rstream import amqp_decoder

from queue_exp.clients import rabbitmq
from queue_exp.clients import streams
from queue_exp.config import Settings
from queue_exp.course.run import Run
from queue_exp.course.streams.reading import STREAM
from queue_exp.messages import Message
from queue_exp.messages import encode

# feature -> the first RabbitMQ version that has it, as this course uses it
FEATURES = {
    "single active consumer": ((3, 11), "one consumer of a name reads, the others wait"),
    "super streams": ((3, 13), "a stream in partitions, created from the client "
                               "(3.11 and 3.12 need the rabbitmq-streams CLI for that)"),
    "filtering": ((3, 13), "the broker skips chunks without a wanted value"),
}


def broker_version(settings: Settings) -> tuple[int, ...]:
    """RabbitMQ's version as numbers, e.g. ``(3, 10, 8)`` (``(0,)`` if unknown)."""
    text = str(rabbitmq.ping(settings).get("version", ""))
    parts = [int(p) for p in text.split("+")[0].split("-")[0].split(".") if p.isdigit()]
    return tuple(parts) or (0,)


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def has(feature: str, version: tuple[int, ...]) -> bool:
    return version >= FEATURES[feature][0]


def feature_table(settings: Settings) -> list[dict[str, Any]]:
    """One row per newer feature: what it does, the version it needs, and
    whether this broker has it."""
    version = broker_version(settings)
    return [{"feature": name, "what it does": what, "needs RabbitMQ": version_text(needs),
             f"this broker ({version_text(version)})": "has it" if version >= needs
             else "too old: skipped"}
            for name, (needs, what) in FEATURES.items()]


class Skipped(str):
    """The one line a notebook shows instead of a demo the broker cannot run."""

    def __repr__(self) -> str:
        return str(self)


def demo(feature: str, run: Run) -> Any:
    """Run ``feature``'s demo: a pandas table of what happened, or a :class:`Skipped`
    line naming the version it needs."""
    import pandas as pd

    version = broker_version(run.settings)
    if not has(feature, version):
        return Skipped(f"skipped: {feature} needs RabbitMQ "
                       f"{version_text(FEATURES[feature][0])} or newer; this broker is "
                       f"{version_text(version)}")
    demos: dict[str, Callable[[Run], list[dict[str, Any]]]] = {
        "single active consumer": single_active_consumer,
        "super streams": super_stream, "filtering": filtering}
    return pd.DataFrame(demos[feature](run))


def _texts(texts: list[str]) -> list[AMQPMessage]:
    return [AMQPMessage(body=encode(Message.now(t))) for t in texts]


async def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s:g} s")
        await asyncio.sleep(0.05)


# --------------------------------------------------------- single active consumer


def single_active_consumer(run: Run, count: int = 6, stop_after: int = 3
                           ) -> list[dict[str, Any]]:
    """Two consumers of one name, ``invoicer``, both subscribed with
    ``single-active-consumer``: the first one gets the messages, the second none.
    The first stores its offset after each of ``stop_after`` messages and leaves;
    the second becomes active, asks for the stored offset and carries on."""
    stream = run.queue("sac", **STREAM)
    streams.publish(stream, [f"#{i}" for i in range(1, count + 1)], run.settings)
    args = streams.connection_args(run.settings)
    got: dict[str, list[str]] = {"consumer A": [], "consumer B": []}
    starts: dict[str, Any] = {}

    async def main() -> None:
        async def on_update(is_active: bool, context: Any) -> OffsetSpecification:
            # the broker says "you are active now": start after the stored offset
            try:
                stored = await context.consumer.query_offset(context.stream, "invoicer")
                return OffsetSpecification(OffsetType.OFFSET, stored + 1)
            except OffsetNotFound:
                return OffsetSpecification(OffsetType.FIRST, 0)

        def on_message(who: str):
            async def handle(message: Any, context: Any) -> None:
                if who == "consumer A" and len(got[who]) >= stop_after:
                    return  # A stops working here, and leaves below
                got[who].append(streams.message_text(message))
                starts.setdefault(who, context.offset)
                await context.consumer.store_offset(context.stream, "invoicer", context.offset)
            return handle

        consumers = {}
        for who in got:
            consumer = Consumer(**args)
            await consumer.start()
            await consumer.subscribe(
                stream, on_message(who), decoder=amqp_decoder, subscriber_name="invoicer",
                properties={"single-active-consumer": "true", "name": "invoicer"},
                consumer_update_listener=on_update)
            consumers[who] = consumer
        await _wait(lambda: len(got["consumer A"]) >= stop_after, 10, "A's messages")
        await asyncio.sleep(0.5)  # the experiment: B stays subscribed, and gets nothing
        b_before = len(got["consumer B"])
        await consumers["consumer A"].close()
        await _wait(lambda: len(got["consumer B"]) >= count - stop_after, 10, "B's messages")
        await consumers["consumer B"].close()
        starts["B before A left"] = b_before

    streams.run_sync(main, 30)
    return [{"consumer": "consumer A (subscribed first)", "while both were subscribed": "active",
             "got": ", ".join(got["consumer A"])},
            {"consumer": "consumer B", "while both were subscribed":
             f"waiting ({starts['B before A left']} messages)",
             "got": ", ".join(got["consumer B"]) + " (after A left)"}]


# ------------------------------------------------------------------ super streams


def super_stream(run: Run, keys: tuple[str, ...] = ("alice", "bob", "carol", "dave"),
                 rounds: int = 2, partitions: int = 3) -> list[dict[str, Any]]:
    """A super stream of ``partitions`` streams; a producer routes each message by
    the hash of its key, as Kafka's default partitioner does. One row per
    partition stream: the messages it holds."""
    name = run.name("orders")  # its streams: <name>-0, -1, ...; the run deletes them
    args = streams.connection_args(run.settings)
    held: dict[str, list[str]] = {}

    async def key_of(message: AMQPMessage) -> str:
        return message.application_properties["key"]

    async def main() -> None:
        async with SuperStreamProducer(
                **args, super_stream=name, routing=RouteType.Hash, routing_extractor=key_of,
                super_stream_creation_option=SuperStreamCreationOption(n_partitions=partitions),
        ) as producer:
            for n in range(1, rounds + 1):
                for key in keys:
                    await producer.send(AMQPMessage(body=encode(Message.now(f"{key} #{n}")),
                                                    application_properties={"key": key}))
        total = len(keys) * rounds

        async def on_message(message: Any, context: Any) -> None:
            held.setdefault(run.label(context.stream), []).append(
                streams.message_text(message))

        async with SuperStreamConsumer(**args, super_stream=name) as consumer:
            await consumer.subscribe(on_message, decoder=amqp_decoder)
            await _wait(lambda: sum(map(len, held.values())) >= total, 10, "every message")

    streams.run_sync(main, 30)
    return [{"partition stream": stream, "messages": ", ".join(held[stream])}
            for stream in sorted(held)]


# ---------------------------------------------------------------------- filtering


def filtering(run: Run) -> list[dict[str, Any]]:
    """Three chunks: 5 blue messages, then 3 red and 3 blue mixed, then 5 blue,
    each published with its colour as the filter value. A consumer asks for red,
    first with the broker's filter alone, then with a client-side predicate."""
    stream = run.queue("colours", **STREAM)
    args = streams.connection_args(run.settings)
    chunks = [[("blue", i) for i in range(1, 6)],
              [(c, i) for i in range(1, 4) for c in ("red", "blue")],
              [("blue", i) for i in range(6, 11)]]

    async def colour_of(message: AMQPMessage) -> str:
        return message.application_properties["colour"]

    def red(message: AMQPMessage) -> bool:  # the client's own check, message by message
        return message.application_properties[b"colour"] == b"red"

    async def main() -> list[dict[str, Any]]:
        async with Producer(**args, filter_value_extractor=colour_of) as producer:
            for chunk in chunks:  # one batch at a time, confirmed: one chunk each
                confirmed = asyncio.Event()
                left = [len(chunk)]

                def on_confirm(status: ConfirmationStatus, left=left, done=confirmed) -> None:
                    left[0] -= 1
                    if not left[0]:
                        done.set()

                await producer.send_batch(stream, [
                    AMQPMessage(body=encode(Message.now(f"{colour} {i}")),
                                application_properties={"colour": colour})
                    for colour, i in chunk], on_publish_confirm=on_confirm)
                await asyncio.wait_for(confirmed.wait(), 10)
        rows = []
        for how, predicate in (("filter 'red' (the broker's, per chunk)", None),
                               ("filter 'red' plus a predicate in the client", red)):
            got: list[str] = []

            async def on_message(message: Any, _context: Any, got=got) -> None:
                got.append(streams.message_text(message))

            async with Consumer(**args) as consumer:
                await consumer.subscribe(
                    stream, on_message, decoder=amqp_decoder,
                    offset_specification=streams.offset_spec("first"),
                    filter_input=FilterConfiguration(["red"], predicate=predicate))
                await _wait(lambda got=got: sum(m.startswith("red") for m in got) >= 3, 10,
                            "the red messages")
                await asyncio.sleep(0.3)  # anything else the broker sends
            rows.append({"consumer": how, "messages": len(got), "got": ", ".join(got)})
        return rows

    return streams.run_sync(main, 30)
