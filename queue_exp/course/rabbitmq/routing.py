"""Exchanges (notebook 06): which queues a direct, topic, headers or fanout
exchange copies each message into, and what a subscriber that binds late misses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pika.exceptions import UnroutableError

from queue_exp.clients import rabbitmq
from queue_exp.course.rabbitmq.channels import drain
from queue_exp.course.rabbitmq.channels import open_channel
from queue_exp.course.run import Run
from queue_exp.messages import Message


def _shown_binding(binding: Any) -> str:
    if isinstance(binding, dict):
        return ", ".join(f"{k}={v}" for k, v in binding.items())
    return binding if binding != "" else "(none)"


def routing_experiment(
    run: Run,
    exchange_type: str,
    bindings: Sequence[tuple[str, Any]],
    messages: Sequence[Any],
) -> dict[str, list[dict[str, Any]]]:
    """Declare an exchange of ``exchange_type``, queues bound as in ``bindings``
    (``(queue_label, binding_key)``, or ``(queue_label, {headers})`` for a headers
    exchange), publish one message per item of ``messages`` (a routing key, or a
    dict of headers), then look into every queue.

    Returns ``{"bindings": [...], "routing": [...]}``: the routing table has one
    row per message and a ✓ under each queue that received it."""
    exchange = run.name(f"{exchange_type}-demo")
    labels = list(dict.fromkeys(label for label, _ in bindings))
    received: dict[str, set[int]] = {}
    returned: set[int] = set()
    with open_channel(run.settings) as channel:
        rabbitmq.declare_exchange(channel, exchange, exchange_type)
        for label in labels:
            rabbitmq.declare_queue(channel, run.name(label))
        for label, binding in bindings:
            if isinstance(binding, dict):
                rabbitmq.bind_queue(channel, run.name(label), exchange, "", binding)
            else:
                rabbitmq.bind_queue(channel, run.name(label), exchange, binding)
        for number, item in enumerate(messages):
            headers = item if isinstance(item, dict) else None
            key = "" if headers is not None else item
            try:
                rabbitmq.publish(
                    channel, Message.now(f"message {number}"), key, exchange,
                    persistent=False, mandatory=True, headers={"n": number, **(headers or {})},
                )
            except UnroutableError:
                returned.add(number)
        for label in labels:
            received[label] = {int(m["headers"]["n"]) for m in drain(channel, run.name(label))}
    routing = []
    for number, item in enumerate(messages):
        row = {"message": _shown_binding(item) if isinstance(item, dict) else item}
        row.update({label: "✓" if number in received[label] else "" for label in labels})
        row["copies"] = sum(number in received[label] for label in labels)
        if number in returned:
            row["copies"] = "0 (returned: unroutable)"
        routing.append(row)
    shown = [{"queue": label, "bound with": _shown_binding(binding)} for label, binding in bindings]
    return {"bindings": shown, "routing": routing}


def fanout_late_subscriber(
    run: Run, early: Sequence[str] = ("news 1", "news 2"), late: Sequence[str] = ("news 3",)
) -> list[dict[str, Any]]:
    """A fanout exchange with two temporary subscriber queues (server-named,
    exclusive: they live as long as our connection); ``early`` is published, a third
    subscriber binds, ``late`` is published. What did each subscriber get, and are
    the temporary queues gone after we disconnect?"""
    exchange = run.name("fanout-news")
    subscribers: dict[str, str] = {}
    got: dict[str, list[str]] = {}
    with open_channel(run.settings) as channel:
        rabbitmq.declare_exchange(channel, exchange, "fanout")

        def subscribe(label: str) -> None:
            # queue "" = let the broker pick a name; exclusive = delete it with this connection
            name = channel.queue_declare("", exclusive=True).method.queue
            rabbitmq.bind_queue(channel, name, exchange)
            subscribers[label] = name

        def publish_news(texts: Sequence[str]) -> None:
            for text in texts:
                rabbitmq.publish(channel, Message.now(text), "", exchange, persistent=False)

        subscribe("A (from the start)")
        subscribe("B (from the start)")
        publish_news(early)
        subscribe("C (bound later)")
        publish_news(late)
        for label, name in subscribers.items():
            got[label] = [m["message"] for m in drain(channel, name)]
    return [
        {
            "subscriber": label,
            "server-named queue": name.startswith("amq.gen-"),
            "received": ", ".join(got[label]),
            "queue exists after disconnect": rabbitmq.queue_exists(name, run.settings),
        }
        for label, name in subscribers.items()
    ]
