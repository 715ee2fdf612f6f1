"""Errors that tell the learner what happened and what to do next."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from queue_exp.config import START_HINT


class BrokerUnavailable(RuntimeError):
    """A broker could not be reached (or did not answer) within the timeout."""

    def __init__(self, broker: str, address: str, reason: str = "") -> None:
        self.broker = broker
        self.address = address
        self.reason = reason
        detail = f" ({reason})" if reason else ""
        super().__init__(f"{broker} is not reachable at {address}{detail}; {START_HINT}.")


class LauncherError(RuntimeError):
    """The launcher could not start or stop a broker; the message says what to do."""


def ping_result(address: str, probe: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``{"reachable", "address", ...}`` for a health check that never raises:
    ``probe()`` returns what it learnt, or raises ``BrokerUnavailable``."""
    try:
        details = probe()
    except BrokerUnavailable as exc:
        return {"reachable": False, "address": address, "error": str(exc)}
    return {"reachable": True, "address": address, **details}
