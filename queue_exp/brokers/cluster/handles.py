"""What a lesson holds on to: :func:`use` finds a cluster (or starts it) and
returns a handle with its addresses, the :class:`~queue_exp.config.Settings`
that point the package's clients at it, and ``stop``/``kill``/``start`` of one
node. ``close()`` stops the cluster if ``use()`` started it, and otherwise
starts again any node the lesson left down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from queue_exp.brokers.cluster import kafka as kafka_nodes
from queue_exp.brokers.cluster import launcher
from queue_exp.brokers.cluster import rabbitmq as rabbit_nodes
from queue_exp.brokers.tools import ToolRun
from queue_exp.brokers.tools import run_tool
from queue_exp.config import Settings
from queue_exp.config import get_settings
from queue_exp.config import read_state


@dataclass
class ClusterHandle:
    """One running cluster. ``started``: whether :func:`use` started it (then
    :meth:`close` stops it)."""

    broker: str
    started: bool
    seconds: float  # how long use() took to find or start it

    def _entry(self) -> dict:
        return read_state(launcher.cluster_home() / "state.json")[self.broker]

    def stop(self, node_id: int) -> bool:
        """SIGTERM one node: a clean, announced shutdown."""
        return launcher.stop_node(self.broker, node_id)

    def kill(self, node_id: int) -> bool:
        """SIGKILL one node: it vanishes without a word, as in a crash."""
        return launcher.kill_node(self.broker, node_id)

    def start(self, node_id: int, wait: bool = True, timeout_s: float = 90.0) -> None:
        """Start one node again (same ports and data)."""
        launcher.start_node(self.broker, node_id, wait, timeout_s)

    def await_node(self, node_id: int, timeout_s: float = 90.0) -> None:
        """Wait until a node started with ``wait=False`` is a member again."""
        launcher.await_node(self.broker, node_id, timeout_s)

    def running(self) -> list[int]:
        """The ids of the nodes whose process runs."""
        module = launcher.MODULES[self.broker]
        return [info["id"] for info in module.nodes(self._entry()) if module.alive(info)]

    def pid(self, node_id: int) -> int | None:
        return self.nodes()[node_id - 1]["pid"]

    def nodes(self) -> list[dict[str, Any]]:
        """One row per node, as ``cluster status`` shows it."""
        return launcher.status()[self.broker]["nodes"]

    def close(self) -> None:
        """Leave the cluster as :func:`use` found it: stopped if ``use()`` started
        it, else with every node running again."""
        if self.started:
            launcher.down([self.broker])
            self.started = False
        else:
            launcher.up([self.broker])


@dataclass
class KafkaCluster(ClusterHandle):
    """The three-node Kafka cluster."""

    @property
    def bootstrap_servers(self) -> str:
        """All three brokers: a client that finds one learns about the others."""
        return kafka_nodes.bootstrap_servers(self._entry())

    def address(self, node_id: int) -> str:
        return self.nodes()[node_id - 1]["address"]

    @property
    def settings(self) -> Settings:
        """The package's settings with Kafka pointing at the cluster."""
        return get_settings().replace(kafka_bootstrap_servers=self.bootstrap_servers)


@dataclass
class RabbitCluster(ClusterHandle):
    """The three-node RabbitMQ cluster."""

    @property
    def urls(self) -> list[str]:
        """Each node's AMQP URL (guest/guest: loopback only), node 1 first."""
        return [rabbit_nodes.amqp_url(info) for info in rabbit_nodes.nodes(self._entry())]

    def url(self, node_id: int) -> str:
        return self.urls[node_id - 1]

    def name(self, node_id: int) -> str:
        """``rabbit1@localhost``: the node's Erlang name, as RabbitMQ shows it."""
        return rabbit_nodes.node_name(node_id)

    @staticmethod
    def node_id(name: str) -> int:
        """``rabbit2@localhost`` -> 2."""
        return int(name.split("@")[0].removeprefix("rabbit"))

    def node_settings(self, node_id: int) -> Settings:
        """Settings for one node only (its AMQP URL and management API)."""
        info = self._entry()["nodes"][str(node_id)]
        return get_settings().replace(
            rabbitmq_url=rabbit_nodes.amqp_url(info), rabbitmq_urls=None,
            rabbitmq_management_url=rabbit_nodes.management_url(info),
            rabbitmq_stream_url=f"rabbitmq-stream://guest:guest@127.0.0.1:"
                                f"{info['ports']['stream']}/%2F")

    @property
    def settings(self) -> Settings:
        """The package's settings with RabbitMQ pointing at all three nodes (clients
        connect to the first that answers; the management API is node 1's)."""
        return self.node_settings(1).replace(rabbitmq_urls=",".join(self.urls))

    def tool(self, node_id: int, name: str, *args: str, timeout_s: float = 60.0) -> ToolRun:
        """RabbitMQ's own CLI (``rabbitmqctl``, ``rabbitmq-queues``,
        ``rabbitmq-diagnostics``) against one node."""
        node = rabbit_nodes.node(self._entry(), node_id)
        return run_tool(node.command(name, *args), node.env(), timeout_s, name=name)


HANDLES = {"kafka": KafkaCluster, "rabbitmq": RabbitCluster}


def use(broker: str, timeout_s: float = 120.0) -> KafkaCluster | RabbitCluster:
    """The ``broker`` cluster (``"kafka"`` or ``"rabbitmq"``), started if it is not
    running (its missing nodes started if some are); ``close()`` the handle at the
    end to stop what this call started."""
    result = launcher.up([broker], timeout_s)[broker]
    started = len(result["started"]) == len(launcher.NODES)
    return HANDLES[broker](broker, started, result["seconds"])
