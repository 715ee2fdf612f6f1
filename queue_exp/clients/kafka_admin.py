"""Kafka administration on kafka-python's ``KafkaAdminClient``: create, describe
and delete topics and groups, and read the offsets that describe a log.

Every call opens an admin client, is bounded by the broker timeout and closes it,
except :func:`cluster_state`, which the live view calls once a second on an admin
client it keeps open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient
from kafka import TopicPartition
from kafka.admin import ConfigResource
from kafka.admin import ConfigResourceType
from kafka.admin import NewTopic
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError
from kafka.errors import KafkaTimeoutError
from kafka.errors import RetriableError
from kafka.errors import TopicAlreadyExistsError

from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.errors import BrokerUnavailable
from queue_exp.waiting import wait_until

log = logging.getLogger(__name__)

BROKER = "Kafka"


def ms(seconds: float) -> int:
    return int(seconds * 1000)


def unavailable(settings: Settings, exc: Exception) -> BrokerUnavailable:
    return BrokerUnavailable(BROKER, settings.kafka_bootstrap_servers, f"{type(exc).__name__}")


def make_admin(settings: Settings | None = None) -> KafkaAdminClient:
    settings = settings or get_settings()
    timeout = ms(settings.broker_timeout_s)
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            bootstrap_timeout_ms=timeout,
            request_timeout_ms=timeout,
            client_id=settings.name("queue_exp-admin"),
        )
    except KafkaTimeoutError as exc:
        raise unavailable(settings, exc) from exc


@contextmanager
def admin_client(settings: Settings | None = None) -> Iterator[KafkaAdminClient]:
    """An admin client for a ``with`` block, closed at its end."""
    admin = make_admin(settings)
    try:
        yield admin
    finally:
        admin.close()


def create_topic(
    name: str,
    partitions: int = 1,
    config: dict[str, str] | None = None,
    settings: Settings | None = None,
    replication_factor: int = 1,
) -> bool:
    """Create a topic; returns False if it already existed."""
    with admin_client(settings) as admin:
        try:
            admin.create_topics(
                [NewTopic(name, partitions, replication_factor, topic_configs=config or {})],
                timeout_ms=10_000,
                wait_for_metadata=True,
            )
        except TopicAlreadyExistsError:
            return False
    return True


def replication_here(settings: Settings | None = None) -> tuple[int, dict[str, str]]:
    """A replication factor and topic config for the brokers there are: on a cluster
    three replicas, at least two of them in sync for an ``acks='all'`` write (one
    node may fail and writes go on); on a single broker, one replica."""
    with admin_client(settings) as admin:
        brokers = len(admin.describe_cluster()["brokers"])
    factor = min(3, max(brokers, 1))
    return factor, ({"min.insync.replicas": "2"} if factor == 3 else {})


def delete_topics(names: Iterable[str], settings: Settings | None = None) -> None:
    """Delete topics; names that do not exist are ignored."""
    names = list(names)
    if not names:
        return
    with admin_client(settings) as admin:
        admin.delete_topics(names, timeout_ms=10_000, raise_errors=False)


def delete_groups(group_ids: Iterable[str], settings: Settings | None = None) -> None:
    """Delete consumer groups (they must have no live members); unknown ids are ignored."""
    group_ids = list(group_ids)
    if not group_ids:
        return

    def attempt() -> dict[str, Any] | None:
        try:
            return admin.delete_groups(group_ids)
        except RetriableError:
            return None  # right after a broker (re)start its group coordinator is loading

    with admin_client(settings) as admin:
        results = wait_until(attempt, 15, 0.5, what="the group coordinator to answer")
    for group_id, error in results.items():
        if error not in ("OK", "GroupIdNotFoundError"):
            log.warning("could not delete group %s: %s", group_id, error)


def partitions_of(topic: str, settings: Settings | None = None) -> list[int]:
    """The partition numbers of ``topic``, sorted (empty if the topic does not exist)."""
    with admin_client(settings) as admin:
        described = admin.describe_topics([topic])
    return sorted(
        p["partition_index"] for t in described if t["error_code"] == 0 for p in t["partitions"]
    )


def log_offsets(topic: str, settings: Settings | None = None) -> list[dict[str, int]]:
    """Per partition: the first offset still stored, the end offset (the next one to
    be written) and how many records lie between. Retention moves the first offset."""
    tps = [TopicPartition(topic, p) for p in partitions_of(topic, settings)]
    with admin_client(settings) as admin:
        first = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
        end = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
    return [
        {
            "partition": tp.partition,
            "first_offset": first[tp].offset,
            "end_offset": end[tp].offset,
            "records": end[tp].offset - first[tp].offset,
        }
        for tp in tps
    ]


def group_offsets(
    group_id: str, topic: str, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Per partition of ``topic``: the group's committed offset (the next record it
    will read; ``None`` if it never committed one), the end offset, and the lag
    (records written that the group has not yet committed as read)."""
    ends = {row["partition"]: row["end_offset"] for row in log_offsets(topic, settings)}
    with admin_client(settings) as admin:
        committed = admin.list_group_offsets({group_id: None}).get(group_id, {})
    by_partition = {tp.partition: meta.offset for tp, meta in committed.items()
                    if tp.topic == topic and meta.offset >= 0}
    rows = []
    for partition, end in sorted(ends.items()):
        done = by_partition.get(partition)
        rows.append({
            "partition": partition,
            "committed": done,
            "end_offset": end,
            "lag": None if done is None else end - done,
        })
    return rows


def config_values(
    kind: str, name: str | None, keys: Iterable[str], settings: Settings | None = None
) -> list[dict[str, Any]]:
    """The effective value of each config ``key`` of a topic (``kind='topic'``, ``name``
    its name) or of the broker (``kind='broker'``, ``name`` ignored: the first broker),
    where the value comes from, and Kafka's built-in default where the broker reports
    it (it does for broker settings, not for a topic's own overrides: ``None``)."""
    keys = list(keys)
    with admin_client(settings) as admin:
        if kind == "broker":
            name = str(admin.describe_cluster()["brokers"][0]["broker_id"])
        types = {"topic": ConfigResourceType.TOPIC, "broker": ConfigResourceType.BROKER}
        found = admin.describe_configs(
            [ConfigResource(types[kind], name, dict.fromkeys(keys))],
            include_synonyms=True, config_filter="all",
        )[kind][name]
    rows = []
    for key in keys:
        entry = found[key]
        defaults = [s["value"] for s in entry["synonyms"] if s["source"] == "DEFAULT_CONFIG"]
        rows.append({
            "setting": key,
            "value": entry["value"],
            "set by": entry["config_source"],
            "Kafka default": defaults[0] if defaults
            else entry["value"] if entry["config_source"] == "DEFAULT_CONFIG" else None,
        })
    return rows


def list_names(settings: Settings | None = None) -> dict[str, list[str]]:
    """The names of every topic and every consumer group on the broker."""
    with admin_client(settings) as admin:
        return {"topics": sorted(admin.list_topics()),
                "groups": sorted(g["group_id"] for g in admin.list_groups())}


def topic_bytes_on_disk(topic: str, settings: Settings | None = None) -> int | None:
    """What the brokers report as the size of ``topic``'s log segments, in bytes."""
    with admin_client(settings) as admin:
        dirs = admin.describe_log_dirs(topic_partitions=[topic])
    sizes = [
        part["partition_size"]
        for broker in dirs for log_dir in broker.get("log_dirs", [])
        for t in log_dir.get("topics", []) if t["name"] == topic
        for part in t["partitions"]
    ]
    return sum(sizes) if sizes else None


def group_members(group_id: str, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The live members of a consumer group as the broker sees them: client id and
    the partitions assigned to each (``{topic: [partitions]}``); empty if none."""
    with admin_client(settings) as admin:
        group = admin.describe_groups([group_id]).get(group_id) or {}
    members = []
    for member in group.get("members") or []:
        assigned = (member.get("member_assignment") or {}).get("assigned_partitions") or []
        members.append({"client_id": member["client_id"],
                        "member_id": member["member_id"],
                        "partitions": {a["topic"]: sorted(a["partitions"]) for a in assigned}})
    return sorted(members, key=lambda m: m["member_id"])


# ------------------------------------------------------------- the live view


def cluster_state(admin: KafkaAdminClient, wanted: Callable[[str], bool]) -> dict[str, Any]:
    """One look at the cluster for the live view, on an open ``admin`` client: the
    brokers; every topic and group name; and for the ``wanted`` topics their
    partitions (leader, replicas, in-sync replicas, log-start and end offsets), for
    the ``wanted`` groups their state, members with assigned partitions, and
    committed offsets. About seven requests, however many topics and groups."""
    cluster = admin.describe_cluster()
    described = admin.describe_topics()  # every topic, with leaders and ISR, in one request
    topics = {
        t["name"]: sorted(t["partitions"], key=lambda p: p["partition_index"])
        for t in described
        if t["error_code"] == 0 and not t["is_internal"] and not t["name"].startswith("__")
    }
    shown = {name: parts for name, parts in topics.items() if wanted(name)}
    offsets = _log_bounds(admin, shown)
    listed = {g["group_id"]: g for g in admin.list_groups()}
    groups = sorted(g for g in listed if wanted(g))
    return {
        "brokers": [{"id": b["broker_id"], "host": b["host"], "port": b["port"]}
                    for b in cluster["brokers"]],
        "names": {"topics": sorted(topics), "groups": sorted(listed)},
        "topics": {
            name: [{
                "partition": p["partition_index"],
                "leader": p["leader_id"],
                "replicas": p["replica_nodes"],
                "isr": p["isr_nodes"],
                **offsets.get((name, p["partition_index"]), {"start": None, "end": None}),
            } for p in parts]
            for name, parts in shown.items()
        },
        "groups": _groups(admin, groups, listed),
    }


def _log_bounds(admin: KafkaAdminClient, topics: dict[str, list]) -> dict[tuple, dict]:
    """(topic, partition) -> log-start and end offset, in two requests per leader."""
    every = {name: [TopicPartition(name, p["partition_index"]) for p in parts]
             for name, parts in topics.items()}
    try:
        return _bounds(admin, [tp for tps in every.values() for tp in tps])
    except KafkaTimeoutError:
        raise
    except KafkaError:
        # a topic created or deleted a moment ago may have no leader: leave out its
        # offsets, not everyone's
        found: dict[tuple, dict] = {}
        for tps in every.values():
            try:
                found.update(_bounds(admin, tps))
            except KafkaTimeoutError:
                raise
            except KafkaError as exc:
                log.debug("no offsets for %s yet: %s", tps[0].topic, exc)
        return found


def _bounds(admin: KafkaAdminClient, tps: list[TopicPartition]) -> dict[tuple, dict]:
    if not tps:
        return {}
    start = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
    end = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
    return {(tp.topic, tp.partition): {"start": start[tp].offset, "end": end[tp].offset}
            for tp in tps}


def _groups(admin: KafkaAdminClient, group_ids: list[str], listed: dict[str, dict]
            ) -> dict[str, dict[str, Any]]:
    if not group_ids:
        return {}
    try:
        described = admin.describe_groups(group_ids)
        committed = admin.list_group_offsets({g: None for g in group_ids})
    except KafkaTimeoutError:
        raise
    except KafkaError as exc:
        # a group being deleted right now fails the whole batch: its state and
        # members are still shown; offsets come back at the next poll
        log.debug("could not describe groups %s: %s", group_ids, exc)
        described, committed = {}, {}
    groups = {}
    for group_id in group_ids:
        members = []
        for member in (described.get(group_id) or {}).get("members") or []:
            assigned = (member.get("member_assignment") or {}).get("assigned_partitions") or []
            members.append({
                "member_id": member["member_id"],
                "client_id": member["client_id"],
                "host": member.get("client_host", "").lstrip("/"),
                "assigned": {a["topic"]: sorted(a["partitions"]) for a in assigned},
                "subscribed": sorted((member.get("member_metadata") or {}).get("topics") or []),
            })
        offsets: dict[str, dict[int, int]] = {}
        for tp, meta in (committed.get(group_id) or {}).items():
            if meta.offset >= 0:
                offsets.setdefault(tp.topic, {})[tp.partition] = meta.offset
        groups[group_id] = {
            "state": listed[group_id].get("group_state"),
            "members": sorted(members, key=lambda m: m["client_id"] + m["member_id"]),
            "committed": offsets,
        }
    return groups
