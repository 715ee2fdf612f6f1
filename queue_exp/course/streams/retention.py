"""Stream retention (notebook 10): a stream deletes its oldest messages by size
(``x-max-length-bytes``) or age (``x-max-age``), never because they were read.

RabbitMQ writes a stream in segment files and deletes whole segments, and it
looks at the limits only when a segment is full and a new one starts
(``x-stream-max-segment-size-bytes``, 500 MB by default). The lessons use tiny
segments so that this happens after a few messages.
"""

from __future__ import annotations

import time
from typing import Any

from queue_exp.course.compare.io import numbered
from queue_exp.course.compare.io import publish
from queue_exp.course.compare.io import read_queue
from queue_exp.course.run import Run
from queue_exp.course.streams.reading import IDLE_S
from queue_exp.course.streams.reading import STREAM
from queue_exp.course.streams.reading import message_numbers
from queue_exp.course.streams.reading import shown

SEGMENT = "x-stream-max-segment-size-bytes"
# Smaller segments than this keep almost nothing, and a segment smaller than one
# message makes RabbitMQ 3.10 start new segments in a loop that never ends.
MIN_SEGMENT_BYTES = 500


def _segment(segment_bytes: int) -> dict[str, int]:
    if segment_bytes < MIN_SEGMENT_BYTES:
        raise ValueError(f"segments smaller than {MIN_SEGMENT_BYTES} bytes keep (almost) "
                         "nothing, and below one message's size the broker never stops "
                         "starting new ones")
    return {SEGMENT: segment_bytes}


def kept(run: Run, stream: str) -> list[dict[str, Any]]:
    """Everything the stream still holds, read from ``first``."""
    return read_queue(run.settings, stream, offset="first", idle_s=IDLE_S)


def retention_by_size(run: Run, count: int = 100, max_bytes: int = 2000,
                      segment_bytes: int = 500) -> dict[str, Any]:
    """Publish ``#1``..``#count`` (about 90 bytes each) to a stream that may hold
    ``max_bytes`` in segments of ``segment_bytes``; what is left to read?"""
    stream = run.queue("capped", **STREAM, **{"x-max-length-bytes": max_bytes},
                       **_segment(segment_bytes))
    publish(run.settings, numbered(count), queue=stream)
    left = kept(run, stream)
    return {"x-max-length-bytes": max_bytes, SEGMENT: segment_bytes, "published": count,
            "still stored": len(left), "oldest left": shown(left[:1]),
            "newest left": shown(left[-1:]),
            "offset of the newest": int(left[-1]["stream_offset"]) if left else None,
            # where the segments end varies a little from run to run, so the number
            # kept does too; these two do not
            "fewer than published": len(left) < count,
            "only the newest kept": message_numbers(left) == list(range(count - len(left) + 1,
                                                                        count + 1))}


def retention_by_age(run: Run, max_age: str = "1s", first: int = 20, later: int = 10,
                     wait_s: float = 1.5, segment_bytes: int = 500) -> list[dict[str, Any]]:
    """A stream whose messages may be ``max_age`` old: ``first`` messages, then
    ``wait_s`` seconds with no writes, then ``later`` more. What is left after
    each step?"""
    stream = run.queue("aged", **STREAM, **{"x-max-age": max_age}, **_segment(segment_bytes))
    rows = []

    def step(what: str) -> None:
        left = kept(run, stream)
        rows.append({"step": what, "still stored": len(left), "oldest left": shown(left[:1])})

    publish(run.settings, numbered(first), queue=stream)
    step(f"{first} published")
    time.sleep(wait_s)  # the experiment: let them grow older than x-max-age
    step(f"{wait_s:g} s later, nothing written")
    publish(run.settings, numbered(first + later)[first:], queue=stream)
    step(f"{later} more published (a new segment starts)")
    return rows
