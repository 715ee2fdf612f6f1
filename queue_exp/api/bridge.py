"""Hand results from broker client threads to the API's event loop, cheaply.

kafka-python's sender thread and the RabbitMQ publisher thread complete many
sends per network round trip. Waking the event loop once per completed send
(``call_soon_threadsafe`` each time) costs a pipe write and a loop iteration per
message; :class:`LoopResolver` wakes it once per burst instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any


class LoopResolver:
    """Resolve asyncio futures of ``loop`` from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: deque[tuple[asyncio.Future, Any, bool]] = deque()
        self._scheduled = False
        self._lock = threading.Lock()

    def post(self, future: asyncio.Future, value: Any, failed: bool = False) -> None:
        """Set ``future``'s result (or exception, if ``failed``) on the loop, soon."""
        with self._lock:
            self._pending.append((future, value, failed))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _drain(self) -> None:
        with self._lock:
            items = list(self._pending)
            self._pending.clear()
            self._scheduled = False
        for future, value, failed in items:
            if not future.done():
                (future.set_exception if failed else future.set_result)(value)

    async def wait(self, future: asyncio.Future, timeout_s: float) -> Any:
        """Await ``future``; raise ``TimeoutError`` after ``timeout_s`` (cheaper than
        ``asyncio.wait_for``, which wraps the future in a task)."""
        timer = self._loop.call_later(timeout_s, self._expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    @staticmethod
    def _expire(future: asyncio.Future) -> None:
        if not future.done():
            future.set_exception(TimeoutError())
