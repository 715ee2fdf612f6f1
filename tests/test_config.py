"""Settings precedence, redaction and namespaces (no broker needed)."""

import json

import pytest

from queue_exp.config import DEFAULT_KAFKA
from queue_exp.config import DEFAULT_RABBITMQ
from queue_exp.config import get_settings
from queue_exp.config import redact_url


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("QUEUE_EXP_HOME", str(tmp_path))
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "RABBITMQ_URL", "QUEUE_EXP_NAMESPACE",
                "RABBITMQ_MANAGEMENT_URL", "RABBITMQ_URLS", "QUEUE_EXP_RABBITMQ_QUEUE_TYPE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def write_state(home, **entries):
    (home / "state.json").write_text(json.dumps(entries))


def test_defaults_are_the_docker_addresses(home):
    settings = get_settings()
    assert settings.kafka_bootstrap_servers == DEFAULT_KAFKA
    assert settings.rabbitmq_url == DEFAULT_RABBITMQ
    assert settings.home == home.resolve()


def test_state_file_beats_defaults(home):
    write_state(
        home,
        kafka={"bootstrap_servers": "127.0.0.1:40001"},
        rabbitmq={"url": "amqp://guest:guest@127.0.0.1:40002/%2F",
                  "management_url": "http://127.0.0.1:40003"},
    )
    settings = get_settings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:40001"
    assert settings.rabbitmq_url.endswith(":40002/%2F")
    assert settings.rabbitmq_management_url == "http://127.0.0.1:40003"


def test_explicit_env_vars_beat_the_state_file(home, monkeypatch):
    write_state(home, kafka={"bootstrap_servers": "127.0.0.1:40001"},
                rabbitmq={"url": "amqp://guest:guest@127.0.0.1:40002/%2F"})
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker.example:9092")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://u:p@rabbit.example:5672/%2F")
    settings = get_settings()
    assert settings.kafka_bootstrap_servers == "broker.example:9092"
    assert settings.rabbitmq_url == "amqp://u:p@rabbit.example:5672/%2F"
    # an explicit broker: its management UI is assumed on the usual port of that host
    assert settings.rabbitmq_management_url == "http://rabbit.example:15672"


def test_unreadable_state_file_falls_back_to_defaults(home):
    (home / "state.json").write_text("{not json")
    assert get_settings().kafka_bootstrap_servers == DEFAULT_KAFKA


def test_namespace_prefixes_every_name(home, monkeypatch):
    assert get_settings().kafka_topic == "queue_exp.messages"
    monkeypatch.setenv("QUEUE_EXP_NAMESPACE", "alice")
    settings = get_settings()
    assert settings.kafka_topic == "alice.queue_exp.messages"
    assert settings.kafka_group == "alice.queue_exp.api"
    assert settings.rabbitmq_queue == "alice.queue_exp.messages"
    assert settings.name("orders") == "alice.orders"


def test_bad_number_in_env_says_which_variable(home, monkeypatch):
    monkeypatch.setenv("QUEUE_EXP_MAX_STORED_MESSAGES", "lots")
    with pytest.raises(ValueError, match="QUEUE_EXP_MAX_STORED_MESSAGES"):
        get_settings()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://guest:guest@localhost:5672/%2F", "amqp://guest:***@localhost:5672/%2F"),
        ("amqp://teacher:s3cr3t@10.0.0.5/%2F", "amqp://teacher:***@10.0.0.5/%2F"),
        ("amqp://localhost:5672/%2F", "amqp://localhost:5672/%2F"),
    ],
)
def test_redact_url_hides_passwords(url, shown):
    assert redact_url(url) == shown


def test_several_rabbitmq_nodes_come_in_order_first_one_as_the_url(home, monkeypatch):
    write_state(home, rabbitmq={"url": "amqp://guest:guest@127.0.0.1:40002/%2F"})
    nodes = [f"amqp://u:secret@node{n}.example:5672/%2F" for n in (1, 2, 3)]
    monkeypatch.setenv("RABBITMQ_URLS", ", ".join(nodes))
    settings = get_settings()
    assert settings.rabbitmq_url_list == nodes
    assert settings.rabbitmq_url == nodes[0]  # RABBITMQ_URLS beats the state file
    assert "secret" not in settings.rabbitmq_url_redacted
    assert settings.rabbitmq_url_redacted.count("u:***@") == 3
    # on a cluster the API's queue is replicated
    assert settings.rabbitmq_queue_arguments == {"x-queue-type": "quorum"}
    monkeypatch.setenv("QUEUE_EXP_RABBITMQ_QUEUE_TYPE", "classic")
    assert get_settings().rabbitmq_queue_arguments == {}


def test_one_rabbitmq_node_keeps_a_classic_queue(home):
    settings = get_settings()
    assert settings.rabbitmq_url_list == [settings.rabbitmq_url]
    assert settings.rabbitmq_queue_arguments == {}


def test_a_queue_type_that_does_not_exist_is_named(home, monkeypatch):
    monkeypatch.setenv("QUEUE_EXP_RABBITMQ_QUEUE_TYPE", "mirrored")
    with pytest.raises(ValueError, match="QUEUE_EXP_RABBITMQ_QUEUE_TYPE is classic or quorum"):
        get_settings()
