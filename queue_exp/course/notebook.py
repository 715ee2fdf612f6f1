"""What a notebook's setup and API cells call: is everything up, wait for the
API's consumers, and remove the API's topic, group and queue at the end."""

from __future__ import annotations

from typing import Any

from queue_exp import brokers
from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.config import Settings
from queue_exp.waiting import wait_until


def wait_for_messages(api: Any, broker: str, count: int, timeout_s: float = 10.0) -> list[dict]:
    """Poll ``GET /{broker}/messages`` until at least ``count`` messages arrived."""

    def probe() -> list[dict] | None:
        messages = api.get(f"/{broker}/messages").json()["messages"]
        return messages if len(messages) >= count else None

    try:
        return wait_until(probe, timeout_s)
    except TimeoutError:
        got = len(api.get(f"/{broker}/messages").json()["messages"])
        raise TimeoutError(
            f"only {got} of {count} messages reached the {broker} consumer in {timeout_s} s; "
            f"did you start it with POST /{broker}/consume?"
        ) from None


def setup_report() -> list[dict[str, Any]]:
    """One row per broker: reachable?, address, version, how it runs, what to do if down."""
    status = brokers.status()
    kafka_ping = kafka.ping()
    rabbit = rabbitmq.ping()
    rows = []
    for name, ping, version in (
        ("Kafka", kafka_ping, status["kafka"].get("version") or "unknown (external)"),
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
    kafka_admin.delete_topics([settings.kafka_topic], settings=settings)
    kafka_admin.delete_groups([settings.kafka_group], settings=settings)
    rabbitmq.delete_queues([settings.rabbitmq_queue], settings=settings)
