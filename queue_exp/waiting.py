"""The one bounded wait of the package: poll until something is true, or give up.

Every wait on a broker (a group to settle, a queue counter to change, a broker
to start) goes through :func:`wait_until`, never through a bare ``time.sleep``
loop, so that nothing the notebooks call can hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T],
    timeout_s: float,
    interval_s: float = 0.1,
    *,
    what: str | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy and return that value.

    Raises ``TimeoutError`` once ``timeout_s`` seconds have passed (naming
    ``what`` if given); an exception from ``probe`` ends the wait at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what or 'the condition'} not reached within {timeout_s:g} s")
        time.sleep(min(interval_s, left))
