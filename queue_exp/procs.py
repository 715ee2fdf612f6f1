"""Small process and port utilities for the broker launcher (Linux, loopback only)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from queue_exp.errors import LauncherError


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


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
    host: str = "127.0.0.1",
) -> dict[str, int]:
    """A port per name: the preferred one, else last run's (so clients that
    remember an address still find the broker after a restart), else a free one."""
    chosen: dict[str, int] = {}
    for name in names:
        candidates = [(preferred or {}).get(name), (previous or {}).get(name)]
        chosen[name] = next(
            (port for port in candidates
             if port and port not in chosen.values() and port_is_free(port, host)),
            None,
        ) or free_port()
    return chosen


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Does something accept TCP connections on host:port?"""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` has passed; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def _stat_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pid_alive(pid: int | None, marker: str | None = None) -> bool:
    """Is ``pid`` a live (non-zombie) process whose command line contains ``marker``?

    The marker guards against a recycled pid being mistaken for our broker.
    """
    if not pid:
        return False
    state = _stat_state(pid)
    if state is None:
        return False
    if state == "Z":
        try:  # our own child: reap it so it does not linger
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return marker is None or marker in cmdline(pid)


def stop_process_group(pid: int, marker: str | None, timeout_s: float = 30.0) -> bool:
    """SIGTERM the process group led by ``pid``, wait, then SIGKILL. True if it stopped."""
    if not pid_alive(pid, marker):
        return True
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    if wait_until(lambda: not pid_alive(pid), timeout_s, 0.1):
        return True
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    return wait_until(lambda: not pid_alive(pid), 5.0, 0.1)


def group_pids(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) == pgid and pid_alive(int(entry.name)):
                pids.append(int(entry.name))
        except (ProcessLookupError, PermissionError):
            continue
    return pids


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of ``pid`` and the rest of its process group, in MiB."""
    if not pid_alive(pid):
        return None
    total_kb = 0
    for member in group_pids(pid) or [pid]:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return round(total_kb / 1024, 1)


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

    if not wait_until(ready, timeout_s, 0.2):
        on_timeout()
        raise LauncherError(
            f"{broker} did not accept clients on {address} within {timeout_s:.0f} s; "
            + _log_tails(logs)
        )


def _log_tails(logs: list[Path]) -> str:
    return "\n".join(f"last lines of {log}:\n{tail(log)}" for log in logs)
