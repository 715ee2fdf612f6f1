"""Namespaces: one broker pair shared by a whole class, and one notebook run.

Every topic, queue, exchange and consumer group the package creates is named
``<namespace>.<name>`` when ``QUEUE_EXP_NAMESPACE`` is set (notebook runs nest
their own namespaces inside it). A namespace is letters, digits, ``-`` and ``_``
(and ``.`` between nested ones), so ``alice.`` can never be the start of another
student's names, and ``python -m queue_exp reset --namespace alice`` deletes
exactly what is hers. :class:`~queue_exp.course.run.Run` cleans up the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.clients.rabbitmq_management import Management
from queue_exp.clients.rabbitmq_management import ManagementUnavailable
from queue_exp.config import Settings
from queue_exp.config import check_namespace
from queue_exp.config import get_settings
from queue_exp.waiting import wait_until

log = logging.getLogger(__name__)

BROKERS = ("kafka", "rabbitmq")
KINDS = {"kafka": ("topics", "groups"), "rabbitmq": ("queues", "exchanges")}


def kinds(brokers: Iterable[str] = BROKERS) -> list[str]:
    return [kind for broker in brokers for kind in KINDS[broker]]


def owned(namespace: str, settings: Settings | None = None,
          brokers: Iterable[str] = BROKERS) -> dict[str, list[str]]:
    """Every topic, consumer group, queue and exchange whose name is in
    ``namespace`` (on the given brokers). Listing queues and exchanges needs
    RabbitMQ's management API; without it they are reported as none."""
    prefix = namespace + "."
    settings = settings or get_settings()
    brokers = tuple(brokers)
    found: dict[str, list[str]] = {kind: [] for kind in kinds(brokers)}
    if "kafka" in brokers:
        for kind, names in kafka_admin.list_names(settings).items():
            found[kind] = [n for n in names if n.startswith(prefix)]
    if "rabbitmq" in brokers:
        try:
            with Management(settings) as management:
                for kind in KINDS["rabbitmq"]:
                    found[kind] = sorted(item["name"] for item in management.list(kind)
                                         if item["name"].startswith(prefix))
        except ManagementUnavailable as exc:
            log.info("cannot list queues and exchanges: %s", exc)
    return found


def delete(found: dict[str, list[str]], settings: Settings) -> None:
    """Delete what :func:`owned` found (consumers must be stopped first: a group
    with live members cannot be deleted). Waits until the deleted topics are gone."""
    kafka_admin.delete_groups(found.get("groups", []), settings=settings)
    _delete_topics(found.get("topics", []), settings)
    rabbitmq.delete_queues(found.get("queues", []), settings=settings)
    rabbitmq.delete_exchanges(found.get("exchanges", []), settings=settings)


def _delete_topics(topics: list[str], settings: Settings) -> None:
    """Delete topics and wait until the broker no longer lists them. On a broker
    that auto-creates topics (the course's own brokers do not), a client that
    has just closed may revive one with a metadata request: it is deleted again."""
    if not topics:
        return
    kafka_admin.delete_topics(topics, settings=settings)

    def gone() -> bool:
        left = set(topics) & set(kafka_admin.list_names(settings)["topics"])
        if left:
            kafka_admin.delete_topics(sorted(left), settings=settings)
        return not left

    try:
        wait_until(gone, 10.0, 0.25, what="the deleted topics gone")
    except TimeoutError:
        log.warning("topics still listed after deleting them: %s", topics)


def reset(namespace: str, settings: Settings | None = None, dry_run: bool = False
          ) -> dict[str, list[str]]:
    """Delete what ``namespace`` owns (groups must have no live consumers); returns it."""
    settings = settings or get_settings()
    found = owned(check_namespace(namespace), settings)
    if not dry_run:
        delete(found, settings)
    return found


def settings_for(namespace: str) -> Settings:
    """The current settings, in ``namespace``."""
    return get_settings().replace(namespace=check_namespace(namespace))


def summary(found: dict[str, Any]) -> str:
    return ", ".join(f"{len(names)} {kind}" for kind, names in found.items())
