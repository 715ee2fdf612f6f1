"""The launcher: the brokers this session uses, and a full up/down cycle in a private home."""

import json
import subprocess
import sys

import pytest

from queue_exp import brokers
from queue_exp.brokers import procs
from queue_exp.config import read_state
from queue_exp.errors import LauncherError


def test_up_is_idempotent_and_reports_the_session_brokers():
    again = brokers.up()
    assert again["kafka"]["started"] is False and again["rabbitmq"]["started"] is False
    status = brokers.status()
    assert status["kafka"]["reachable"] and status["rabbitmq"]["reachable"]
    assert "***" in status["rabbitmq"]["address"]


def test_embedded_brokers_listen_on_loopback_only():
    state = read_state()
    ports = set()
    for name in ("kafka", "rabbitmq"):
        if state.get(name, {}).get("managed") and state[name].get("pid"):
            ports |= set(state[name]["ports"].values())
    if not ports:
        pytest.skip("this session uses external brokers")
    found = procs.listening(ports)
    assert found, "no listening socket found for the embedded brokers"
    assert {address for address, _ in found} <= procs.LOOPBACK, found


def test_explicit_env_var_to_a_dead_address_is_a_clear_error(monkeypatch):
    port = procs.free_port()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
    with pytest.raises(LauncherError, match=f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}.*unset"):
        brokers.up(["kafka"])


@pytest.mark.slow
def test_full_cycle_in_a_private_home_leaves_nothing_behind(tmp_path):
    """`brokers up` from nothing, then `brokers down`: no process, no port (incl. epmd)."""
    env = brokers.private_env(tmp_path)
    # the Docker default addresses must not be taken for "already running" here
    cli = [sys.executable, "-m", "queue_exp", "brokers"]
    if procs.port_open("localhost", 9092) or procs.port_open("localhost", 5672):
        pytest.skip("a broker runs on a default port; this test needs them free")
    up = subprocess.run([*cli, "up"], env=env, capture_output=True, text=True, timeout=180)
    assert up.returncode == 0, up.stderr
    assert "kafka: started" in up.stdout and "rabbitmq: started" in up.stdout
    state = json.loads((tmp_path / "state.json").read_text())
    pids = [state[n]["pid"] for n in ("kafka", "rabbitmq")]
    ports = set(state["kafka"]["ports"].values()) | set(state["rabbitmq"]["ports"].values())
    try:
        assert all(procs.pid_alive(pid) for pid in pids)
        assert len(procs.listening(ports)) >= len(ports)
        status = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True,
                                timeout=60)
        assert status.stdout.count(" up ") == 2, status.stdout
    finally:
        down = subprocess.run([*cli, "down"], env=env, capture_output=True, text=True,
                              timeout=120)
    assert down.returncode == 0, down.stderr
    assert "kafka: stopped" in down.stdout and "rabbitmq: stopped" in down.stdout
    assert not any(procs.pid_alive(pid) for pid in pids)
    for pid in pids:
        assert procs.tree(pid) == []
    assert procs.listening(ports) == set()
    again = subprocess.run([*cli, "down"], env=env, capture_output=True, text=True, timeout=60)
    assert "nothing to stop" in again.stdout
