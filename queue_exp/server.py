"""Run the API inside the notebook's own process, without blocking the kernel.

``uvicorn.run()`` in a cell fails because Jupyter's event loop is already
running; instead :func:`start_api` runs a ``uvicorn.Server`` in a thread with its
own event loop, on a free loopback port, and returns a handle::

    api = start_api()
    httpx.get(api.url("/health")).json()
    api.live(namespace=run.namespace)     # the live view under the cell
    api.stop()

Calling it again returns the running server; it is stopped at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import socket
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn

log = logging.getLogger(__name__)

_lock = threading.Lock()
_running: ApiServer | None = None


@dataclass
class ApiServer:
    """A handle on the in-process API: its base URL, an HTTP client, and ``stop()``."""

    base_url: str
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _client: httpx.Client | None = field(default=None, repr=False)

    @property
    def settings(self):
        """The settings the running app uses (its topic, queue, group, brokers)."""
        return self._server.config.app.state.settings

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def client(self) -> httpx.Client:
        """An ``httpx.Client`` bound to this server, with a 30 s timeout."""
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url, timeout=30.0)
        return self._client

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, **kwargs)

    def live(self, namespace: str | None = None, height: int = 560, *,
             topic: str | None = None, queue: str | None = None,
             show: str | None = None) -> Any:
        """The live view of both brokers in an IFrame, for a notebook cell's output:
        ``api.live(namespace=run.namespace)``. ``topic``/``queue`` show only that one;
        ``show="kafka"`` or ``"rabbitmq"`` only that broker (a narrow cell fits one)."""
        from IPython.display import IFrame  # late: the package does not need IPython

        return IFrame(self.live_url(namespace, topic=topic, queue=queue, show=show),
                      width="100%", height=height)

    def live_url(self, namespace: str | None = None, *, topic: str | None = None,
                 queue: str | None = None, show: str | None = None) -> str:
        """The address of ``/live`` with these choices (open it in a browser tab)."""
        params = {key: value for key, value in (("namespace", namespace), ("topic", topic),
                                                ("queue", queue), ("show", show))
                  if value is not None}
        return self.url("/live") + ("?" + urlencode(params) if params else "")

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server (runs the app's shutdown: consumers stop, clients close)."""
        global _running
        from queue_exp.api.live import end_streams

        end_streams(self._server.config.app)  # open /live pages would hold the shutdown
        self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("API server thread did not stop within %.0f s", timeout_s)
        if self._client is not None:
            self._client.close()
            self._client = None
        with _lock:
            if _running is self:
                _running = None


def start_api(
    host: str = "127.0.0.1",
    port: int = 0,
    timeout_s: float = 15.0,
    namespace: str | None = None,
    app: Any = None,
) -> ApiServer:
    """Start the API in a background thread (or return the one already running).

    ``port=0`` picks a free port. ``namespace`` prefixes the API's topic, queue
    and group (default: ``QUEUE_EXP_NAMESPACE``), so a notebook can use fresh ones.
    Raises ``RuntimeError`` if the server has not started within ``timeout_s`` s.
    """
    global _running
    with _lock:
        if _running is not None and _running.running:
            return _running
        if app is None:
            from queue_exp.api import create_app
            from queue_exp.config import get_settings

            settings = get_settings()
            if namespace is not None:
                settings = settings.replace(namespace=namespace)
            app = create_app(settings)
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose
        # proto says TCP, and with Nagle on, every keep-alive request after the
        # first one waits ~40 ms for a delayed ACK.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        bound_host, bound_port = sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="queue_exp-api", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(5)
                sock.close()
                raise RuntimeError(
                    f"the API did not start on {bound_host}:{bound_port} within {timeout_s} s"
                )
            time.sleep(0.02)
        _running = ApiServer(f"http://{bound_host}:{bound_port}", server, thread)
        return _running


def running_api() -> ApiServer | None:
    """The in-process API, if one is running."""
    return _running if _running is not None and _running.running else None


def stop_api() -> None:
    """Stop the in-process API if one is running (safe to call any time)."""
    server = running_api()
    if server is not None:
        server.stop()


atexit.register(stop_api)
