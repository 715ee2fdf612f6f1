"""Session setup shared by the unit/integration tests and the notebook (nbval) tests:
make sure both brokers are reachable (starting embedded ones if needed) and stop,
at the end, only the ones this run started."""

from __future__ import annotations

import os

import pytest

from queue_exp import brokers
from queue_exp.errors import LauncherError


@pytest.fixture(scope="session", autouse=True)
def broker_session():
    try:
        result = brokers.up()
    except LauncherError as exc:
        pytest.exit(f"could not make both brokers reachable:\n{exc}", returncode=3)
    started = [name for name, entry in result.items() if entry["started"]]
    yield result
    if started and not os.environ.get("QUEUE_EXP_KEEP_BROKERS"):
        brokers.down(started)
