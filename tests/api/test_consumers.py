"""The API's bounded message store, deferred decoding, and the publisher's backlog cap."""

import pytest

from queue_exp.api.consumers import MessageStore


def test_store_keeps_only_the_newest_and_counts_everything():
    store = MessageStore(capacity=3)
    for i in range(5):
        store.add({"n": i})
    assert [m["n"] for m in store.snapshot()] == [2, 3, 4]
    assert store.received == 5


def test_store_rejects_a_zero_capacity():
    with pytest.raises(ValueError):
        MessageStore(0)


def test_publisher_backlog_is_capped_while_the_broker_does_not_answer(settings):
    """A broker that accepts TCP but never speaks AMQP: publishes beyond the cap fail
    at once ("publisher busy") instead of piling up, and the rest fail with a clear
    BrokerUnavailable once the handshake times out."""
    import asyncio
    import socket
    import time

    from queue_exp.api.publisher import Publisher
    from queue_exp.errors import BrokerUnavailable
    from queue_exp.messages import Message

    async def publish_six(publisher):
        tasks = [asyncio.create_task(publisher.publish(Message.now(f"m{i}"))) for i in range(6)]
        began = time.monotonic()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await publisher.close()
        return outcomes, time.monotonic() - began

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nobody ever answers
        port = silent.getsockname()[1]
        stalled = settings.replace(rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{port}/%2F",
                          max_pending_publishes=3, broker_timeout_ms=1000)
        outcomes, took = asyncio.run(publish_six(Publisher("q", stalled)))
    assert all(isinstance(o, BrokerUnavailable) for o in outcomes), outcomes
    busy = [o for o in outcomes if "publisher busy" in str(o)]
    assert len(busy) == 3  # the cap is 3: three wait for the broker, three are refused
    assert took < 10  # bounded by the broker timeout, not stuck on the silent peer


def test_deferred_items_are_rendered_once_and_only_when_read():
    from queue_exp.api.consumers import Deferred

    rendered = []

    def render(n):
        rendered.append(n)
        return {"n": n}

    store = MessageStore(capacity=2)
    store.extend(Deferred(render, i) for i in range(5))
    assert rendered == []  # nothing decoded on the way in
    assert store.snapshot() == [{"n": 3}, {"n": 4}]
    assert store.snapshot() == [{"n": 3}, {"n": 4}]
    assert rendered == [3, 4]  # only what was kept, and only once
    assert store.received == 5


def test_arrival_times_are_utc_with_milliseconds():
    from queue_exp.api.consumers import iso_from_epoch

    assert iso_from_epoch(1672574400.1234) == "2023-01-01T12:00:00.123+00:00"
