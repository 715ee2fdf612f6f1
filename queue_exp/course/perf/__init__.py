"""Throughput, latency and load, measured (notebook 09 and ``bench/``). Every
helper sends or reads a fixed number of messages, or for a fixed time, with a
time limit, and returns plain rows; a :class:`~queue_exp.course.perf.cpu.Stopwatch`
around each run says not only how fast, but who was busy, and
:func:`~queue_exp.course.perf.spread.repeat` runs a measurement several times
and keeps the median and the range.

* :mod:`~queue_exp.course.perf.cpu` - wall time and CPU of the client and the brokers
* :mod:`~queue_exp.course.perf.spread` - repeated runs: median, lowest, highest
* :mod:`~queue_exp.course.perf.sizes` - message bodies of a size; throughput per size
* :mod:`~queue_exp.course.perf.kafka`, :mod:`~queue_exp.course.perf.rabbitmq` - throughput
* :mod:`~queue_exp.course.perf.latency` - end-to-end latency at a fixed rate
* :mod:`~queue_exp.course.perf.load` - HTTP load on the API (the one load generator)
* :mod:`~queue_exp.course.perf.plots` - the pictures

Notebooks use the names below as ``from queue_exp.course import perf``.
"""

from queue_exp.course.perf.cpu import Stopwatch
from queue_exp.course.perf.cpu import broker_pids
from queue_exp.course.perf.kafka import available_codecs
from queue_exp.course.perf.kafka import kafka_compression
from queue_exp.course.perf.kafka import kafka_consume
from queue_exp.course.perf.kafka import kafka_produce
from queue_exp.course.perf.kafka import kafka_settings_grid
from queue_exp.course.perf.latency import LatencyRun
from queue_exp.course.perf.latency import latency
from queue_exp.course.perf.latency import percentiles
from queue_exp.course.perf.load import api_end_to_end
from queue_exp.course.perf.load import api_load
from queue_exp.course.perf.rabbitmq import confirm_modes
from queue_exp.course.perf.rabbitmq import rabbit_consume
from queue_exp.course.perf.rabbitmq import rabbit_publish
from queue_exp.course.perf.sizes import make_bodies
from queue_exp.course.perf.sizes import size_sweep
from queue_exp.course.perf.spread import figure
from queue_exp.course.perf.spread import leader
from queue_exp.course.perf.spread import repeat
from queue_exp.course.perf.spread import with_range

__all__ = [
    "LatencyRun", "Stopwatch", "api_end_to_end", "api_load", "available_codecs",
    "broker_pids", "confirm_modes", "figure", "kafka_compression", "kafka_consume", "latency",
    "leader",
    "kafka_produce", "kafka_settings_grid", "make_bodies", "percentiles", "rabbit_consume",
    "rabbit_publish", "repeat", "size_sweep", "with_range",
]
