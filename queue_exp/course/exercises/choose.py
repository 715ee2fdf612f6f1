"""Exercises after notebook 08: choose a broker for a scenario, and say why.

Each scenario comes with the properties notebook 08 (and the chapters before it)
measured; the learner picks a broker (``"kafka"``, ``"rabbitmq"`` or ``"either"``)
and the reasons, by name, from :data:`REASONS`. The check wants the reasons that
decide the scenario, and refuses reasons that are false (RabbitMQ has no
exactly-once; a Kafka group does not scale past its partitions). Exercise 1 needs
no broker: the reasons point back at the experiments that showed them. Exercise 2
proves one reason on the broker: the learner reads a RabbitMQ stream twice, with
pika, and gets everything both times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from queue_exp.course.compare.io import publish
from queue_exp.course.exercises.feedback import Feedback
from queue_exp.course.exercises.feedback import kind
from queue_exp.course.exercises.feedback import not_finished
from queue_exp.course.exercises.feedback import quoted
from queue_exp.course.exercises.feedback import run_learner_code
from queue_exp.course.exercises.probes import texts_of
from queue_exp.course.run import Run
from queue_exp.messages import Message

BROKERS = ("kafka", "rabbitmq", "either")

# what a reason says, and where the course showed it
REASONS = {
    "replay": "a new reader can read what was written before it existed "
              "(a Kafka topic; a RabbitMQ stream) - notebooks 04, 08 §1",
    "per-key order": "events with the same key stay in order, one partition each - 02, 08 §3",
    "competing consumers": "any free worker takes the next message, however many workers "
                           "there are - 05, 08 §2",
    "per-message ack": "each message is acked, or nacked back to the queue, on its own - 05, 08 §3",
    "routing patterns": "an exchange copies a message to the queues whose binding key "
                        "matches its routing key (topic exchange: kern.*) - 06",
    "idempotent consumer": "the consumer remembers what it finished and skips a redelivered "
                           "message - 08 §4",
    "exactly-once to anything": "the broker makes any side effect happen exactly once "
                                "(false: no broker can, 08 §4-5)",
    "unlimited group members": "a Kafka group keeps every member busy whatever the partition "
                               "count (false: partitions cap it, 08 §2)",
}

FALSE = {"exactly-once to anything", "unlimited group members"}


@dataclass(frozen=True)
class Scenario:
    number: int
    text: str
    brokers: tuple[str, ...]  # acceptable choices
    needs: tuple[str, ...]  # reasons that decide it
    why: str  # said when a needed reason is missing


SCENARIOS = (
    Scenario(1, "An audit service starts next month and must read every order event "
                "since the shop opened (either broker can, with the right structure).",
             ("kafka", "rabbitmq", "either"), ("replay",),
             "who keeps a message after it was read, so that a reader that comes later "
             "still gets it?"),
    Scenario(2, "Users upload photos to resize; any free worker should take the next "
                "photo, a slow one must not hold up the others, and a worker that crashes "
                "mid-photo must not lose it.",
             ("rabbitmq",), ("competing consumers", "per-message ack"),
             "what hands each photo to whichever worker is free, and what gives a "
             "crashed worker's photo back?"),
    Scenario(3, "Each customer's account events must be applied in the order they "
                "happened; there are many customers and several consumers.",
             ("kafka",), ("per-key order",),
             "what keeps one customer's events in order while many customers are "
             "processed in parallel?"),
    Scenario(4, "Every payment must send exactly one confirmation email, even when a "
                "consumer crashes.",
             ("either",), ("idempotent consumer",),
             "the email is outside the broker: what makes a redelivered payment send "
             "no second email?"),
    Scenario(5, "Log lines must reach the teams by severity and source: `kern.critical` "
                "to operations, every `*.critical` to the on-call phone.",
             ("rabbitmq",), ("routing patterns",),
             "which broker copies a message to queues by a pattern in its routing key?"),
)


def setup_choices() -> dict[int, Scenario]:
    """The scenarios, by number."""
    return {s.number: s for s in SCENARIOS}


def check_choices(answers: Any) -> Feedback:
    """Exercise 1 · Choose a broker, and say why"""
    fb = Feedback("Exercise 1 · Choose a broker, and say why")
    if not isinstance(answers, dict) or not answers:
        what = "empty" if isinstance(answers, dict) else f"{kind(answers)}, not a dict"
        return fb.fail(f"`answers` is {what}: no choice made yet",
                       'write `answers = {1: ("kafka", ["replay"]), 2: (...), ...}`: '
                       "scenario number -> (broker, [reasons])")
    for scenario in SCENARIOS:
        answer = answers.get(scenario.number)
        label = f"scenario {scenario.number}"
        if answer is None:
            fb.fail(f"{label} has no answer")
            continue
        if not (isinstance(answer, tuple | list) and len(answer) == 2):
            fb.fail(f"{label}: the answer is {kind(answer)}; give (broker, [reasons])")
            continue
        broker, reasons = answer
        reasons = [reasons] if isinstance(reasons, str) else list(reasons or [])
        unknown = [r for r in reasons if r not in REASONS]
        if broker not in BROKERS:
            fb.fail(f"{label}: {quoted([broker])} is not one of {', '.join(BROKERS)}")
        elif broker not in scenario.brokers:
            fb.fail(f"{label}: not {quoted([broker])}", f"{label}: {scenario.why}")
        if unknown:
            fb.fail(f"{label}: {quoted(unknown)}: not a reason from `ex.REASONS`",
                    "print `ex.REASONS` to see the reasons, by name")
        false = [r for r in reasons if r in FALSE]
        if false:
            fb.fail(f"{label}: {quoted(false)}: not true of either broker",
                    "read the reason's text: the course measured the opposite")
        missing = [r for r in scenario.needs if r not in reasons]
        if missing:
            fb.fail(f"{label}: the deciding reason is missing", f"{label}: {scenario.why}")
        if broker in scenario.brokers and not unknown and not false and not missing:
            fb.ok(f"{label}: {broker}, because of {', '.join(scenario.needs)}")
    return fb


# ------------------------------------------------------------ 2. prove it: replay

LEARNER_TIMEOUT_S = 15.0
STREAM_HINT = ("subscribe with `basic_consume(stream, callback, arguments={'x-stream-offset': "
               "'first'})` after `basic_qos(prefetch_count=…)`, ack each message, and stop when "
               "nothing arrives for a second (`process_data_events(time_limit=…)` or "
               "`channel.consume(stream, arguments=…, inactivity_timeout=1)`)")


@dataclass(frozen=True)
class StreamTask:
    """A stream with ``texts`` in it, in that order; ``label`` is its short name."""

    stream: str
    label: str
    texts: tuple[str, ...]
    settings: Any


def setup_replay(run: Run) -> StreamTask:
    """Stream ``audit-log`` with six order events in it."""
    stream = run.queue(run.label(run.fresh_name("audit-log")), **{"x-queue-type": "stream"})
    texts = tuple(f"order {n} placed" for n in range(1, 7))
    publish(run.settings, [Message.now(t, source="shop") for t in texts], queue=stream)
    return StreamTask(stream, run.label(stream), texts, run.settings)


def check_replay(task: StreamTask, read_all: Any) -> Feedback:
    """Exercise 2 · Read the audit-log stream from its first message, twice"""
    fb = Feedback("Exercise 2 · Read the audit-log stream from its first message, twice")
    if not callable(read_all):
        return fb.fail(f"`read_all` is {kind(read_all)}, not a function",
                       "define `def read_all(stream):` that returns the messages it read")
    reads = []
    for attempt in ("first", "second"):
        run = run_learner_code(read_all, task.stream, timeout_s=LEARNER_TIMEOUT_S)
        if not run.finished:
            return not_finished(fb, "read_all", run, LEARNER_TIMEOUT_S, waits_hint=STREAM_HINT)
        texts = texts_of(run.value)
        if texts is None:
            return fb.fail(f"`read_all` returned {kind(run.value)}, not a list of messages",
                           "return a list: the bodies you received (bytes or text)")
        reads.append(texts)
        if texts == list(task.texts):
            fb.ok(f"the {attempt} read got all {len(texts)} events of {task.label}, in order")
        elif not texts:
            return fb.fail(f"the {attempt} read got nothing from {task.label}", STREAM_HINT)
        else:
            return fb.fail(f"the {attempt} read got {quoted(texts[:3])}…, not the six events "
                           f"from the first one", STREAM_HINT)
    fb.ok("reading removed nothing: the second read got the same events again")
    return fb
