"""``cluster up|down|status``: three Kafka nodes and three RabbitMQ nodes on
private loopback ports, beside (never instead of) the single-node brokers.

State, data and logs live under ``QUEUE_EXP_HOME/cluster/`` (``state.json``
there); ``up()`` starts whatever node is not running and is harmless when all
are; ``down()`` stops every node and the cluster's epmd. The lessons use
:func:`use`, which returns a :class:`KafkaCluster` or :class:`RabbitCluster`
handle: addresses, settings for the clients, and ``stop``/``kill``/``start`` of
one node.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from queue_exp.brokers import procs
from queue_exp.brokers.cluster import kafka as kafka_nodes
from queue_exp.brokers.cluster import rabbitmq as rabbit_nodes
from queue_exp.brokers.launcher import locked_state
from queue_exp.config import home_dir
from queue_exp.config import read_state
from queue_exp.config import redact_url
from queue_exp.errors import LauncherError

BROKERS = ("kafka", "rabbitmq")
MODULES = {"kafka": kafka_nodes, "rabbitmq": rabbit_nodes}
NODES = (1, 2, 3)


def cluster_home() -> Path:
    return home_dir() / "cluster"


def _state_path() -> Path:
    return cluster_home() / "state.json"




def up(names: Iterable[str] = BROKERS, timeout_s: float = 120.0) -> dict[str, dict]:
    """Start whatever node of each named cluster is not running (both clusters at
    once) and wait until each cluster is whole. Returns, per cluster, ``started``
    (node ids started by this call) and ``seconds``."""
    names = _check(names)
    results: dict[str, dict] = {}
    errors: dict[str, BaseException] = {}
    with locked_state(_state_path()) as state:
        def run(name: str) -> None:
            began = time.monotonic()
            try:
                started = MODULES[name].ensure(cluster_home(), state.setdefault(name, {}),
                                               timeout_s)
                results[name] = {"started": started,
                                 "seconds": round(time.monotonic() - began, 1)}
            except BaseException as exc:  # noqa: BLE001 - reported below, per cluster
                errors[name] = exc

        threads = [threading.Thread(target=run, args=(n,), name=f"cluster-up-{n}")
                   for n in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise LauncherError("\n\n".join(f"[{n} cluster] {e}" for n, e in errors.items()))
    return results


def down(names: Iterable[str] = BROKERS, purge: bool = False) -> dict[str, bool]:
    """Stop every node of the named clusters (and the RabbitMQ cluster's epmd).
    With ``purge`` their data is deleted too (the next ``up`` starts from blank
    nodes). Returns, per cluster, whether something was running."""
    names = _check(names)
    stopped: dict[str, bool] = {}
    with locked_state(_state_path()) as state:
        for name in names:
            entry = state.get(name) or {}
            stopped[name] = MODULES[name].stop_all(entry)
            for info in entry.get("nodes", {}).values():
                info["pid"] = None
            if purge:
                shutil.rmtree(cluster_home() / name, ignore_errors=True)
                state.pop(name, None)
    return stopped


def _check(names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in BROKERS]
    if unknown:
        raise ValueError(f"no cluster named {unknown[0]!r}; there are: {', '.join(BROKERS)}")
    return names


def status() -> dict[str, dict[str, Any]]:
    """Each cluster: its addresses, and per node whether it runs, its pid and memory.
    RabbitMQ URLs have their password redacted."""
    state = read_state(_state_path())
    kafka = state.get("kafka") or {}
    rabbit = state.get("rabbitmq") or {}
    report: dict[str, dict[str, Any]] = {"kafka": {"nodes": []}, "rabbitmq": {"nodes": []}}
    if kafka.get("nodes"):
        report["kafka"]["bootstrap_servers"] = kafka_nodes.bootstrap_servers(kafka)
        report["kafka"]["version"] = kafka.get("version")
    for info in kafka_nodes.nodes(kafka):
        running = kafka_nodes.alive(info)
        report["kafka"]["nodes"].append({
            "id": info["id"], "address": f"127.0.0.1:{info['ports']['broker']}",
            **_process(info, running), "log": str(Path(info["dir"]) / "kafka.log")})
    for info in rabbit_nodes.nodes(rabbit):
        running = rabbit_nodes.alive(info)
        report["rabbitmq"]["nodes"].append({
            "name": info["name"], "amqp_url": redact_url(rabbit_nodes.amqp_url(info)),
            "management_url": rabbit_nodes.management_url(info), **_process(info, running),
            "log": str(Path(info["dir"]) / "log" / f"{info['name']}.log")})
    for name in BROKERS:
        nodes = report[name]["nodes"]
        report[name]["running"] = sum(node["running"] for node in nodes)
    return report


def _process(info: dict, running: bool) -> dict[str, Any]:
    pid = info.get("pid") if running else None
    return {"running": running, "pid": pid, "rss_mb": procs.rss_mb(pid) if pid else None}


# ---------------------------------------------------------------- one node


def _on_node(name: str, node_id: int, act: Any) -> Any:
    """``act(module, entry)`` on one node of a cluster, holding the state lock."""
    if node_id not in NODES:
        raise ValueError(f"node ids are {', '.join(map(str, NODES))}, not {node_id!r}")
    with locked_state(_state_path()) as state:
        entry = state.get(_check([name])[0]) or {}
        if str(node_id) not in entry.get("nodes", {}):
            raise LauncherError(f"there is no {name} cluster yet: `make cluster` starts one")
        return act(MODULES[name], entry)


def stop_node(name: str, node_id: int) -> bool:
    """Stop one node cleanly (SIGTERM: Kafka moves its leaderships away first,
    RabbitMQ hands over its queue leaders). True if it was running."""
    return _on_node(name, node_id, lambda m, e: m.signal_node(e, node_id, signal.SIGTERM))


def kill_node(name: str, node_id: int) -> bool:
    """Kill one node (SIGKILL to the JVM or ``beam.smp``: no goodbye, as in a crash
    or a power cut). True if it was running."""
    return _on_node(name, node_id, lambda m, e: m.signal_node(e, node_id, signal.SIGKILL))


def start_node(name: str, node_id: int, wait: bool = True, timeout_s: float = 90.0) -> None:
    """Start one node again with its ports and data; with ``wait``, return once
    the cluster counts it as a member again (else call :func:`await_node`)."""
    _on_node(name, node_id, lambda m, e: m.start_node(e, node_id, timeout_s, wait))


def await_node(name: str, node_id: int, timeout_s: float = 90.0) -> None:
    """Wait until a node (started with ``wait=False``) is a member of its cluster."""
    _on_node(name, node_id, lambda m, e: m.await_members(e, [node_id], timeout_s))
