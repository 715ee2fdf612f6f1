"""What one viewer of ``/live`` sees: the poller's look at both brokers, cut down to
the viewer's namespace (and topic or queue, if the URL names one), with the
numbers the page draws already worked out (lag, owners, labels).

Pure functions of plain data, so they are tested without a broker or a browser.
The poller's look (``world``) has one entry per broker: ``{"status": "up", ...}``
with what :func:`queue_exp.clients.kafka_admin.cluster_state` and
:meth:`~queue_exp.clients.rabbitmq_management.Management.vhost_state` returned,
or ``{"status": "down" | "error" | "starting", ...}``.
"""

from __future__ import annotations

import re
from typing import Any

# A namespace as the URL gives it: run namespaces nest (``alice.kafka-groups.run-3fa9c2``).
NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{0,200}")
# Run namespaces end in a segment like this (see queue_exp.course.run.fresh_namespace).
RUN_SEGMENT = re.compile(r"run-[0-9a-f]{6}")
# More than this and the page would scroll for ever: the rest is counted, not drawn.
MAX_TOPICS = 12
MAX_QUEUES = 16
MAX_CONSUMERS_SHOWN = 6
MAX_NAMESPACES = 200
BUILTIN_EXCHANGE = re.compile(r"amq\..*")


def in_namespace(name: str, namespace: str) -> bool:
    return not namespace or name.startswith(namespace + ".")


def label(name: str, namespace: str) -> str:
    """``<namespace>.orders`` -> ``orders``: what the page shows (the full name on hover)."""
    return name[len(namespace) + 1:] if namespace and in_namespace(name, namespace) else name


def namespace_problem(namespace: str) -> str | None:
    if NAMESPACE.fullmatch(namespace):
        return None
    return (f"“{namespace[:80]}” is not a namespace: use letters, digits, - _ and the dots "
            "between nested namespaces (for example kafka-groups.run-3fa9c2)")


def namespaces(world: dict[str, Any], *also: str) -> list[str]:
    """The namespaces the selector offers: the first part of every name on the
    brokers (``alice``) and every notebook run's namespace (``alice.kafka-groups.run-3fa9c2``),
    plus ``also`` (the app's own and the one being viewed)."""
    names: list[str] = []
    for broker in ("kafka", "rabbitmq"):
        for kind_names in (world.get(broker) or {}).get("names", {}).values():
            names.extend(kind_names)
    found = {ns for ns in also if ns}
    for name in names:
        parts = name.split(".")
        if len(parts) < 2 or name.startswith("amq.") or not parts[0]:
            continue
        found.add(parts[0])
        for i, part in enumerate(parts[:-1]):
            if RUN_SEGMENT.fullmatch(part):
                found.add(".".join(parts[: i + 1]))
    return sorted(found)[:MAX_NAMESPACES]


def _down(state: dict[str, Any]) -> dict[str, Any] | None:
    if state.get("status") == "up":
        return None
    keys = ("status", "broker", "address", "management_url", "error", "how_to_start",
            "polled_at", "since")
    return {key: state[key] for key in keys if key in state}


# -------------------------------------------------------------------- Kafka


def _member_labels(members: list[dict], namespace: str, group_id: str) -> dict[str, str]:
    """member id -> a short name: the client id without the namespace and group
    (``consumer-2``), with a piece of the member id where client ids repeat."""
    short = {}
    group_label = label(group_id, namespace)
    for member in members:
        name = member["client_id"]
        for prefix in (group_id + ".", group_label + "."):
            if prefix in name:  # e.g. <namespace>.<group>.consumer-2
                name = name.rsplit(prefix, 1)[1] or name
                break
        else:
            name = label(name, namespace)
        short[member["member_id"]] = name
    counts: dict[str, int] = {}
    for name in short.values():
        counts[name] = counts.get(name, 0) + 1
    for member_id, name in short.items():
        if counts[name] > 1:
            short[member_id] = f"{name} #{member_id.rsplit('-', 1)[-1][:4]}"
    return short


def _group_on_topic(group_id: str, group: dict, topic: str, partitions: list[dict],
                    namespace: str) -> dict[str, Any] | None:
    """One group's view of one topic: per partition the committed offset, the lag and
    the owner; ``None`` if the group neither committed on nor is assigned the topic."""
    committed = (group.get("committed") or {}).get(topic) or {}
    members = [m for m in group.get("members") or []
               if topic in (m.get("assigned") or {}) or topic in (m.get("subscribed") or [])]
    if not committed and not members:
        return None
    group_label = label(group_id, namespace)
    names = _member_labels(members, namespace, group_id)
    owners = {p: names[m["member_id"]] for m in members
              for p in (m.get("assigned") or {}).get(topic, [])}
    rows, total = [], 0
    for part in partitions:
        p = part["partition"]
        done = committed.get(p, committed.get(str(p)))
        lag = None if done is None or part["end"] is None else max(part["end"] - done, 0)
        total += lag or 0
        rows.append({"partition": p, "committed": done, "lag": lag, "owner": owners.get(p)})
    return {
        "name": group_id,
        "label": group_label,
        "state": group.get("state"),
        "lag": total,
        "members": [{"id": m["member_id"], "label": names[m["member_id"]],
                     "host": m.get("host"),
                     "partitions": (m.get("assigned") or {}).get(topic, [])}
                    for m in members],
        "partitions": rows,
    }


def _topic(name: str, partitions: list[dict], groups: dict[str, dict],
           namespace: str) -> dict[str, Any]:
    parts = [{"partition": p["partition"], "start": p["start"], "end": p["end"],
              # in node order: Kafka lists the preferred leader first, which reads as a rank
              "leader": p.get("leader"), "replicas": sorted(p.get("replicas") or []),
              "isr": sorted(p.get("isr") or [])} for p in partitions]
    shown_groups = [g for g in (_group_on_topic(gid, group, name, parts, namespace)
                                for gid, group in sorted(groups.items())) if g]
    return {
        "name": name,
        "label": label(name, namespace),
        "partitions": parts,
        "records": sum((p["end"] or 0) - (p["start"] or 0) for p in parts),
        "groups": shown_groups,
    }


def kafka_view(state: dict[str, Any], namespace: str, topic: str | None = None
               ) -> dict[str, Any]:
    """The Kafka half of the page."""
    down = _down(state)
    if down:
        return down
    topics = {n: parts for n, parts in (state.get("topics") or {}).items()
              if in_namespace(n, namespace)}
    groups = {g: info for g, info in (state.get("groups") or {}).items()
              if in_namespace(g, namespace)}
    view: dict[str, Any] = {
        "status": "up",
        "address": state.get("address"),
        "brokers": len(state.get("brokers") or []),
        "polled_at": state.get("polled_at"),
        "problem": None,
        "empty": None,
        "hidden": 0,
        "topics": [],
    }
    names = sorted(topics)
    if topic:
        wanted = [n for n in names if n == topic or label(n, namespace) == topic]
        if not wanted:
            view["problem"] = (f"Kafka has no topic “{topic}” in {_where(namespace)}."
                               + _known("Topics there", [label(n, namespace) for n in names]))
            view["known"] = [label(n, namespace) for n in names]
            return view
        names = wanted
    elif not names:
        view["empty"] = (f"No topics in {_where(namespace)} yet. Run a cell that creates one, "
                         "for example run.topic(\"orders\"), or send a message through the "
                         "API: POST /kafka/send.")
        if groups:
            view["empty"] += f" (Consumer groups there: {', '.join(sorted(groups))}.)"
        return view
    view["hidden"] = max(len(names) - MAX_TOPICS, 0)
    view["topics"] = [_topic(n, topics[n], groups, namespace) for n in names[:MAX_TOPICS]]
    return view


# ----------------------------------------------------------------- RabbitMQ


def _queue(q: dict[str, Any], namespace: str) -> dict[str, Any]:
    rates = q.get("rates") or {}
    queue_type = q.get("type") or "classic"
    return {
        "name": q["name"],
        "label": label(q["name"], namespace),
        "type": queue_type,
        "durable": q.get("durable"),
        "exclusive": q.get("exclusive"),
        "auto_delete": q.get("auto_delete"),
        "state": q.get("state"),
        "ready": q.get("messages_ready"),
        "unacked": q.get("messages_unacknowledged"),
        "consumers": q.get("consumers"),
        # who holds what: a forgotten ack shows as one consumer's unacked growing
        "consumer_list": (q.get("consumer_list") or [])[:MAX_CONSUMERS_SHOWN],
        # the list above was cut short by this many (not: the queue's consumer count
        # minus the list, which differ for a moment while a consumer joins)
        "consumers_hidden": max(len(q.get("consumer_list") or []) - MAX_CONSUMERS_SHOWN, 0),
        "rates": {  # messages per second, None until the poller has two looks
            "publish": rates.get("publish"),
            "deliver": rates.get("deliver_get"),
            "ack": rates.get("ack"),
            "redeliver": rates.get("redeliver"),
        },
        # quorum queues and streams are replicated: one member leads
        "leader": q.get("leader") if queue_type in ("quorum", "stream") else None,
        "node": q.get("node"),
        "members": q.get("members") or [],
    }


def rabbitmq_view(state: dict[str, Any], namespace: str, queue: str | None = None
                  ) -> dict[str, Any]:
    """The RabbitMQ half of the page: exchanges -> bindings -> queues."""
    down = _down(state)
    if down:
        return down
    queues = sorted((q for q in state.get("queues") or [] if in_namespace(q["name"], namespace)),
                    key=lambda q: q["name"])
    view: dict[str, Any] = {
        "status": "up",
        "address": state.get("address"),
        "management_url": state.get("management_url"),
        "polled_at": state.get("polled_at"),
        "problem": None,
        "empty": None,
        "hidden": 0,
        "exchanges": [],
        "queues": [],
        "bindings": [],
    }
    if queue:
        wanted = [q for q in queues if queue in (q["name"], label(q["name"], namespace))]
        if not wanted:
            known = [label(q["name"], namespace) for q in queues]
            view["problem"] = (f"RabbitMQ has no queue “{queue}” in {_where(namespace)}."
                               + _known("Queues there", known))
            view["known"] = known
            return view
        queues = wanted
    view["hidden"] = max(len(queues) - MAX_QUEUES, 0)
    queues = queues[:MAX_QUEUES]
    shown = {q["name"] for q in queues}
    own_exchanges = {e["name"]: e for e in state.get("exchanges") or []
                     if e["name"] and in_namespace(e["name"], namespace)
                     and not BUILTIN_EXCHANGE.fullmatch(e["name"])}
    if queue:  # one queue: only the exchanges that feed it
        own_exchanges = {}
    bindings = [b for b in state.get("bindings") or []
                if (b["destination"] in shown or b["destination"] in own_exchanges)
                and b.get("destination_type") in ("queue", "exchange")]
    used = {b["source"] for b in bindings} | set(own_exchanges)
    every = {e["name"]: e for e in state.get("exchanges") or []}
    if not queues and not own_exchanges:
        view["empty"] = (f"No queues or exchanges in {_where(namespace)} yet. Run a cell that "
                         "declares one, for example run.queue(\"jobs\"), or send a message "
                         "through the API: POST /rabbitmq/send.")
        return view
    view["queues"] = [_queue(q, namespace) for q in queues]
    view["exchanges"] = [{
        "name": name,
        "label": "(default)" if name == "" else label(name, namespace),
        "type": (every.get(name) or {}).get("type", "direct"),
        # the built-in exchanges are shared by every namespace: their rate is everyone's
        "rate_in": None if name == "" or BUILTIN_EXCHANGE.fullmatch(name)
        else ((every.get(name) or {}).get("rates") or {}).get("publish_in"),
    } for name in sorted(used, key=lambda n: (n != "", n))]
    view["bindings"] = [{
        "source": b["source"],
        "destination": b["destination"],
        "destination_type": b["destination_type"],
        "key": b.get("routing_key", ""),
        "arguments": {k: v for k, v in (b.get("arguments") or {}).items()},
        # the default exchange routes by queue name: every queue has this binding
        "implicit": b["source"] == "",
    } for b in sorted(bindings, key=lambda b: (b["source"], b["destination"],
                                               b.get("routing_key", "")))]
    return view


def _where(namespace: str) -> str:
    return f"namespace “{namespace}”" if namespace else "any namespace"


def _known(what: str, names: list[str]) -> str:
    if not names:
        return " There is nothing there yet."
    more = f" and {len(names) - 8} more" if len(names) > 8 else ""
    return f" {what}: {', '.join(names[:8])}{more}."


# --------------------------------------------------------------- the page


def _received(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The API consumer's newest messages, as the page lists them."""
    keys = ("message", "key", "partition", "offset", "redelivered", "received_at")
    return [{k: m.get(k) for k in keys if m.get(k) is not None} for m in messages]


def build(world: dict[str, Any], namespace: str, *, topic: str | None = None,
          queue: str | None = None, show: str | None = None, own_namespace: str = "",
          recent: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Everything the page draws for one viewer. ``show``: ``kafka`` or ``rabbitmq``
    for a page with one broker only (a notebook cell's narrow IFrame); ``recent``:
    the newest messages the API's own consumers received, per broker."""
    problem = namespace_problem(namespace)
    view: dict[str, Any] = {
        "namespace": namespace,
        "own_namespace": own_namespace,
        "namespaces": namespaces(world, own_namespace, namespace) if not problem else [],
        "show": show if show in ("kafka", "rabbitmq") else None,
        "problem": problem,
        "topic": topic,
        "queue": queue,
    }
    if problem:
        return view
    view["kafka"] = kafka_view(world.get("kafka") or {}, namespace, topic)
    view["rabbitmq"] = rabbitmq_view(world.get("rabbitmq") or {}, namespace, queue)
    for broker, messages in (recent or {}).items():
        view[broker]["received"] = _received(messages)
    return view
