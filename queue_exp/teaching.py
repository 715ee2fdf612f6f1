"""Helpers the notebooks call, so that cells stay short and every wait is bounded."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from queue_exp import brokers, kafka_client, rabbit_client
from queue_exp.config import Settings, get_settings

T = TypeVar("T")


def fresh_namespace(lesson: str) -> str:
    """A namespace no earlier run used, e.g. ``first-messages.run-3fa9c2``
    (inside ``QUEUE_EXP_NAMESPACE`` when that is set), so each run of a notebook
    starts from empty topics and queues."""
    base = get_settings().namespace
    name = f"{lesson}.run-{secrets.token_hex(3)}"
    return f"{base}.{name}" if base else name


def wait_for(
    probe: Callable[[], T | None], timeout_s: float = 10.0, interval_s: float = 0.1
) -> T:
    """Call ``probe`` until it returns something truthy; raise ``TimeoutError`` after
    ``timeout_s`` seconds. The bounded replacement for ``time.sleep`` in a cell."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing after {timeout_s} s")
        time.sleep(interval_s)


def wait_for_messages(api: Any, broker: str, count: int, timeout_s: float = 10.0) -> list[dict]:
    """Poll ``GET /{broker}/messages`` until at least ``count`` messages arrived."""

    def probe() -> list[dict] | None:
        messages = api.get(f"/{broker}/messages").json()["messages"]
        return messages if len(messages) >= count else None

    try:
        return wait_for(probe, timeout_s)
    except TimeoutError:
        got = len(api.get(f"/{broker}/messages").json()["messages"])
        raise TimeoutError(
            f"only {got} of {count} messages reached the {broker} consumer in {timeout_s} s; "
            f"did you start it with POST /{broker}/consume?"
        ) from None


def setup_report() -> list[dict[str, Any]]:
    """One row per broker: reachable?, address, version, how it runs, what to do if down."""
    status = brokers.status()
    kafka = kafka_client.ping()
    rabbit = rabbit_client.ping()
    rows = []
    for name, ping, version in (
        ("Kafka", kafka, status["kafka"].get("version") or "unknown (external)"),
        ("RabbitMQ", rabbit, rabbit.get("version", "?")),
    ):
        info = status[name.lower()]
        rows.append({
            "broker": name,
            "reachable": ping["reachable"],
            "address": info["address"],
            "version": version if ping["reachable"] else "-",
            "runs as": "embedded (launcher)" if info["managed"] else "external",
            "if down": "" if ping["reachable"] else "run `make brokers` in a terminal",
        })
    return rows


def remove_api_resources(settings: Settings) -> None:
    """Delete the API's topic, consumer group and queue for ``settings`` (stop the
    API first, so the group is empty). Used at the end of a notebook."""
    kafka_client.delete_topics([settings.kafka_topic], settings=settings)
    kafka_client.delete_groups([settings.kafka_group], settings=settings)
    rabbit_client.delete_queues([settings.rabbitmq_queue], settings=settings)
