"""Classroom mode: only an explicit opt-in shares the brokers beyond loopback, and
then only with a user of its own. Tested on a private broker pair, connecting
over loopback (the machine's other addresses are not ours to send to)."""

import json
import os
import secrets
import subprocess
import sys

import pika
import pytest

from queue_exp import brokers
from queue_exp.brokers import procs

pytestmark = pytest.mark.slow
ANY = {"0.0.0.0", "::"}


def launcher(env, *args, timeout=180):
    return subprocess.run([sys.executable, "-m", "queue_exp", "brokers", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def private_env(tmp_path):
    env = brokers.private_env(tmp_path)
    if procs.port_open("localhost", 9092) or procs.port_open("localhost", 5672):
        pytest.skip("a broker runs on a default port; this test needs them free")
    return env


def test_opt_in_without_its_own_user_is_refused(private_env):
    env = {**private_env, "QUEUE_EXP_BIND_ADDRESS": "0.0.0.0"}
    run = launcher(env, "up", timeout=60)
    assert run.returncode == 1
    assert "QUEUE_EXP_RABBITMQ_USER" in run.stderr and "QUEUE_EXP_ADVERTISED_HOST" in run.stderr
    env.update(QUEUE_EXP_ADVERTISED_HOST="127.0.0.1", QUEUE_EXP_RABBITMQ_USER="guest",
               QUEUE_EXP_RABBITMQ_PASSWORD="guest")
    run = launcher(env, "up", timeout=60)
    assert run.returncode == 1 and "not guest" in run.stderr


def test_shared_brokers_listen_for_the_class_with_their_own_user(private_env, tmp_path):
    password = secrets.token_urlsafe(16)
    env = {**private_env, "QUEUE_EXP_BIND_ADDRESS": "0.0.0.0",
           "QUEUE_EXP_ADVERTISED_HOST": "127.0.0.1", "QUEUE_EXP_RABBITMQ_USER": "teacher",
           "QUEUE_EXP_RABBITMQ_PASSWORD": password}
    up = launcher(env, "up")
    try:
        assert up.returncode == 0, up.stderr
        assert password not in up.stdout + up.stderr
        state = json.loads((tmp_path / "state.json").read_text())
        assert oct((tmp_path / "state.json").stat().st_mode & 0o777) == "0o600"
        kafka, rabbit = state["kafka"], state["rabbitmq"]
        shared = {kafka["ports"]["broker"], rabbit["ports"]["amqp"],
                  rabbit["ports"]["management"]}
        private = {kafka["ports"]["controller"], rabbit["ports"]["dist"],
                   rabbit["ports"]["epmd"]}
        found = procs.listening(shared | private)
        assert {a for a, p in found if p in shared} <= ANY, found  # the class can connect
        assert {a for a, p in found if p in private} <= procs.LOOPBACK, found  # internals stay
        # students connect with the class user; the URL in the state file says how
        assert rabbit["url"].startswith("amqp://teacher:")
        connection = pika.BlockingConnection(pika.URLParameters(rabbit["url"]))
        assert connection.is_open
        connection.close()
        assert kafka["bootstrap_servers"] == f"127.0.0.1:{kafka['ports']['broker']}"
        # a student: two addresses and a namespace, nothing else (not even a state file)
        student = {k: v for k, v in os.environ.items() if not k.startswith("QUEUE_EXP_")}
        student.update(KAFKA_BOOTSTRAP_SERVERS=kafka["bootstrap_servers"],
                       RABBITMQ_URL=rabbit["url"], QUEUE_EXP_NAMESPACE="alice",
                       QUEUE_EXP_HOME=str(tmp_path / "student-home"))
        run = subprocess.run([sys.executable, "-c", STUDENT], env=student, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.split() == ["alice.queue_exp.messages", "kafka:hi", "rabbitmq:hi",
                                      "management:ok"], run.stdout
    finally:
        down = launcher(env, "down", timeout=120)
    assert down.returncode == 0, down.stderr


STUDENT = """
from queue_exp.course import notebook
from queue_exp.clients.rabbitmq_management import Management
from queue_exp.server import start_api
api = start_api()
print(api.settings.kafka_topic)
body = {"message": "hi", "timestamp": "2023-01-01T12:00:00", "source": "alice"}
for broker in ("kafka", "rabbitmq"):
    api.post(f"/{broker}/consume").raise_for_status()
    api.post(f"/{broker}/send", json=body).raise_for_status()
    print(f"{broker}:" + notebook.wait_for_messages(api, broker, 1, timeout_s=20)[0]["message"])
with Management() as management:
    print("management:" + ("ok" if management.overview() else "no"))
settings = api.settings
api.stop()
notebook.remove_api_resources(settings)
"""
