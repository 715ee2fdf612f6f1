"""A log in RabbitMQ (notebook 10): streams, once the raw pika and rstream code
has been shown, with the same steps on a Kafka topic beside them.

* :mod:`~queue_exp.course.streams.reading` - where a stream consumer starts
  (``first``, ``last``, an offset, a timestamp, ``next``), and a Kafka consumer's
  way to the same places
* :mod:`~queue_exp.course.streams.retention` - by size and by age, segment by segment
* :mod:`~queue_exp.course.streams.tracking` - a consumer stores its offset on the
  server and resumes after a restart; a Kafka group's committed offset beside it
* :mod:`~queue_exp.course.streams.features` - single active consumer, super
  streams and filtering, each shown when the broker has it

The stream protocol client (rstream) is :mod:`queue_exp.clients.streams`.
Notebooks use the names below as ``from queue_exp.course import streams``.
"""

from queue_exp.course.streams.features import FEATURES
from queue_exp.course.streams.features import broker_version
from queue_exp.course.streams.features import demo
from queue_exp.course.streams.features import feature_table
from queue_exp.course.streams.reading import STREAM
from queue_exp.course.streams.reading import kafka_start_points
from queue_exp.course.streams.reading import side_by_side
from queue_exp.course.streams.reading import start_points
from queue_exp.course.streams.retention import retention_by_age
from queue_exp.course.streams.retention import retention_by_size
from queue_exp.course.streams.tracking import resume_after_restart
from queue_exp.course.streams.tracking import stream_session

__all__ = [
    "FEATURES", "STREAM", "broker_version", "demo", "feature_table", "kafka_start_points",
    "resume_after_restart", "retention_by_age", "retention_by_size", "side_by_side",
    "start_points", "stream_session",
]
