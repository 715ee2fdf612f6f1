"""Session setup shared by the unit/integration tests and the notebook (nbval) tests:
make sure both brokers are reachable (starting embedded ones if needed) and stop,
at the end, only the ones this run started.

Session hooks rather than an autouse fixture: nbval's items are not functions, and a
fixture would not run before a notebook that comes first on the command line."""

from __future__ import annotations

import os

import pytest

from queue_exp import brokers
from queue_exp.errors import LauncherError

STARTED = pytest.StashKey[list]()


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    try:
        result = brokers.up()
    except LauncherError as exc:
        pytest.exit(f"could not make both brokers reachable:\n{exc}", returncode=3)
    session.stash[STARTED] = [name for name, entry in result.items() if entry["started"]]


def pytest_sessionfinish(session: pytest.Session) -> None:
    started = session.stash.get(STARTED, [])
    if started and not os.environ.get("QUEUE_EXP_KEEP_BROKERS"):
        brokers.down(started)
