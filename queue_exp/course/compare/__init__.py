"""Kafka vs RabbitMQ, side by side (notebook 08): each experiment runs the same
scenario on both brokers and returns plain rows; the comparison table is built
from those rows.

* :mod:`~queue_exp.course.compare.io` - numbered messages, a confirmed publish, a bounded read
* :mod:`~queue_exp.course.compare.workers` - a Kafka consumer group and competing RabbitMQ
  workers, each consumer in its own thread, with the same handler interface
* :mod:`~queue_exp.course.compare.retention` - the same messages read three times
* :mod:`~queue_exp.course.compare.consumers` - sharing work, scaling past partitions, fan-out
* :mod:`~queue_exp.course.compare.ordering` - a failed event retried (seek) or requeued (nack)
* :mod:`~queue_exp.course.compare.delivery` - a crash between work and confirm; Kafka transactions
* :mod:`~queue_exp.course.compare.crossings` - where the lines cross: replay from a
  RabbitMQ stream, per-record acknowledgement in a Kafka share group (imported as
  ``from queue_exp.course.compare import crossings``: it runs the chapters' own
  helpers, which themselves use this package's primitives)
* :mod:`~queue_exp.course.compare.table`, :mod:`~queue_exp.course.compare.plots` - the
  table, the pictures

Every helper is bounded by a timeout; consumer threads stop on an event.
"""

from queue_exp.course.compare.consumers import fan_out
from queue_exp.course.compare.consumers import split_work
from queue_exp.course.compare.delivery import AT_LEAST_ONCE
from queue_exp.course.compare.delivery import AT_MOST_ONCE
from queue_exp.course.compare.delivery import crash_between_steps
from queue_exp.course.compare.delivery import kafka_transaction_crash
from queue_exp.course.compare.io import numbered
from queue_exp.course.compare.ordering import KEYS
from queue_exp.course.compare.ordering import retry_one
from queue_exp.course.compare.plots import plot_ordering
from queue_exp.course.compare.plots import plot_split
from queue_exp.course.compare.retention import read_three_times
from queue_exp.course.compare.retention import stream_consumer_rules
from queue_exp.course.compare.table import QUOTED_TABLE
from queue_exp.course.compare.table import check_claims
from queue_exp.course.compare.table import comparison_rows

__all__ = [
    "AT_LEAST_ONCE", "AT_MOST_ONCE", "KEYS", "QUOTED_TABLE", "comparison_rows",
    "crash_between_steps", "fan_out", "kafka_transaction_crash", "numbered", "plot_ordering",
    "plot_split", "read_three_times", "retry_one", "check_claims", "split_work",
    "stream_consumer_rules",
]
