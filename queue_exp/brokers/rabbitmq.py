"""Debian's ``rabbitmq-server`` as a plain process with private everything.

Own node name, data/log dirs, Erlang cookie (a private ``HOME``), AMQP, stream,
management, distribution and epmd ports, all on 127.0.0.1. Calls the scripts in
``/usr/lib/rabbitmq/bin`` directly: the ``/usr/sbin`` wrappers switch to the
``rabbitmq`` user and use the system-wide cookie.

``QUEUE_EXP_RABBITMQ_ROOT`` names a Debian root with a newer RabbitMQ in it (see
``scripts/rabbitmq-next.sh``, which makes one with debootstrap): the node then
runs inside that chroot, with ``/proc`` mounted in a mount namespace of its own,
and is reached on loopback exactly like the host's one. Paths the node reads
from its environment are chroot-relative; the launcher keeps the same files
under ``<root>/srv/queue_exp/<home>``, one directory per ``QUEUE_EXP_HOME`` (a
digest of its path), so two checkouts can share one root without sharing data.
``QUEUE_EXP_RABBITMQ_EXTRA_CONF`` adds lines to ``rabbitmq.conf`` (e.g. a newer
broker's ``deprecated_features`` settings).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from queue_exp.brokers import procs
from queue_exp.config import get_settings
from queue_exp.config import shared_mode
from queue_exp.errors import LauncherError
from queue_exp.waiting import wait_until

log = logging.getLogger(__name__)

BIN = "/usr/lib/rabbitmq/bin"
NODE = "queue_exp@localhost"
MARKER = "rabbitmq"  # both the start script and beam.smp carry it in their command line
PORT_NAMES = ("amqp", "management", "stream", "dist", "epmd")
PLUGINS = ("rabbitmq_management", "rabbitmq_stream")

RABBITMQ_CONF = """\
# Written by queue_exp's launcher. `127.0.0.1:PORT`, not just PORT: a bare port
# binds every interface.
{listeners}
management.tcp.ip = {bind}
management.tcp.port = {management}
# the stream protocol (rstream and the other stream clients), on a port of its own
stream.listeners.tcp.default = {bind}:{stream}
stream.advertised_host = {advertise}
stream.advertised_port = {stream}
# the default guest/guest user may only connect from loopback (RabbitMQ's default)
loopback_users.guest = true
log.file.level = info
log.console = false
# Queue counters in the management HTTP API refresh about every second instead of
# every 5 s, so the notebooks can watch them change (a little CPU; fine for one
# learner): queues report their figures every 0.5 s, the management agent
# samples them every second.
collect_statistics_interval = 500
management.sample_retention_policies.global.minute = 1
management.sample_retention_policies.global.hour = 60
management.sample_retention_policies.basic.minute = 1
management.sample_retention_policies.basic.hour = 60
management.sample_retention_policies.detailed.10 = 1
"""


def _root() -> Path | None:
    root = os.environ.get("QUEUE_EXP_RABBITMQ_ROOT", "").strip()
    return Path(root).resolve() if root else None


@dataclass
class Node:
    """One RabbitMQ node's files, ports and name; how to run its scripts."""

    name: str
    base: Path  # its files, as this process sees them
    ports: dict[str, int]
    root: Path | None = None  # a chroot with another RabbitMQ in it
    cookie_home: Path | None = None  # HOME with the Erlang cookie (default: base/home)

    @classmethod
    def embedded(cls, home: Path, ports: dict[str, int]) -> Node:
        root = _root()
        # one directory per home inside a shared root: each has its own node's data
        base = (root / "srv" / "queue_exp" / hashlib.sha256(str(home).encode()).hexdigest()[:12]
                if root else home / "rabbitmq")
        return cls(NODE, base, ports, root)

    @classmethod
    def of(cls, entry: dict) -> Node:
        """The node a state entry describes."""
        root, cookie = entry.get("root"), entry.get("cookie_home")
        # entries written before nodes had a "base" kept their files in home/rabbitmq
        base = Path(entry.get("base") or Path(entry.get("home", ".")) / "rabbitmq")
        return cls(entry.get("node", NODE), base, entry.get("ports") or {},
                   Path(root) if root else None, Path(cookie) if cookie else None)

    def seen(self, path: Path) -> str:
        """``path`` as the node sees it (inside its chroot, if it has one)."""
        return "/" + str(path.relative_to(self.root)) if self.root else str(path)

    def env(self) -> dict[str, str]:
        """Environment under which the server and its CLI tools (rabbitmqctl,
        rabbitmq-plugins) find this private node."""
        base = self.seen(self.base)
        env = {} if self.root else dict(os.environ)
        if self.root:  # a clean environment inside: the host's PATH means nothing there
            env.update(PATH=f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", LANG="C.UTF-8",
                       LC_ALL="C.UTF-8")
        env.update(
            HOME=self.seen(self.cookie_home or self.base / "home"),  # the Erlang cookie
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_CONFIG_FILE=f"{base}/rabbitmq.conf",
            RABBITMQ_CONF_ENV_FILE=f"{base}/rabbitmq-env.conf",
            RABBITMQ_ADVANCED_CONFIG_FILE=f"{base}/advanced.config",
            RABBITMQ_MNESIA_BASE=f"{base}/data",
            RABBITMQ_LOG_BASE=f"{base}/log",
            RABBITMQ_ENABLED_PLUGINS_FILE=f"{base}/enabled_plugins",
            RABBITMQ_PID_FILE=f"{base}/rabbitmq.pid",
            RABBITMQ_DIST_PORT=str(self.ports["dist"]),
            ERL_EPMD_PORT=str(self.ports["epmd"]),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        if self.root:
            # Debian's /usr/sbin wrapper sets it; 4.0's rabbitmq-plugins fails without it
            plugins = sorted(self.root.glob("usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins"))
            if plugins:
                env["RABBITMQ_PLUGINS_DIR"] = self.seen(plugins[-1])
        return env

    def command(self, script: str, *args: str, server: bool = False) -> list[str]:
        """The command line that runs one of RabbitMQ's scripts for this node."""
        binary = Path(BIN) / script
        if not (self.root or Path("/")).joinpath(binary.relative_to("/")).exists():
            where = f" in {self.root}" if self.root else ""
            raise LauncherError(
                f"{binary} not found{where}: install RabbitMQ (Debian/Ubuntu: `apt-get install "
                "rabbitmq-server`), or run `docker compose up -d` and set RABBITMQ_URL.")
        return self.wrap([str(binary), *args], server)

    def wrap(self, argv: list[str], server: bool = False) -> list[str]:
        """``argv`` run as the node's own programs run: inside its chroot, if it has
        one. The server there needs /proc (its memory monitor reads it): mounted in
        a mount namespace of its own, it vanishes with the node's last process."""
        if not self.root:
            return argv
        in_root = ["env", "-i", *(f"{k}={v}" for k, v in self.env().items()),
                   "chroot", str(self.root), *argv]
        if not server:
            return in_root
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount -t proc proc "$1/proc" && shift && exec "$@"', "sh", str(self.root),
                *in_root]

    def run(self, script: str, *args: str, timeout_s: float = 30.0,
            stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(script, *args), env=self.env(), capture_output=True,
                              text=True, timeout=timeout_s, input=stdin, cwd="/")


def ctl(entry: dict, *args: str, timeout_s: float = 30.0,
        stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run ``rabbitmqctl`` against the embedded node of a state entry."""
    return Node.of(entry).run("rabbitmqctl", *args, timeout_s=timeout_s, stdin=stdin)


def prepare(node: Node, bind: str = "127.0.0.1", advertise: str = "127.0.0.1",
            extra_conf: str = "") -> None:
    """Write the node's config (plus ``extra_conf`` lines) and enable its plugins
    (offline, before it starts)."""
    if not node.root and not shutil.which("erl") and not Path("/usr/lib/erlang/bin/erl").exists():
        raise LauncherError("Erlang is missing: `apt-get install rabbitmq-server` brings it.")
    if node.root:
        _fix_hosts(node.root)
    for sub in ("home", "data", "log"):
        (node.base / sub).mkdir(parents=True, exist_ok=True)
    extra = os.environ.get("QUEUE_EXP_RABBITMQ_EXTRA_CONF", "").replace("\\n", "\n").strip()
    (node.base / "rabbitmq.conf").write_text(RABBITMQ_CONF.format(
        listeners=_listeners(bind, node.ports["amqp"]), bind=bind, advertise=advertise,
        **node.ports) + extra_conf
        + (f"# from QUEUE_EXP_RABBITMQ_EXTRA_CONF\n{extra}\n" if extra else ""))
    (node.base / "rabbitmq-env.conf").touch()  # keep /etc/rabbitmq/rabbitmq-env.conf out
    enabled = node.base / "enabled_plugins"
    if not enabled.exists() or not all(p in enabled.read_text() for p in PLUGINS):
        # the management UI and HTTP API (queue counters), and the stream protocol
        plugins = node.run("rabbitmq-plugins", "enable", "--offline", *PLUGINS, timeout_s=120)
        if plugins.returncode != 0:
            raise LauncherError(f"enabling {', '.join(PLUGINS)} failed:\n{plugins.stderr}")


def launch(node: Node) -> subprocess.Popen:
    """Start the node's server (its own process group); it is not ready yet."""
    with open(node.base / "server.out", "ab") as out:
        return subprocess.Popen(
            node.command("rabbitmq-server", server=True), env=node.env(), stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=node.base,
            start_new_session=True)


def start(home: Path, previous: dict, timeout_s: float) -> dict:
    """Start RabbitMQ; returns its state entry once it accepts an AMQP connection."""
    from queue_exp.clients import rabbitmq  # late: keeps `brokers status` light

    shared = shared_mode()  # the classroom opt-in; by default loopback only
    bind = shared.bind if shared else "127.0.0.1"
    # a shared broker takes RabbitMQ's usual ports if it can: simpler for the students
    ports = procs.choose_ports(
        PORT_NAMES, previous.get("ports"),
        {"amqp": 5672, "management": 15672, "stream": 5552} if shared else None, bind)
    node = Node.embedded(home, ports)
    prepare(node, bind, shared.advertise if shared else "127.0.0.1")
    proc = launch(node)
    url = f"amqp://guest:guest@127.0.0.1:{ports['amqp']}/%2F"
    management_host = "127.0.0.1" if bind in ("127.0.0.1", "0.0.0.0") else bind
    entry = {
        "managed": True, "url": url, "pid": proc.pid, "ports": ports, "home": str(home),
        "management_url": f"http://{management_host}:{ports['management']}",
        "stream_url": f"rabbitmq-stream://guest:guest@127.0.0.1:{ports['stream']}/%2F",
        "node": node.name, "base": str(node.base), "root": str(node.root or ""),
        "log": str(node.base / "log" / f"{node.name}.log"), "data_dir": str(node.base / "data"),
    }
    probe = get_settings().replace(rabbitmq_url=url, broker_timeout_ms=2000)
    procs.await_ready(
        proc, "RabbitMQ", f"127.0.0.1:{ports['amqp']}",
        lambda: procs.port_open("127.0.0.1", ports["amqp"])
        and rabbitmq.ping(probe)["reachable"],
        timeout_s, [Path(entry["log"]), node.base / "server.out"], lambda: stop(entry, 15),
    )
    entry["version"] = rabbitmq.ping(probe).get("version")
    if shared:
        _add_shared_user(entry, shared)
        user, password = quote(shared.user, safe=""), quote(shared.password, safe="")
        entry["url"] = f"amqp://{user}:{password}@{shared.advertise}:{ports['amqp']}/%2F"
        entry["management_url"] = f"http://{shared.advertise}:{ports['management']}"
        entry["stream_url"] = (f"rabbitmq-stream://{user}:{password}@{shared.advertise}:"
                               f"{ports['stream']}/%2F")
    return entry


def _listeners(bind: str, port: int) -> str:
    if bind == "127.0.0.1":
        return f"listeners.tcp.default = 127.0.0.1:{port}"
    if bind == "0.0.0.0":
        return f"listeners.tcp.default = 0.0.0.0:{port}"
    # a specific address, plus loopback for the launcher's own checks and rabbitmqctl
    return f"listeners.tcp.1 = 127.0.0.1:{port}\nlisteners.tcp.2 = {bind}:{port}"


def _fix_hosts(root: Path) -> None:
    """debootstrap's minimal root has no /etc/hosts: ``localhost`` would not resolve
    there, and the node would hang looking for epmd on its host name."""
    hosts = root / "etc" / "hosts"
    if "localhost" not in (hosts.read_text() if hosts.exists() else ""):
        with open(hosts, "a") as f:
            f.write("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")


def _add_shared_user(entry: dict, shared) -> None:
    """The classroom's user (administrator, for the management UI too); the password
    goes in on stdin, never on a command line other users could see."""
    exists = shared.user in ctl(entry, "list_users", "--quiet").stdout.split()
    command = ("change_password" if exists else "add_user", shared.user)
    for args, stdin in ((command, shared.password + "\n"),
                        (("set_permissions", "-p", "/", shared.user, ".*", ".*", ".*"), None),
                        (("set_user_tags", shared.user, "administrator"), None)):
        result = ctl(entry, *args, stdin=stdin)
        if result.returncode != 0:
            raise LauncherError(f"rabbitmqctl {args[0]} failed: {result.stderr.strip()}")


def stop(entry: dict, timeout_s: float = 30.0) -> bool:
    """Stop the node, then the epmd it started on its private port (epmd outlives nodes)."""
    stopped = procs.stop_process_group(entry.get("pid"), MARKER, timeout_s)
    stop_epmd(Node.of(entry))
    return stopped


def stop_epmd(node: Node) -> None:
    """Stop the epmd on the node's private port (a daemon: it outlives the node)."""
    port = node.ports.get("epmd")
    if not port or not procs.port_open("127.0.0.1", port):
        return
    epmd = "/usr/lib/erlang/bin/epmd"  # Debian's erlang-base, on the host or in the chroot
    try:
        subprocess.run(node.wrap([epmd, "-port", str(port), "-kill"]), env=node.env(),
                       capture_output=True, timeout=10, cwd="/")
        wait_until(lambda: not procs.port_open("127.0.0.1", port), 5.0)
    except (OSError, subprocess.SubprocessError, TimeoutError) as exc:
        log.warning("epmd on port %s did not stop: %s", port, exc)


def alive(entry: dict) -> bool:
    return procs.pid_alive(entry.get("pid"), MARKER)
