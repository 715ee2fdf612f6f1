"""Settings for the whole package, read from env vars and the launcher's state file.

Precedence for each broker address: an explicitly set env var, then the state
file that ``python -m queue_exp brokers up`` writes, then the Docker defaults
(``localhost:9092`` and ``amqp://guest:guest@localhost:5672/%2F``).

Nothing here touches the network; reading settings is cheap, so callers ask for
them when they need them (:func:`get_settings`) and see a broker the launcher
started a moment ago.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_KAFKA = "localhost:9092"
DEFAULT_RABBITMQ = "amqp://guest:guest@localhost:5672/%2F"
START_HINT = "run `make brokers` (or `python -m queue_exp brokers up`) to start both brokers"

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_FILE_NAME = "state.json"


def home_dir() -> Path:
    """Where the launcher keeps data dirs, logs and its state file."""
    return Path(os.environ.get("QUEUE_EXP_HOME") or REPO_ROOT / ".queue_exp").resolve()


def state_path() -> Path:
    return home_dir() / STATE_FILE_NAME


def read_state() -> dict:
    """The launcher's state file as a dict (empty if there is none or it is unreadable)."""
    try:
        return json.loads(state_path().read_text())
    except (OSError, ValueError):
        return {}


NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_namespace(namespace: str) -> str:
    """``namespace`` if it is a valid one, else ``ValueError`` saying what is allowed.

    No dots: then ``alice.`` is never the beginning of another student's names,
    and deleting everything that starts with it is safe."""
    if not NAMESPACE.fullmatch(namespace):
        raise ValueError(
            f"namespace {namespace!r} is not allowed: use 1-64 letters, digits, - or _ "
            "(QUEUE_EXP_NAMESPACE=alice, not alice.smith)"
        )
    return namespace


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from exc


def redact_url(url: str) -> str:
    """``amqp://guest:guest@host/`` -> ``amqp://guest:***@host/`` (never show a password)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str
    rabbitmq_url: str
    rabbitmq_management_url: str | None
    namespace: str
    home: Path
    max_stored_messages: int
    broker_timeout_s: float
    max_body_bytes: int = 1024 * 1024
    max_pending_publishes: int = 10_000

    def name(self, base: str) -> str:
        """Prefix a topic, queue, exchange or group name with the namespace, if any."""
        return f"{self.namespace}.{base}" if self.namespace else base

    @property
    def kafka_topic(self) -> str:
        """The topic the API's ``/kafka`` endpoints send to and consume from."""
        return self.name("queue_exp.messages")

    @property
    def kafka_group(self) -> str:
        return self.name("queue_exp.api")

    @property
    def rabbitmq_queue(self) -> str:
        """The durable queue the API's ``/rabbitmq`` endpoints publish to and consume from."""
        return self.name("queue_exp.messages")

    @property
    def rabbitmq_url_redacted(self) -> str:
        return redact_url(self.rabbitmq_url)


def _namespace_env() -> str:
    namespace = os.environ.get("QUEUE_EXP_NAMESPACE", "").strip()
    return check_namespace(namespace) if namespace else ""


def get_settings() -> Settings:
    state = read_state()
    kafka_state = state.get("kafka") or {}
    rabbit_state = state.get("rabbitmq") or {}
    kafka = (
        os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        or kafka_state.get("bootstrap_servers")
        or DEFAULT_KAFKA
    )
    rabbit = os.environ.get("RABBITMQ_URL") or rabbit_state.get("url") or DEFAULT_RABBITMQ
    if os.environ.get("RABBITMQ_MANAGEMENT_URL"):
        management = os.environ["RABBITMQ_MANAGEMENT_URL"]
    elif os.environ.get("RABBITMQ_URL"):
        # an explicit broker (Docker, a teacher's server): its UI on the usual port
        host = urlsplit(rabbit).hostname or "localhost"
        management = f"http://{host}:15672"
    else:
        management = rabbit_state.get("management_url") or "http://localhost:15672"
    return Settings(
        kafka_bootstrap_servers=kafka,
        rabbitmq_url=rabbit,
        rabbitmq_management_url=management,
        namespace=_namespace_env(),
        home=home_dir(),
        max_stored_messages=_int_env("QUEUE_EXP_MAX_STORED_MESSAGES", 1000),
        broker_timeout_s=float(_int_env("QUEUE_EXP_BROKER_TIMEOUT_MS", 4000)) / 1000,
        max_body_bytes=_int_env("QUEUE_EXP_MAX_BODY_BYTES", 1024 * 1024),
        max_pending_publishes=_int_env("QUEUE_EXP_MAX_PENDING_PUBLISHES", 10_000),
    )


@dataclass(frozen=True)
class SharedMode:
    """How the launcher exposes its brokers to a classroom (an explicit opt-in).

    Only AMQP, the management UI and Kafka's client listener leave loopback;
    Erlang distribution, epmd and Kafka's controller stay on 127.0.0.1."""

    bind: str  # address to listen on, e.g. 0.0.0.0
    advertise: str  # host name or address students connect to
    user: str
    password: str


def shared_mode() -> SharedMode | None:
    """The classroom opt-in from ``QUEUE_EXP_BIND_ADDRESS`` and friends, or ``None``
    (the default: every port on 127.0.0.1 only). Raises ``ValueError`` when the
    opt-in is incomplete or would expose the guest user."""
    bind = os.environ.get("QUEUE_EXP_BIND_ADDRESS", "").strip()
    if not bind or bind in ("127.0.0.1", "localhost"):
        return None
    advertise = os.environ.get("QUEUE_EXP_ADVERTISED_HOST", "").strip()
    user = os.environ.get("QUEUE_EXP_RABBITMQ_USER", "").strip()
    password = os.environ.get("QUEUE_EXP_RABBITMQ_PASSWORD", "")
    missing = [name for name, value in (("QUEUE_EXP_ADVERTISED_HOST", advertise),
                                        ("QUEUE_EXP_RABBITMQ_USER", user),
                                        ("QUEUE_EXP_RABBITMQ_PASSWORD", password)) if not value]
    if missing:
        raise ValueError(
            f"QUEUE_EXP_BIND_ADDRESS={bind} shares the brokers beyond this machine; it also "
            f"needs {', '.join(missing)} (students connect to the advertised host with that "
            "user; guest only ever works on loopback)")
    if user == "guest" or len(password) < 12:
        raise ValueError("a shared broker needs its own user (not guest) and a password of "
                         "at least 12 characters")
    return SharedMode(bind, advertise, user, password)
