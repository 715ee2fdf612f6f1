"""The brokers' own command-line tools, pointed at the session's brokers with no
address typed (python -m queue_exp tool …, and tool(…) in a notebook)."""

import os
import subprocess
import sys

import pytest

from queue_exp.brokers.tools import tool
from queue_exp.config import REPO_ROOT
from queue_exp.config import read_state
from queue_exp.course.run import Run
from queue_exp.errors import LauncherError


@pytest.fixture(scope="module")
def run():
    with Run("test-tools") as run:
        yield run


def test_kafka_topics_lists_and_describes_a_topic_of_the_run(run):
    topic = run.topic("described", partitions=3)
    listed = tool("kafka-topics", "--list")
    assert listed.ok and topic in listed.stdout.split()
    described = tool("kafka-topics", "--describe", "--topic", topic)
    assert described.ok and described.stdout.count("Partition: ") == 3


def test_a_tool_with_a_subcommand_gets_the_address_before_it():
    features = tool("kafka-features", "describe")
    assert features.ok, features.stderr
    assert "metadata.version" in features.stdout


def test_console_producer_and_consumer_round_trip(run):
    topic = run.topic("console", partitions=1)
    sent = tool("kafka-console-producer", "--topic", topic, input="first\nsecond\n")
    assert sent.ok, sent.stderr
    read = tool("kafka-console-consumer", "--topic", topic, "--from-beginning",
                "--max-messages", "2", "--timeout-ms", "10000")
    assert read.stdout.split() == ["first", "second"]


def test_rabbitmqctl_sees_a_queue_of_the_run(run):
    if not (read_state().get("rabbitmq") or {}).get("managed"):
        pytest.skip("the session's RabbitMQ is not the launcher's")
    queue = run.queue("listed")
    listed = tool("rabbitmqctl", "list_queues", "name", "messages_ready", "--quiet")
    assert listed.ok, listed.stderr
    assert any(line.split()[0] == queue for line in listed.stdout.splitlines() if line.strip())


def test_grep_keeps_the_header_and_the_rows_that_match(run):
    if not (read_state().get("rabbitmq") or {}).get("managed"):
        pytest.skip("the session's RabbitMQ is not the launcher's")
    mine = run.queue("mine")
    with Run("test-tools-other") as other:
        theirs = other.queue("theirs")
        listed = tool("rabbitmqctl", "list_queues", "name", "messages_ready")
        assert theirs in listed.stdout  # the broker has both ...
        kept = listed.grep(run.namespace)
    lines = kept.stdout.splitlines()
    assert "name\tmessages_ready" in lines  # ... the header stays ...
    assert f"{mine}\t0" in lines and theirs not in kept.stdout  # ... only this run's rows
    assert all(run.namespace in line for line in lines if "\t" in line and line[:4] != "name")


def test_a_rabbitmq_elsewhere_answers_where_to_run_the_tool(monkeypatch, tmp_path):
    # a teacher's server: no Docker here, so the answer (not an exception: a notebook
    # goes on to its next cell) says where the tool runs
    monkeypatch.setenv("RABBITMQ_URL", "amqp://guest:guest@rabbit.example:5672/%2F")
    monkeypatch.setenv("PATH", str(tmp_path))
    answer = tool("rabbitmqctl", "list_queues")
    assert not answer.ok and answer.returncode == 127
    assert "rabbit.example" in str(answer)
    assert "docker compose exec rabbitmq rabbitmqctl list_queues" in str(answer)


def test_a_rabbitmq_in_this_repositorys_compose_runs_the_tool_in_its_container(
        monkeypatch, tmp_path):
    # `docker` here is a script that records how it was called: what is tested is the
    # command the tool builds, with no Docker engine on these machines
    calls = tmp_path / "calls"
    docker = tmp_path / "docker"
    docker.write_text(f"""#!/bin/sh
echo "$@" >> {calls}
case "$*" in
  "compose ps --status running --services") echo kafka; echo rabbitmq ;;
  *) echo "queue-a 3" ;;
esac
""")
    docker.chmod(0o755)
    monkeypatch.setenv("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/%2F")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    answer = tool("rabbitmqctl", "list_queues", "name", "messages")
    assert answer.ok and answer.stdout == "queue-a 3\n"
    assert answer.command == ["docker", "compose", "--project-directory", str(REPO_ROOT),
                              "exec", "-T", "rabbitmq", "rabbitmqctl", "list_queues", "name",
                              "messages"]
    assert calls.read_text().splitlines()[-1].endswith(
        "exec -T rabbitmq rabbitmqctl list_queues name messages")


def test_an_unknown_tool_names_the_known_ones():
    with pytest.raises(LauncherError, match="kafka-topics"):
        tool("kafka-topicz")


def test_the_command_line_runs_a_tool_and_passes_its_exit_code():
    ok = subprocess.run([sys.executable, "-m", "queue_exp", "tool", "kafka-topics", "--list"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "__consumer_offsets" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "queue_exp", "tool", "kafka-topics",
                          "--describe", "--topic", "no-such-topic-here"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
