"""Three-node clusters of both brokers, on this machine, without Docker.

``python -m queue_exp cluster up|down|status [--json]`` (``make cluster``,
``make cluster-down``) runs three genuine Apache Kafka nodes (KRaft, each broker
and controller) and three clustered RabbitMQ nodes on private loopback ports,
next to the single-node brokers. From a notebook::

    from queue_exp.brokers import cluster
    kc = cluster.use("kafka")        # finds the Kafka cluster, or starts it
    kc.bootstrap_servers             # '127.0.0.1:…,127.0.0.1:…,127.0.0.1:…'
    kc.kill(2)                       # SIGKILL node 2
    kc.start(2)                      # back, same data
    kc.close()                       # stops the cluster if use() started it

* :mod:`~queue_exp.brokers.cluster.launcher` - up, down, status, one node's stop/kill/start
* :mod:`~queue_exp.brokers.cluster.handles` - what :func:`use` returns
* :mod:`~queue_exp.brokers.cluster.kafka`, :mod:`~queue_exp.brokers.cluster.rabbitmq` -
  each broker's nodes
"""

from queue_exp.brokers.cluster.handles import KafkaCluster
from queue_exp.brokers.cluster.handles import RabbitCluster
from queue_exp.brokers.cluster.handles import use
from queue_exp.brokers.cluster.launcher import BROKERS
from queue_exp.brokers.cluster.launcher import NODES
from queue_exp.brokers.cluster.launcher import await_node
from queue_exp.brokers.cluster.launcher import down
from queue_exp.brokers.cluster.launcher import kill_node
from queue_exp.brokers.cluster.launcher import start_node
from queue_exp.brokers.cluster.launcher import status
from queue_exp.brokers.cluster.launcher import stop_node
from queue_exp.brokers.cluster.launcher import up

__all__ = ["BROKERS", "NODES", "KafkaCluster", "RabbitCluster", "await_node", "down",
           "kill_node", "start_node", "status", "stop_node", "up", "use"]
