"""One :class:`Run` per notebook run (or exercise sheet, comparison, benchmark):
fresh names for everything it creates, and one clean-up that deletes it all.

Every run gets a namespace no earlier run used (``<lesson>.run-3fa9c2``, inside
``QUEUE_EXP_NAMESPACE`` when that is set), so its topics and queues start empty
and its groups have no committed offsets. Tables show the short labels
(:meth:`Run.label`), the same for every run and every student.

    with Run("rabbitmq-queues") as run:
        queue = run.queue("jobs")            # <namespace>.jobs, declared durable
        ...                                  # at the end: everything in the namespace is deleted
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from queue_exp import namespaces
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.clients.rabbitmq_management import Management
from queue_exp.config import Settings
from queue_exp.config import get_settings


def fresh_namespace(lesson: str, settings: Settings | None = None) -> str:
    """A namespace no earlier run used, e.g. ``first-messages.run-3fa9c2`` (inside
    ``QUEUE_EXP_NAMESPACE`` when that is set)."""
    base = (settings or get_settings()).namespace
    name = f"{lesson}.run-{secrets.token_hex(3)}"
    return f"{base}.{name}" if base else name


class Run:
    """Names under a fresh namespace, the topics, groups, queues and exchanges made
    with them, and :meth:`clean_up`, which deletes everything in the namespace
    (what the run's helpers made, and what the learner made with its names).

    ``brokers`` says which brokers the clean-up looks at: a chapter's run looks
    only at its own, so it does not need the other one to be up."""

    def __init__(self, lesson: str, settings: Settings | None = None, *,
                 brokers: Iterable[str] = namespaces.BROKERS) -> None:
        settings = settings or get_settings()
        self.namespace = fresh_namespace(lesson, settings)
        self.settings = settings.replace(namespace=self.namespace)
        self.brokers = tuple(brokers)
        self.created: dict[str, list[str]] = {kind: [] for kind in namespaces.kinds()}
        self._handed_out: dict[str, int] = {}
        self._management: Management | None = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.clean_up()

    # ------------------------------------------------------------------ names

    def name(self, label: str) -> str:
        """``<namespace>.<label>``: the full name of this run's topic, queue, ... ``label``."""
        return self.settings.name(label)

    def fresh_name(self, label: str) -> str:
        """``name(label)`` the first time, then ``<label>-2``, ``-3``, …: a setup run a
        second time starts from new, empty topics and queues."""
        seen = self._handed_out.get(label, 0) + 1
        self._handed_out[label] = seen
        return self.name(label if seen == 1 else f"{label}-{seen}")

    def label(self, name: str) -> str:
        """``<namespace>.orders`` -> ``orders``: what a table shows, the same every run."""
        return name.removeprefix(self.namespace + ".")

    def shorten(self, text: str) -> str:
        """Any text (an error message, say) with this run's namespace left out."""
        return text.replace(self.namespace + ".", "")

    def _remember(self, kind: str, name: str) -> str:
        if name not in self.created[kind]:
            self.created[kind].append(name)
        return name

    # --------------------------------------------------------------- creating

    def topic(self, label: str, partitions: int = 3, config: dict[str, str] | None = None,
              replication_factor: int = 1) -> str:
        """Create the topic ``<namespace>.<label>``; returns its name."""
        name = self._remember("topics", self.name(label))
        kafka_admin.create_topic(name, partitions, config, settings=self.settings,
                                 replication_factor=replication_factor)
        return name

    def group(self, label: str) -> str:
        """A consumer group name (a group exists once a consumer uses it)."""
        return self._remember("groups", self.name(label))

    def queue(self, label: str, **arguments: Any) -> str:
        """Declare the durable queue ``<namespace>.<label>`` (``arguments``: its
        ``x-…`` options, e.g. ``**{"x-queue-type": "quorum"}``); returns its name."""
        name = self._remember("queues", self.name(label))
        with rabbitmq.open_channel(self.settings, confirm=False) as channel:
            rabbitmq.declare_queue(channel, name, **arguments)
        return name

    def exchange(self, label: str, exchange_type: str = "direct",
                 bind: dict[str, str] | Iterable[str] = ()) -> str:
        """Declare the exchange ``<namespace>.<label>`` and bind queues to it
        (``bind``: queue -> binding key, or just queues); returns its name."""
        name = self._remember("exchanges", self.name(label))
        keys = bind if isinstance(bind, dict) else dict.fromkeys(bind, "")
        with rabbitmq.open_channel(self.settings, confirm=False) as channel:
            rabbitmq.declare_exchange(channel, name, exchange_type)
            for queue, key in keys.items():
                rabbitmq.bind_queue(channel, queue, name, key)
        return name

    @property
    def management(self) -> Management:
        """A client for RabbitMQ's management HTTP API (queue counters)."""
        if self._management is None:
            self._management = Management(self.settings)
        return self._management

    # ---------------------------------------------------------------- cleanup

    def owned(self) -> dict[str, list[str]]:
        """Everything whose name is in this run's namespace, on the run's brokers:
        what it created, and what anyone else created with its names."""
        found = namespaces.owned(self.namespace, self.settings, self.brokers)
        return {kind: sorted(set(names) | set(self.created[kind]))
                for kind, names in found.items()}

    def clean_up(self) -> dict[str, int]:
        """Delete everything in this run's namespace (stop its consumers first: a
        group with live members cannot be deleted). Returns how many of each."""
        found = self.owned()
        namespaces.delete(found, self.settings)
        for names in self.created.values():
            names.clear()
        if self._management is not None:
            self._management.close()
            self._management = None
        return {f"{kind} deleted": len(names) for kind, names in found.items()}
