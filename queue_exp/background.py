"""Pieces shared by the background consumers: a bounded message store and a
worker thread that stops cleanly and reconnects by itself after a broker outage."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)


def iso_from_epoch(seconds: float) -> str:
    """``time.time()`` as the consumers show arrival times: UTC, milliseconds."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


class Deferred:
    """A received message whose dict is built only when someone looks at it.

    A consumer can receive tens of thousands of messages a second while the store
    keeps only the newest ``capacity``; decoding each one as it arrives would spend
    most of the consumer's time on messages nobody will ever read. The dict is
    built on the first ``snapshot()`` that includes it, then kept.
    """

    __slots__ = ("_render", "_args", "_value")

    def __init__(self, render: Callable[..., dict[str, Any]], *args: Any) -> None:
        self._render = render
        self._args = args
        self._value: dict[str, Any] | None = None

    def value(self) -> dict[str, Any]:
        # two snapshots may render at once: harmless, both get the same result
        if self._value is None:
            self._value = self._render(*self._args)
        return self._value


def _materialize(item: dict[str, Any] | Deferred) -> dict[str, Any]:
    return item.value() if type(item) is Deferred else item


class MessageStore:
    """The newest ``capacity`` received messages, oldest first; thread-safe.

    Bounded so that a consumer left running for hours cannot grow memory without
    limit; ``received`` keeps counting what was dropped. Items are dicts, or
    :class:`Deferred` ones that ``snapshot()`` turns into dicts.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: deque[dict[str, Any] | Deferred] = deque(maxlen=capacity)
        self._received = 0
        self._lock = threading.Lock()

    def add(self, item: dict[str, Any] | Deferred) -> None:
        self.extend((item,))

    def extend(self, items: Iterable[dict[str, Any] | Deferred]) -> None:
        """Add a batch at once (one lock round trip per poll, not per message)."""
        items = list(items)
        with self._lock:
            self._items.extend(items)
            self._received += len(items)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._items)
        # outside the lock: the consumer thread keeps adding while this renders
        return [_materialize(item) for item in items]

    @property
    def received(self) -> int:
        with self._lock:
            return self._received

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._received = 0


class BackgroundWorker:
    """A daemon thread running ``run_session()`` until ``stop()``.

    ``run_session`` connects, works until the stop flag is set or the broker
    fails, and returns or raises; the worker then waits (with backoff, capped)
    and calls it again, so a consumer resumes by itself when its broker is back.
    Subclasses check ``self.stopping`` at least every poll timeout.
    """

    name = "queue_exp-worker"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._wake = threading.Event()  # cuts a reconnect backoff short
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.last_error: str | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start the thread; returns False if it is already running."""
        if self.running:
            return False
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        return True

    def wake(self) -> None:
        """Retry the connection now instead of at the end of the current backoff
        (a caller is waiting: tell it within one connect attempt whether the broker
        is back)."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("%s did not stop within %.1f s", self.name, timeout_s)
        self._thread = None

    def _loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self.run_session()
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - any broker failure: retry
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s: %s; retrying in %.1f s", self.name, self.last_error, backoff)
            finally:
                self.connected.clear()
            self._wake.wait(backoff)
            self._wake.clear()
            backoff = min(backoff * 2, 5.0)

    def run_session(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
