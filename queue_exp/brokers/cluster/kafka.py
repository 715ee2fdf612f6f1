"""Three genuine Apache Kafka nodes in KRaft mode, each broker *and* controller,
with a fixed voter set (``controller.quorum.voters``) and one cluster id.

Each node has its own ``node.id`` (1-3), client and controller ports on
127.0.0.1 and a log dir under ``QUEUE_EXP_HOME/cluster/kafka/nodeN``. The failure
detection timings are shortened for teaching (see ``TEACHING_TIMINGS``); the
notebooks say so where it shows.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from queue_exp.brokers import kafka as embedded
from queue_exp.brokers import procs
from queue_exp.config import home_dir
from queue_exp.errors import LauncherError
from queue_exp.waiting import wait_until

log = logging.getLogger(__name__)

NODES = (1, 2, 3)
PORT_NAMES = ("broker", "controller")
HEAP = os.environ.get("QUEUE_EXP_CLUSTER_KAFKA_HEAP", "256m")
# G1 with a small heap: the JIT, metaspace and code cache make up most of a node's memory
JVM_FLAGS = ("-Xms64m", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError",
             "-XX:MaxMetaspaceSize=128m", "-XX:ReservedCodeCacheSize=64m", "-Xss512k")

NODE_PROPERTIES = """\
# Written by queue_exp's cluster launcher: node {node_id} of a 3-node KRaft cluster,
# each node both broker and controller, with a fixed set of voters.
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{broker}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
# Topics exist only when someone creates them; three replicas unless told otherwise.
# (min.insync.replicas stays 1 broker-wide and is set per topic: a broker-wide 2
# would refuse every acks=all send to a topic created with one replica.)
auto.create.topics.enable=false
default.replication.factor=3
""" + embedded.internal_topics(partitions=3, replicas=3, min_isr=2) + """\
group.initial.rebalance.delay.ms=0
# The log cleaner's dedupe buffer is allocated on the heap at startup: 128 MiB by
# default, more than this node's whole heap.
log.cleaner.dedupe.buffer.size=8388608
"""

# Failure detection for a classroom: seconds instead of tens of seconds.
# name -> (value here, Kafka's default)
TEACHING_TIMINGS = {
    # a broker that stops heartbeating is fenced after this; its partitions get new leaders
    "broker.session.timeout.ms": (3000, 9000),
    "broker.heartbeat.interval.ms": (500, 2000),
    # a controller that hears nothing from the active controller for this long
    # starts an election; a candidate retries after the election timeout
    "controller.quorum.fetch.timeout.ms": (1000, 2000),
    "controller.quorum.election.timeout.ms": (500, 1000),
    "controller.quorum.election.backoff.max.ms": (500, 1000),
    "controller.quorum.request.timeout.ms": (1000, 2000),
    # a follower that is alive but does not keep up leaves the ISR after this
    "replica.lag.time.max.ms": (10000, 30000),
    # leadership goes back to a returning node's partitions this often (seconds)
    "leader.imbalance.check.interval.seconds": (10, 300),
}


def node_dir(base: Path, node_id: int) -> Path:
    return base / "kafka" / f"node{node_id}"


def properties(node_dir_: Path) -> Path:
    return node_dir_ / "server.properties"


def bootstrap_servers(entry: dict) -> str:
    return ",".join(f"127.0.0.1:{node['ports']['broker']}" for node in nodes(entry))


def nodes(entry: dict) -> list[dict]:
    """The node entries, by node id."""
    return [entry["nodes"][str(n)] for n in NODES if str(n) in entry.get("nodes", {})]


def alive(node: dict) -> bool:
    """Is this node's JVM running (its command line names its own properties file)?"""
    return procs.pid_alive(node.get("pid"), str(properties(Path(node["dir"]))))


def ensure(base: Path, entry: dict, timeout_s: float) -> list[int]:
    """Start the nodes of the cluster that are not running (formatting log dirs the
    first time) and wait until all three are unfenced brokers; returns the ids of
    the nodes started. ``entry`` (the cluster's state) is updated in place."""
    java = embedded.java_binary()
    libs, version = embedded.ensure_jars(home_dir())
    entry.setdefault("cluster_id", embedded.new_cluster_id())
    entry.update(version=version, dir=str(base / "kafka"))
    table = entry.setdefault("nodes", {})
    down = [n for n in NODES if not alive(table.get(str(n), {"dir": "-"}))]
    taken = {p for n in NODES if n not in down for p in table[str(n)]["ports"].values()}
    for n in down:
        previous = table.get(str(n), {}).get("ports")
        ports = procs.choose_ports(PORT_NAMES, previous, avoid=taken, quiet=True)
        taken |= set(ports.values())
        table[str(n)] = {"id": n, "ports": ports, "dir": str(node_dir(base, n)), "pid": None}
    _write_properties(entry)
    jvm = _jvm(java, libs, entry)
    _each(down, lambda n: embedded.format_storage(
        jvm, properties(node_dir(base, n)), node_dir(base, n) / "data", entry["cluster_id"]))
    for n in down:
        _launch(entry, n, jvm)
    if down:
        await_members(entry, NODES, timeout_s)
    return down


def _jvm(java: str, libs: Path, entry: dict) -> list[str]:
    return embedded.jvm_command(java, libs, Path(entry["dir"]) / "log4j2.properties", HEAP,
                                *JVM_FLAGS)


def _each(ids: list[int], action: Callable[[int], Any]) -> None:
    """``action(n)`` for every node id at once (each is mostly a JVM starting up)."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(NODES)) as pool:
        for future in [pool.submit(action, n) for n in ids]:
            future.result()


def _write_properties(entry: dict) -> None:
    voters = ",".join(f"{node['id']}@127.0.0.1:{node['ports']['controller']}"
                      for node in nodes(entry))
    timings = "".join(f"{name}={value}\n" for name, (value, _default) in TEACHING_TIMINGS.items())
    for node in nodes(entry):
        directory = Path(node["dir"])
        (directory / "data").mkdir(parents=True, exist_ok=True)
        properties(directory).write_text(
            NODE_PROPERTIES.format(node_id=node["id"], voters=voters, data_dir=directory / "data",
                                   **node["ports"])
            + "# failure detection shortened for teaching (Kafka's defaults are longer)\n"
            + timings)


def _launch(entry: dict, node_id: int, jvm: list[str]) -> None:
    node = entry["nodes"][str(node_id)]
    directory = Path(node["dir"])
    proc = embedded.launch(jvm, properties(directory), directory / "kafka.log")
    node["pid"] = proc.pid


def start_node(entry: dict, node_id: int, timeout_s: float = 90.0, wait: bool = True) -> None:
    """Start one node again (same ports, same log dir); with ``wait``, until it is
    an unfenced broker again."""
    node = entry["nodes"][str(node_id)]
    if not alive(node):
        libs, _version = embedded.ensure_jars(home_dir())
        _launch(entry, node_id, _jvm(embedded.java_binary(), libs, entry))
    if wait:
        await_members(entry, (node_id,), timeout_s)


def signal_node(entry: dict, node_id: int, sig: signal.Signals, timeout_s: float = 20.0) -> bool:
    """Send ``sig`` to one node's JVM and wait until it has exited; a node that
    ignores SIGTERM that long (the last one standing waits for a controller quorum
    that is gone) gets SIGKILL. True if it was running."""
    node = entry["nodes"][str(node_id)]
    if not alive(node):
        return False
    procs.signal_until_gone(node["pid"], sig, lambda: not alive(node), timeout_s,
                            f"Kafka node {node_id}")
    return True


def stop_all(entry: dict, timeout_s: float = 20.0) -> bool:
    """Stop every node (SIGTERM to all at once, SIGKILL after ``timeout_s``)."""
    running = [n for n in NODES if str(n) in entry.get("nodes", {})
               and alive(entry["nodes"][str(n)])]
    if running:
        _each(running, lambda n: signal_node(entry, n, signal.SIGTERM, timeout_s))
    return bool(running)


def await_members(entry: dict, node_ids: Sequence[int], timeout_s: float) -> None:
    """Wait until each of ``node_ids`` answers on its port and the cluster counts it
    as an unfenced broker. ``LauncherError`` with the log's last lines otherwise."""
    from kafka import KafkaAdminClient  # late: keeps `cluster status` light

    servers = bootstrap_servers(entry)
    admin: list[KafkaAdminClient] = []
    gone_since: dict[int, float] = {}

    def ready() -> bool:
        for n in node_ids:
            node = entry["nodes"][str(n)]
            if alive(node):
                gone_since.pop(n, None)
                continue
            # gone: give its log a moment to say why (a JVM that dies at once has
            # not written a line yet)
            if time.monotonic() - gone_since.setdefault(n, time.monotonic()) > 2:
                raise LauncherError(f"Kafka node {n} exited while starting; last lines of "
                                    f"its log:\n{procs.tail(Path(node['dir']) / 'kafka.log')}")
            return False
        if not all(procs.port_open("127.0.0.1", entry["nodes"][str(n)]["ports"]["broker"])
                   for n in node_ids):
            return False  # a client made before the listener is up backs off for long
        try:
            if not admin:
                admin.append(KafkaAdminClient(
                    bootstrap_servers=servers, request_timeout_ms=3000,
                    bootstrap_timeout_ms=3000, reconnect_backoff_max_ms=500))
            brokers = admin[0].describe_cluster()["brokers"]
        except Exception as exc:  # noqa: BLE001 - not ready yet, whatever it says
            log.debug("Kafka cluster not ready: %r", exc)
            return False
        live = {b["broker_id"] for b in brokers if not b.get("is_fenced")}
        return set(node_ids) <= live

    try:
        wait_until(ready, timeout_s, 0.3)
    except TimeoutError:
        tails = "\n".join(
            f"node {n}:\n{procs.tail(Path(entry['nodes'][str(n)]['dir']) / 'kafka.log', 10)}"
            for n in node_ids)
        raise LauncherError(f"Kafka nodes {list(node_ids)} were not all live brokers within "
                            f"{timeout_s:.0f} s; last log lines:\n{tails}") from None
    finally:
        for client in admin:
            client.close()
