"""Exercises after notebooks 05 and 06
(``notebooks/exercises/06-rabbitmq-worker-routing-exercises.ipynb``), written with pika:

1. A fair, careful worker: prefetch, acks after the work, a failed job given
   back (:mod:`~queue_exp.course.exercises.rabbit_fair_worker`).
2. Ask the squares service: request/reply with ``reply_to`` and
   ``correlation_id`` (:mod:`~queue_exp.course.exercises.rabbit_rpc`).

Each check runs the learner's code against the real broker and looks at what
the broker did with it.
"""

from queue_exp.course.exercises.rabbit_fair_worker import FairWorkerTask
from queue_exp.course.exercises.rabbit_fair_worker import TryAgain
from queue_exp.course.exercises.rabbit_fair_worker import check_fair_worker
from queue_exp.course.exercises.rabbit_fair_worker import setup_fair_worker
from queue_exp.course.exercises.rabbit_rpc import SquaresTask
from queue_exp.course.exercises.rabbit_rpc import check_squares
from queue_exp.course.exercises.rabbit_rpc import setup_squares

__all__ = [
    "FairWorkerTask", "SquaresTask", "TryAgain", "check_fair_worker", "check_squares",
    "setup_fair_worker", "setup_squares",
]
