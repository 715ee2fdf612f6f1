"""The broker launcher and the embedded brokers it starts.

* :mod:`~queue_exp.brokers.launcher` - ``up()``, ``down()``, ``status()``, ``restart()``:
  find the configured brokers or start embedded ones; the state file
* :mod:`~queue_exp.brokers.kafka` - genuine Apache Kafka (KRaft) as a Java process
* :mod:`~queue_exp.brokers.rabbitmq` - Debian's ``rabbitmq-server`` as a private node
* :mod:`~queue_exp.brokers.cluster` - three Kafka and three RabbitMQ nodes
  (``python -m queue_exp cluster up``), for the replication lessons
* :mod:`~queue_exp.brokers.procs` - ports, process trees, memory and CPU
* ``resources/pom.xml`` - Kafka's jars, resolved from Maven Central

``from queue_exp import brokers; brokers.up()`` is the launcher.
"""

from queue_exp.brokers.launcher import BROKERS
from queue_exp.brokers.launcher import down
from queue_exp.brokers.launcher import private_env
from queue_exp.brokers.launcher import reachable
from queue_exp.brokers.launcher import restart
from queue_exp.brokers.launcher import status
from queue_exp.brokers.launcher import up

__all__ = ["BROKERS", "down", "private_env", "reachable", "restart", "status", "up"]
