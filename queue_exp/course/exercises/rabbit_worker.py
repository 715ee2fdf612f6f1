"""Exercise 2 of the RabbitMQ chapter: a careful worker.

The learner writes ``on_message(channel, method, properties, body)``, the
callback pika calls for each delivery. The check runs it as a real consumer
(prefetch 1, manual acks) on five tasks, one of which can never be processed,
and watches three things: the order of processing and acknowledging (an ack
before the work loses the task if the worker crashes in between), what happened
to the poison task (it must be rejected without requeue, so the queue
dead-letters it), and what the broker holds afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPChannelError

from queue_exp.clients import rabbitmq
from queue_exp.config import Settings
from queue_exp.course.exercises import probes
from queue_exp.course.exercises.feedback import Feedback
from queue_exp.course.exercises.feedback import count
from queue_exp.course.exercises.feedback import describe_error
from queue_exp.course.exercises.feedback import friendly_errors
from queue_exp.course.exercises.feedback import not_finished
from queue_exp.course.exercises.feedback import quoted
from queue_exp.course.exercises.feedback import run_learner_code
from queue_exp.course.exercises.feedback import unusable
from queue_exp.course.run import Run

TASKS = ("resize photo-1.jpg", "resize photo-2.jpg", "resize notes.txt",
         "resize photo-3.jpg", "resize photo-4.jpg")
POISON = "resize notes.txt"
TIMEOUT_S = 15.0
CHANNEL_HINT = ("settle each delivery exactly once (one ack, or one reject), with its own "
                "`method.delivery_tag`")
ACK_HINT = ("process each task with `work.process(body)`, then acknowledge it: "
            "`channel.basic_ack(delivery_tag=method.delivery_tag)`")
REJECT_HINT = ("reject a task that cannot be processed with "
               "`channel.basic_nack(delivery_tag=method.delivery_tag, requeue=False)`: the "
               "queue then hands it to its dead-letter exchange")


@dataclass
class WorkerTask:
    """Queue ``tasks`` (dead letters go to exchange ``dead-letters``, which feeds the
    queue ``dead-letters``) and the work itself, :meth:`process`."""

    queue: str
    dead_letter_exchange: str
    dead_letter_queue: str
    settings: Settings = field(repr=False)
    events: list[tuple[str, str, bool]] = field(default_factory=list, repr=False)

    def process(self, body: bytes) -> str:
        """Do the work a message asks for: resize a photo. Raises ``ValueError`` for a
        file that is not a photo (no retry will ever change that)."""
        text = probes.text_of(body) or repr(body)
        self.events.append(("process", text, False))
        if not text.endswith(".jpg"):
            raise ValueError(f"{text.split()[-1]} is not a photo")
        return text.replace("resize", "resized", 1)


def setup_worker(run: Run) -> WorkerTask:
    """Exchange and queue ``dead-letters``, and queue ``tasks`` that dead-letters into them."""
    settings = run.settings
    dlx = dlq = run.fresh_name("dead-letters")  # exchanges and queues have separate names
    queue = run.fresh_name("tasks")
    with probes.open_channel(settings) as channel:
        rabbitmq.declare_exchange(channel, dlx, "fanout")
        rabbitmq.declare_queue(channel, dlq)
        rabbitmq.bind_queue(channel, dlq, dlx)
        rabbitmq.declare_queue(channel, queue,
                                    **{"x-dead-letter-exchange": dlx})
    return WorkerTask(queue, dlx, dlq, settings)


class RecordingChannel:
    """The channel ``on_message`` gets: the real one, noting each ack and reject."""

    def __init__(self, channel: BlockingChannel, run: WorkerRun) -> None:
        self._channel = channel
        self._run = run

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        self._channel.basic_ack(delivery_tag, multiple)
        self._run.settled("ack", delivery_tag, multiple, requeue=False)

    def basic_nack(self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
                   ) -> None:
        self._channel.basic_nack(delivery_tag, multiple, requeue)
        self._run.settled("reject", delivery_tag, multiple, requeue)

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        self._channel.basic_reject(delivery_tag, requeue)
        self._run.settled("reject", delivery_tag, False, requeue)


@dataclass
class WorkerRun:
    """What happened while the check ran the learner's worker."""

    events: list[tuple[str, str, bool]]  # (what, task, requeue), in order
    tags: dict[int, str] = field(default_factory=dict)  # delivery tag -> task, unsettled
    done: set[str] = field(default_factory=set)  # tasks acked or rejected for good
    learner_error: tuple[str, BaseException] | None = None
    channel_error: AMQPChannelError | None = None
    last_activity: float = field(default_factory=time.monotonic)

    def settled(self, what: str, tag: int, multiple: bool, requeue: bool) -> None:
        tags = [t for t in self.tags if t <= tag] if multiple else [tag]
        for settled_tag in tags:
            text = self.tags.pop(settled_tag, None)
            if text is not None:
                self.events.append((what, text, requeue))
                if not requeue:
                    self.done.add(text)


def _run_worker(task: WorkerTask, on_message: Any, idle_s: float = 1.5,
                max_deliveries: int = 12, timeout_s: float = 10.0) -> WorkerRun:
    run = WorkerRun(task.events)
    connection = rabbitmq.connect(task.settings)
    try:
        channel = connection.channel()
        # one task at a time: tasks arrive in queue order, and an unacked task
        # holds back the rest, as it would in a real worker with prefetch 1
        channel.basic_qos(prefetch_count=1)
        proxy = RecordingChannel(channel, run)

        def deliver(_channel: Any, method: Any, properties: Any, body: bytes) -> None:
            text = probes.text_of(body) or repr(body)
            run.tags[method.delivery_tag] = text
            run.events.append(("deliver", text, False))
            run.last_activity = time.monotonic()
            if run.learner_error is None:
                try:
                    on_message(proxy, method, properties, body)
                except Exception as exc:  # the learner's mistake, explained by the check
                    run.learner_error = (text, exc)

        channel.basic_consume(task.queue, deliver)
        deadline = time.monotonic() + timeout_s
        deliveries = 0
        while (time.monotonic() < deadline and run.learner_error is None
               and len(run.done) < len(TASKS) and deliveries < max_deliveries
               and time.monotonic() - run.last_activity < idle_s):
            connection.process_data_events(time_limit=0.05)
            deliveries = sum(e[0] == "deliver" for e in run.events)
    except AMQPChannelError as exc:  # e.g. the same delivery acked twice
        run.channel_error = exc
    finally:
        if connection.is_open:
            connection.close()  # every unsettled delivery goes back to the queue
    return run


@friendly_errors
def check_worker(task: WorkerTask, on_message: Any) -> Feedback:
    """Exercise 2 · A careful worker"""
    fb = Feedback("Exercise 2 · A careful worker")
    if unusable(fb, "on_message", on_message, "def on_message(channel, method, properties, body):"):
        return fb
    probes.purge([task.queue, task.dead_letter_queue], task.settings)
    task.events.clear()
    probes.publish_texts(task.settings, [task.queue] * len(TASKS), TASKS)
    outer = run_learner_code(_run_worker, task, on_message, timeout_s=TIMEOUT_S)
    if not outer.finished:
        return not_finished(fb, "on_message", outer, TIMEOUT_S, _shorten(task))
    run: WorkerRun = outer.value
    if run.learner_error is not None:
        text, exc = run.learner_error
        if isinstance(exc, ValueError):
            hint = ("`work.process` raises ValueError for a task it can never do: catch it "
                    "(`try: … except ValueError: …`) and reject that message with "
                    "`channel.basic_nack(delivery_tag=method.delivery_tag, requeue=False)`")
        else:
            hint = CHANNEL_HINT if isinstance(exc, AMQPChannelError) else ACK_HINT
        fb.fail(f"while handling '{text}', `on_message` raised "
                f"{describe_error(exc, _shorten(task))}", hint)
    if run.channel_error is not None:
        fb.fail(f"the broker closed the channel: {describe_error(run.channel_error)}",
                CHANNEL_HINT)
    _judge_tasks(fb, task.events)
    _judge_broker(fb, task)
    return fb


def _judge_tasks(fb: Feedback, events: list[tuple[str, str, bool]]) -> None:
    def seen(what: str, text: str) -> list[int]:
        return [i for i, e in enumerate(events) if e[0] == what and e[1] == text]

    photos = [t for t in TASKS if t != POISON]
    careful = [t for t in photos if seen("process", t) and seen("ack", t)
               and seen("process", t)[0] < seen("ack", t)[0]]
    if careful == photos:
        fb.ok(f"all {len(photos)} photos were processed first, acknowledged after")
    for text in photos:
        if seen("ack", text) and not seen("process", text):
            fb.fail(f"'{text}' was acknowledged but never processed", ACK_HINT)
        elif seen("ack", text) and seen("ack", text)[0] < seen("process", text)[0]:
            fb.fail(f"'{text}' was acknowledged before it was processed: had the worker "
                    "crashed in between, the task would be lost", ACK_HINT)
        elif seen("reject", text):
            fb.fail(f"'{text}' was rejected, though it could be processed", ACK_HINT)
    poison_deliveries = len(seen("deliver", POISON))
    if any(e[0] == "reject" and e[1] == POISON and not e[2] for e in events):
        fb.ok(f"'{POISON}' (not a photo) was rejected without requeue")
    elif seen("ack", POISON):
        fb.fail(f"'{POISON}' could not be processed, yet it was acknowledged: RabbitMQ "
                "deleted it and nobody will ever see it", REJECT_HINT)
    elif seen("reject", POISON):
        fb.fail(f"'{POISON}' was rejected with requeue, so it came straight back "
                f"({poison_deliveries} deliveries, and it would go on)",
                "`basic_nack` and `basic_reject` requeue by default: pass `requeue=False`")
    unsettled = [t for t in TASKS if seen("deliver", t) and t not in
                 {e[1] for e in events if e[0] in ("ack", "reject")}]
    for text in unsettled:
        fb.fail(f"'{text}' reached your worker but was neither acknowledged nor rejected: "
                "RabbitMQ sends no other task until it is (prefetch 1)", ACK_HINT)
    if never := [t for t in TASKS if not seen("deliver", t)]:
        fb.fail(f"{count(len(never), 'task')} never reached your worker: {quoted(never)}")


def _judge_broker(fb: Feedback, task: WorkerTask) -> None:
    tasks, dead_letters = (_shorten(task)(name) for name in (task.queue, task.dead_letter_queue))
    left = probes.ready_count(task.queue, task.settings)
    dead = [m["message"] for m in probes.drain(task.dead_letter_queue, task.settings)]
    if left == 0:
        fb.ok(f"queue `{tasks}` is empty: every task was settled")
    elif left:
        fb.fail(f"{count(left, 'task')} still wait in queue `{tasks}`")
    if dead == [POISON]:
        fb.ok(f"queue `{dead_letters}` holds '{POISON}', for a human to look at")
    elif dead:
        fb.fail(f"queue `{dead_letters}` holds {quoted(dead)}; only '{POISON}' belongs there")
    elif any(e[0] == "reject" and e[1] == POISON and not e[2] for e in task.events):
        fb.fail(f"queue `{dead_letters}` is empty, though the poison task was rejected",
                "run the setup cell again: it declares `tasks` with its dead-letter exchange")


def _shorten(task: WorkerTask):
    return lambda text: text.replace(task.settings.namespace + ".", "")
