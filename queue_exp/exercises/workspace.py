"""Fresh names for one run of an exercise notebook, and one sweep that deletes
everything in them at the end.

A :class:`Workspace` owns a namespace no earlier run used
(``teaching.fresh_namespace``, inside ``QUEUE_EXP_NAMESPACE`` when that is set).
Every exercise's setup names its topics, groups, queues and exchanges in it; a
setup run a second time gets new names (``orders``, ``orders-2``, …), so it
always starts from empty ones. Feedback shows the short labels, never the
namespace, so it reads the same for every student and every run.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from queue_exp import kafka_client, rabbit_client, teaching
from queue_exp.config import Settings, get_settings
from queue_exp.rabbit_management import Management

log = logging.getLogger(__name__)


class Workspace:
    """Names for the exercises of one notebook run; :meth:`clean_up` deletes them.

    ``brokers`` says which brokers the cleanup sweeps: a chapter's workspace only
    looks at its own broker, so it does not depend on the other one being up."""

    brokers: tuple[str, ...] = ("kafka", "rabbitmq")

    def __init__(self, notebook: str, settings: Settings | None = None) -> None:
        self.namespace = teaching.fresh_namespace(notebook)
        self.settings = replace(settings or get_settings(), namespace=self.namespace)
        self._used: dict[str, int] = {}

    def name(self, label: str) -> str:
        """``<namespace>.<label>``, or ``<label>-2``, ``-3``, … once it was handed out."""
        seen = self._used.get(label, 0) + 1
        self._used[label] = seen
        return self.settings.name(label if seen == 1 else f"{label}-{seen}")

    def label(self, name: str) -> str:
        """A full name as feedback shows it: without this workspace's namespace."""
        return name.removeprefix(self.namespace + ".")

    def shorten(self, text: str) -> str:
        """Any text (an error message, say) with this workspace's namespace left out."""
        return text.replace(self.namespace + ".", "")

    def owned(self) -> dict[str, list[str]]:
        """Every topic, consumer group, queue and exchange whose name is in this workspace."""
        prefix = self.namespace + "."
        found: dict[str, list[str]] = {"topics": [], "groups": [], "queues": [], "exchanges": []}
        if "kafka" in self.brokers:
            admin = kafka_client.make_admin(self.settings)
            try:
                found["topics"] = [t for t in admin.list_topics() if t.startswith(prefix)]
                found["groups"] = [g["group_id"] for g in admin.list_groups()
                                   if g["group_id"].startswith(prefix)]
            finally:
                admin.close()
        if "rabbitmq" in self.brokers:
            with Management(self.settings) as management:
                for kind in ("queues", "exchanges"):
                    found[kind] = [item["name"] for item in management.list(kind)
                                   if item["name"].startswith(prefix)]
        return {kind: sorted(names) for kind, names in found.items()}

    def clean_up(self) -> dict[str, Any]:
        """Delete everything in this workspace: what the setups created and what the
        learner created with the names they were given. Consumers must be stopped
        (a group with live members cannot be deleted). Returns how many of each."""
        found = self.owned()
        if found["groups"]:
            kafka_client.delete_groups(found["groups"], settings=self.settings)
        if found["topics"]:
            kafka_client.delete_topics(found["topics"], settings=self.settings)
        if found["queues"]:
            rabbit_client.delete_queues(found["queues"], settings=self.settings)
        if found["exchanges"]:
            rabbit_client.delete_exchanges(found["exchanges"], settings=self.settings)
        return {f"{kind} deleted": len(found[kind]) for kind in self._kinds()}

    def _kinds(self) -> list[str]:
        return (["topics", "groups"] if "kafka" in self.brokers else []) + (
            ["queues", "exchanges"] if "rabbitmq" in self.brokers else [])


class KafkaWorkspace(Workspace):
    """A workspace whose cleanup looks at Kafka only (the Kafka chapter's exercises)."""

    brokers = ("kafka",)


class RabbitWorkspace(Workspace):
    """A workspace whose cleanup looks at RabbitMQ only (the RabbitMQ chapter's exercises)."""

    brokers = ("rabbitmq",)
