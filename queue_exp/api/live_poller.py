"""The live view's poller: one per app, however many pages are open.

Each broker's :class:`~queue_exp.api.live_sources.Source` is looked at once per
interval, in a worker thread, driven by one asyncio task per broker, so a slow
or dead broker delays only its own half of the page.

Pages register with :meth:`LivePoller.watching` for the namespace they show. The
first one starts a polling session; the last one to leave stops it (its clients
are closed). What is polled depends on the *set* of namespaces watched, never on
the number of viewers: thirty pages on one namespace cost the brokers what one does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from collections.abc import Callable
from contextlib import asynccontextmanager
from contextlib import suppress
from typing import Any

from queue_exp.api.live_sources import KafkaSource
from queue_exp.api.live_sources import RabbitSource
from queue_exp.api.live_sources import Source
from queue_exp.api.live_sources import look_safely
from queue_exp.config import Settings

log = logging.getLogger(__name__)


class _Session:
    """The polling between the first viewer's arrival and the last one's departure:
    one task per broker, each with its own source (closed when the task ends)."""

    def __init__(self, poller: LivePoller, sources: list[Source]) -> None:
        self.poller = poller
        self.sources = sources
        self.stopping = asyncio.Event()
        self.wake = {s.broker: asyncio.Event() for s in sources}
        self.tasks = [asyncio.create_task(self._run(s), name=f"queue_exp-live-{s.broker}")
                      for s in sources]

    async def _run(self, source: Source) -> None:
        try:
            while not self.stopping.is_set():
                started = time.monotonic()
                wanted = self.poller.wanted_now()
                state = await asyncio.to_thread(look_safely, source, wanted)
                state["covers"] = sorted(wanted.prefixes)
                self.poller.publish(source.broker, state)
                left = self.poller.interval_s - (time.monotonic() - started)
                await self._pause(source.broker, left)
        finally:
            await asyncio.to_thread(source.close)

    async def _pause(self, broker: str, seconds: float) -> None:
        """The rest of the interval, cut short by a stop or a newly watched namespace."""
        if seconds <= 0:
            return
        wake = self.wake[broker]
        waits = [asyncio.ensure_future(self.stopping.wait()), asyncio.ensure_future(wake.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        wake.clear()

    def stop(self) -> None:
        self.stopping.set()


class Prefixes:
    """The namespaces being watched, frozen for one look (read in a worker thread)."""

    def __init__(self, prefixes: frozenset[str]) -> None:
        self.prefixes = prefixes
        self.everything = "" in prefixes
        self._dotted = tuple(p + "." for p in prefixes if p)

    def __call__(self, name: str) -> bool:
        return self.everything or name.startswith(self._dotted)


class LivePoller:
    """One per app (``app.state.live``). Viewers use :meth:`watching` and
    :meth:`next_change`; everything else happens on the app's event loop."""

    def __init__(self, settings: Settings, interval_s: float | None = None,
                 sources: Callable[[Settings], list[Source]] | None = None) -> None:
        self.settings = settings
        self.interval_s = interval_s if interval_s is not None else settings.live_interval_s
        self._make_sources = sources or (lambda s: [KafkaSource(s), RabbitSource(s)])
        self._viewers: Counter[str] = Counter()
        self._prefixes = Prefixes(frozenset())
        self._session: _Session | None = None
        self._ending: set[_Session] = set()
        self._changed: asyncio.Event | None = None
        self.version = 0
        self.sessions = 0  # how many times polling started
        self.closing = False
        self.world: dict[str, dict[str, Any]] = self._starting()
        self._spent: Counter[str] = Counter()
        self._memo: dict[Any, Any] = {}
        self._memo_version = -1

    @staticmethod
    def _starting() -> dict[str, dict[str, Any]]:
        return {broker: {"status": "starting", "broker": broker}
                for broker in ("kafka", "rabbitmq")}

    def sources(self) -> list[Source]:
        """New, unopened sources for both brokers (a session's, or a one-off look's)."""
        return self._make_sources(self.settings)

    def memo(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()``, computed once per look for each ``key`` (pages that show the
        same namespace share it)."""
        if self._memo_version != self.version:
            self._memo, self._memo_version = {}, self.version
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    # -------------------------------------------------------------- viewers

    @property
    def viewers(self) -> int:
        return sum(self._viewers.values())

    @property
    def polling(self) -> bool:
        return self._session is not None

    def wanted_now(self) -> Prefixes:
        return self._prefixes

    @asynccontextmanager
    async def watching(self, namespace: str) -> AsyncIterator[None]:
        """Count a viewer of ``namespace`` ("" = every namespace) while the block runs."""
        self._viewers[namespace] += 1
        self._update_prefixes()
        if self._session is None:
            self.sessions += 1
            self.world = self._starting()  # not the last session's, maybe long gone
            self._session = _Session(self, self.sources())
        elif self._viewers[namespace] == 1:
            for wake in self._session.wake.values():  # a new namespace: look now
                wake.set()
        try:
            yield
        finally:
            self._viewers[namespace] -= 1
            if self._viewers[namespace] <= 0:
                del self._viewers[namespace]
            self._update_prefixes()
            if not self._viewers and self._session is not None:
                self._retire(self._session)
                self._session = None

    def _update_prefixes(self) -> None:
        self._prefixes = Prefixes(frozenset(self._viewers))

    def _retire(self, session: _Session) -> None:
        """Stop ``session``; its tasks finish their look and close their clients."""
        session.stop()
        self._ending.add(session)
        for task in session.tasks:
            task.add_done_callback(lambda _task: self._ended(session))

    def _ended(self, session: _Session) -> None:
        if session in self._ending and all(t.done() for t in session.tasks):
            self._ending.discard(session)
            for source in session.sources:
                self._spent[source.broker] += source.requests

    def requests(self) -> dict[str, int]:
        """Requests sent to each broker by every session so far (what the live view
        has cost the brokers; the tests compare it for one and for ten pages)."""
        totals = Counter(self._spent)
        sessions = [*self._ending, *([self._session] if self._session else [])]
        for session in sessions:
            for source in session.sources:
                totals[source.broker] += source.requests
        return {broker: totals[broker] for broker in ("kafka", "rabbitmq")}

    def covers(self, namespace: str) -> bool:
        """Whether the latest look at both brokers included ``namespace``."""
        for state in self.world.values():
            covered = state.get("covers")
            if covered is None or not ("" in covered or namespace in covered):
                return False
        return True

    # -------------------------------------------------------------- changes

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def publish(self, broker: str, state: dict[str, Any]) -> None:
        """A new look at ``broker`` (on the event loop): wake every viewer."""
        self.world = {**self.world, broker: state}
        self.version += 1
        changed = self._event()
        self._changed = asyncio.Event()
        changed.set()

    async def next_change(self, seen: int, timeout_s: float) -> bool:
        """Wait until the world is newer than version ``seen`` (or ``timeout_s``
        passed, or the server is closing); True if it is newer."""
        if self.version != seen:
            return True
        with suppress(asyncio.TimeoutError):  # TimeoutError itself only from 3.11 on
            await asyncio.wait_for(self._event().wait(), timeout_s)
        return self.version != seen

    # ------------------------------------------------------------ shutdown

    def close_viewers(self) -> None:
        """Make every open page stream end (the server is about to stop); safe to
        call from any thread. The pages' EventSource reconnects to the next server."""
        self.closing = True

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop polling and wait (bounded) until every source is closed."""
        self.closing = True
        if self._session is not None:
            self._retire(self._session)
            self._session = None
        pending = [task for session in self._ending for task in session.tasks]
        if pending:
            _done, late = await asyncio.wait(pending, timeout=timeout_s)
            for task in late:
                log.warning("live view poller task %s did not stop in %.0f s",
                            task.get_name(), timeout_s)
                task.cancel()
