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
    at once ("publisher busy") instead of piling up in memory."""
    import socket
    from dataclasses import replace

    from queue_exp.errors import BrokerUnavailable
    from queue_exp.messages import Message
    from queue_exp.rabbit_client import Publisher

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nobody ever answers
        port = silent.getsockname()[1]
        stalled = replace(settings, rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{port}/%2F",
                          max_pending_publishes=3, broker_timeout_s=2.0)
        publisher = Publisher("q", stalled)
        try:
            futures = [publisher.submit(Message.now(f"m{i}")) for i in range(6)]
            busy = [f for f in futures if f.done()]
            assert len(busy) >= 2  # beyond the cap of 3 (one may already be in hand)
            for future in busy:
                assert isinstance(future.exception(), BrokerUnavailable)
                assert "publisher busy" in str(future.exception())
            # and the ones that were queued fail too once the connect attempt times out
            for future in futures:
                assert isinstance(future.exception(timeout=15), BrokerUnavailable)
        finally:
            publisher.stop()
