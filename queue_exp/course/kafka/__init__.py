"""The Kafka chapter (notebooks 02-04): what the cells call once the raw client
code has been shown, so that experiments with several consumers, timing and
pictures stay a line each.

* :mod:`~queue_exp.course.kafka.log` - produce keyed events, read to the end,
  replay from a timestamp, wait for retention; tables of offsets and lag
* :mod:`~queue_exp.course.kafka.groups` - a consumer group whose members join and
  leave one at a time, each in its own thread
* :mod:`~queue_exp.course.kafka.plots` - the pictures

Notebooks use the names below as ``from queue_exp.course import kafka as kl``.
"""

from queue_exp.course.kafka.groups import ConsumerGroupLab
from queue_exp.course.kafka.log import USERS
from queue_exp.course.kafka.log import join_then_produce
from queue_exp.course.kafka.log import keyed_messages
from queue_exp.course.kafka.log import lag_table
from queue_exp.course.kafka.log import log_table
from queue_exp.course.kafka.log import now_ms
from queue_exp.course.kafka.log import produce
from queue_exp.course.kafka.log import read_to_end
from queue_exp.course.kafka.log import read_twice
from queue_exp.course.kafka.log import record_ids
from queue_exp.course.kafka.log import replay_from
from queue_exp.course.kafka.log import wait_for_retention
from queue_exp.course.kafka.plots import plot_handled
from queue_exp.course.kafka.plots import plot_log
from queue_exp.course.kafka.plots import plot_replay

__all__ = [
    "USERS", "ConsumerGroupLab", "join_then_produce", "keyed_messages", "lag_table",
    "log_table", "now_ms", "plot_handled", "plot_log", "plot_replay", "produce", "read_to_end",
    "read_twice", "record_ids", "replay_from", "wait_for_retention",
]
