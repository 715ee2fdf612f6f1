"""Experiments for the RabbitMQ chapter (notebooks 05-07), so that cells stay short.

Each helper runs one small experiment on the real broker and returns plain rows
(lists of dicts) the notebook turns into a table or a plot. Every wait is
bounded, every consumer is a :class:`~queue_exp.clients.consumers.RabbitConsumerThread`
that stops on a flag, and every pika connection is used only by the thread that
opened it. Names come from a :class:`~queue_exp.course.run.Run`, whose
``clean_up()`` deletes everything at the end.

* :mod:`~queue_exp.course.rabbitmq.channels` - short-lived channels: declare, bind,
  publish, count, drain
* :mod:`~queue_exp.course.rabbitmq.work` - a queue forgets; competing workers, prefetch
* :mod:`~queue_exp.course.rabbitmq.acks` - a worker killed mid-task, a forgotten ack
  (and the worker process, ``python -m queue_exp.course.rabbitmq stuck-worker``)
* :mod:`~queue_exp.course.rabbitmq.durability` - what survives a broker restart
* :mod:`~queue_exp.course.rabbitmq.routing` - direct, topic, headers and fanout exchanges
* :mod:`~queue_exp.course.rabbitmq.rpc` - request / reply with direct reply-to
* :mod:`~queue_exp.course.rabbitmq.confirms` - publisher confirms, unroutable messages
* :mod:`~queue_exp.course.rabbitmq.dead_letters` - rejected, expired and poison messages
* :mod:`~queue_exp.course.rabbitmq.plots` - the pictures

Notebooks use the names below as ``from queue_exp.course import rabbitmq as rl``.
"""

from queue_exp.course.rabbitmq.acks import ForgottenAck
from queue_exp.course.rabbitmq.acks import crash_mid_task
from queue_exp.course.rabbitmq.acks import forgotten_ack
from queue_exp.course.rabbitmq.acks import kill_worker_mid_task
from queue_exp.course.rabbitmq.acks import main
from queue_exp.course.rabbitmq.channels import bound_exchange
from queue_exp.course.rabbitmq.channels import message_count
from queue_exp.course.rabbitmq.confirms import CONFIRM_MODES
from queue_exp.course.rabbitmq.confirms import confirm_timings
from queue_exp.course.rabbitmq.confirms import unroutable_publish
from queue_exp.course.rabbitmq.dead_letters import dead_letter_exchange
from queue_exp.course.rabbitmq.dead_letters import expire_into_dead_letters
from queue_exp.course.rabbitmq.dead_letters import poison_in_quorum_queue
from queue_exp.course.rabbitmq.dead_letters import read_dead_letters
from queue_exp.course.rabbitmq.dead_letters import reject_into_dead_letters
from queue_exp.course.rabbitmq.dead_letters import ttl_head_of_line
from queue_exp.course.rabbitmq.dead_letters import x_death
from queue_exp.course.rabbitmq.durability import DURABILITY_CASES
from queue_exp.course.rabbitmq.durability import Durability
from queue_exp.course.rabbitmq.plots import plot_confirm_timings
from queue_exp.course.rabbitmq.plots import plot_work_runs
from queue_exp.course.rabbitmq.routing import fanout_late_subscriber
from queue_exp.course.rabbitmq.routing import routing_experiment
from queue_exp.course.rabbitmq.rpc import DIRECT_REPLY_TO
from queue_exp.course.rabbitmq.rpc import rpc_round_trip
from queue_exp.course.rabbitmq.work import WorkRun
from queue_exp.course.rabbitmq.work import read_twice_side_by_side
from queue_exp.course.rabbitmq.work import run_work_queue

__all__ = [
    "CONFIRM_MODES", "DIRECT_REPLY_TO", "DURABILITY_CASES", "Durability", "ForgottenAck", "WorkRun",
    "bound_exchange", "confirm_timings", "crash_mid_task",
    "dead_letter_exchange", "expire_into_dead_letters",
    "fanout_late_subscriber", "forgotten_ack", "kill_worker_mid_task", "main", "message_count",
    "plot_confirm_timings", "plot_work_runs", "poison_in_quorum_queue",
    "read_dead_letters", "read_twice_side_by_side",
    "reject_into_dead_letters", "routing_experiment", "rpc_round_trip",
    "run_work_queue", "ttl_head_of_line", "unroutable_publish", "x_death",
]
