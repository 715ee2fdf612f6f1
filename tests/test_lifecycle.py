"""Clean lifecycle: a notebook kernel that starts the API (twice), then restarts, leaves
no consumer connection or group member behind; `queue_exp serve` binds loopback."""

import os
import signal
import subprocess
import sys

import pytest
from jupyter_client.manager import start_new_kernel

from queue_exp import kafka_client, procs, teaching
from queue_exp.rabbit_management import Management
from tests.test_brokers import LOOPBACK, listening_addresses

pytestmark = pytest.mark.slow


def rabbit_connections(management: Management, name: str) -> int:
    connections = management._get("/connections") or []
    return sum(1 for c in connections
               if (c.get("client_properties") or {}).get("connection_name") == name)


def group_members(group: str) -> int:
    admin = kafka_client.make_admin()
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    return len(described.get("members") or [])


def run(client, code: str) -> None:
    reply = client.execute_interactive(code, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]


def test_kernel_restart_leaves_no_consumers_or_connections(namespace, settings):
    group = settings.kafka_group
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        run(client, f"""
from queue_exp.server import start_api
api = start_api(namespace={namespace!r})
assert start_api() is api  # a second start reuses the running server
assert api.post("/kafka/consume").json()["status"] == "started"
assert api.post("/rabbitmq/consume").json()["status"] == "started"
assert api.post("/rabbitmq/send", json={{"message": "x", "timestamp": "2023-01-01T12:00:00",
                                        "source": "t"}}).status_code == 200
""")
        with Management() as management:
            teaching.wait_for(lambda: group_members(group) == 1, 20, 0.5)
            teaching.wait_for(
                lambda: rabbit_connections(management, f"{namespace}.queue_exp") >= 2, 20, 0.5)
            manager.restart_kernel(now=False)  # as the Kernel menu does: a clean shutdown
            teaching.wait_for(
                lambda: rabbit_connections(management, f"{namespace}.queue_exp") == 0, 20, 0.5)
        # within 3 s, i.e. before the 6 s session timeout could expire it: the consumer
        # left the group cleanly (LeaveGroup at shutdown), it was not just abandoned
        teaching.wait_for(lambda: group_members(group) == 0, 3, 0.2)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        teaching.remove_api_resources(settings)


def test_serve_binds_loopback_only():
    port = procs.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "queue_exp", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        teaching.wait_for(lambda: procs.port_open("127.0.0.1", port), 30, 0.2)
        found = listening_addresses({port})
        assert found and {address for address, _ in found} <= LOOPBACK, found
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
