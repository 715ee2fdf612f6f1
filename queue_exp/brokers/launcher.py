"""The broker launcher: make sure Kafka and RabbitMQ are reachable, starting
embedded ones (real Apache Kafka, Debian's RabbitMQ) when none is.

``up()`` is idempotent. For each broker it uses, in order: the address in the
env var (``KAFKA_BOOTSTRAP_SERVERS`` / ``RABBITMQ_URL``) if set, which must
answer; an embedded broker this launcher already runs; a broker answering at
the Docker default address; else it starts an embedded one and waits until it
really accepts clients. Addresses go to ``QUEUE_EXP_HOME/state.json``, which
``queue_exp.config`` reads. ``down()`` stops only what the launcher started.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from queue_exp.brokers import kafka as embedded_kafka
from queue_exp.brokers import procs
from queue_exp.brokers import rabbitmq as embedded_rabbitmq
from queue_exp.config import DEFAULT_KAFKA
from queue_exp.config import DEFAULT_RABBITMQ
from queue_exp.config import get_settings
from queue_exp.config import home_dir
from queue_exp.config import read_state
from queue_exp.config import redact_url
from queue_exp.config import state_path
from queue_exp.errors import LauncherError
from queue_exp.waiting import wait_until

log = logging.getLogger(__name__)

BROKERS = ("kafka", "rabbitmq")
ENV_VAR = {"kafka": "KAFKA_BOOTSTRAP_SERVERS", "rabbitmq": "RABBITMQ_URL"}
ADDRESS_KEY = {"kafka": "bootstrap_servers", "rabbitmq": "url"}
DEFAULT_ADDRESS = {"kafka": DEFAULT_KAFKA, "rabbitmq": DEFAULT_RABBITMQ}
EMBEDDED = {"kafka": embedded_kafka, "rabbitmq": embedded_rabbitmq}


@contextmanager
def locked_state(path: Path) -> Iterator[dict]:
    """Hold the lock beside the state file ``path`` (one launcher at a time per home)
    around an update of the state in it; the state is written back even when the
    update failed half-way (what one broker's start recorded is kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = read_state(path)
        try:
            yield state
        finally:
            tmp = path.with_suffix(".tmp")
            # owner-only: in classroom mode the broker URL carries the shared password
            tmp.touch(mode=0o600)
            tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
            os.replace(tmp, path)


def _locked() -> AbstractContextManager[dict]:
    """The launcher's own state, locked (see :func:`locked_state`)."""
    return locked_state(state_path())


def _host_port(name: str, address: str) -> tuple[str, int]:
    if name == "kafka":
        host, _, port = address.split(",")[0].rpartition(":")
        return host, int(port)
    parts = urlsplit(address)
    return parts.hostname or "localhost", parts.port or 5672


def reachable(name: str, address: str, timeout_s: float = 3.0) -> bool:
    """Does a real broker of this kind answer at ``address``?"""
    host, port = _host_port(name, address)
    if not procs.port_open(host, port, min(timeout_s, 1.0)):
        return False
    from queue_exp.clients import kafka
    from queue_exp.clients import rabbitmq

    settings = get_settings().replace(broker_timeout_ms=int(timeout_s * 1000))
    if name == "kafka":
        return kafka.ping(settings.replace(kafka_bootstrap_servers=address))["reachable"]
    return rabbitmq.ping(settings.replace(rabbitmq_url=address))["reachable"]


def _ensure(name: str, previous: dict, timeout_s: float) -> dict:
    """One broker's state entry after making sure it is reachable (may start it)."""
    env_var = ENV_VAR[name]
    explicit = os.environ.get(env_var)
    if explicit:
        if reachable(name, explicit):
            return {"managed": False, "source": env_var, "started": False}
        raise LauncherError(
            f"{env_var}={_shown(name, explicit)} is set, but no {name} broker answers there. "
            f"Start that broker, or unset {env_var} to let the launcher start its own."
        )
    embedded = EMBEDDED[name]
    if previous.get("managed") and embedded.alive(previous):
        address = previous[ADDRESS_KEY[name]]
        try:
            wait_until(lambda: reachable(name, address), 30, 0.5)
            return {**previous, "started": False}
        except TimeoutError:
            pass
        raise LauncherError(
            f"the embedded {name} (pid {previous['pid']}) runs but does not answer at "
            f"{_shown(name, address)}; `make brokers-down` then `make brokers`. Last log lines:\n"
            + procs.tail(Path(previous.get("log", "")))
        )
    default = DEFAULT_ADDRESS[name]
    if reachable(name, default, timeout_s=2.0):
        return {"managed": False, ADDRESS_KEY[name]: default, "source": "default address",
                "started": False, "ports": previous.get("ports")}
    log.info("starting embedded %s", name)
    entry = embedded.start(home_dir(), previous, timeout_s)
    return {**entry, "source": "embedded", "started": True}


def _shown(name: str, address: str) -> str:
    return redact_url(address) if name == "rabbitmq" else address


def up(names: Iterable[str] = BROKERS, timeout_s: float = 120.0) -> dict[str, dict]:
    """Make sure each broker is reachable (in parallel); returns their state entries,
    each with ``started`` telling whether this call started it."""
    with _locked() as state:
        return _up(state, list(names), timeout_s)


def down(names: Iterable[str] = BROKERS, timeout_s: float = 30.0) -> dict[str, bool]:
    """Stop the embedded brokers this launcher started (others are left alone).
    Returns, per broker, whether something was stopped."""
    with _locked() as state:
        return _down(state, list(names), timeout_s)


def restart(name: str, timeout_s: float = 120.0) -> dict:
    """Stop and start one embedded broker on the same ports, keeping its data
    (used by the durability lessons). Holds the launcher lock throughout, so a
    concurrent `brokers up` waits instead of starting (and later stopping) a
    broker of its own in the gap."""
    with _locked() as state:
        if not (state.get(name) or {}).get("managed"):
            raise LauncherError(f"{name} is not an embedded broker; restart it where it runs.")
        _down(state, [name], 30.0)
        return _up(state, [name], timeout_s)[name]


def _up(state: dict, names: list[str], timeout_s: float) -> dict[str, dict]:
    results: dict[str, dict] = {}
    errors: dict[str, BaseException] = {}

    def run(name: str) -> None:
        try:
            results[name] = _ensure(name, state.get(name) or {}, timeout_s)
        except BaseException as exc:  # noqa: BLE001 - reported below, per broker
            errors[name] = exc

    threads = [threading.Thread(target=run, args=(n,), name=f"up-{n}") for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, entry in results.items():
        if entry.get("source") != ENV_VAR[name]:
            state[name] = {k: v for k, v in entry.items() if k != "started"}
    if errors:
        raise LauncherError("\n\n".join(f"[{n}] {e}" for n, e in errors.items()))
    return results


def _down(state: dict, names: list[str], timeout_s: float) -> dict[str, bool]:
    stopped: dict[str, bool] = {}
    for name in names:
        entry = state.get(name) or {}
        if not entry.get("managed") or not entry.get("pid"):
            stopped[name] = False
            continue
        was_alive = EMBEDDED[name].alive(entry)
        if not EMBEDDED[name].stop(entry, timeout_s):
            raise LauncherError(f"could not stop the embedded {name} (pid {entry['pid']})")
        entry["pid"] = None
        stopped[name] = was_alive
    return stopped


def private_env(home: Path) -> dict[str, str]:
    """Environment for a launcher in its own home (a test's or a benchmark's): it
    starts brokers of its own, ignoring the configured ones, and reuses the jars
    already downloaded here."""
    embedded_kafka.share_jars(Path(home))
    env = {k: v for k, v in os.environ.items() if k not in ENV_VAR.values()}
    env["QUEUE_EXP_HOME"] = str(home)
    return env


def status() -> dict[str, dict[str, Any]]:
    """Each broker: address, whether it answers, and (if embedded) pid, memory, log."""
    settings = get_settings()
    state = read_state()
    addresses = {"kafka": settings.kafka_bootstrap_servers, "rabbitmq": settings.rabbitmq_url}
    report: dict[str, dict[str, Any]] = {}
    for name in BROKERS:
        entry = state.get(name) or {}
        address = addresses[name]
        info: dict[str, Any] = {
            "address": _shown(name, address),
            "reachable": reachable(name, address, timeout_s=2.0),
            "managed": bool(entry.get("managed")) and not os.environ.get(ENV_VAR[name]),
        }
        if info["managed"]:
            info.update(
                pid=entry.get("pid") if EMBEDDED[name].alive(entry) else None,
                rss_mb=procs.rss_mb(entry.get("pid")) if EMBEDDED[name].alive(entry) else None,
                log=entry.get("log"),
            )
            for key in ("version", "management_url"):
                if key in entry:
                    info[key] = entry[key]
        report[name] = info
    return report
