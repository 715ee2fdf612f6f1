"""The bounded message store and the worker thread's lifecycle (no broker needed)."""

import threading

import pytest

from queue_exp.background import BackgroundWorker, MessageStore


def test_store_keeps_only_the_newest_and_counts_everything():
    store = MessageStore(capacity=3)
    for i in range(5):
        store.add({"n": i})
    assert [m["n"] for m in store.snapshot()] == [2, 3, 4]
    assert store.received == 5


def test_store_rejects_a_zero_capacity():
    with pytest.raises(ValueError):
        MessageStore(0)


class FlakyWorker(BackgroundWorker):
    """Fails its first session, then runs until stopped."""

    name = "test-worker"

    def __init__(self):
        super().__init__()
        self.sessions = 0
        self.second_session = threading.Event()

    def run_session(self):
        self.sessions += 1
        if self.sessions == 1:
            raise ConnectionError("broker down")
        self.second_session.set()
        while not self.stopping:
            self._stop.wait(0.05)


def test_worker_retries_after_a_failure_and_stops_cleanly():
    worker = FlakyWorker()
    assert worker.start() is True
    assert worker.start() is False  # a second start does not start a second thread
    assert worker.second_session.wait(5)
    assert worker.last_error == "ConnectionError: broker down"
    worker.stop(timeout_s=5)
    assert not worker.running
    assert "test-worker" not in {t.name for t in threading.enumerate()}


def test_publisher_backlog_is_capped_while_the_broker_does_not_answer(settings):
    """A broker that accepts TCP but never speaks AMQP: publishes beyond the cap fail
    at once ("publisher busy") instead of piling up, and the rest fail with a clear
    BrokerUnavailable once the handshake times out."""
    import asyncio
    import socket
    import time
    from dataclasses import replace

    from queue_exp.errors import BrokerUnavailable
    from queue_exp.messages import Message
    from queue_exp.rabbit_publisher import Publisher

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
        stalled = replace(settings, rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{port}/%2F",
                          max_pending_publishes=3, broker_timeout_s=1.0)
        outcomes, took = asyncio.run(publish_six(Publisher("q", stalled)))
    assert all(isinstance(o, BrokerUnavailable) for o in outcomes), outcomes
    busy = [o for o in outcomes if "publisher busy" in str(o)]
    assert len(busy) == 3  # the cap is 3: three wait for the broker, three are refused
    assert took < 10  # bounded by the broker timeout, not stuck on the silent peer


def test_deferred_items_are_rendered_once_and_only_when_read():
    from queue_exp.background import Deferred

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
    from queue_exp.background import iso_from_epoch

    assert iso_from_epoch(1672574400.1234) == "2023-01-01T12:00:00.123+00:00"
