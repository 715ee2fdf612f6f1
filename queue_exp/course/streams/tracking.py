"""Resume after a restart (notebook 10): a stream consumer stores its offset on
the server under a name (the stream protocol's ``store_offset``), a new consumer
with that name asks for it (``query_offset``) and carries on from the next
message; a Kafka consumer group does the same with committed offsets.
"""

from __future__ import annotations

from typing import Any

from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients import streams
from queue_exp.course.compare.io import numbered
from queue_exp.course.kafka import log as kafka_log
from queue_exp.course.run import Run
from queue_exp.course.streams.reading import STREAM
from queue_exp.course.streams.reading import shown
from queue_exp.waiting import wait_until


def stream_session(run: Run, stream: str, name: str, max_messages: int = 1000
                   ) -> dict[str, Any]:
    """One run of consumer ``name``: ask the server for its stored offset, start
    after it (or at ``first`` if it has none), read up to ``max_messages``
    storing the offset of each, and stop. Returns what it found and read."""
    stored = streams.stored_offset(stream, name, run.settings)
    start: str | int = "first" if stored is None else stored + 1
    got = streams.read(stream, start, run.settings, max_messages=max_messages, name=name,
                       store=True)
    if got:  # a store is not answered: wait until the server has it
        wait_until(lambda: streams.stored_offset(stream, name, run.settings)
                   == got[-1]["offset"], 10, 0.1, what="the stored offset")
    return {"stored offset found": "none" if stored is None else stored,
            "so it starts at": start, "read": shown(got), "messages": len(got),
            "last offset read": got[-1]["offset"] if got else None}


def kafka_session(run: Run, topic: str, group: str, max_messages: int | None = None
                  ) -> dict[str, Any]:
    """One run of a consumer in ``group``: its committed offset, then read up to
    ``max_messages`` (``None``: to the end of the log) and commit."""
    committed = kafka_admin.group_offsets(group, topic, run.settings)[0]["committed"]
    if max_messages is None:
        got = kafka_log.read_to_end(topic, group_id=group, commit=True, settings=run.settings)
    else:  # kafka-python commits the position on close: just after what it returned
        got = kafka.consume(topic, group_id=group, max_messages=max_messages, timeout_s=10,
                            settings=run.settings)
    return {"committed offset found": "none" if committed is None else committed,
            "so it starts at": "earliest (auto_offset_reset)" if committed is None
            else committed, "read": shown(got), "messages": len(got)}


def resume_after_restart(run: Run, count: int = 10, first_run: int = 4) -> dict[str, Any]:
    """``#1``..``#count`` in a stream (published with rstream) and on a Kafka topic;
    a consumer reads ``first_run`` messages and stops; a new one with the same
    name (group) resumes. ``rows``: one per broker and run; ``stream``, ``topic``:
    their names."""
    stream = run.queue("resume", **STREAM)
    streams.publish(stream, [m.message for m in numbered(count)], run.settings)
    topic = run.topic("resume", partitions=1)
    kafka_log.produce(topic, numbered(count), settings=run.settings)
    name, group = "invoicer", run.group("invoicer")
    rows = []
    for session, limit in (("1st run", first_run), ("2nd run, after a restart", None)):
        s = stream_session(run, stream, name, limit or count)
        k = kafka_session(run, topic, group, limit)
        rows.append({"consumer": session, "broker": "RabbitMQ stream (rstream)",
                     "position found on the server": s["stored offset found"],
                     "starts at": s["so it starts at"], "read": s["read"]})
        rows.append({"consumer": session, "broker": "Kafka topic (consumer group)",
                     "position found on the server": k["committed offset found"],
                     "starts at": k["so it starts at"], "read": k["read"]})
    return {"rows": rows, "stream": stream, "topic": topic, "sent": count}
