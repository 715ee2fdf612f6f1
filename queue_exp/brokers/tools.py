"""The brokers' own command-line tools, as the Kafka quickstart and the RabbitMQ
tutorials use them, pointed at the configured brokers with no address typed:

    python -m queue_exp tool kafka-topics --list
    python -m queue_exp tool kafka-consumer-groups --describe --group orders
    python -m queue_exp tool rabbitmqctl list_queues name messages_ready

and from a notebook, ``tool("kafka-topics", "--list")`` (its output shows under
the cell). Kafka's tools are Apache Kafka's own classes from the jars the
launcher downloaded (``kafka-tools``); ``--bootstrap-server`` is added unless given.
RabbitMQ's run against the launcher's node (``rabbitmqctl``, ``rabbitmq-diagnostics``,
``rabbitmq-queues``, ``rabbitmq-streams``). A RabbitMQ the launcher did not start
runs its tools itself: in this repository's Docker Compose containers the tool
runs there (``docker compose exec``); anywhere else (a teacher's server) the
answer says where to run it, and a notebook goes on to its next cell. Every run
is bounded by a timeout.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from queue_exp.config import REPO_ROOT
from queue_exp.config import get_settings
from queue_exp.config import home_dir
from queue_exp.config import read_state
from queue_exp.errors import LauncherError

KAFKA_TOOLS = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-console-share-consumer": "org.apache.kafka.tools.consumer.ConsoleShareConsumer",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-share-groups": "org.apache.kafka.tools.consumer.group.ShareGroupCommand",
    "kafka-groups": "org.apache.kafka.tools.GroupsCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-features": "org.apache.kafka.tools.FeatureCommand",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
}
RABBITMQ_TOOLS = ("rabbitmqctl", "rabbitmq-diagnostics", "rabbitmq-queues", "rabbitmq-streams")
TOOLS = (*KAFKA_TOOLS, *RABBITMQ_TOOLS)


@dataclass
class ToolRun:
    """What a tool printed. A notebook shows it as the cell's output."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def grep(self, text: str) -> ToolRun:
        """Only the rows that contain ``text``, as ``| grep text`` would keep them, but
        with the table's header: a table is tab-separated (rabbitmqctl's), its first
        row the header; lines that are not rows ("Listing queues …") stay too. For a
        shared broker: ``tool("rabbitmqctl", "list_queues", …).grep(run.namespace)``."""
        kept, header = [], True
        for line in self.stdout.splitlines(keepends=True):
            if "\t" not in line or text in line:
                kept.append(line)
            elif header:
                kept.append(line)
            header = header and "\t" not in line
        return ToolRun(self.command, self.returncode, "".join(kept), self.stderr)

    def __str__(self) -> str:
        text = self.stdout.rstrip("\n")
        if not self.ok:
            text += ("\n" if text else "") + self.stderr.rstrip("\n")
        return text

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer, _cycle: bool) -> None:
        printer.text(str(self))


def tool(name: str, *args: str, timeout_s: float = 60.0, input: str | None = None) -> ToolRun:
    """Run tool ``name`` with ``args`` against the configured brokers; at most
    ``timeout_s`` (a console consumer also wants ``--timeout-ms`` or ``--max-messages``)."""
    env = None  # Kafka's tools: this process's environment
    try:
        if name in KAFKA_TOOLS:
            command = _kafka_command(name, list(args))
        elif name in RABBITMQ_TOOLS:
            command, env = _rabbitmq_command(name, list(args))
        else:
            raise LauncherError(f"no tool named {name!r}; known: {', '.join(TOOLS)}")
    except ElsewhereOnly as exc:  # an answer, not an error: the notebook goes on
        return ToolRun([name, *args], 127, "", str(exc))
    return run_tool(command, env, timeout_s, input, name)


def run_tool(command: list[str], env: dict[str, str] | None = None, timeout_s: float = 60.0,
             input: str | None = None, name: str | None = None) -> ToolRun:
    """Run tool ``name``'s ``command`` line, at most ``timeout_s`` (exit code 124 if it
    had to be stopped); what it printed."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              input=input, cwd="/", env=env)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        name = name or Path(command[0]).name
        return ToolRun(command, 124, out, f"{name} did not finish within {timeout_s:g} s")
    return ToolRun(command, done.returncode, done.stdout, done.stderr)


class ElsewhereOnly(LauncherError):
    """The tool cannot run from here; the message says where it can."""


def compose_service_running(service: str) -> bool:
    """Whether this repository's Docker Compose runs ``service`` (bounded; False
    without Docker)."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "compose", "ps", "--status", "running", "--services"],
                              capture_output=True, text=True, timeout=15, cwd=REPO_ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and service in done.stdout.split()


def _in_compose(service: str, command: list[str]) -> list[str]:
    return ["docker", "compose", "--project-directory", str(REPO_ROOT),
            "exec", "-T", service, *command]


def _kafka_command(name: str, args: list[str]) -> list[str]:
    from queue_exp.brokers import kafka as embedded_kafka

    settings = get_settings()
    try:
        java = embedded_kafka.java_binary()
        libs, _version = embedded_kafka.ensure_jars(home_dir())
    except LauncherError as exc:
        inside = [f"/opt/kafka/bin/{name}.sh", *args]
        if not any(a.startswith("--bootstrap-") for a in args):
            inside[1:1] = ["--bootstrap-server", "localhost:9092"]
        if compose_service_running("kafka"):
            return _in_compose("kafka", inside)
        raise ElsewhereOnly(
            f"{exc}\nOn Docker the same tool is in the container: "
            f"docker compose exec kafka {' '.join(inside)}") from exc
    # tools log at WARN, to stderr: the INFO lines would drown the answer on stdout
    log4j = home_dir() / "kafka" / "tools-log4j2.properties"
    wanted = embedded_kafka.log4j2_properties("WARN", "SYSTEM_ERR")
    if not log4j.exists() or log4j.read_text() != wanted:
        log4j.parent.mkdir(parents=True, exist_ok=True)
        log4j.write_text(wanted)
    if not any(a.startswith(("--bootstrap-server", "--bootstrap-controller")) for a in args):
        # first: tools with subcommands (kafka-features describe) take it before them
        args = ["--bootstrap-server", settings.kafka_bootstrap_servers, *args]
    # a tool is a short-lived JVM: no optimising compiler, the smallest collector,
    # and a class-data archive made on the first run (about twice as fast to start)
    jvm = [java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
           "-Xlog:cds=off,cds+dynamic=off",  # making the archive warns on stdout
           *_class_archive(libs), f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*"]
    return [*jvm, KAFKA_TOOLS[name], *args]


def _class_archive(libs: Path) -> list[str]:
    archive = libs.parent / f"tools-{libs.name}.jsa"
    if archive.exists():
        return [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto"]
    return [f"-XX:ArchiveClassesAtExit={archive}"]


def _rabbitmq_command(name: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
    from queue_exp.brokers.rabbitmq import Node

    entry = read_state().get("rabbitmq") or {}
    settings = get_settings()
    ours = entry.get("managed") and entry.get("url") == settings.rabbitmq_url
    if not ours:
        if compose_service_running("rabbitmq"):
            return _in_compose("rabbitmq", [name, *args]), None
        raise ElsewhereOnly(
            f"{name} did not run: the RabbitMQ at {settings.rabbitmq_url_redacted} is not one "
            f"the launcher started, so its {name} is where that broker runs. On its machine: "
            f"{name} {' '.join(args)} (in Docker: docker compose exec rabbitmq {name} "
            f"{' '.join(args)}).")
    node = Node.of(entry)
    return node.command(name, *args), node.env()
