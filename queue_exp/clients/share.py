"""Kafka share groups (KIP-932, "queues for Kafka"): several consumers take records
from the same partition, each record acknowledged on its own.

kafka-python has no share consumer, so this is the one place the course uses
confluent-kafka (its ``ShareConsumer``, marked "Preview" in 2.16). Group settings
(``share.auto.offset.reset``, ``share.delivery.count.limit``, ...) are GROUP
config resources, set with kafka-python's admin client like any other config;
the broker's own view of a share group comes from Apache Kafka's
``kafka-share-groups`` tool.

    consumer = share_consumer(group, settings)          # explicit acknowledgement
    consumer.subscribe([topic])
    for message in consumer.poll(1.0):                  # a batch, possibly empty
        consumer.acknowledge(message, AcknowledgeType.ACCEPT)
    consumer.commit_sync(10)                            # the acks go to the broker
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from kafka.admin import ConfigResource
from kafka.admin import ConfigResourceType

from queue_exp.clients.consumers import ConsumerThread
from queue_exp.clients.kafka_admin import admin_client
from queue_exp.config import Settings
from queue_exp.config import get_settings

log = logging.getLogger(__name__)

# librdkafka's own log lines, through Python logging. The "Preview" notice it logs
# for every share consumer is dropped: requirements.txt pins the version and says so.
_librdkafka_log = logging.getLogger(f"{__name__}.librdkafka")
_librdkafka_log.addFilter(lambda record: "Preview" not in record.getMessage())

# The group settings the lessons change (Kafka's defaults in brackets):
AUTO_OFFSET_RESET = "share.auto.offset.reset"  # where a new group starts [latest]
DELIVERY_COUNT_LIMIT = "share.delivery.count.limit"  # deliveries before a record is archived [5]
LOCK_DURATION_MS = "share.record.lock.duration.ms"  # how long a consumer holds a record [30000]
SESSION_TIMEOUT_MS = "share.session.timeout.ms"  # when a silent member is dropped [45000]


def share_consumer(group_id: str, settings: Settings | None = None, *, explicit: bool = True,
                   **config: Any):
    """A ``ShareConsumer`` in ``group_id`` (not yet subscribed). With ``explicit``
    every record must be acknowledged (``acknowledge``) before the next ``poll``;
    otherwise each poll accepts the previous batch. ``config``: more librdkafka
    settings, dots as underscores (``max_poll_records=1``)."""
    from confluent_kafka import ShareConsumer

    settings = settings or get_settings()
    conf = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": group_id,
        "share.acknowledgement.mode": "explicit" if explicit else "implicit",
        "client.id": settings.name("queue_exp-share"),
        "logger": _librdkafka_log,
    }
    conf.update({key.replace("_", "."): value for key, value in config.items()})
    return ShareConsumer(conf)


def set_group_config(group_id: str, configs: Mapping[str, Any],
                     settings: Settings | None = None) -> None:
    """Set share-group settings, e.g. ``{"share.auto.offset.reset": "earliest"}``
    (a group's settings may be set before it has any member). Raises
    ``ValueError`` with the broker's reason if it refuses one."""
    resource = ConfigResource(ConfigResourceType.GROUP, group_id,
                              {key: str(value) for key, value in configs.items()})
    with admin_client(settings) as admin:
        answer = admin.alter_configs([resource])["group"][group_id]
    if answer != "OK":
        raise ValueError(f"the broker refused {dict(configs)} for group {group_id!r}: {answer}")


def group_config(group_id: str, keys: Sequence[str],
                 settings: Settings | None = None) -> dict[str, str]:
    """The current value of each share-group setting in ``keys``."""
    resource = ConfigResource(ConfigResourceType.GROUP, group_id, None)
    with admin_client(settings) as admin:
        found = admin.describe_configs([resource], config_filter="all")["group"][group_id]
    return {key: found[key]["value"] for key in keys}


def members(group_id: str, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The group's members as the broker lists them (``kafka-share-groups
    --describe --members``): client id and assigned ``topic:partition``s, sorted
    by client id. Each call starts the tool (a JVM): about a second."""
    from queue_exp.brokers.tools import tool

    settings = settings or get_settings()
    run = tool("kafka-share-groups", "--describe", "--group", group_id, "--members",
               "--bootstrap-server", settings.kafka_bootstrap_servers, timeout_s=30)
    rows = []
    for line in str(run).splitlines():
        fields = line.split()
        # GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS ASSIGNMENT
        if len(fields) >= 5 and fields[0] == group_id and fields[4].isdigit():
            rows.append({"client_id": fields[3], "partitions": int(fields[4]),
                         "assignment": _assignment(fields[5] if len(fields) > 5 else "")})
    return sorted(rows, key=lambda row: row["client_id"])


def _assignment(column: str) -> list[str]:
    """``orders:0,1;audit:0`` (the tool's ASSIGNMENT column) -> ``["audit:0",
    "orders:0", "orders:1"]``."""
    found = []
    for item in column.split(";"):
        topic, _, partitions = item.rpartition(":")
        if topic and re.fullmatch(r"\d+(,\d+)*", partitions):
            found += [f"{topic}:{p}" for p in partitions.split(",")]
    return sorted(found)


OnBatch = Callable[[Any, list[Any]], None]


class ShareConsumerThread(ConsumerThread):
    """A ``ShareConsumer`` of ``group_id`` in a thread of its own (a share consumer
    must not be shared between threads), calling ``on_batch(consumer, messages)``
    for every non-empty poll. In explicit mode ``on_batch`` acknowledges each
    message and commits; a record it leaves unacknowledged stays locked to this
    consumer until it stops (closing releases it) or the lock runs out."""

    def __init__(self, topics: Sequence[str], on_batch: OnBatch, *, group_id: str,
                 name: str = "share-consumer", settings: Settings | None = None,
                 explicit: bool = True, **config: Any) -> None:
        super().__init__(name, settings)
        self.topics = list(topics)
        self.on_batch = on_batch
        self.group_id = group_id
        self.explicit = explicit
        self.config = {"client_id": self.settings.name(f"{group_id}.{name}"), **config}

    def _session(self) -> None:
        consumer = share_consumer(self.group_id, self.settings, explicit=self.explicit,
                                  **self.config)
        try:
            consumer.subscribe(self.topics)
            self.ready.set()  # subscribed; the broker assigns partitions within a heartbeat
            while not self.stopping:
                # the poll timeout bounds how long stop() waits for this thread
                batch = [m for m in consumer.poll(self.poll_s) if m.error() is None]
                if batch and not self.stopping:
                    self.on_batch(consumer, batch)
        finally:
            consumer.close()  # leaves the group; records still held go back at once
