"""Exercises for the Kafka chapter (after notebooks 02-04).

1. One user's events: a function that reads every message with a given key.
2. Enough partitions: a topic on which a group of three consumers all get work.
3. How far behind? The lag of a consumer group, as the broker counts it.
4. Replay: a function that reads everything written since a point in time.

Setups write deterministic data (the chapter's four users, keyed, so each key's
partition is fixed); checks read the topic themselves and compare. The
exercises live in :mod:`~queue_exp.course.exercises.kafka_partitions` (1, 2) and
:mod:`~queue_exp.course.exercises.kafka_offsets` (3, 4).
"""

from queue_exp.course.exercises.kafka_offsets import (
    check_lag,
    check_replay,
    setup_lag,
    setup_replay,
)
from queue_exp.course.exercises.kafka_partitions import (
    Task,
    check_partitions,
    check_read_key,
    setup_partitions,
    setup_read_key,
)

__all__ = [
    "Task", "setup_read_key", "check_read_key", "setup_partitions",
    "check_partitions", "setup_lag", "check_lag", "setup_replay", "check_replay",
]
