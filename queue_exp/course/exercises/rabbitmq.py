"""Exercises for the RabbitMQ chapter (after notebooks 05-07).

1. Only the critical ones: bind a queue to a topic exchange so that it receives
   ``*.critical`` messages and nothing else.
2. A careful worker: ack each task after processing it, reject the poison one
   into the dead-letter exchange (:mod:`queue_exp.course.exercises.rabbit_worker`).
3. Count the confirms: publish to a queue that refuses what does not fit, and
   report how many messages the broker confirmed.

Checks are self-contained: each one empties the exercise's queues, sends its own
probe messages, and reads back what the broker did with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

from queue_exp.clients import rabbitmq
from queue_exp.clients.rabbitmq_management import Management
from queue_exp.config import Settings
from queue_exp.course.exercises import probes
from queue_exp.course.exercises.feedback import Feedback
from queue_exp.course.exercises.feedback import Named
from queue_exp.course.exercises.feedback import count
from queue_exp.course.exercises.feedback import friendly_errors
from queue_exp.course.exercises.feedback import kind
from queue_exp.course.exercises.feedback import not_finished
from queue_exp.course.exercises.feedback import quoted
from queue_exp.course.exercises.feedback import run_learner_code
from queue_exp.course.exercises.feedback import unusable
from queue_exp.course.exercises.rabbit_worker import WorkerTask
from queue_exp.course.exercises.rabbit_worker import check_worker
from queue_exp.course.exercises.rabbit_worker import setup_worker
from queue_exp.course.run import Run

__all__ = [
    "setup_critical", "check_critical", "setup_worker", "check_worker",
    "WorkerTask", "setup_confirms", "check_confirms",
]

LEARNER_TIMEOUT_S = 15.0


# probe routing keys -> should a `*.critical` binding let them through? The task
# names none of the first words, so a list of exact keys cannot pass by luck.
PROBES = {
    "payment.critical": True,
    "disk.critical": True,
    "payment.info": False,
    "disk.warning": False,
    "critical": False,
    "eu.disk.critical": False,
}


@dataclass(frozen=True)
class Task(Named):
    """Names made for one exercise (full names; ``label`` turns them into short ones)."""

    queue: str
    settings: Settings = field(repr=False)
    exchange: str = ""
    capacity: int | None = None  # x-max-length, where the queue has one



# ------------------------------------------------------ 1. only the critical ones


def setup_critical(run: Run) -> Task:
    """Topic exchange ``logs`` and queue ``alerts`` (the names the task uses), not
    bound: binding them is the exercise."""
    exchange, queue = run.fresh_name("logs"), run.fresh_name("alerts")
    with probes.open_channel(run.settings) as channel:
        rabbitmq.declare_exchange(channel, exchange, "topic")
        rabbitmq.declare_queue(channel, queue)
    return Task(queue, run.settings, exchange)


@friendly_errors
def check_critical(task: Task) -> Feedback:
    """Exercise 1 · Only the critical ones"""
    fb = Feedback("Exercise 1 · Only the critical ones")
    queue, logs = task.label(task.queue), task.label(task.exchange)
    bind_hint = ("`channel.queue_bind(queue=…, exchange=…, routing_key=…)`, the binding key "
                 "as `routing_key`; in a topic exchange's binding key `*` stands for exactly "
                 "one word and `#` for zero or more")
    if probes.ready_count(task.queue, task.settings) is None:
        return fb.fail(f"there is no queue `{queue}`", "run the setup cell again")
    if not rabbitmq.exchange_exists(task.exchange, task.settings):
        return fb.fail(f"there is no exchange `{logs}`", "run the setup cell again")
    with Management(task.settings) as management:
        bindings = [b for b in management.queue_bindings(task.queue) if b["source"]]
    elsewhere = [b for b in bindings if b["source"] != task.exchange]
    for binding in elsewhere:
        fb.fail(f"`{queue}` is bound to exchange `{task.label(binding['source'])}` "
                f"(key '{binding['routing_key']}'); the logs go to `{logs}`", bind_hint)
    keys = sorted(b["routing_key"] for b in bindings if b["source"] == task.exchange)
    if not keys:
        return fb.fail(f"queue `{queue}` has no binding to exchange `{logs}` yet, so no "
                       "message can reach it", bind_hint)
    fb.ok(f"`{queue}` is bound to `{logs}` with {quoted(keys)}")

    probes.purge([task.queue], task.settings)
    probes.publish_texts(task.settings, list(PROBES), [f"probe {key}" for key in PROBES],
                         exchange=task.exchange, source="check")
    arrived = {m["routing_key"] for m in probes.drain(task.queue, task.settings)}
    wanted = [k for k, ok in PROBES.items() if ok]
    unwanted = [k for k, ok in PROBES.items() if not ok]
    if got := [k for k in wanted if k in arrived]:
        fb.ok(f"{quoted(got)} arrived")
    if kept_out := [k for k in unwanted if k not in arrived]:
        fb.ok(f"{quoted(kept_out)} stayed out")
    if missing := [k for k in wanted if k not in arrived]:
        fb.fail(f"{quoted(missing)} did not arrive, though "
                f"{'it ends' if len(missing) == 1 else 'they end'} in `.critical`",
                "a binding key without wildcards matches only that exact routing key; "
                "`*` matches any one word")
    if extra := [k for k in unwanted if k in arrived]:
        wide = any(k in extra for k in ("critical", "eu.disk.critical"))
        fb.fail(f"{quoted(extra)} arrived too",
                "`#` matches zero or more words, `*` exactly one: 'critical' has one word "
                "and 'eu.disk.critical' three" if wide else
                "your binding lets through more than the critical messages")
    return fb


# ------------------------------------------------------------ 3. count the confirms


def setup_confirms(run: Run, max_length: int = 5) -> Task:
    """Queue ``orders`` that holds at most ``max_length`` messages and refuses
    (``basic.nack``) any publish beyond that (``x-overflow=reject-publish``)."""
    queue = run.fresh_name("orders")
    with probes.open_channel(run.settings) as channel:
        rabbitmq.declare_queue(channel, queue,
                                    **{"x-max-length": max_length,
                                       "x-overflow": "reject-publish"})
    return Task(queue, run.settings, capacity=max_length)


@friendly_errors
def check_confirms(task: Task, publish_all: object, how_many: int = 8) -> Feedback:
    """Exercise 3 · Count the confirms"""
    fb = Feedback("Exercise 3 · Count the confirms")
    hint = ("on a channel after `channel.confirm_delivery()`, each publish waits for the "
            "broker's answer and raises `pika.exceptions.NackError` if it refused the "
            "message: count the publishes that return normally")
    if unusable(fb, "publish_all", publish_all, "def publish_all(queue, texts):"):
        return fb
    if probes.ready_count(task.queue, task.settings) is None:
        return fb.fail(f"there is no queue `{task.label(task.queue)}`", "run the setup cell again")
    probes.purge([task.queue], task.settings)
    texts = [f"order {n}" for n in range(1, how_many + 1)]
    run = run_learner_code(publish_all, task.queue, list(texts), timeout_s=LEARNER_TIMEOUT_S)
    stored = probes.ready_count(task.queue, task.settings) or 0
    if run.timed_out:
        return not_finished(fb, "publish_all", run, LEARNER_TIMEOUT_S, task.label)
    if run.error is not None:
        name = type(run.error).__name__
        not_finished(fb, "publish_all", run, LEARNER_TIMEOUT_S, task.label)
        if name == "NackError":
            fb.hint = ("a NackError means the broker refused that one message (here: the "
                       "queue is full); catch it, leave it out of the count, and go on")
        fb.hint = fb.hint or hint
        return fb
    answer = run.value
    if answer is None:
        return fb.fail(f"`publish_all` returned None (the queue now holds "
                       f"{count(stored, 'message')})", hint)
    if isinstance(answer, bool) or not isinstance(answer, int):
        return fb.fail(f"`publish_all` returned {kind(answer)}; expected a "
                       "number: how many messages the broker confirmed", hint)
    expected = min(how_many, task.capacity or how_many)
    if stored != expected:
        fb.fail(f"the queue holds {count(stored, 'message')}; with room for "
                f"{task.capacity}, publishing all {how_many} should leave {expected} in it",
                "publish every text of `texts` to the queue named `queue`")
    if answer == stored:
        fb.ok(f"you report {count(answer, 'confirmed message')}, and the queue holds "
              f"exactly {answer}")
        if not fb.wrong:
            fb.ok(f"the other {how_many - stored} were refused by the full queue, and you "
                  "did not count them")
        return fb
    if answer == how_many and stored < how_many:
        return fb.fail(f"you report all {how_many} as confirmed, but the queue holds only "
                       f"{stored}: the broker refused {how_many - stored} (the queue is "
                       "full). Without confirms a publish never tells you", hint)
    return fb.fail(f"you report {answer}, but the queue holds {count(stored, 'message')}",
                   hint)
