"""Exercises with instant feedback, at the end of each chapter.

One module per chapter, each with a ``setup_…()`` and a ``check_…()`` per exercise:

* :mod:`~queue_exp.course.exercises.first_steps` - after notebook 01 (the API)
* :mod:`~queue_exp.course.exercises.kafka` - after notebooks 02-04
* :mod:`~queue_exp.course.exercises.rabbitmq_worker_routing` - after notebooks 05-06
* :mod:`~queue_exp.course.exercises.rabbitmq` - after notebooks 05-07
* :mod:`~queue_exp.course.exercises.streams` - after notebook 10
* :mod:`~queue_exp.course.exercises.share_groups` - after notebook 11

A setup takes the notebook's :class:`~queue_exp.course.run.Run` (fresh names: a
setup run twice gets new ones, so it starts empty) and makes the data the
exercise needs; a check looks at the learner's answer *and* at the
broker, and returns a :class:`Feedback`: what is right, what is wrong, a hint.
Checks never raise for a learner's mistake, and every wait in them is bounded.
"""

from queue_exp.course.exercises.feedback import Feedback

__all__ = ["Feedback"]
