"""Where the classic table's lines cross (notebook 08, from notebooks 10 and 11):
RabbitMQ replays from a stream, and Kafka acknowledges record by record, with
redelivery and a delivery limit, in a share group. Each experiment reuses the
chapter's own helpers and returns plain results for the table."""

from __future__ import annotations

from typing import Any

from queue_exp.course import rabbitmq as rabbitmq_lessons
from queue_exp.course import share_groups
from queue_exp.course.compare.consumers import KAFKA_SHARE
from queue_exp.course.compare.consumers import split_work
from queue_exp.course.compare.io import read_queue
from queue_exp.course.kafka import log as kafka_log
from queue_exp.course.run import Run
from queue_exp.course.streams import tracking

POISON = "#3 (poison)"


def replay(run: Run, count: int = 10, first_run: int = 4) -> dict[str, Any]:
    """A consumer reads ``first_run`` of ``count`` messages and stops; a new one of
    the same name resumes from the position the broker kept (a stream's stored
    offset, a group's committed offset); then a new reader reads from the start
    again. Returns the runs and what the re-read got."""
    resumed = tracking.resume_after_restart(run, count, first_run)
    again = {
        "RabbitMQ stream": len(read_queue(run.settings, resumed["stream"], offset="first",
                                          idle_s=0.3)),
        "Kafka topic": len(kafka_log.read_to_end(resumed["topic"], settings=run.settings)),
    }
    return {**resumed, "read again from the start": again}


def per_message(run: Run, consumers: int = 3, limit: int = 3,
                rabbitmq_limit: int = 2) -> dict[str, Any]:
    """Kafka share group: ``consumers`` members on one partition; records accepted,
    released once, and a poison record released every time until the group's
    ``share.delivery.count.limit`` (``limit``) archives it. RabbitMQ: a poison
    message in a quorum queue with ``x-delivery-limit`` (``rabbitmq_limit``;
    RabbitMQ counts redeliveries, so 2 allows 3 deliveries)."""
    split = split_work(run, KAFKA_SHARE, consumers, count=30, work_s=0.01, partitions=1)

    def decide(text: str, delivery_count: int) -> str:
        if text == POISON or (text == "#2" and delivery_count == 1):
            return "release"
        return "accept"

    acks = share_groups.acknowledge_each(run, ["#1", "#2", POISON], decide, label="acks",
                                         limit=limit)
    dlx, dlq = rabbitmq_lessons.dead_letter_exchange(run)
    quorum = rabbitmq_lessons.poison_in_quorum_queue(run, dlx, dlq, delivery_limit=rabbitmq_limit)
    return {"split": split, "deliveries": acks["deliveries"], "limit": limit,
            "quorum": quorum, "quorum limit": rabbitmq_limit}
