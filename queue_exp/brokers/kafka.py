"""Genuine Apache Kafka (KRaft, one combined broker+controller node) as a plain Java process.

Jars come from Maven Central through ``resources/pom.xml`` (once, into
``QUEUE_EXP_HOME/kafka/libs-<version>``), or from ``$KAFKA_HOME/libs`` when that
points at an unpacked Kafka distribution. The launcher formats the storage
directory once and starts ``kafka.Kafka`` on loopback ports.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

from queue_exp.brokers import procs
from queue_exp.config import REPO_ROOT
from queue_exp.config import get_settings
from queue_exp.config import shared_mode
from queue_exp.errors import LauncherError

log = logging.getLogger(__name__)

POM = Path(__file__).with_name("resources") / "pom.xml"
MAIN_CLASS = "kafka.Kafka"
HEAP = os.environ.get("QUEUE_EXP_KAFKA_HEAP", "512m")


def pom_kafka_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not match:
        raise LauncherError(f"no <kafka.version> in {POM}")
    return match.group(1)


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.exists() else shutil.which("java")
    if not java:
        raise LauncherError(
            "Java 17+ is needed to run Kafka and none was found: install it "
            "(Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME; "
            "or use Docker (`docker compose up -d`) and set KAFKA_BOOTSTRAP_SERVERS."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if not match or int(match.group(1)) < 17:
        raise LauncherError(f"Kafka 4 needs Java 17 or newer; {java} reports: {out.stderr!r}")
    return java


def _kafka_home_libs() -> Path | None:
    kafka_home = os.environ.get("KAFKA_HOME")
    if not kafka_home:
        return None
    libs = Path(kafka_home) / "libs"
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise LauncherError(f"KAFKA_HOME={kafka_home} has no libs/kafka_2.13-*.jar")
    return libs


def ensure_jars(home: Path) -> tuple[Path, str]:
    """The directory with Kafka's jars, downloading them once; and the Kafka version."""
    libs = _kafka_home_libs()
    if libs is not None:
        jar = next(libs.glob("kafka_2.13-*.jar"))
        return libs, jar.stem.split("-", 1)[1]
    version = pom_kafka_version()
    libs = home / "kafka" / f"libs-{version}"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    checkout = REPO_ROOT / ".queue_exp" / "kafka" / libs.name
    if not libs.exists() and checkout != libs and _complete(checkout, digest):
        # another home (a test's, a benchmark's, the RabbitMQ-next run's) uses the jars
        # this checkout already downloaded instead of fetching them again
        libs.parent.mkdir(parents=True, exist_ok=True)
        libs.symlink_to(checkout.resolve())
    if _complete(libs, digest):
        return libs, version
    mvn = shutil.which("mvn")
    if not mvn:
        raise LauncherError(
            "Maven is needed once to download Kafka's jars: install it (Debian/Ubuntu: "
            "`apt-get install maven`), or set KAFKA_HOME to an unpacked Apache Kafka."
        )
    shutil.rmtree(libs, ignore_errors=True)
    log.info("downloading Apache Kafka %s jars with Maven into %s", version, libs)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-DoutputDirectory={libs}"],
        capture_output=True, text=True, timeout=900,
    )
    if result.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        raise LauncherError(
            f"Maven could not fetch Kafka {version}:\n{(result.stdout + result.stderr)[-3000:]}"
        )
    (libs / ".complete").write_text(digest)
    return libs, version


def _complete(libs: Path, digest: str) -> bool:
    """Did a download for this POM (its digest) finish into ``libs``?"""
    stamp = libs / ".complete"
    return stamp.exists() and stamp.read_text() == digest


def share_jars(home: Path, source: Path | None = None) -> None:
    """Let another launcher home (a test's or a benchmark's private one) use the jars
    already downloaded into ``source`` (default: this checkout's home) instead of
    fetching them again."""
    from queue_exp.config import home_dir

    for libs in ((source or home_dir()) / "kafka").glob("libs-*"):
        (home / "kafka").mkdir(parents=True, exist_ok=True)
        target = home / "kafka" / libs.name
        if not target.exists():
            target.symlink_to(libs.resolve())


def internal_topics(partitions: int, replicas: int, min_isr: int) -> str:
    """The default partition count, and the partitions, replicas and minimum
    in-sync replicas of Kafka's internal topics (offsets, transactions, share groups)."""
    return (f"num.partitions={partitions}\n"
            f"offsets.topic.replication.factor={replicas}\n"
            f"offsets.topic.num.partitions={partitions}\n"
            + "".join(f"{topic}.replication.factor={replicas}\n{topic}.min.isr={min_isr}\n"
                      f"{topic}.num.partitions={partitions}\n"
                      for topic in ("transaction.state.log", "share.coordinator.state.topic")))


SERVER_PROPERTIES = """\
# Written by queue_exp's launcher: one KRaft node that is both broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://{bind}:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://{advertise}:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
# One node, so every internal topic has one replica (and few partitions: a
# group's first join then takes well under a second).
""" + internal_topics(partitions=1, replicas=1, min_isr=1) + """\
# Topics exist only when someone creates them (the production default is to
# create one, with a single partition, for any name a client asks about: a
# misspelt topic would silently appear, and kafka-python 3.0 asks for that in
# every metadata request, ignoring its own allow_auto_create_topics).
auto.create.topics.enable=false
# A new group rebalances at once instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
# Look for expired segments every second (production default: every 5 minutes,
# first check after 30 s), so a retention lesson sees records vanish in seconds.
log.retention.check.interval.ms=1000
log.initial.task.delay.ms=1000
# Share groups (notebook 11): members heartbeat every second (default: every 5 s,
# so a new share consumer waited about 5 s for its first records); a group may
# set its record lock as short as 1 s (default floor: 15 s), so a frozen member's
# records come back within a lesson, and its session timeout as short as 6 s
# (default floor: 45 s), so a killed member leaves the group soon after. The
# defaults for the lock (30 s) and the session (45 s) stay as they are.
group.share.heartbeat.interval.ms=1000
group.share.min.heartbeat.interval.ms=1000
group.share.min.record.lock.duration.ms=1000
group.share.min.session.timeout.ms=6000
"""

def log4j2_properties(level: str = "INFO", target: str = "SYSTEM_OUT") -> str:
    """Log4j 2 settings for a Kafka JVM: one console appender at ``level``. Every
    client and server config dump is logged at INFO: kept out, so logs stay readable."""
    return f"""\
status = warn
appender.console.type = Console
appender.console.name = CONSOLE
appender.console.target = {target}
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.console.ref = CONSOLE
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


def new_cluster_id() -> str:
    """A random cluster id as Kafka writes them (22 URL-safe base64 characters; one
    in 32 starts with ``-``, so pass it as ``--cluster-id=...``, never as a separate
    argument the tool would read as an option)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def jvm_command(java: str, libs: Path, log4j: Path, heap: str = HEAP,
                *flags: str) -> list[str]:
    """``java`` with a capped heap, Kafka's logging config and its jars: add a main
    class and its arguments."""
    wanted = log4j2_properties()
    if not log4j.exists() or log4j.read_text() != wanted:
        log4j.parent.mkdir(parents=True, exist_ok=True)
        log4j.write_text(wanted)
    return [java, f"-Xmx{heap}", *flags, "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*"]


def format_storage(jvm: list[str], props: Path, data_dir: Path, cluster_id: str) -> None:
    """Format a node's log dir for ``cluster_id`` once (a formatted one is left alone)."""
    if (data_dir / "meta.properties").exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    fmt = subprocess.run(
        [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
         "-c", str(props)],
        capture_output=True, text=True, timeout=120,
    )
    if fmt.returncode != 0:
        raise LauncherError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")


def launch(jvm: list[str], props: Path, log_path: Path) -> subprocess.Popen:
    """Start ``kafka.Kafka`` with ``props`` in a process group of its own; not ready yet."""
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            [*jvm, MAIN_CLASS, str(props)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=props.parent, start_new_session=True,
        )


def start(home: Path, previous: dict, timeout_s: float) -> dict:
    """Start Kafka; returns its state entry once it answers a metadata request."""
    from queue_exp.clients import kafka  # late: keeps `brokers status` light

    java = java_binary()
    libs, version = ensure_jars(home)
    base = home / "kafka"
    data_dir = base / "data"
    shared = shared_mode()  # the classroom opt-in; by default loopback only
    bind, advertise = (shared.bind, shared.advertise) if shared else ("127.0.0.1", "127.0.0.1")
    # a shared broker takes Kafka's usual port if it can: simpler for the students
    ports = procs.choose_ports(("broker", "controller"), previous.get("ports"),
                               {"broker": 9092} if shared else None, bind)
    props = base / "server.properties"
    props.write_text(SERVER_PROPERTIES.format(
        port=ports["broker"], controller_port=ports["controller"], data_dir=data_dir,
        bind=bind, advertise=advertise,
    ))
    jvm = jvm_command(java, libs, base / "log4j2.properties", HEAP, "-Xms128m")
    format_storage(jvm, props, data_dir, new_cluster_id())
    log_path = base / "kafka.log"
    proc = launch(jvm, props, log_path)
    address = f"{advertise}:{ports['broker']}"
    entry = {
        "managed": True, "bootstrap_servers": address, "pid": proc.pid, "ports": ports,
        "version": version, "log": str(log_path), "data_dir": str(data_dir),
    }
    probe = get_settings().replace(kafka_bootstrap_servers=address, broker_timeout_ms=2000)
    procs.await_ready(
        proc, "Kafka", address,
        lambda: procs.port_open("127.0.0.1", ports["broker"])
        and kafka.ping(probe)["reachable"],
        timeout_s, [log_path], lambda: procs.stop_process_group(proc.pid, MAIN_CLASS, 10),
    )
    return entry


def stop(entry: dict, timeout_s: float = 30.0) -> bool:
    return procs.stop_process_group(entry.get("pid"), MAIN_CLASS, timeout_s)


def alive(entry: dict) -> bool:
    return procs.pid_alive(entry.get("pid"), MAIN_CLASS)
