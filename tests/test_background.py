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
