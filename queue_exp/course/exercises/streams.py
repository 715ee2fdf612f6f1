"""Exercises for notebook 10 (a log in RabbitMQ: streams).

1. Replay since a moment: read stream ``audit`` with pika from a timestamp, and
   stop when nothing more comes.
2. Carry on after a restart: a stream-protocol (rstream) consumer that stores
   its offset on the server and, run again, reads only what it has not read.

A stream cannot be emptied, so the second check writes to a new stream of its
own each time it runs; the first only reads, which changes nothing.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

from pika.exceptions import ChannelClosedByBroker
from pika.exceptions import ConnectionClosedByBroker

from queue_exp.clients import streams
from queue_exp.config import Settings
from queue_exp.course.compare.io import publish
from queue_exp.course.compare.io import read_queue
from queue_exp.course.exercises import probes
from queue_exp.course.exercises.feedback import Feedback
from queue_exp.course.exercises.feedback import Named
from queue_exp.course.exercises.feedback import count
from queue_exp.course.exercises.feedback import friendly_errors
from queue_exp.course.exercises.feedback import kind
from queue_exp.course.exercises.feedback import not_finished
from queue_exp.course.exercises.feedback import quoted
from queue_exp.course.exercises.feedback import returned_texts
from queue_exp.course.exercises.feedback import run_learner_code
from queue_exp.course.exercises.feedback import unusable
from queue_exp.course.run import Run
from queue_exp.course.streams.reading import STREAM
from queue_exp.course.streams.reading import next_second
from queue_exp.messages import Message

LEARNER_TIMEOUT_S = 15.0
BEFORE = ("login alice", "login bob", "logout alice", "login carol", "logout bob",
          "login dave")
AFTER = ("logout carol", "login erin", "logout dave", "logout erin")
FIRST_INVOICES = tuple(f"invoice {n}" for n in range(1, 6))
MORE_INVOICES = tuple(f"invoice {n}" for n in range(6, 9))

STOP_HINT = ("a stream has no end: stop when nothing arrives for a second "
             "(`channel.consume(..., inactivity_timeout=1)` yields `(None, None, None)`: "
             "`break` there)")
REPLAY_HINT = ("consume with `arguments={\"x-stream-offset\": since}` (pika sends a datetime "
               "as a timestamp), `basic_qos(prefetch_count=...)` first, and `basic_ack` "
               "each message; return the texts oldest first")


@dataclass(frozen=True)
class StreamTask(Named):
    """Names (and data) made for one exercise; ``label`` shortens a full name."""

    stream: str
    settings: Settings = field(repr=False)
    since: datetime | None = None
    consumer: str = ""
    run: Run | None = field(default=None, repr=False)



def _texts(rows: list[dict[str, Any]]) -> list[str]:
    return [str(r.get("message")) for r in rows]


# ---------------------------------------------------------- 1. replay since a moment


def setup_replay(run: Run) -> StreamTask:
    """Stream ``audit``: six events, then (a second later) four more; ``since`` is
    the moment between them."""
    stream = run.fresh_name("audit")
    run.queue(run.label(stream), **STREAM)
    publish(run.settings, [Message.now(t, source="auth") for t in BEFORE], queue=stream)
    since = next_second()
    publish(run.settings, [Message.now(t, source="auth") for t in AFTER], queue=stream)
    return StreamTask(stream, run.settings, since=since)


@friendly_errors
def check_replay(task: StreamTask, read_since: object) -> Feedback:
    """Exercise 1 · Replay since a moment"""
    fb = Feedback("Exercise 1 · Replay since a moment")
    audit = task.label(task.stream)
    if unusable(fb, "read_since", read_since, "def read_since(stream, since):",
                REPLAY_HINT, "pika"):
        return fb
    run = run_learner_code(read_since, task.stream, task.since, timeout_s=LEARNER_TIMEOUT_S)
    if run.timed_out:
        return not_finished(fb, "read_since", run, LEARNER_TIMEOUT_S, task.label, STOP_HINT)
    if isinstance(run.error, ChannelClosedByBroker) and run.error.reply_code == 406:
        return fb.fail(f"the broker closed the channel: {task.label(str(run.error))}",
                       "a stream consumer must set a prefetch limit first: "
                       "`channel.basic_qos(prefetch_count=100)`")
    if isinstance(run.error, ConnectionClosedByBroker) and run.error.reply_code == 540:
        return fb.fail(f"the broker closed the connection: {task.label(str(run.error))}",
                       "a stream does not take automatic acks: consume with "
                       "`auto_ack=False` and `channel.basic_ack(method.delivery_tag)` each one")
    if run.error is not None:
        return not_finished(fb, "read_since", run, LEARNER_TIMEOUT_S, task.label)
    texts = returned_texts(fb, "read_since", run.value, REPLAY_HINT)
    if texts is None:
        return fb
    wanted = list(AFTER)
    older = [t for t in texts if t in BEFORE]
    if texts == wanted:
        fb.ok(f"you read the {len(wanted)} events written since `since`, oldest first")
    elif not texts:
        fb.fail("`read_since` returned nothing",
                "without `x-stream-offset` a stream consumer starts at `next`: only what is "
                "published after it subscribed; " + REPLAY_HINT)
    elif older:
        fb.fail(f"you also returned {count(len(older), 'event')} older than `since`: "
                f"{quoted(older)}", "start at the moment itself: "
                "`arguments={\"x-stream-offset\": since}` (not \"first\")")
    elif sorted(texts) == sorted(wanted):
        fb.fail("you returned the right events, but not oldest first",
                "keep them in the order the stream delivers them")
    else:
        missing = [t for t in wanted if t not in texts]
        fb.fail(f"events written since `since` are missing: {quoted(missing)}", STOP_HINT)
    kept = _texts(read_queue(task.settings, task.stream, offset="first", idle_s=0.3))
    if kept == list(BEFORE + AFTER):
        fb.ok(f"stream `{audit}` still holds all {len(kept)} events: reading removed nothing")
    return fb


# ------------------------------------------------------ 2. carry on after a restart


def setup_resume(run: Run) -> StreamTask:
    """Stream ``invoices`` with five invoices, for trying out; the consumer name to
    store offsets under is ``billing``."""
    stream = run.fresh_name("invoices")
    run.queue(run.label(stream), **STREAM)
    streams.publish(stream, list(FIRST_INVOICES), run.settings)
    return StreamTask(stream, run.settings, consumer="billing", run=run)


def _call(function: Any, *args: Any) -> Any:
    """Call the learner's function; if it is a coroutine function, run it."""
    result = function(*args)
    return asyncio.run(result) if inspect.isawaitable(result) else result


@friendly_errors
def check_resume(task: StreamTask, process_new: object) -> Feedback:
    """Exercise 2 · Carry on after a restart"""
    fb = Feedback("Exercise 2 · Carry on after a restart")
    name = task.consumer
    hint = ("ask for the stored offset with `await consumer.query_offset(stream, name)` "
            "(`OffsetNotFound` the first time: start at `OffsetType.FIRST`), start at "
            "`OffsetType.OFFSET, stored + 1`, and `store_offset(stream, name, offset)` "
            "the last offset you processed")
    if unusable(fb, "process_new", process_new, "async def process_new(stream, name):",
                hint, "rstream"):
        return fb
    assert task.run is not None
    stream = task.run.fresh_name("invoices-check")  # a new stream for every check
    task.run.queue(task.run.label(stream), **STREAM)
    streams.publish(stream, list(FIRST_INVOICES), task.settings)
    runs: list[list[str]] = []
    for step in ("1st", "2nd", "3rd"):
        if step == "2nd":
            streams.publish(stream, list(MORE_INVOICES), task.settings)
        run = run_learner_code(_call, process_new, stream, name, timeout_s=LEARNER_TIMEOUT_S)
        if not run.finished:
            return not_finished(fb, "process_new", run, LEARNER_TIMEOUT_S, task.label,
                                STOP_HINT.replace("(`channel.consume", "(wait for it with "
                                                  "`asyncio.wait_for`, or `channel.consume"))
        texts = probes.texts_of(run.value)
        if run.value is None:
            return fb.fail(f"the {step} run of `process_new` returned None", hint)
        if texts is None:
            return fb.fail(f"the {step} run of `process_new` returned {kind(run.value)}; "
                           "expected a list of the texts it processed", hint)
        runs.append(texts)
    first, second, third = runs
    stored = streams.stored_offset(stream, name, task.settings)
    offsets = {row["message"]: row["offset"] for row in streams.read(stream, "first",
                                                                      task.settings)}
    last = offsets.get(MORE_INVOICES[-1])
    if first == list(FIRST_INVOICES):
        fb.ok(f"the 1st run processed the {len(first)} invoices there were")
    else:
        fb.fail(f"the 1st run returned {quoted(first)}; expected {quoted(FIRST_INVOICES)}",
                "the first time, the consumer has no stored offset: start at "
                "`OffsetType.FIRST`")
    if second == list(MORE_INVOICES):
        fb.ok("after 3 more were published, the 2nd run processed only those")
    elif second[:1] == [FIRST_INVOICES[-1]] and second[1:] == list(MORE_INVOICES):
        fb.fail(f"the 2nd run processed '{FIRST_INVOICES[-1]}' again",
                "the stored offset is the last one processed: start at stored + 1")
    elif second[: len(FIRST_INVOICES)] == list(FIRST_INVOICES):
        found = ("nothing stored on the server" if stored is None
                 else f"offset {stored} stored, but your run did not start after it")
        fb.fail(f"the 2nd run started from the beginning again ({found})", hint)
    else:
        fb.fail(f"the 2nd run returned {quoted(second)}; expected only the 3 new ones, "
                f"{quoted(MORE_INVOICES)}", hint)
    if third:
        fb.fail(f"nothing new was published, yet the 3rd run returned {quoted(third)}", hint)
    elif second == list(MORE_INVOICES):
        fb.ok("the 3rd run, with nothing new, processed nothing")
    if stored is not None and stored == last:
        fb.ok(f"the broker holds, for `{name}`, the offset of '{MORE_INVOICES[-1]}': the "
              "last invoice processed")
    elif stored is None:
        fb.fail(f"the broker has no offset stored for `{name}`", hint)
    return fb
