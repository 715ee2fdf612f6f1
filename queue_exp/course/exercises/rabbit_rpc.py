"""Exercise 2 after notebooks 05-06: ask the squares service (request/reply).

The learner writes ``ask(queue, numbers)``: publish one request per number to
the service's queue, each with ``reply_to`` (where to answer) and its own
``correlation_id``, all before waiting; then wait, bounded, for the answers
and match each to its request by correlation id. The check runs the service
(three server threads, ``prefetch_count=1`` each, that take ``n × 0.1 s`` to
square ``n``, so answers come back in the order they finish, not the order
asked; the first answer is a stale one whose correlation id matches no
request) and looks at what reached it, what ``ask`` returned, and whether a
reply queue was left behind on the broker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pika

from queue_exp.clients import rabbitmq
from queue_exp.clients.consumers import RabbitConsumerThread
from queue_exp.clients.consumers import start_in_order
from queue_exp.clients.consumers import stop_all
from queue_exp.config import Settings
from queue_exp.course.exercises import probes
from queue_exp.course.exercises.feedback import Feedback
from queue_exp.course.exercises.feedback import Named
from queue_exp.course.exercises.feedback import friendly_errors
from queue_exp.course.exercises.feedback import kind
from queue_exp.course.exercises.feedback import not_finished
from queue_exp.course.exercises.feedback import run_learner_code
from queue_exp.course.exercises.feedback import unusable
from queue_exp.course.run import Run

ASKED = (3, 1, 2)  # answered 1, 2, 3: not the order asked
SECONDS_PER_UNIT = 0.1
SERVERS = 3
STALE_ID = "stale-answer"  # the correlation id of an answer to no request of the learner's
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
TIMEOUT_S = 15.0

PUBLISH_HINT = ("publish each request to the default exchange with the service's queue as "
                "routing key, and `properties=pika.BasicProperties(reply_to=…, "
                "correlation_id=…)`")
MATCH_HINT = ("give each request its own `correlation_id` (e.g. `str(uuid.uuid4())`), note "
              "which number it was for, and file each answer under `properties.correlation_id`; "
              "ignore answers whose id you do not know")
WAIT_HINT = ("publish every request first, then run `connection.process_data_events("
             "time_limit=…)` in a loop until all answers are in or a deadline (say 5 s) passes")


@dataclass(frozen=True)
class SquaresTask(Named):
    """Queue ``squares`` (its full name in ``queue``), served by the check."""

    queue: str
    settings: Settings = field(repr=False)


    @contextmanager
    def running(self) -> Iterator[None]:
        """The squares service, while the ``with`` block runs (to try ``ask`` by hand)."""
        service = _Service(self)
        service.start()
        try:
            yield
        finally:
            service.stop()


def setup_squares(run: Run) -> SquaresTask:
    """The durable queue ``squares``, empty; nobody serves it until a check runs."""
    queue = run.fresh_name("squares")
    with probes.open_channel(run.settings, confirm=False) as channel:
        rabbitmq.declare_queue(channel, queue)
    return SquaresTask(queue, run.settings)


class _Service:
    """The squares service: each request's number, ``reply_to``, ``correlation_id``
    and arrival time; when each answer went out."""

    def __init__(self, task: SquaresTask) -> None:
        self.task = task
        self.requests: list[dict[str, Any]] = []
        self.answered_at: list[float] = []
        self._lock = threading.Lock()
        self._stale_sent = False
        self._threads = [RabbitConsumerThread(task.queue, self._serve, prefetch=1,
                                              name=f"squares-{i + 1}", settings=task.settings)
                         for i in range(SERVERS)]

    def start(self) -> None:
        start_in_order(self._threads)

    def stop(self) -> None:
        stop_all(self._threads)

    def _serve(self, _thread: Any, channel: Any, method: Any, props: Any, body: bytes) -> None:
        text = body.decode(errors="replace").strip()
        number = int(text) if text.lstrip("-").isdigit() else None
        with self._lock:
            self.requests.append({"number": number, "body": text, "reply_to": props.reply_to,
                                  "correlation_id": props.correlation_id,
                                  "at": time.monotonic()})
            stale, self._stale_sent = not self._stale_sent, True
        if props.reply_to and stale:  # an answer to some earlier question, not to these
            self._answer(channel, props.reply_to, STALE_ID, "-1")
        if number is not None and props.reply_to:
            time.sleep(abs(number) * SECONDS_PER_UNIT)  # the "computation"
            self._answer(channel, props.reply_to, props.correlation_id, str(number * number))
            with self._lock:
                self.answered_at.append(time.monotonic())
        channel.basic_ack(method.delivery_tag)

    @staticmethod
    def _answer(channel: Any, reply_to: str, correlation_id: str | None, text: str) -> None:
        channel.basic_publish("", reply_to, text.encode(),
                              pika.BasicProperties(correlation_id=correlation_id))


@friendly_errors
def check_squares(task: SquaresTask, ask: Any) -> Feedback:
    """Exercise 2 · Ask the squares service"""
    fb = Feedback("Exercise 2 · Ask the squares service")
    squares = task.label(task.queue)
    if unusable(fb, "ask", ask, "def ask(queue, numbers):"):
        return fb
    if probes.ready_count(task.queue, task.settings) is None:
        return fb.fail(f"there is no queue `{squares}`", "run the setup cell again")
    probes.purge([task.queue], task.settings)
    service = _Service(task)
    service.start()
    try:
        run = run_learner_code(ask, task.queue, list(ASKED), timeout_s=TIMEOUT_S)
    finally:
        service.stop()
    if not run.finished:
        return not_finished(fb, "ask", run, TIMEOUT_S, task.label, WAIT_HINT)
    if not _judge_requests(fb, squares, service):
        return fb
    _judge_answer(fb, run.value)
    _judge_reply_queues(fb, task, service)
    return fb


def _judge_requests(fb: Feedback, squares: str, service: _Service) -> bool:
    requests = service.requests
    if not requests:
        fb.fail(f"no request reached the queue `{squares}`", PUBLISH_HINT)
        return False
    numbers = sorted(r["number"] for r in requests if r["number"] is not None)
    if numbers != sorted(ASKED):
        fb.fail(f"the service got requests for {numbers or [r['body'] for r in requests]}; "
                f"`ask` was given {list(ASKED)}: one request per number, its body the number",
                PUBLISH_HINT)
    if any(not r["reply_to"] for r in requests):
        fb.fail("a request carried no `reply_to`: the service does not know where to answer",
                PUBLISH_HINT)
    ids = [r["correlation_id"] for r in requests]
    if any(not i for i in ids):
        fb.fail("a request carried no `correlation_id`: its answer cannot be told apart from "
                "the others", MATCH_HINT)
    elif len(set(ids)) < len(ids):
        fb.fail("two requests carried the same `correlation_id`: their answers cannot be told "
                "apart", MATCH_HINT)
    if fb.wrong:
        return False
    if service.answered_at and max(r["at"] for r in requests) > min(service.answered_at):
        fb.fail("you waited for each answer before sending the next request: the service could "
                "not work on them at the same time", WAIT_HINT)
    else:
        fb.ok(f"the service got all {len(ASKED)} requests at once, each with a `reply_to` and "
              "its own `correlation_id`")
    return True


def _judge_answer(fb: Feedback, answer: Any) -> None:
    expected = {n: n * n for n in ASKED}
    if answer is None:
        fb.fail("`ask` returned None", "return a dict: {number: its square}")
        return
    if not isinstance(answer, dict):
        fb.fail(f"`ask` returned {kind(answer)}; expected a dict, {{number: its square}}",
                "return a dict: {number: its square}")
        return
    try:
        got = {int(k): int(v) for k, v in answer.items()}
    except (TypeError, ValueError):
        fb.fail(f"`ask` returned {answer!r}; expected numbers, like {expected}",
                "turn each answer's body into a number: `int(body)`")
        return
    if got == expected:
        fb.ok(f"`ask` returned {expected}: each answer matched to its request by its "
              "correlation id, though they came back in another order, and the stale answer "
              "left out")
    elif -1 in got.values():
        fb.fail(f"`ask` returned {got}: the -1 is a stale answer whose correlation id matches "
                "none of your requests", MATCH_HINT)
    elif sorted(got.values()) == sorted(expected.values()):
        fb.fail(f"`ask` returned {got}: the answers are matched to the wrong numbers. They come "
                "back in the order the service finishes (1 first), not the order asked",
                MATCH_HINT)
    else:
        fb.fail(f"`ask` returned {got}; expected {expected}", MATCH_HINT)


def _judge_reply_queues(fb: Feedback, task: SquaresTask, service: _Service) -> None:
    queues = {r["reply_to"] for r in service.requests
              if r["reply_to"] and not r["reply_to"].startswith(DIRECT_REPLY_TO)}
    left = sorted(q for q in queues if rabbitmq.queue_exists(q, task.settings))
    if left:
        fb.fail(f"your reply queue '{task.label(left[0])}' is still on the broker after `ask` "
                "returned", "declare it `exclusive=True` (deleted with its connection), and "
                "close the connection before returning")
