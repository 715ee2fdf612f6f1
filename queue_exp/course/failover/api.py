"""The API on a cluster: keep POSTing to ``/kafka/send`` or ``/rabbitmq/send``
from a few clients while a node is lost, and see what the clients got."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from queue_exp.course.perf.load import LoadResult
from queue_exp.course.perf.load import drive
from queue_exp.course.perf.load import marked_body
from queue_exp.waiting import wait_until

MARKER = "failover"


def sends_through_node_loss(
    api: Any, broker: str, lose_node: Callable[[], Any], *, clients: int = 4,
    seconds: float = 10.0, lose_after_s: float = 2.0, timeout_s: float = 60.0,
) -> dict[str, Any]:
    """``clients`` keep-alive clients POST marked messages to ``/{broker}/send`` for
    ``seconds``; after ``lose_after_s`` of successful sends ``lose_node()`` runs.
    The API's consumer reads along, so that the end can check that every send
    answered 200 was delivered. Returns every reply (sent when, status, how long),
    the replies by status, the window from the first to the last failed reply
    (seconds after the loss), and how many 200s the consumer did not get (0)."""
    api.post(f"/{broker}/consume").raise_for_status()
    result = LoadResult()
    url = api.url(f"/{broker}/send")
    load = threading.Thread(target=lambda: asyncio.run(drive(
        url, clients, seconds=seconds, make_body=marked_body(MARKER), result=result,
        timeout_s=timeout_s)), name="api-load", daemon=True)
    began = time.monotonic()
    load.start()
    wait_until(lambda: result.acked and time.monotonic() - began >= lose_after_s, timeout_s,
               0.05, what="sends to succeed before the loss")
    lost_at = time.monotonic()
    lose_node()
    load.join(timeout_s)
    replies = [(round(sent - lost_at, 3), status, latency)
               for sent, status, latency in result.replies]
    failed = [t for t, status, _ in replies if status != 200]
    texts = {item["message"].split()[1] for item in _delivered(api, broker, result, timeout_s)}
    acked = {f"{client}-{request}" for client, request in result.acked}
    return {
        "replies": replies, "by status": dict(sorted(Counter(s for _, s, _ in replies).items())),
        "failed window (s)": (min(failed), max(failed)) if failed else None,
        "longest reply (s)": round(max(latency for *_, latency in replies) / 1000, 2),
        "answered 200 but not delivered": len(acked - texts),
    }


def _delivered(api: Any, broker: str, result: LoadResult, timeout_s: float) -> list[dict]:
    """The marked messages the API's consumer received, once there are at least as
    many as sends answered 200 (or after ``timeout_s``: then some are missing).
    The app's store must be large enough to keep them all (``max_stored_messages``)."""

    def marked() -> list[dict]:
        return [m for m in api.get(f"/{broker}/messages").json()["messages"]
                if str(m.get("message", "")).startswith(MARKER + " ")]

    try:
        return wait_until(lambda: (found := marked()) and len(found) >= len(result.acked)
                          and found, timeout_s, 0.2)
    except TimeoutError:
        return marked()
