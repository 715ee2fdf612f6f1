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
from typing import Any
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from pydantic import Field
from pydantic import field_validator
from pydantic import model_validator
from pydantic_settings import BaseSettings
from pydantic_settings import PydanticBaseSettingsSource
from pydantic_settings import SettingsConfigDict

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


def read_state(path: Path | None = None) -> dict:
    """The launcher's state file (or another state file at ``path``) as a dict
    (empty if there is none or it is unreadable)."""
    try:
        return json.loads((path or state_path()).read_text())
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


def redact_url(url: str) -> str:
    """``amqp://guest:guest@host/`` -> ``amqp://guest:***@host/`` (never show a password)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class _StateFile(PydanticBaseSettingsSource):
    """The launcher's state file, between the env vars and the defaults."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ gives every value at once

    def __call__(self) -> dict[str, Any]:
        state = read_state()
        kafka, rabbit = state.get("kafka") or {}, state.get("rabbitmq") or {}
        found = {"KAFKA_BOOTSTRAP_SERVERS": kafka.get("bootstrap_servers"),
                 "RABBITMQ_URL": rabbit.get("url")}
        if not os.environ.get("RABBITMQ_URL"):
            # the embedded broker's UI and stream port; a broker named by RABBITMQ_URL
            # has its own
            found["RABBITMQ_MANAGEMENT_URL"] = rabbit.get("management_url")
            found["RABBITMQ_STREAM_URL"] = rabbit.get("stream_url")
        return {key: value for key, value in found.items() if value}


class Settings(BaseSettings):
    """Where the brokers are and the package's limits. Read with :func:`get_settings`;
    a changed copy with :meth:`replace`."""

    # aliases only: matching field names too would read HOME as QUEUE_EXP_HOME
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    # each field is read from the env var its alias names
    kafka_bootstrap_servers: str = Field(DEFAULT_KAFKA, alias="KAFKA_BOOTSTRAP_SERVERS")
    rabbitmq_url: str = Field(DEFAULT_RABBITMQ, alias="RABBITMQ_URL")
    # several nodes of one RabbitMQ cluster, comma-separated: clients connect to the
    # first that answers; when set, RABBITMQ_URL is its first
    rabbitmq_urls: str | None = Field(None, alias="RABBITMQ_URLS")
    # the API's queue: "quorum" (replicated on a cluster's nodes) or "classic";
    # default: quorum when RABBITMQ_URLS names several nodes, else classic
    rabbitmq_queue_type: str | None = Field(None, alias="QUEUE_EXP_RABBITMQ_QUEUE_TYPE")
    # default: port 15672 on the RabbitMQ host (see _rabbitmq_defaults)
    rabbitmq_management_url: str | None = Field(None, alias="RABBITMQ_MANAGEMENT_URL")
    # RabbitMQ's stream protocol; default: port 5552 on the RabbitMQ host, same user
    rabbitmq_stream_url: str | None = Field(None, alias="RABBITMQ_STREAM_URL")
    namespace: str = Field("", alias="QUEUE_EXP_NAMESPACE")
    home: Path = Field(default_factory=home_dir, alias="QUEUE_EXP_HOME")
    max_stored_messages: int = Field(1000, ge=1, alias="QUEUE_EXP_MAX_STORED_MESSAGES")
    broker_timeout_ms: int = Field(4000, ge=100, alias="QUEUE_EXP_BROKER_TIMEOUT_MS")
    max_body_bytes: int = Field(1024 * 1024, ge=1, alias="QUEUE_EXP_MAX_BODY_BYTES")
    max_pending_publishes: int = Field(10_000, ge=1, alias="QUEUE_EXP_MAX_PENDING_PUBLISHES")
    # how often /live looks at each broker while a page is open. RabbitMQ's queue
    # counters reach its management API 0.6-1.5 s after the fact (with the embedded
    # broker's 0.5 s statistics): looking twice a second keeps a change on the page
    # within 2 s of it; once a second would not, always.
    live_interval_ms: int = Field(500, ge=200, le=60_000, alias="QUEUE_EXP_LIVE_INTERVAL_MS")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        # explicit arguments, then env vars, then the launcher's state file, then defaults
        return init_settings, env_settings, _StateFile(settings_cls)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        value = value.strip()
        return check_namespace(value) if value else ""

    @field_validator("home")
    @classmethod
    def _home(cls, value: Path) -> Path:
        return Path(value).resolve()

    @field_validator("rabbitmq_queue_type")
    @classmethod
    def _queue_type(cls, value: str | None) -> str | None:
        if value and value.strip() not in ("classic", "quorum"):
            raise ValueError("QUEUE_EXP_RABBITMQ_QUEUE_TYPE is classic or quorum")
        return value.strip() if value else None

    @model_validator(mode="after")
    def _rabbitmq_defaults(self) -> Settings:
        if self.rabbitmq_urls:
            object.__setattr__(self, "rabbitmq_url", self.rabbitmq_url_list[0])
        amqp = urlsplit(self.rabbitmq_url)
        host = amqp.hostname or "localhost"
        if not self.rabbitmq_management_url:
            object.__setattr__(self, "rabbitmq_management_url", f"http://{host}:15672")
        if not self.rabbitmq_stream_url:
            user = amqp.netloc.rsplit("@", 1)[0] + "@" if "@" in amqp.netloc else ""
            stream = f"rabbitmq-stream://{user}{host}:5552{amqp.path or '/%2F'}"
            object.__setattr__(self, "rabbitmq_stream_url", stream)
        return self

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (field names), e.g. ``replace(namespace="alice")``."""
        return self.model_copy(update=changes)

    @property
    def live_interval_s(self) -> float:
        return self.live_interval_ms / 1000

    @property
    def broker_timeout_s(self) -> float:
        """How long a client waits for a broker before giving up."""
        return self.broker_timeout_ms / 1000

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
    def rabbitmq_url_list(self) -> list[str]:
        """Every RabbitMQ node a client may connect to, in the order to try them."""
        urls = [u.strip() for u in (self.rabbitmq_urls or "").split(",") if u.strip()]
        return urls or [self.rabbitmq_url]

    @property
    def rabbitmq_url_redacted(self) -> str:
        """The RabbitMQ address(es) to show: passwords replaced by ``***``."""
        return ", ".join(redact_url(url) for url in self.rabbitmq_url_list)

    @property
    def rabbitmq_queue_arguments(self) -> dict[str, str]:
        """The ``x-queue-type`` of the API's queue: quorum on a cluster (several
        URLs), so it lives on with one node gone; classic on a single broker."""
        kind = self.rabbitmq_queue_type or (
            "quorum" if len(self.rabbitmq_url_list) > 1 else "classic")
        return {"x-queue-type": kind} if kind == "quorum" else {}


def get_settings() -> Settings:
    """The settings now: env vars, then the state file, then the defaults. Raises
    ``ValueError`` naming the variable when one has a value that does not fit."""
    return Settings()


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
