"""Request / reply over RabbitMQ (notebook 06): server threads answer on *direct
reply-to*, and the client matches each reply to its request by correlation id."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from queue_exp.clients import rabbitmq
from queue_exp.clients.consumers import RabbitConsumerThread
from queue_exp.clients.consumers import start_in_order
from queue_exp.clients.consumers import stop_all
from queue_exp.course.rabbitmq.channels import declared_queue
from queue_exp.course.rabbitmq.channels import open_channel
from queue_exp.course.run import Run
from queue_exp.messages import Message
from queue_exp.messages import decode_lenient

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"  # RabbitMQ's pseudo-queue for RPC replies


def rpc_round_trip(
    run: Run,
    requests: Sequence[int] = (6, 1, 3),
    *,
    servers: int = 2,
    seconds_per_unit: float = 0.1,
    timeout_s: float = 15.0,
) -> list[dict[str, Any]]:
    """RPC over RabbitMQ with *direct reply-to*: ``servers`` server threads square
    numbers (taking ``n * seconds_per_unit`` s for ``n``); the client sends all
    ``requests`` at once, each with a fresh correlation id and
    ``reply_to=amq.rabbitmq.reply-to``, and matches replies by correlation id.
    Rows in arrival order."""
    settings = run.settings
    queue_name = declared_queue(run.name("rpc-requests"), settings)
    served: dict[str, dict[str, Any]] = {}

    def serve(worker, channel, method, props, body):
        n = int(decode_lenient(body)["message"])
        time.sleep(n * seconds_per_unit)  # the "computation"
        served[props.correlation_id] = {"served by": worker.name, "reply_to": props.reply_to}
        rabbitmq.publish(channel, Message.now(str(n * n), source=worker.name),
                              props.reply_to, persistent=False,
                              correlation_id=props.correlation_id)
        channel.basic_ack(method.delivery_tag)

    threads = [RabbitConsumerThread(queue_name, serve, prefetch=1, name=f"server-{i + 1}",
                                    settings=settings) for i in range(servers)]
    start_in_order(threads)
    try:
        pending = {str(uuid.uuid4()): n for n in requests}
        replies: list[dict[str, Any]] = []
        with open_channel(settings, confirm=False) as channel:

            def on_reply(_ch, _method, props, body):
                n = pending.pop(props.correlation_id, None)
                if n is None:
                    return  # a reply to a request we no longer wait for: drop it
                replies.append({"request": n, "reply": decode_lenient(body)["message"],
                                "correlation_id": props.correlation_id})

            # consume from the pseudo-queue *before* publishing with reply_to; no ack
            # is possible there, so auto_ack is required
            channel.basic_consume(DIRECT_REPLY_TO, on_reply, auto_ack=True)
            for correlation_id, n in list(pending.items()):
                rabbitmq.publish(channel, Message.now(str(n), source="client"), queue_name,
                                      persistent=False, reply_to=DIRECT_REPLY_TO,
                                      correlation_id=correlation_id)
            deadline = time.monotonic() + timeout_s
            while pending and time.monotonic() < deadline:
                channel.connection.process_data_events(time_limit=0.05)
    finally:
        stop_all(threads)
    if pending:
        raise TimeoutError(f"no reply within {timeout_s} s for requests {sorted(pending.values())}")
    return [
        {"arrived": i + 1, **reply, **served[reply["correlation_id"]]}
        for i, reply in enumerate(replies)
    ]
