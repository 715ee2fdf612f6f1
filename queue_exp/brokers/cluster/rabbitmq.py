"""Three RabbitMQ nodes from the same Debian package, joined into one cluster.

Each node (``rabbit1@localhost`` … ``rabbit3@localhost``) has its own AMQP,
management, stream and distribution ports and its own data and log dirs under
``QUEUE_EXP_HOME/cluster/rabbitmq/nodeN``; the three share one Erlang cookie (a
shared ``HOME``, written before the first start) and one epmd on a private port.
A blank node joins the others by itself on its first boot (peer discovery with
``classic_config``: the list of the three node names), so no
``stop_app``/``reset``/``join_cluster`` round is needed. The pid reported and
signalled is ``beam.smp``'s (RabbitMQ's pid file), not the start script's.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
from collections.abc import Sequence
from pathlib import Path

import psutil

from queue_exp.brokers import procs
from queue_exp.brokers import rabbitmq as embedded
from queue_exp.brokers.rabbitmq import Node
from queue_exp.errors import LauncherError
from queue_exp.waiting import wait_until

log = logging.getLogger(__name__)

NODES = (1, 2, 3)
NODE_PORTS = ("amqp", "management", "stream", "dist")
GUEST = "guest:guest"  # loopback only (loopback_users.guest = true)


def node_name(node_id: int) -> str:
    return f"rabbit{node_id}@localhost"


CLUSTER_CONF = f"""\
# One of three clustered nodes. A blank node joins the others listed here on its
# first boot; after that it remembers its cluster.
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = {node_name(1)}
cluster_formation.classic_config.nodes.2 = {node_name(2)}
cluster_formation.classic_config.nodes.3 = {node_name(3)}
# After a network partition (a node frozen, then resumed) the losing side restarts
# and rejoins, so the cluster is whole again (RabbitMQ's default: ignore, two halves).
cluster_partition_handling = autoheal
"""
# how long a silent peer (frozen, unplugged) takes to be declared down: 10 s instead
# of Erlang's 60 (a killed node is noticed at once: its connections close)
ADVANCED_CONFIG = "[{kernel, [{net_ticktime, 10}]}].\n"


def node(entry: dict, node_id: int) -> Node:
    """The :class:`~queue_exp.brokers.rabbitmq.Node` of one cluster node (its
    ``run()`` runs rabbitmqctl, rabbitmq-queues, ... against it)."""
    info = entry["nodes"][str(node_id)]
    return Node(info["name"], Path(info["dir"]), {**info["ports"], "epmd": entry["epmd"]},
                cookie_home=Path(entry["dir"]) / "home")


def amqp_url(info: dict) -> str:
    return f"amqp://{GUEST}@127.0.0.1:{info['ports']['amqp']}/%2F"


def management_url(info: dict) -> str:
    return f"http://127.0.0.1:{info['ports']['management']}"


def nodes(entry: dict) -> list[dict]:
    return [entry["nodes"][str(n)] for n in NODES if str(n) in entry.get("nodes", {})]


def _beam_pid(info: dict) -> int | None:
    try:
        return int((Path(info["dir"]) / "rabbitmq.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def alive(info: dict) -> bool:
    """Is this node's ``beam.smp`` running? Its command line names neither the
    node nor its data dir, so its environment is checked (a recycled pid is not it)."""
    for pid in dict.fromkeys((info.get("pid"), _beam_pid(info))):  # right after a start: the file
        if not procs.pid_alive(pid, "beam"):
            continue
        try:
            data = psutil.Process(pid).environ().get("RABBITMQ_MNESIA_BASE")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if data == str(Path(info["dir"]) / "data"):
            info["pid"] = pid
            return True
    return False


def ensure(base: Path, entry: dict, timeout_s: float) -> list[int]:
    """Start the nodes that are not running and wait until all three run in one
    cluster; returns the ids of the nodes started. Updates ``entry`` in place."""
    entry["dir"] = str(base / "rabbitmq")
    table = entry.setdefault("nodes", {})
    down = [n for n in NODES if not alive(table.get(str(n), {"dir": "-"}))]
    if not down:
        return []
    _write_cookie(Path(entry["dir"]) / "home")
    if len(down) == len(NODES):
        _stop_epmd(entry)  # a stale one from a crashed run
        entry["epmd"] = procs.choose_ports(("epmd",), {"epmd": entry.get("epmd")},
                                           quiet=True)["epmd"]
    taken = {entry["epmd"]} | {p for n in NODES if n not in down
                               for p in table[str(n)]["ports"].values()}
    for n in down:
        previous = table.get(str(n), {}).get("ports")
        ports = procs.choose_ports(NODE_PORTS, previous, avoid=taken, quiet=True)
        taken |= set(ports.values())
        table[str(n)] = {"id": n, "name": node_name(n), "ports": ports, "pid": None,
                         "dir": str(base / "rabbitmq" / f"node{n}")}
    for n in down:
        _launch(entry, n)
    await_members(entry, down, timeout_s)
    return down


def _write_cookie(home: Path) -> None:
    """One Erlang cookie for the three nodes and their CLI tools (Erlang refuses a
    cookie file others can read)."""
    cookie = home / ".erlang.cookie"
    cookie.parent.mkdir(parents=True, exist_ok=True)
    if not cookie.exists():
        fd = os.open(cookie, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(16).upper())
    cookie.chmod(0o600)


def _launch(entry: dict, node_id: int) -> None:
    info = entry["nodes"][str(node_id)]
    this = node(entry, node_id)
    this.base.mkdir(parents=True, exist_ok=True)
    # the plugins, listed directly (what `rabbitmq-plugins enable --offline` writes)
    (this.base / "enabled_plugins").write_text(f"[{','.join(embedded.PLUGINS)}].\n")
    (this.base / "advanced.config").write_text(ADVANCED_CONFIG)
    embedded.prepare(this, extra_conf=CLUSTER_CONF)
    (this.base / "rabbitmq.pid").unlink(missing_ok=True)
    info["wrapper_pid"] = embedded.launch(this).pid
    info["pid"] = None


def start_node(entry: dict, node_id: int, timeout_s: float = 90.0, wait: bool = True) -> None:
    """Start one node again (same name, ports and data: it rejoins the cluster);
    with ``wait``, until the cluster counts it as running."""
    info = entry["nodes"][str(node_id)]
    if not alive(info) and not _starting(info):
        _launch(entry, node_id)
    if wait:
        await_members(entry, [node_id], timeout_s)


def _starting(info: dict) -> bool:
    """Launched, but ``beam.smp`` has not written its pid yet."""
    return info.get("pid") is None and procs.pid_alive(info.get("wrapper_pid"), "rabbitmq")


def await_members(entry: dict, node_ids: Sequence[int], timeout_s: float) -> None:
    """Wait until each of ``node_ids`` accepts AMQP connections and sees every
    running node of the cluster as running, recording each ``beam.smp`` pid."""
    import httpx  # late: keeps `cluster status` light

    from queue_exp.clients import rabbitmq as client
    from queue_exp.config import get_settings

    def booted(n: int) -> bool:
        info = entry["nodes"][str(n)]
        wrapper = info.get("wrapper_pid")
        if not alive(info):  # not yet exec'd, or exited
            if not procs.pid_alive(wrapper):
                raise LauncherError(f"RabbitMQ node {info['name']} exited while starting; "
                                    + _log_tail(info))
            return False
        probe = get_settings().replace(rabbitmq_url=amqp_url(info), rabbitmq_urls=None,
                                       broker_timeout_ms=2000)
        return (procs.port_open("127.0.0.1", info["ports"]["amqp"])
                and client.ping(probe)["reachable"])

    def clustered(n: int) -> bool:
        info = entry["nodes"][str(n)]
        try:
            reply = httpx.get(f"{management_url(info)}/api/nodes", auth=tuple(GUEST.split(":")),
                              timeout=3)
        except httpx.HTTPError:
            return False
        running = {item["name"] for item in reply.json() if item.get("running")} \
            if reply.status_code == 200 else set()
        # every node whose process runs (a stopped one cannot be expected)
        return {i["name"] for i in nodes(entry) if alive(i)} <= running

    try:
        wait_until(lambda: all(booted(n) for n in node_ids), timeout_s, 0.3)
        wait_until(lambda: all(clustered(n) for n in node_ids), timeout_s, 0.3)
    except TimeoutError:
        tails = "\n".join(_log_tail(entry["nodes"][str(n)]) for n in node_ids)
        raise LauncherError(f"RabbitMQ nodes {node_ids} did not all run in one cluster "
                            f"within {timeout_s:.0f} s; {tails}") from None


def _log_tail(info: dict) -> str:
    logs = Path(info["dir"]) / "log" / f"{info['name']}.log"
    return f"last lines of {logs}:\n{procs.tail(logs, 12)}"


def signal_node(entry: dict, node_id: int, sig: signal.Signals,
                timeout_s: float = 30.0) -> bool:
    """Send ``sig`` to one node's ``beam.smp`` (SIGTERM: a clean shutdown; SIGKILL:
    a crash) and wait until the node and its start script have exited. True if it
    was running."""
    info = entry["nodes"][str(node_id)]
    if not alive(info):
        return False
    procs.signal_until_gone(info["pid"], sig, lambda: not alive(info), timeout_s,
                            f"RabbitMQ node {info['name']}")
    # the start script and beam's helpers (erl_child_setup) follow within moments
    procs.stop_process_group(info.get("wrapper_pid"), "rabbitmq", 10)
    return True


def stop_all(entry: dict, timeout_s: float = 30.0) -> bool:
    """Stop every node (clean shutdown, all at once), then the cluster's epmd."""
    import concurrent.futures

    running = [n for n in NODES if str(n) in entry.get("nodes", {})
               and alive(entry["nodes"][str(n)])]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(NODES)) as pool:
        for future in [pool.submit(signal_node, entry, n, signal.SIGTERM, timeout_s)
                       for n in running]:
            future.result()
    for info in nodes(entry):  # a start script left behind by a failed start
        procs.stop_process_group(info.get("wrapper_pid"), "rabbitmq", 10)
    _stop_epmd(entry)
    return bool(running)


def _stop_epmd(entry: dict) -> None:
    if entry.get("epmd") and entry.get("nodes"):
        embedded.stop_epmd(node(entry, int(next(iter(entry["nodes"])))))
