"""Dead letters (notebook 07): a rejected message, an expired one (per message and
per queue), a TTL stuck behind the head of the queue, and a poison message in a
quorum queue with a delivery limit all end up in a dead-letter exchange, with an
``x-death`` header that says why."""

from __future__ import annotations

import time
from typing import Any

from queue_exp.clients import rabbitmq
from queue_exp.course.rabbitmq.channels import bound_exchange
from queue_exp.course.rabbitmq.channels import declared_queue
from queue_exp.course.rabbitmq.channels import drain
from queue_exp.course.rabbitmq.channels import message_count
from queue_exp.course.rabbitmq.channels import open_channel
from queue_exp.course.rabbitmq.channels import publish
from queue_exp.course.run import Run
from queue_exp.waiting import wait_until

DEAD_LETTER_EXCHANGE = "x-dead-letter-exchange"  # the queue argument that names the DLX


def dead_letter_exchange(run: Run) -> tuple[str, str]:
    """A fanout exchange for dead letters and the one queue bound to it."""
    queue_name = declared_queue(run.name("dead-letters"), run.settings)
    return bound_exchange(run, "dead-letters", "fanout", queue_name), queue_name


def read_dead_letters(
    run: Run, dead_letter_queue: str, count: int, timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    """Wait (bounded) for ``count`` dead letters and take them."""
    got: list[dict[str, Any]] = []
    with open_channel(run.settings, confirm=False) as channel:

        def enough() -> bool:
            got.extend(drain(channel, dead_letter_queue, count - len(got)))
            return len(got) >= count

        wait_until(enough, timeout_s, 0.05)
    return got


def x_death(letter: dict[str, Any], run: Run) -> dict[str, Any]:
    """The first ``x-death`` entry of a dead letter, without its timestamp, with
    queue names shortened to their labels (``None`` if it has none)."""
    deaths = letter["headers"].get("x-death") or []
    if not deaths:
        return {"x-death": None}
    first = deaths[0]
    return {
        "reason": first.get("reason"),
        "queue": run.label(first.get("queue", "")),
        "count": int(first.get("count", 0)),
        "exchange": first.get("exchange"),
        "routing-keys": [run.label(k) for k in first.get("routing-keys", [])],
    }


def _dead_letter_row(case: str, letter: dict[str, Any], run: Run) -> dict[str, Any]:
    """One row of a dead-letter table: the case, the message and its ``x-death``."""
    return {"case": case, "message": letter["message"], **x_death(letter, run)}


def reject_into_dead_letters(run: Run, dlx: str, dlq: str) -> dict[str, Any]:
    """A consumer rejects a message it cannot handle: ``basic_nack(requeue=False)``."""
    queue_name = declared_queue(run.name("orders"), run.settings,
                                **{DEAD_LETTER_EXCHANGE: dlx})
    publish(queue_name, ["order with a bad address"], settings=run.settings)
    with open_channel(run.settings, confirm=False) as channel:
        method, _props, body = channel.basic_get(queue_name)
        channel.basic_nack(method.delivery_tag, requeue=False)  # "I can never process this"
    [letter] = read_dead_letters(run, dlq, 1)
    return _dead_letter_row("basic_nack(requeue=False)", letter, run)


def expire_into_dead_letters(
    run: Run, dlx: str, dlq: str, ttl_ms: int = 300
) -> list[dict[str, Any]]:
    """A per-message TTL (``expiration``) and a per-queue TTL (``x-message-ttl``);
    nobody consumes, so both messages expire into the dead-letter exchange."""
    per_message = declared_queue(run.name("parcels"), run.settings,
                                 **{DEAD_LETTER_EXCHANGE: dlx})
    per_queue = declared_queue(run.name("sessions"), run.settings,
                               **{DEAD_LETTER_EXCHANGE: dlx, "x-message-ttl": ttl_ms})
    publish(per_message, ["parcel with expiration"], expiration_ms=ttl_ms, settings=run.settings)
    publish(per_queue, ["session in a TTL queue"], settings=run.settings)
    letters = read_dead_letters(run, dlq, 2)
    cases = {per_message: f"message expiration={ttl_ms} ms",
             per_queue: f"queue x-message-ttl={ttl_ms} ms"}
    rows = []
    for letter in sorted(letters, key=lambda m: m["message"]):
        died_in = run.name(x_death(letter, run)["queue"])
        rows.append(_dead_letter_row(cases[died_in], letter, run))
    return rows


def ttl_head_of_line(run: Run, dlx: str, dlq: str, ttl_ms: int = 200) -> list[dict[str, Any]]:
    """A message without TTL, then one with a short per-message TTL behind it: the
    second expires only once it reaches the head of the queue."""
    queue_name = declared_queue(run.name("mixed-ttl"), run.settings,
                                **{DEAD_LETTER_EXCHANGE: dlx})
    publish(queue_name, ["no expiration"], settings=run.settings)
    publish(queue_name, [f"expiration={ttl_ms} ms"], expiration_ms=ttl_ms, settings=run.settings)

    def counts(moment: str) -> dict[str, Any]:
        return {"moment": moment,
                "in the queue": message_count(queue_name, run.settings),
                "dead-lettered": message_count(dlq, run.settings)}

    time.sleep(5 * ttl_ms / 1000)  # the experiment: give the second message five times its TTL
    rows = [counts(f"{5 * ttl_ms} ms later")]
    rabbitmq.consume(queue_name, max_messages=1, timeout_s=2, settings=run.settings)
    wait_until(lambda: message_count(dlq, run.settings) == 1, 5)
    rows.append(counts("after the head message was consumed"))
    read_dead_letters(run, dlq, 1)  # leave the dead-letter queue empty for the next lesson
    return rows


def poison_in_quorum_queue(
    run: Run, dlx: str, dlq: str, delivery_limit: int = 2, timeout_s: float = 10.0
) -> dict[str, Any]:
    """A quorum queue with ``x-delivery-limit``; a consumer that fails on the
    message every time and says so with ``basic_reject(requeue=True)``. Returns
    each delivery attempt and the dead letter that comes out at the end.

    ``basic_reject``, not ``basic_nack``: both count as a failed delivery up to
    RabbitMQ 4.2, but since 4.3 a ``nack`` with requeue no longer counts towards
    the limit (the message would loop for ever); a reject, or a consumer that
    dies holding the message, counts on every version."""
    queue_name = declared_queue(
        run.name("payments"), run.settings,  # quorum queues are always durable
        **{"x-queue-type": "quorum", "x-delivery-limit": delivery_limit,
           DEAD_LETTER_EXCHANGE: dlx},
    )
    publish(queue_name, ["payment that crashes the worker"], persistent=True,
            settings=run.settings)
    attempts: list[dict[str, Any]] = []

    def fail(channel: Any, method: Any, props: Any, _body: bytes) -> None:
        count = (props.headers or {}).get("x-delivery-count")  # none on a first delivery
        attempts.append({"attempt": len(attempts) + 1, "redelivered": method.redelivered,
                         "x-delivery-count": None if count is None else int(count)})
        channel.basic_reject(method.delivery_tag, requeue=True)  # "failed, try again"

    with open_channel(run.settings, confirm=False) as channel:
        channel.basic_qos(prefetch_count=1)
        channel.basic_consume(queue_name, fail)
        wait_until(lambda: channel.connection.process_data_events(time_limit=0.05)
                   or message_count(dlq, run.settings), timeout_s, 0)
    [letter] = read_dead_letters(run, dlq, 1)
    return {
        "attempts": attempts,
        "dead letter": _dead_letter_row(f"quorum queue, x-delivery-limit={delivery_limit}",
                                        letter, run),
        "headers": letter["headers"],
    }
