"""Exercises for notebook 11 (a queue in Kafka: share groups).

1. A careful share consumer: the learner's ``on_batch(consumer, messages)``
   answers each record: accept what worked, release what failed for now, reject
   what can never work. The check runs it as a real share-group member.
2. Give up after three tries: the learner sets a share group's settings (start
   at the records already there; archive a record after three deliveries) with
   kafka-python's admin client. The check reads them back and runs a consumer
   that always fails on one record, in a new group with the same settings.

Every check uses a share group of its own, so it can be run again and again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from confluent_kafka import AcknowledgeType

from queue_exp.clients import share
from queue_exp.clients.consumers import start_in_order
from queue_exp.clients.consumers import stop_all
from queue_exp.config import Settings
from queue_exp.course.exercises.feedback import Feedback
from queue_exp.course.exercises.feedback import Named
from queue_exp.course.exercises.feedback import count
from queue_exp.course.exercises.feedback import describe_error
from queue_exp.course.exercises.feedback import friendly_errors
from queue_exp.course.exercises.feedback import quoted
from queue_exp.course.exercises.feedback import unusable
from queue_exp.course.kafka.log import produce
from queue_exp.course.run import Run
from queue_exp.course.share_groups import acknowledge_each
from queue_exp.course.share_groups import text
from queue_exp.messages import Message
from queue_exp.messages import decode_lenient
from queue_exp.waiting import wait_until

PAYMENTS = ("payment 1", "payment 2", "payment 3", "payment 4", "payment 5")
FLAKY = "payment 3"  # fails the first time only
POISON = "payment 4"  # can never work
EMAILS = ("email 1", "email 2", "email 3 (bounces)", "email 4")
BOUNCES = "email 3 (bounces)"
TIMEOUT_S = 20.0
NAMES = {AcknowledgeType.ACCEPT: "ACCEPT", AcknowledgeType.RELEASE: "RELEASE",
         AcknowledgeType.REJECT: "REJECT"}

ACK_HINT = ("answer every message with `consumer.acknowledge(message, AcknowledgeType.…)`: "
            "ACCEPT when `work.process` returned, RELEASE when it raised `work.TryAgain`, "
            "REJECT when it raised ValueError; then `consumer.commit_sync(10)`")


class TryAgain(Exception):
    """The work failed this time; another attempt may work."""


@dataclass
class ShareTask(Named):
    """Topic and share-group names made for one exercise, and the work to do."""

    topic: str
    settings: Settings = field(repr=False)
    group: str = ""
    run: Run | None = field(default=None, repr=False)
    attempts: dict[str, int] = field(default_factory=dict, repr=False)
    TryAgain: type[Exception] = TryAgain


    def process(self, value: bytes) -> str:
        """Take a payment. Raises ``TryAgain`` when the bank did not answer this
        time, ``ValueError`` for a payment that can never go through."""
        payment = text_of(value)
        self.attempts[payment] = self.attempts.get(payment, 0) + 1
        if payment == POISON:
            raise ValueError(f"{payment}: the card number is not valid")
        if payment == FLAKY and self.attempts[payment] == 1:
            raise TryAgain(f"{payment}: the bank did not answer")
        return f"{payment}: paid"


def text_of(value: Any) -> str:
    """A record's text, from its value (bytes) or the message itself."""
    if hasattr(value, "value") and callable(value.value):
        return text(value)
    return str(decode_lenient(bytes(value)).get("message", value))


# -------------------------------------------------------- 1. a careful share consumer


def setup_careful(run: Run) -> ShareTask:
    """Topic ``payments`` (one partition) with five payments in it."""
    topic = run.fresh_name("payments")
    run.topic(run.label(topic), partitions=1)
    produce(topic, [Message.now(p, source="shop") for p in PAYMENTS], settings=run.settings)
    return ShareTask(topic, run.settings, run=run)


class _Watched:
    """The consumer ``on_batch`` gets: the real one, noting each acknowledgement."""

    def __init__(self, consumer: Any, answers: list[tuple[str, int, str]]) -> None:
        self._consumer = consumer
        self._answers = answers

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)

    def acknowledge(self, message: Any, ack_type: Any = AcknowledgeType.ACCEPT) -> None:
        self._consumer.acknowledge(message, ack_type)
        self._answers.append((text(message), message.delivery_count(),
                              NAMES.get(ack_type, str(ack_type))))


@friendly_errors
def check_careful(task: ShareTask, on_batch: object) -> Feedback:
    """Exercise 1 · A careful share consumer"""
    fb = Feedback("Exercise 1 · A careful share consumer")
    if unusable(fb, "on_batch", on_batch, "def on_batch(consumer, messages):",
                ACK_HINT, "confluent-kafka"):
        return fb
    assert task.run is not None
    group = task.run.fresh_name("payments-workers")  # a new group for every check
    share.set_group_config(group, {share.AUTO_OFFSET_RESET: "earliest"}, task.settings)
    task.attempts.clear()
    answers: list[tuple[str, int, str]] = []
    deliveries: list[tuple[str, int]] = []
    failure: list[tuple[str, BaseException]] = []
    lock = threading.Lock()

    def run_learner(consumer: Any, messages: list[Any]) -> None:
        with lock:
            deliveries.extend((text(m), m.delivery_count()) for m in messages)
        answered = len(answers)
        try:
            on_batch(_Watched(consumer, answers), messages)
        except Exception as exc:  # the learner's mistake, explained below
            failure.append((text(messages[0]), exc))
        if failure or len(answers) - answered < len(messages):
            # the next poll would refuse (every record of a batch needs an answer
            # first): stop here instead, and say so
            member.request_stop()

    def finished() -> bool:
        final = {t for t, _n, said in answers if said in ("ACCEPT", "REJECT")}
        return bool(failure) or final >= set(PAYMENTS) or not member.running

    member = share.ShareConsumerThread([task.topic], run_learner, group_id=group,
                                       name="your-consumer", settings=task.settings)
    start_in_order([member])
    try:
        wait_until(finished, TIMEOUT_S, 0.05)
    except TimeoutError:
        pass
    finally:
        stop_all([member], check=False)
    if failure:
        where, exc = failure[0]
        hint = ("catch what `work.process` raises: `except work.TryAgain:` (release) and "
                "`except ValueError:` (reject)" if isinstance(exc, TryAgain | ValueError)
                else ACK_HINT)
        fb.fail(f"while handling a batch starting with '{where}', `on_batch` raised "
                f"{describe_error(exc, task.label)}", hint)
    elif member.error is not None:
        fb.fail(f"the consumer stopped: {task.label(member.error)}", ACK_HINT)
    _judge_answers(fb, answers, deliveries)
    return fb


def _judge_answers(fb: Feedback, answers: list[tuple[str, int, str]],
                   deliveries: list[tuple[str, int]]) -> None:
    said = {}
    for payment, delivery, answer in answers:
        said.setdefault(payment, []).append((delivery, answer))
    good = [p for p in PAYMENTS if p not in (FLAKY, POISON)]
    if all(said.get(p) == [(1, "ACCEPT")] for p in good):
        fb.ok(f"{quoted(good)} were processed and accepted, once each")
    for payment in good:
        if payment in said and said[payment] != [(1, "ACCEPT")]:
            fb.fail(f"'{payment}' went through, yet you answered "
                    f"{', '.join(a for _d, a in said[payment])}", ACK_HINT)
    flaky = said.get(FLAKY, [])
    if flaky == [(1, "RELEASE"), (2, "ACCEPT")]:
        fb.ok(f"'{FLAKY}' failed for now and was released; it came back with delivery "
              "count 2 and was accepted")
    elif flaky[:1] == [(1, "ACCEPT")]:
        fb.fail(f"'{FLAKY}' failed (TryAgain), yet you accepted it: it is finished for the "
                "group and the payment was never made", "release it instead: "
                "`consumer.acknowledge(message, AcknowledgeType.RELEASE)`")
    elif flaky[:1] == [(1, "REJECT")]:
        fb.fail(f"'{FLAKY}' failed only for now (TryAgain), yet you rejected it: it will "
                "never be tried again", "release it: another attempt may work")
    poison = said.get(POISON, [])
    if poison == [(1, "REJECT")]:
        fb.ok(f"'{POISON}' could never work and was rejected at once: not delivered again")
    elif poison and all(a == "RELEASE" for _d, a in poison):
        fb.fail(f"'{POISON}' can never work, but you released it {count(len(poison), 'time')}"
                ": it comes back until the group's delivery limit archives it",
                "reject it: `consumer.acknowledge(message, AcknowledgeType.REJECT)`")
    elif poison[:1] == [(1, "ACCEPT")]:
        fb.fail(f"'{POISON}' failed, yet you accepted it: nobody will know it failed",
                "reject it, so that it is archived as failed")
    unanswered = sorted({p for p, _n in deliveries} - set(said))
    if unanswered:
        fb.fail(f"{quoted(unanswered)} reached your consumer but got no answer: in "
                "explicit mode every record of a batch needs one before the next poll",
                ACK_HINT)
    if never := [p for p in PAYMENTS if p not in {d for d, _n in deliveries}]:
        fb.fail(f"{count(len(never), 'payment')} never reached your consumer: {quoted(never)}",
                ACK_HINT)


# ------------------------------------------------------- 2. give up after three tries


def setup_limit(run: Run) -> ShareTask:
    """Topic ``emails`` with four emails in it (one of them bounces every time),
    and the name of share group ``emails-senders``, not set up yet."""
    topic = run.fresh_name("emails")
    run.topic(run.label(topic), partitions=1)
    produce(topic, [Message.now(e, source="newsletter") for e in EMAILS], settings=run.settings)
    return ShareTask(topic, run.settings, group=run.fresh_name("emails-senders"), run=run)


@friendly_errors
def check_limit(task: ShareTask) -> Feedback:
    """Exercise 2 · Give up after three tries"""
    fb = Feedback("Exercise 2 · Give up after three tries")
    group, emails = task.label(task.group), task.label(task.topic)
    hint = ("`admin.alter_configs([ConfigResource(ConfigResourceType.GROUP, group, "
            "{...})])` with `share.auto.offset.reset` and `share.delivery.count.limit`")
    found = share.group_config(task.group, [share.AUTO_OFFSET_RESET, share.DELIVERY_COUNT_LIMIT],
                               task.settings)
    reset, limit = found[share.AUTO_OFFSET_RESET], int(found[share.DELIVERY_COUNT_LIMIT])
    if reset == "earliest":
        fb.ok(f"`{group}` starts at the oldest record: it will see the "
              f"{len(EMAILS)} emails already in `{emails}`")
    else:
        fb.fail(f"`{group}` starts at the end of the log ({reset}, Kafka's default): it "
                f"would skip the {len(EMAILS)} emails already in `{emails}`", hint)
    if limit == 3:
        fb.ok(f"`{group}` archives a record after {limit} deliveries")
    else:
        fb.fail(f"`{group}` archives a record after {limit} deliveries"
                f"{' (the default)' if limit == 5 else ''}; the task says 3", hint)
    if fb.wrong:
        return fb
    assert task.run is not None
    tried = acknowledge_each(  # a consumer that fails on the bouncing email, every time
        task.run, list(EMAILS), lambda t, _n: "release" if t == BOUNCES else "accept",
        label=task.run.label(task.topic) + "-trial", limit=limit, timeout_s=TIMEOUT_S)
    bounces = [r["delivery count"] for r in tried["deliveries"] if r["record"] == BOUNCES]
    lag = sum(row["lag"] or 0 for row in tried["offsets"])
    fb.ok(f"in a new group with these settings, a consumer that always fails on "
          f"'{BOUNCES}' got it {count(len(bounces), 'time')} (delivery counts "
          f"{', '.join(map(str, bounces))})")
    if lag == 0:
        fb.ok("then the group gave up on it: nothing left to deliver (lag 0)")
    else:
        fb.fail(f"the group still has {count(lag, 'record')} to deliver")
    return fb
