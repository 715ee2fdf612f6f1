"""Where the live view's data comes from: one :class:`Source` per broker, each
looking at its broker through one client kept open between looks (Kafka: a
``KafkaAdminClient``; RabbitMQ: a keep-alive HTTP client to the management API),
counting the requests it sends.

:func:`look_safely` is what the poller calls in a worker thread: it never raises,
and an outage becomes a look that says where the broker should be and how to
start it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
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


def _consumers_by_queue(consumers: list[dict], channels: list[dict], wanted: Wanted
                        ) -> dict[str, list[dict[str, Any]]]:
    """Queue name -> its consumers: tag, prefetch limit, manual acks or not, and the
    unacked messages it holds (its channel's count, when it is alone on its channel)."""
    on_channel: dict[str, int] = {}
    for consumer in consumers:
        channel = (consumer.get("channel_details") or {}).get("name")
        on_channel[channel] = on_channel.get(channel, 0) + 1
    unacked = {c["name"]: c.get("messages_unacknowledged") for c in channels}
    found: dict[str, list[dict[str, Any]]] = {}
    for consumer in consumers:
        queue = (consumer.get("queue") or {}).get("name")
        if not queue or not wanted(queue):
            continue
        channel = (consumer.get("channel_details") or {}).get("name")
        found.setdefault(queue, []).append({
            "tag": consumer.get("consumer_tag"),
            "prefetch": consumer.get("prefetch_count"),
            "manual_ack": consumer.get("ack_required"),
            "unacked": unacked.get(channel) if on_channel.get(channel) == 1 else None,
        })
    for listed in found.values():
        listed.sort(key=lambda c: c["tag"] or "")
    return found


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
            queues = [q for q in state["queues"] if wanted(q["name"])]
            # who holds which unacked messages: asked only while someone consumes
            held = (self._management.consumer_state() if any(q.get("consumers")
                                                             for q in queues)
                    else {"consumers": [], "channels": []})
        except (ManagementUnavailable, httpx.HTTPError) as exc:
            reason = (f"management API answered {exc.response.status_code}"
                      if isinstance(exc, httpx.HTTPStatusError) else "management API down")
            raise BrokerUnavailable("RabbitMQ", self.settings.rabbitmq_url_redacted,
                                    reason) from exc
        self.looks += 1
        now = time.monotonic()
        names = {kind: sorted(item["name"] for item in state[kind])
                 for kind in ("queues", "exchanges")}
        consumers = _consumers_by_queue(held["consumers"], held["channels"], wanted)
        for queue in queues:
            queue["rates"] = self._rates.update(
                "q:" + queue["name"], _totals(queue, QUEUE_TOTALS), now)
            queue["consumer_list"] = consumers.get(queue["name"], [])
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
