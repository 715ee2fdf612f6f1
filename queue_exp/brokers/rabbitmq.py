"""Debian's ``rabbitmq-server`` as a plain process with private everything.

Own node name, data/log dirs, Erlang cookie (a private ``HOME``), AMQP port,
management port, distribution port and epmd port, all on 127.0.0.1. Calls the
scripts in ``/usr/lib/rabbitmq/bin`` directly: the ``/usr/sbin`` wrappers switch
to the ``rabbitmq`` user and use the system-wide cookie.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

from queue_exp.brokers import procs
from queue_exp.config import get_settings
from queue_exp.config import shared_mode
from queue_exp.errors import LauncherError
from queue_exp.waiting import wait_until

log = logging.getLogger(__name__)

BIN = Path(os.environ.get("QUEUE_EXP_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
NODE = "queue_exp@localhost"
MARKER = "rabbitmq"  # both the start script and beam.smp carry it in their command line
PORT_NAMES = ("amqp", "management", "dist", "epmd")

RABBITMQ_CONF = """\
# Written by queue_exp's launcher. `127.0.0.1:PORT`, not just PORT: a bare port
# binds every interface.
{listeners}
management.tcp.ip = {bind}
management.tcp.port = {management}
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


def base_dir(home: Path) -> Path:
    return home / "rabbitmq"


def cli_env(home: Path, ports: dict) -> dict[str, str]:
    """Environment under which the server and its CLI tools (rabbitmqctl,
    rabbitmq-plugins) find this private node."""
    base = base_dir(home)
    env = dict(os.environ)
    env.update(
        HOME=str(base / "home"),  # the Erlang cookie lives here
        RABBITMQ_NODENAME=NODE,
        RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
        RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
        RABBITMQ_MNESIA_BASE=str(base / "data"),
        RABBITMQ_LOG_BASE=str(base / "log"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
        RABBITMQ_PID_FILE=str(base / "rabbitmq.pid"),
        RABBITMQ_DIST_PORT=str(ports["dist"]),
        ERL_EPMD_PORT=str(ports["epmd"]),
        ERL_EPMD_ADDRESS="127.0.0.1",
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
    )
    return env


def _script(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise LauncherError(
            f"{path} not found: install RabbitMQ (Debian/Ubuntu: `apt-get install "
            "rabbitmq-server`), or run `docker compose up -d` and set RABBITMQ_URL."
        )
    return str(path)


def ctl(entry: dict, *args: str, timeout_s: float = 30.0,
        stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run ``rabbitmqctl`` against the embedded node."""
    home = Path(entry["home"])
    return subprocess.run(
        [_script("rabbitmqctl"), *args], env=cli_env(home, entry["ports"]),
        capture_output=True, text=True, timeout=timeout_s, input=stdin,
    )


def start(home: Path, previous: dict, timeout_s: float) -> dict:
    """Start RabbitMQ; returns its state entry once it accepts an AMQP connection."""
    from queue_exp.clients import rabbitmq  # late: keeps `brokers status` light

    server = _script("rabbitmq-server")
    if not shutil.which("erl") and not Path("/usr/lib/erlang/bin/erl").exists():
        raise LauncherError("Erlang is missing: `apt-get install rabbitmq-server` brings it.")
    base = base_dir(home)
    for sub in ("home", "data", "log"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    shared = shared_mode()  # the classroom opt-in; by default loopback only
    bind = shared.bind if shared else "127.0.0.1"
    # a shared broker takes RabbitMQ's usual ports if it can: simpler for the students
    ports = procs.choose_ports(PORT_NAMES, previous.get("ports"),
                               {"amqp": 5672, "management": 15672} if shared else None, bind)
    (base / "rabbitmq.conf").write_text(RABBITMQ_CONF.format(
        listeners=_listeners(bind, ports["amqp"]), bind=bind, **ports))
    (base / "rabbitmq-env.conf").touch()  # keep /etc/rabbitmq/rabbitmq-env.conf out
    env = cli_env(home, ports)
    if not (base / "enabled_plugins").exists():
        # the management UI and HTTP API (queue counters in the notebooks)
        plugins = subprocess.run(
            [_script("rabbitmq-plugins"), "enable", "--offline", "rabbitmq_management"],
            env=env, capture_output=True, text=True, timeout=120,
        )
        if plugins.returncode != 0:
            raise LauncherError(f"enabling rabbitmq_management failed:\n{plugins.stderr}")
    log_path = base / "log" / f"{NODE}.log"
    with open(base / "server.out", "ab") as out:
        proc = subprocess.Popen(
            [server], env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=base, start_new_session=True,
        )
    url = f"amqp://guest:guest@127.0.0.1:{ports['amqp']}/%2F"
    management_host = "127.0.0.1" if bind in ("127.0.0.1", "0.0.0.0") else bind
    entry = {
        "managed": True, "url": url, "pid": proc.pid, "ports": ports, "home": str(home),
        "management_url": f"http://{management_host}:{ports['management']}",
        "node": NODE, "log": str(log_path), "data_dir": str(base / "data"),
    }
    probe = get_settings().replace(rabbitmq_url=url, broker_timeout_ms=2000)
    procs.await_ready(
        proc, "RabbitMQ", f"127.0.0.1:{ports['amqp']}",
        lambda: procs.port_open("127.0.0.1", ports["amqp"])
        and rabbitmq.ping(probe)["reachable"],
        timeout_s, [log_path, base / "server.out"], lambda: stop(entry, 15),
    )
    if shared:
        _add_shared_user(entry, shared)
        entry["url"] = (f"amqp://{quote(shared.user, safe='')}:{quote(shared.password, safe='')}"
                        f"@{shared.advertise}:{ports['amqp']}/%2F")
        entry["management_url"] = f"http://{shared.advertise}:{ports['management']}"
    return entry


def _listeners(bind: str, port: int) -> str:
    if bind == "127.0.0.1":
        return f"listeners.tcp.default = 127.0.0.1:{port}"
    if bind == "0.0.0.0":
        return f"listeners.tcp.default = 0.0.0.0:{port}"
    # a specific address, plus loopback for the launcher's own checks and rabbitmqctl
    return f"listeners.tcp.1 = 127.0.0.1:{port}\nlisteners.tcp.2 = {bind}:{port}"


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
    ports = entry.get("ports") or {}
    epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
    if ports.get("epmd") and Path(epmd).exists():
        env = cli_env(Path(entry.get("home", ".")), ports)
        subprocess.run([epmd, "-port", str(ports["epmd"]), "-kill"], env=env,
                       capture_output=True, timeout=10)
        try:
            wait_until(lambda: not procs.port_open("127.0.0.1", ports["epmd"]), 5.0)
        except TimeoutError:
            log.warning("epmd still listens on port %s", ports["epmd"])
    return stopped


def alive(entry: dict) -> bool:
    return procs.pid_alive(entry.get("pid"), MARKER)
