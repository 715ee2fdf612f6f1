"""``/health``: each broker reachable or not, its address, how to start it."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from queue_exp.clients import kafka
from queue_exp.clients import rabbitmq
from queue_exp.config import START_HINT
from queue_exp.config import Settings

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """Each broker: reachable or not, its address, and how to start it."""
    settings: Settings = request.app.state.settings
    kafka_health, rabbit = await asyncio.gather(
        run_in_threadpool(kafka.ping, settings),
        run_in_threadpool(rabbitmq.ping, settings),
    )
    kafka_health["consumer_running"] = request.app.state.kafka.consumer.running
    rabbit["consumer_running"] = request.app.state.rabbitmq.consumer.running
    for broker in (kafka_health, rabbit):
        if not broker["reachable"]:
            broker["how_to_start"] = START_HINT
    ok = kafka_health["reachable"] and rabbit["reachable"]
    return {"status": "ok" if ok else "degraded", "kafka": kafka_health, "rabbitmq": rabbit}


