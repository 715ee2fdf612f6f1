"""The live view's poller: one per app, however many pages are open.

Each broker has a :class:`Source` that looks at it once per interval (Kafka through
one admin client it keeps open, RabbitMQ through one keep-alive HTTP client to
the management API). The looks run in worker threads, driven by one asyncio task
per broker, so a slow or dead broker delays only its own half of the page.

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
from collections import deque
from collections.abc import AsyncIterator
from collections.abc import Callable
from contextlib import asynccontextmanager
from contextlib import suppress
from typing import Any

import httpx
from kafka.errors import KafkaError

from queue_exp.clients import kafka_admin
from queue_exp.clients.rabbitmq_management import Management
from queue_exp.clients.rabbitmq_management import ManagementUnavailable
from queue_exp.config import START_HINT
from queue_exp.config import Settings
from queue_exp.errors import BrokerUnavailable

log = logging.getLogger(__name__)

Wanted = Callable[[str], bool]
QUEUE_TOTALS = ("publish", "deliver_get", "ack", "redeliver")


class CountingCalls:
    """Forwards every method call to ``target`` and counts them (what the poller
    asks of the broker, for the status line and the tests)."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return attr(*args, **kwargs)

        return counted


class Source:
    """One broker as the live view sees it. :meth:`look` blocks (call it in a worker
    thread) and raises ``BrokerUnavailable`` when the broker does not answer."""

    broker = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.looks = 0

    @property
    def requests(self) -> int:
        """Requests sent to the broker so far (the sum over the clients it opened)."""
        raise NotImplementedError

    def where(self) -> dict[str, Any]:
        raise NotImplementedError

    def look(self, wanted: Wanted) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class KafkaSource(Source):
    """Kafka through one ``KafkaAdminClient``, kept open between looks and opened
    again after an outage (its connections may be dead)."""

    broker = "kafka"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._admin: CountingCalls | None = None
        self._spent = 0  # calls made by admin clients already closed

    @property
    def requests(self) -> int:
        return self._spent + (self._admin.calls if self._admin else 0)

    def where(self) -> dict[str, Any]:
        return {"address": self.settings.kafka_bootstrap_servers}

    def look(self, wanted: Wanted) -> dict[str, Any]:
        if self._admin is None:
            self._admin = CountingCalls(kafka_admin.make_admin(self.settings))
        try:
            state = kafka_admin.cluster_state(self._admin, wanted)
        except KafkaError as exc:
            self.close()
            raise kafka_admin.unavailable(self.settings, exc) from exc
        self.looks += 1
        return state

    def close(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            self._spent += admin.calls
            admin.close()


class Rates:
    """Messages per second from running totals, over the last ``window_s`` seconds
    of looks: steady on the page, where a rate between two adjacent samples of
    the broker's statistics would jump."""

    def __init__(self, window_s: float = 3.0) -> None:
        self.window_s = window_s
        self._seen: dict[str, deque[tuple[float, dict[str, int]]]] = {}

    def update(self, key: str, totals: dict[str, int], now: float) -> dict[str, float | None]:
        history = self._seen.setdefault(key, deque())
        history.append((now, totals))
        while len(history) > 2 and now - history[1][0] >= self.window_s:
            history.popleft()
        then, before = history[0]
        if now <= then:
            return dict.fromkeys(totals)  # one look: no rate yet
        # a queue deleted and made again starts from 0: no negative rates
        return {name: round(max(total - before.get(name, 0), 0) / (now - then), 2)
                for name, total in totals.items()}

    def keep_only(self, keys: set[str]) -> None:
        for key in set(self._seen) - keys:
            del self._seen[key]


def _totals(item: dict[str, Any], names: tuple[str, ...]) -> dict[str, int]:
    stats = item.get("message_stats") or {}
    return {name: stats.get(name) or 0 for name in names}


class RabbitSource(Source):
    """RabbitMQ through its management HTTP API, one keep-alive client."""

    broker = "rabbitmq"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._management: Management | None = None
        self._spent = 0
        self._rates = Rates()

    @property
    def requests(self) -> int:
        return self._spent + (self._management.requests if self._management else 0)

    def where(self) -> dict[str, Any]:
        return {"address": self.settings.rabbitmq_url_redacted,
                "management_url": self.settings.rabbitmq_management_url}

    def look(self, wanted: Wanted) -> dict[str, Any]:
        if self._management is None:
            # well under the poll interval's worth of patience per request
            self._management = Management(self.settings,
                                          timeout_s=min(self.settings.broker_timeout_s, 3.0))
        try:
            state = self._management.vhost_state()
        except (ManagementUnavailable, httpx.HTTPError) as exc:
            reason = (f"management API answered {exc.response.status_code}"
                      if isinstance(exc, httpx.HTTPStatusError) else "management API down")
            raise BrokerUnavailable("RabbitMQ", self.settings.rabbitmq_url_redacted,
                                    reason) from exc
        self.looks += 1
        now = time.monotonic()
        names = {kind: sorted(item["name"] for item in state[kind])
                 for kind in ("queues", "exchanges")}
        queues = [q for q in state["queues"] if wanted(q["name"])]
        for queue in queues:
            queue["rates"] = self._rates.update(
                "q:" + queue["name"], _totals(queue, QUEUE_TOTALS), now)
        for exchange in state["exchanges"]:
            exchange["rates"] = self._rates.update(
                "x:" + exchange["name"], _totals(exchange, ("publish_in",)), now)
        self._rates.keep_only({"q:" + q["name"] for q in queues}
                              | {"x:" + x["name"] for x in state["exchanges"]})
        # every name for the namespace selector; details only for what someone watches
        return {
            "names": names,
            "queues": queues,
            "exchanges": state["exchanges"],
            "bindings": [b for b in state["bindings"]
                         if wanted(b["destination"]) or wanted(b["source"])],
        }

    def close(self) -> None:
        if self._management is not None:
            management, self._management = self._management, None
            self._spent += management.requests
            management.close()


def look_safely(source: Source, wanted: Wanted) -> dict[str, Any]:
    """``source.look`` as the page shows it: never raises; an outage says where the
    broker should be and how to start it."""
    started = time.monotonic()
    try:
        state = {"status": "up", **source.look(wanted)}
    except BrokerUnavailable as exc:
        state = {"status": "down", "error": str(exc), "how_to_start": START_HINT}
    except Exception as exc:  # noqa: BLE001 - shown on the page, the poller goes on
        log.exception("looking at %s failed", source.broker)
        state = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    return {**state, "broker": source.broker, **source.where(), "polled_at": time.time(),
            "poll_ms": round((time.monotonic() - started) * 1000, 1)}


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
                state = await asyncio.to_thread(look_safely, source, wanted.__call__)
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
        self.sessions = 0  # how many times polling started (tests, the status line)
        self.closing = False
        self.world: dict[str, dict[str, Any]] = {
            "kafka": {"status": "starting", "broker": "kafka"},
            "rabbitmq": {"status": "starting", "broker": "rabbitmq"},
        }
        self._spent: Counter[str] = Counter()
        self._memo: dict[Any, Any] = {}
        self._memo_version = -1

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
