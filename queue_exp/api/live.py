"""``/live``: both brokers on one page, for the projector, updated twice a second.

* ``GET /live`` - the page (``?namespace=``, ``?topic=``, ``?queue=``, ``?show=kafka|rabbitmq``)
* ``GET /live/stream`` - server-sent events: the page's data, one event per look at a broker
* ``GET /live/snapshot`` - the same data once, as JSON
* ``GET /live/static/…`` - the page's script and style sheet, shipped in the package

The brokers are looked at by the app's one :class:`~queue_exp.api.live_poller.LivePoller`,
never once per viewer; :mod:`~queue_exp.api.live_view` cuts its look down to
what each page shows. Read-only: nothing here changes a broker.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated
from typing import Any

from fastapi import APIRouter
from fastapi import Depends
from fastapi import HTTPException
from fastapi import Query
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from fastapi.responses import Response
from fastapi.responses import StreamingResponse

from queue_exp.api import live_view
from queue_exp.api.live_poller import LivePoller
from queue_exp.api.live_poller import Prefixes
from queue_exp.api.live_sources import look_safely

router = APIRouter(tags=["live"])

ASSETS = {"live.js": "text/javascript; charset=utf-8", "live.css": "text/css; charset=utf-8"}
# the page's files change only with the package; a reload after an upgrade gets the new ones
NO_CACHE = {"Cache-Control": "no-cache"}
# a page that saw nothing new for this long gets a comment line, so proxies keep it open
KEEP_ALIVE_S = 15.0
# a browser's EventSource reconnects after this many milliseconds (API restarted)
RECONNECT_MS = 1000
NO_RECONNECT_MS = 3_600_000  # after an answer that asking again cannot change


def _asset(name: str) -> str:
    return resources.files("queue_exp.api").joinpath("static", name).read_text("utf-8")


def _poller(request: Request) -> LivePoller:
    return request.app.state.live


class ViewQuery:
    """What the URL asks for; the namespace defaults to the app's own."""

    def __init__(
        self,
        request: Request,
        namespace: str | None = Query(None, max_length=200, description=(
            "show only names in this namespace (default: the API's own; empty: all)")),
        topic: str | None = Query(None, max_length=300, description="only this Kafka topic"),
        queue: str | None = Query(None, max_length=300, description="only this RabbitMQ queue"),
        show: str | None = Query(None, max_length=20, description="`kafka` or `rabbitmq` only"),
    ) -> None:
        own = request.app.state.settings.namespace
        self.app = request.app
        self.namespace = own if namespace is None else namespace.strip()
        self.own = own
        self.topic = topic or None
        self.queue = queue or None
        self.show = show
        self.key = (self.namespace, self.topic, self.queue, self.show)

    def build(self, world: dict[str, Any]) -> dict[str, Any]:
        return live_view.build(world, self.namespace, topic=self.topic, queue=self.queue,
                               show=self.show, own_namespace=self.own,
                               recent=_recent(self.app))


# the API's own consumers: what they received last (no broker is asked for it)
RECENT = 5


def _recent(app: Any) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for broker in ("kafka", "rabbitmq"):
        service = getattr(app.state, broker, None)
        if service is not None and service.store.received:
            found[broker] = service.store.newest(RECENT)
    return found


@router.get("/live", response_class=HTMLResponse, include_in_schema=False)
async def live_page() -> HTMLResponse:
    """The page: both brokers side by side, drawn by live.js from /live/stream."""
    return HTMLResponse(_asset("live.html"), headers=NO_CACHE)


@router.get("/live/static/{name}", include_in_schema=False)
async def live_asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, f"no such file: {name}")
    return Response(_asset(name), media_type=ASSETS[name], headers=NO_CACHE)


@router.get("/live/snapshot")
async def live_snapshot(request: Request, query: Annotated[ViewQuery, Depends()]
                        ) -> dict[str, Any]:
    """What /live shows right now, as JSON. While pages are open it is their latest
    data; otherwise both brokers are looked at once, for this request."""
    poller = _poller(request)
    if poller.polling and poller.covers(query.namespace):
        world = poller.world
    elif live_view.namespace_problem(query.namespace):
        world = {}
    else:
        world = await run_in_threadpool(_look_once, poller, query.namespace)
    return query.build(world)


def _look_once(poller: LivePoller, namespace: str) -> dict[str, Any]:
    wanted = Prefixes(frozenset([namespace]))
    world = {}
    for source in poller.sources():
        try:
            world[source.broker] = look_safely(source, wanted)
        finally:
            source.close()
    return world


@router.get("/live/stream", include_in_schema=False)
async def live_stream(request: Request, query: Annotated[ViewQuery, Depends()]
                      ) -> StreamingResponse:
    """Server-sent events: a ``data:`` line with the page's JSON after every look at
    a broker (once per broker per interval: four times a second by default)."""
    return StreamingResponse(
        _events(request, _poller(request), query),
        media_type="text/event-stream",
        # no buffering by a reverse proxy: each event must reach the page at once
        headers={**NO_CACHE, "X-Accel-Buffering": "no"},
    )


async def _events(request: Request, poller: LivePoller, query: ViewQuery
                  ) -> AsyncIterator[str]:
    if live_view.namespace_problem(query.namespace):
        # the page shows what is wrong; asking again would not change the answer
        yield f"retry: {NO_RECONNECT_MS}\n\n"
        yield _event(query.build({}))
        return
    yield f"retry: {RECONNECT_MS}\n\n"
    async with poller.watching(query.namespace):
        seen = -1
        quiet_since = time.monotonic()
        while not poller.closing and not await request.is_disconnected():
            # wake at least once a second to notice a closing server or a gone page
            if await poller.next_change(seen, timeout_s=1.0):
                seen = poller.version
                quiet_since = time.monotonic()
                # pages showing the same thing share one rendering of each look
                yield poller.memo(query.key, lambda: _event(query.build(poller.world)))
            elif time.monotonic() - quiet_since > KEEP_ALIVE_S:
                quiet_since = time.monotonic()
                yield ": still here\n\n"


def _event(view: dict[str, Any]) -> str:
    return f"data: {json.dumps(view, separators=(',', ':'))}\n\n"


def end_streams(app: Any) -> None:
    """Make the open /live pages' streams end, so that a server asked to stop does
    not wait for them for ever (uvicorn waits for every response to finish). Safe
    from any thread and for an app without /live."""
    poller = getattr(getattr(app, "state", None), "live", None)
    if isinstance(poller, LivePoller):
        poller.close_viewers()
