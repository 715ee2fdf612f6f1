"""Process and port utilities for the broker launcher (Linux, loopback only):
free ports, process trees, memory and CPU (through psutil), a bounded stop."""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
from collections.abc import Callable
from collections.abc import Collection
from pathlib import Path

import psutil

from queue_exp.errors import LauncherError
from queue_exp.waiting import wait_until

log = logging.getLogger(__name__)

# rabbitmqctl and the other Erlang CLI tools take their own distribution port from
# here (inet_dist_listen_min/max in rabbitmq-env): a node must not sit in it
CLI_DIST_PORTS = range(35672, 35683)


def free_port(host: str = "127.0.0.1", avoid: Collection[int] = ()) -> int:
    """A port nobody listens on right now (the kernel picks it), outside the range
    RabbitMQ's CLI tools use for themselves and not one of ``avoid`` (ports already
    handed out but not yet listened on)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in CLI_DIST_PORTS and port not in avoid:
            return port


def ephemeral_ports() -> range:
    """The ports the kernel hands out to outgoing connections (and to ``bind(0)``)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


def quiet_port(host: str = "127.0.0.1", avoid: Collection[int] = ()) -> int:
    """A free port below the ephemeral range: no outgoing connection can take it
    between now and the moment a broker binds it (a port ``bind(0)`` picked can
    be, and a node that starts many seconds later then fails to listen)."""
    low = min(ephemeral_ports().start, 32768)
    for _ in range(1000):
        port = random.randrange(20000, low)
        if port not in CLI_DIST_PORTS and port not in avoid and port_is_free(port, host):
            return port
    return free_port(host, avoid)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def choose_ports(
    names: tuple[str, ...], previous: dict, preferred: dict | None = None,
    host: str = "127.0.0.1", avoid: Collection[int] = (), quiet: bool = False,
) -> dict[str, int]:
    """A port per name: the preferred one, else last run's (so clients that
    remember an address still find the broker after a restart), else a free one
    (with ``quiet``, one below the ephemeral range: :func:`quiet_port`); never one
    of ``avoid`` or one chosen for another name."""
    chosen: dict[str, int] = {}
    for name in names:
        taken = {*avoid, *chosen.values()}
        candidates = [(preferred or {}).get(name), (previous or {}).get(name)]
        chosen[name] = next(
            (port for port in candidates
             if port and port not in taken and port_is_free(port, host)),
            None,
        ) or (quiet_port if quiet else free_port)(avoid=taken)
    return chosen


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Does something accept TCP connections on host:port?"""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def listening(ports: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket on one of ``ports``."""
    return {(conn.laddr.ip, conn.laddr.port)
            for conn in psutil.net_connections(kind="tcp")
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port in ports}


LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}  # the last: a JVM's IPv4 loopback bind


def pid_alive(pid: int | None, marker: str | None = None) -> bool:
    """Is ``pid`` a live (non-zombie) process whose command line contains ``marker``?

    The marker guards against a recycled pid being mistaken for our broker.
    """
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            try:  # our own child: reap it so it does not linger
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            return False
        return marker is None or marker in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def cmdline(pid: int) -> str:
    """The command line of ``pid`` ("" if it is gone)."""
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""


def _gone(pid: int) -> bool:
    return not pid_alive(pid)


def _exited(proc: psutil.Process) -> bool:
    """Has this very process (same pid *and* start time) exited, or is it a zombie?"""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def signal_until_gone(pid: int, sig: signal.Signals, gone: Callable[[], bool],
                      timeout_s: float, name: str) -> None:
    """Send ``sig`` to ``pid`` and wait until ``gone()`` and the process has exited; if
    not within ``timeout_s``, SIGKILL it and wait (at most 10 s) for that.

    "Exited" is the process itself, not ``gone()`` alone: a dying JVM's command line
    is empty a moment before it has exited, so a check by command line says "gone"
    too early. The process is held from before the signal (pid and start time), so a
    recycled pid is never waited on or killed."""
    try:
        proc = psutil.Process(pid)
        proc.send_signal(sig)
    except psutil.NoSuchProcess:
        return

    def finished() -> bool:
        return gone() and _exited(proc)

    try:
        wait_until(finished, timeout_s, 0.05)
    except TimeoutError:
        log.warning("%s did not stop within %.0f s: SIGKILL", name, timeout_s)
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            return
        wait_until(finished, 10, 0.05, what=f"{name} to exit")


def stop_process_group(pid: int, marker: str | None, timeout_s: float = 30.0) -> bool:
    """SIGTERM the process group led by ``pid``, wait, then SIGKILL. True if it stopped."""
    if not pid_alive(pid, marker):
        return True
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        try:
            wait_until(lambda: _gone(pid), wait_s, 0.1)
            return True
        except TimeoutError:
            continue
    return False


def tree(pid: int | None) -> list[psutil.Process]:
    """``pid`` and every live (non-zombie) process below it (a broker and its helpers)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError, TypeError):
        return []
    return [p for p in procs if _running(p)]


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of ``pid`` and the processes it started, in MiB."""
    if not pid_alive(pid):
        return None
    total = 0
    for proc in tree(pid):
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return round(total / 2**20, 1)


def cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds (user + system) used so far by ``pid`` and the processes it
    started; ``None`` if it is not running."""
    total, seen = 0.0, False
    for proc in tree(pid):
        try:
            times = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += times.user + times.system
        seen = True
    return total if seen else None


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file (or a note that it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def await_ready(
    proc: subprocess.Popen,
    broker: str,
    address: str,
    is_ready: Callable[[], bool],
    timeout_s: float,
    logs: list[Path],
    on_timeout: Callable[[], object],
) -> None:
    """Wait until a just-started broker ``is_ready()``. Raises ``LauncherError`` with
    the tail of its logs if it exits first or is not ready within ``timeout_s``
    (then ``on_timeout()`` has stopped it)."""

    def ready() -> bool:
        if proc.poll() is not None:
            raise LauncherError(
                f"{broker} exited with code {proc.returncode} while starting; "
                + _log_tails(logs)
            )
        return is_ready()

    try:
        wait_until(ready, timeout_s, 0.2)
    except TimeoutError:
        on_timeout()
        raise LauncherError(
            f"{broker} did not accept clients on {address} within {timeout_s:.0f} s; "
            + _log_tails(logs)
        ) from None


def _log_tails(logs: list[Path]) -> str:
    return "\n".join(f"last lines of {log}:\n{tail(log)}" for log in logs)
