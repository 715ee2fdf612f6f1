"""A small client for RabbitMQ's management HTTP API: queue counters the AMQP
protocol does not give you (``messages_unacknowledged``, consumers), and for the
live view one look at a vhost's exchanges, bindings and queues (:meth:`Management.vhost_state`).

The broker computes these statistics periodically (``collect_statistics_interval``:
5 s by default, 0.5 s on the embedded broker), so a counter read right after an
action may still show the old value: :meth:`Management.wait_for_counters` polls,
bounded, until the expected values show up.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote
from urllib.parse import unquote
from urllib.parse import urlsplit

import httpx

from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.waiting import wait_until

log = logging.getLogger(__name__)

# Counter names as the management API spells them -> the short names we show.
COUNTERS = {
    "messages_ready": "ready",
    "messages_unacknowledged": "unacked",
    "consumers": "consumers",
}

# What the live view reads of each queue and exchange: the management API returns
# only these columns (dots reach into nested objects), which keeps each poll small.
# Message counts are cumulative totals: the caller turns them into rates over a few
# seconds (the broker's own ``*_details.rate`` compares its last two samples, which
# alternate between 0 and twice the true rate when statistics come every 0.5 s).
QUEUE_COLUMNS = (
    "name", "type", "durable", "auto_delete", "exclusive", "state", "node", "leader",
    "members", "messages_ready", "messages_unacknowledged", "consumers",
    "message_stats.publish", "message_stats.deliver_get", "message_stats.ack",
    "message_stats.redeliver",
)
EXCHANGE_COLUMNS = ("name", "type", "durable", "auto_delete", "internal",
                    "message_stats.publish_in")
CONSUMER_COLUMNS = ("queue.name", "consumer_tag", "prefetch_count", "ack_required",
                    "channel_details.name")
CHANNEL_COLUMNS = ("name", "messages_unacknowledged")


class ManagementUnavailable(RuntimeError):
    """The management API is unknown or does not answer; the message says what to do."""


class Management:
    """``GET``s against ``/api`` of the broker in ``settings`` (guest/guest on the
    embedded one: the credentials of ``RABBITMQ_URL``). Use as a context manager
    or call :meth:`close`."""

    def __init__(self, settings: Settings | None = None, timeout_s: float = 5.0) -> None:
        settings = settings or get_settings()
        if not settings.rabbitmq_management_url:
            raise ManagementUnavailable(
                "the management API address of this RabbitMQ is unknown: set "
                "RABBITMQ_MANAGEMENT_URL (e.g. http://localhost:15672)"
            )
        amqp = urlsplit(settings.rabbitmq_url)
        vhost = unquote(amqp.path[1:]) if len(amqp.path) > 1 else "/"
        self.base_url = settings.rabbitmq_management_url.rstrip("/")
        self.vhost = vhost
        self.requests = 0  # HTTP requests sent: what this client costs the broker
        self._http = httpx.Client(
            base_url=self.base_url + "/api",
            auth=(unquote(amqp.username or "guest"), unquote(amqp.password or "guest")),
            timeout=timeout_s,
            event_hooks={"request": [self._count]},
        )

    def _count(self, _request: httpx.Request) -> None:
        self.requests += 1

    def __enter__(self) -> Management:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, **params: Any) -> Any:
        try:
            response = self._http.get(path, params=params or None)
        except httpx.HTTPError as exc:
            raise ManagementUnavailable(
                f"RabbitMQ's management API at {self.base_url} did not answer "
                f"({type(exc).__name__}); is the broker up? `make brokers` starts it"
            ) from exc
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def queue(self, name: str) -> dict[str, Any] | None:
        """Everything the API knows about one queue, or ``None`` if there is no such queue."""
        return self._get(f"/queues/{quote(self.vhost, safe='')}/{quote(name, safe='')}")

    def queue_bindings(self, name: str) -> list[dict[str, Any]]:
        """The bindings of one queue (``source``: the exchange, ``""`` for the default
        one; ``routing_key``: the binding key); empty if there is no such queue."""
        vhost, queue = quote(self.vhost, safe=""), quote(name, safe="")
        return self._get(f"/queues/{vhost}/{queue}/bindings") or []

    def consumers(self, queue_name: str) -> list[dict[str, Any]]:
        """The consumers of one queue as the broker sees them (``prefetch_count``,
        ``ack_required``, ``consumer_tag``, ...); empty if it has none."""
        consumers = self._get(f"/consumers/{quote(self.vhost, safe='')}") or []
        return [c for c in consumers if c.get("queue", {}).get("name") == queue_name]

    def list(self, kind: str) -> list[dict[str, Any]]:
        """All ``queues``, ``exchanges`` (or another collection) of this vhost."""
        return self._get(f"/{kind}/{quote(self.vhost, safe='')}", columns="name") or []

    def vhost_state(self) -> dict[str, Any]:
        """Every queue, exchange and binding of the vhost, in three requests: what the
        live view draws. ``message_stats`` holds running totals (absent until
        something moved)."""
        vhost = quote(self.vhost, safe="")
        return {
            "queues": self._get(f"/queues/{vhost}", columns=",".join(QUEUE_COLUMNS)) or [],
            "exchanges": self._get(f"/exchanges/{vhost}",
                                   columns=",".join(EXCHANGE_COLUMNS)) or [],
            "bindings": self._get(f"/bindings/{vhost}") or [],
        }

    def consumer_state(self) -> dict[str, Any]:
        """Every consumer of the vhost (its queue, tag, prefetch, manual acks or not)
        and every channel with the unacked messages it holds, in two requests."""
        vhost = quote(self.vhost, safe="")
        return {
            "consumers": self._get(f"/consumers/{vhost}",
                                   columns=",".join(CONSUMER_COLUMNS)) or [],
            "channels": self._get(f"/vhosts/{vhost}/channels",
                                  columns=",".join(CHANNEL_COLUMNS)) or [],
        }

    def overview(self) -> dict[str, Any]:
        return self._get("/overview")

    def queue_counters(self, name: str) -> dict[str, int | None]:
        """``{"ready", "unacked", "consumers"}`` for a queue (``None`` where the broker
        has not computed a figure yet); raises ``LookupError`` if it does not exist."""
        info = self.queue(name)
        if info is None:
            raise LookupError(f"no queue named {name!r} in vhost {self.vhost!r}")
        return {short: info.get(field) for field, short in COUNTERS.items()}

    def wait_for_counters(
        self, name: str, timeout_s: float = 15.0, **expected: int
    ) -> dict[str, int | None]:
        """Poll until the queue's counters equal ``expected`` (e.g. ``unacked=3``);
        returns them. Raises ``TimeoutError`` naming the last values seen."""
        unknown = set(expected) - set(COUNTERS.values())
        if unknown:
            raise ValueError(f"unknown counters {sorted(unknown)}; use {list(COUNTERS.values())}")
        seen: dict[str, int | None] = {}

        def as_expected() -> dict[str, int | None] | None:
            seen.update(self.queue_counters(name))
            return dict(seen) if all(seen[k] == v for k, v in expected.items()) else None

        try:
            return wait_until(as_expected, timeout_s, 0.1)
        except TimeoutError:
            raise TimeoutError(f"queue {name!r} still shows {seen} after {timeout_s} s, "
                               f"expected {expected}") from None

    def wait_until_up(self, timeout_s: float = 30.0) -> bool:
        """After a broker restart the HTTP API comes up a little after AMQP."""

        def answers() -> bool:
            try:
                return bool(self.overview())
            except (ManagementUnavailable, httpx.HTTPStatusError):
                return False

        try:
            return wait_until(answers, timeout_s, 0.2)
        except TimeoutError:
            return False

    def started_at(self) -> float:
        """When the node this API runs on started (Unix time, from its uptime)."""
        node = self.overview()["node"]
        info = self._get(f"/nodes/{quote(node, safe='')}") or {}
        return time.time() - info.get("uptime", 0) / 1000
