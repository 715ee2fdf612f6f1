"""Debian's Chromium driven by Playwright, for the browser tests and the live view's
screenshots. Playwright's own browser download is not used: the project's setup
installs Debian's ``chromium`` (scripts/system-deps.sh)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# headless, and nothing that reaches out to the network on its own
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """The system Chromium (``CHROMIUM`` overrides), or ``None``."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if shutil.which(explicit) else None
    return next((path for path in CANDIDATES if os.access(path, os.X_OK)), None)


def missing_reason() -> str | None:
    """Why the browser tests cannot run here, or ``None`` if they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -r requirements.txt)"
    if chromium_path() is None:
        return ("no Chromium: as root, scripts/system-deps.sh installs Debian's chromium "
                "(apt-get install chromium)")
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright ``Browser``), closed at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
