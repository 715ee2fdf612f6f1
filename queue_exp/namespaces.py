"""Namespaces: one broker pair shared by a whole class.

Every topic, queue, exchange and consumer group the package creates is named
``<namespace>.<name>`` when ``QUEUE_EXP_NAMESPACE`` is set (notebooks nest their
per-run names inside it). A namespace is letters, digits, ``-`` and ``_`` only,
so ``alice.`` can never be the start of another student's names, and
``python -m queue_exp reset --namespace alice`` deletes exactly what is hers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from queue_exp import kafka_client, rabbit_client
from queue_exp.config import Settings, check_namespace, get_settings
from queue_exp.rabbit_management import Management


def owned(namespace: str, settings: Settings | None = None) -> dict[str, list[str]]:
    """Every topic, consumer group, queue and exchange whose name is in ``namespace``."""
    prefix = check_namespace(namespace) + "."
    settings = settings or get_settings()
    admin = kafka_client.make_admin(settings)
    try:
        topics = [t for t in admin.list_topics() if t.startswith(prefix)]
        groups = [g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(prefix)]
    finally:
        admin.close()
    with Management(settings) as management:
        queues = [q["name"] for q in management.list("queues") if q["name"].startswith(prefix)]
        exchanges = [e["name"] for e in management.list("exchanges")
                     if e["name"].startswith(prefix)]
    return {"topics": sorted(topics), "groups": sorted(groups),
            "queues": sorted(queues), "exchanges": sorted(exchanges)}


def reset(namespace: str, settings: Settings | None = None, dry_run: bool = False
          ) -> dict[str, list[str]]:
    """Delete what ``namespace`` owns (groups must have no live consumers); returns it."""
    settings = settings or get_settings()
    found = owned(namespace, settings)
    if not dry_run:
        kafka_client.delete_groups(found["groups"], settings=settings)
        kafka_client.delete_topics(found["topics"], settings=settings)
        if found["queues"]:
            rabbit_client.delete_queues(found["queues"], settings=settings)
        if found["exchanges"]:
            rabbit_client.delete_exchanges(found["exchanges"], settings=settings)
    return found


def settings_for(namespace: str) -> Settings:
    """The current settings, in ``namespace``."""
    return replace(get_settings(), namespace=check_namespace(namespace))


def summary(found: dict[str, Any]) -> str:
    return ", ".join(f"{len(names)} {kind}" for kind, names in found.items())
