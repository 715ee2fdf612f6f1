"""The FastAPI service: ``/kafka`` and ``/rabbitmq`` (send, consume, messages), ``/health``
and ``/live``.

Run it with ``make serve`` (``uvicorn queue_exp.api:app``) or, from a notebook,
``queue_exp.server.start_api()``. Broker clients are opened lazily on first use
and closed in the lifespan, so the service starts even while a broker is down
and answers 503 (naming the address and ``make brokers``) until it is back.

* :mod:`~queue_exp.api.kafka`, :mod:`~queue_exp.api.rabbitmq` - each broker's routes
* :mod:`~queue_exp.api.consumers` - the background consumers and their store
* :mod:`~queue_exp.api.publisher` - RabbitMQ publishes with pipelined confirms
* :mod:`~queue_exp.api.health` - ``/health``
* :mod:`~queue_exp.api.live` - ``/live``, the page for the projector (its poller in
  :mod:`~queue_exp.api.live_poller`, which reads the brokers through
  :mod:`~queue_exp.api.live_sources`; what each page shows in :mod:`~queue_exp.api.live_view`)
* :mod:`~queue_exp.api.guards` - bad bodies (413/415/422) and broker errors (503)
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from queue_exp.api import guards
from queue_exp.api import health
from queue_exp.api import kafka as kafka_routes
from queue_exp.api import live
from queue_exp.api import rabbitmq as rabbitmq_routes
from queue_exp.api.live_poller import LivePoller
from queue_exp.config import Settings
from queue_exp.config import get_settings


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings = app.state.settings_override or get_settings()
    app.state.settings = settings
    app.state.kafka = kafka_routes.KafkaService(settings)
    app.state.rabbitmq = rabbitmq_routes.RabbitService(settings)
    app.state.live = LivePoller(settings)  # polls only while a /live page is open
    try:
        yield
    finally:
        await app.state.live.close()
        await run_in_threadpool(app.state.kafka.close)
        await app.state.rabbitmq.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; ``settings`` (default: read from env vars at startup) fixes its
    brokers, namespace and limits."""
    app = FastAPI(
        title="queue_exp",
        description="Send and consume through Apache Kafka and RabbitMQ side by side.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings_override = settings
    app.include_router(kafka_routes.router)
    app.include_router(rabbitmq_routes.router)
    app.include_router(health.router)
    app.include_router(live.router)
    guards.install(app, (settings or get_settings()).max_body_bytes)
    return app


app = create_app()
