"""Exercise 1 after notebooks 05-06: a fair, careful worker, written with pika.

The learner writes ``start_worker(channel, queue, work)``: set the channel's
prefetch, and register a consumer whose callback calls ``work(body)``, acks the
job after the work, and gives it back (nack or reject with requeue) when
``work`` raises :class:`TryAgain`. The check runs it as real workers
(:mod:`~queue_exp.course.exercises.learner_workers`) in three rounds, and
looks at the broker in each:

1. fair dispatch: a slow and a fast worker share eight jobs; the broker must
   show each consumer with prefetch 1, and the slow worker must not hoard jobs;
2. a job that fails once (``TryAgain``) must go back to the queue and be done
   on its redelivery, and the queue must end empty;
3. a worker that dies halfway through a job must leave the job on the broker
   (it was not acked before the work was done).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from queue_exp.clients import rabbitmq
from queue_exp.clients.rabbitmq_management import Management
from queue_exp.config import Settings
from queue_exp.course.exercises import probes
from queue_exp.course.exercises.feedback import Feedback
from queue_exp.course.exercises.feedback import Named
from queue_exp.course.exercises.feedback import count
from queue_exp.course.exercises.feedback import describe_error
from queue_exp.course.exercises.feedback import friendly_errors
from queue_exp.course.exercises.feedback import quoted
from queue_exp.course.exercises.feedback import unusable
from queue_exp.course.exercises.learner_workers import Journal
from queue_exp.course.exercises.learner_workers import LearnerWorker
from queue_exp.course.exercises.learner_workers import WorkerCrash
from queue_exp.course.exercises.learner_workers import publish_jobs
from queue_exp.course.exercises.learner_workers import start_workers
from queue_exp.course.exercises.learner_workers import stop_workers
from queue_exp.course.exercises.learner_workers import wait_until_settled
from queue_exp.course.run import Run
from queue_exp.waiting import wait_until

FAIR_JOBS = tuple(f"job {n}" for n in range(1, 9))
SLOW_S, FAST_S = 0.5, 0.02
RETRY_JOBS = ("job 9", "job 10", "job 11")
FLAKY = "job 10"  # fails once with TryAgain
CRASH = "job 12"  # the worker dies halfway through it
START_TIMEOUT_S = 3.0
ROUND_TIMEOUT_S = 8.0

PREFETCH_HINT = ("call `channel.basic_qos(prefetch_count=1)` before `channel.basic_consume(…)`: "
                 "a busy worker then gets no new job until it has acked the one it has")
ACK_HINT = ("in the callback, call `work(body)` first and only then "
            "`ch.basic_ack(delivery_tag=method.delivery_tag)`")
RETRY_HINT = ("wrap `work(body)` in `try: … except TryAgain: …` and give the job back with "
              "`ch.basic_nack(delivery_tag=method.delivery_tag, requeue=True)`")


class TryAgain(Exception):
    """``work(body)`` failed for a passing reason: the same job will succeed later."""


@dataclass(frozen=True)
class FairWorkerTask(Named):
    """Queue ``jobs`` (its full name in ``queue``)."""

    queue: str
    settings: Settings = field(repr=False)



def setup_fair_worker(run: Run) -> FairWorkerTask:
    """The durable queue ``jobs``, empty."""
    queue = run.fresh_name("jobs")
    with probes.open_channel(run.settings, confirm=False) as channel:
        rabbitmq.declare_queue(channel, queue)
    return FairWorkerTask(queue, run.settings)


def _job(seconds: float):
    """The work each job takes: ``seconds``; FLAKY fails the first time, CRASH kills
    the worker halfway through."""

    def job(worker: LearnerWorker, name: str) -> None:
        if name == CRASH:
            raise WorkerCrash(name)
        time.sleep(seconds)
        if name == FLAKY and not worker.journal.of("failed", name):
            worker.journal.add(worker.name, "failed", name)
            raise TryAgain(f"{name}: the image service timed out; try again")

    return job


def _workers(task: FairWorkerTask, start_worker: Any, journal: Journal,
             speeds: dict[str, float]) -> list[LearnerWorker]:
    workers = [LearnerWorker(name, task.settings, task.queue, start_worker, journal,
                             _job(seconds)) for name, seconds in speeds.items()]
    start_workers(workers, START_TIMEOUT_S)
    return workers


# ---------------------------------------------------------------- the check


@friendly_errors
def check_fair_worker(task: FairWorkerTask, start_worker: Any) -> Feedback:
    """Exercise 1 · A fair, careful worker"""
    fb = Feedback("Exercise 1 · A fair, careful worker")
    if unusable(fb, "start_worker", start_worker, "def start_worker(channel, queue, work):"):
        return fb
    if probes.ready_count(task.queue, task.settings) is None:
        return fb.fail(f"there is no queue `{task.label(task.queue)}`", "run the setup cell again")
    for round_ in (_fair_round, _retry_round, _crash_round):
        probes.purge([task.queue], task.settings)
        if not round_(fb, task, start_worker):
            break  # the next rounds would only repeat what is wrong
    probes.purge([task.queue], task.settings)
    return fb


def _started_well(fb: Feedback, task: FairWorkerTask, workers: list[LearnerWorker]) -> bool:
    jobs = task.label(task.queue)
    for worker in workers:
        if worker.error is not None and not worker.started.is_set():
            return _failed(fb,
                f"`start_worker` raised {describe_error(worker.error, task.label)}",
                "call `start_worker` yourself on a channel to see the whole traceback")
        if not worker.started.is_set():
            return _failed(fb,
                f"`start_worker` did not return within {START_TIMEOUT_S:g} s: it should set "
                "up the consumer and return (the check runs the network I/O); "
                "`channel.start_consuming()` would never return",
                "end `start_worker` with `channel.basic_consume(…)`")
        if not worker.consumed:
            return _failed(fb,
                f"`start_worker` registered no consumer on the queue `{jobs}`",
                "call `channel.basic_consume(queue=queue, on_message_callback=…)`")
        if any(queue != task.queue for queue, _ in worker.consumed):
            return _failed(fb,
                f"`start_worker` consumed from another queue than `{jobs}`, the `queue` it "
                "was given", "use the argument: `channel.basic_consume(queue=queue, …)`")
        if any(auto_ack for _, auto_ack in worker.consumed):
            return _failed(fb,
                "your consumer uses `auto_ack=True`: the broker forgets each job the moment "
                "it sends it, so a crash loses it, and prefetch cannot hold anything back",
                "consume with manual acks (the default, `auto_ack=False`), ack after the work")
    return True


def _fair_round(fb: Feedback, task: FairWorkerTask, start_worker: Any) -> bool:
    journal = Journal()
    workers = _workers(task, start_worker, journal, {"slow worker": SLOW_S, "fast worker": FAST_S})
    try:
        if not _started_well(fb, task, workers):
            return False
        prefetches = _broker_prefetches(task)
        publish_jobs(task.settings, task.queue, FAIR_JOBS)
        wait_until_settled(journal, FAIR_JOBS, workers, ROUND_TIMEOUT_S)
    finally:
        stop_workers(workers)
    if prefetches == [1, 1]:
        fb.ok("the broker shows each of your two workers with prefetch 1")
    elif 0 in prefetches:
        fb.fail("the broker shows a worker with no prefetch limit (`prefetch_count` 0): it "
                "pushes jobs to a worker however busy it is", PREFETCH_HINT)
    else:
        shown = " and ".join(str(n) for n in prefetches)
        fb.fail(f"the broker shows your workers with prefetch {shown}: a busy worker may hold "
                "more than one job while the other waits", PREFETCH_HINT)
    slow = [e[2] for e in journal.of("start") if e[0] == "slow worker"]
    if len(slow) <= 2:
        fb.ok(f"the slow worker did {count(len(slow), 'job')} of {len(FAIR_JOBS)}, the fast one "
              "the rest: each job went to a worker that was free")
    else:
        fb.fail(f"the slow worker took {len(slow)} of the {len(FAIR_JOBS)} jobs "
                f"({quoted(slow)}) while the fast one sat idle", PREFETCH_HINT)
    return _judge_settling(fb, task, journal, workers, FAIR_JOBS)


def _retry_round(fb: Feedback, task: FairWorkerTask, start_worker: Any) -> bool:
    journal = Journal()
    workers = _workers(task, start_worker, journal, {"worker": FAST_S})
    try:
        if not _started_well(fb, task, workers):
            return False
        publish_jobs(task.settings, task.queue, RETRY_JOBS)
        wait_until_settled(journal, RETRY_JOBS, workers, ROUND_TIMEOUT_S)
    finally:
        stop_workers(workers)
    wrong_before = len(fb.wrong)
    if isinstance(workers[0].error, TryAgain):
        return _failed(fb, f"`work` raised TryAgain for '{FLAKY}', and your callback let it "
                           "escape: the worker died with it", RETRY_HINT)
    given_back = [e for e in journal.of("nack", FLAKY) if e[3]]
    again = [e for e in journal.of("deliver", FLAKY) if e[3]]
    if given_back and again and journal.of("done", FLAKY):
        fb.ok(f"'{FLAKY}' failed once (TryAgain), went back to the queue, came back flagged "
              "redelivered=True, and was done the second time")
    elif journal.of("ack", FLAKY) and not journal.of("done", FLAKY):
        fb.fail(f"'{FLAKY}' failed (TryAgain), yet it was acknowledged: the broker deleted it, "
                "and the job was never done", RETRY_HINT)
    elif journal.of("nack", FLAKY) and not given_back:
        fb.fail(f"'{FLAKY}' failed (TryAgain) and was rejected without requeue: the broker "
                "dropped it, and the job was never done",
                "`requeue=True` gives the job back to the queue")
    elif not journal.of("nack", FLAKY):
        fb.fail(f"'{FLAKY}' failed (TryAgain) and your worker neither acked nor gave it back: "
                "it stays unacked, and with prefetch 1 no other job comes", RETRY_HINT)
    if len(fb.wrong) > wrong_before:  # said already: judge the other jobs only
        _judge_settling(fb, task, journal, workers, tuple(j for j in RETRY_JOBS if j != FLAKY))
        return False
    return _judge_settling(fb, task, journal, workers, RETRY_JOBS)


def _crash_round(fb: Feedback, task: FairWorkerTask, start_worker: Any) -> bool:
    journal = Journal()
    workers = _workers(task, start_worker, journal, {"worker": FAST_S})
    try:
        if not _started_well(fb, task, workers):
            return False
        publish_jobs(task.settings, task.queue, (CRASH,))
        try:
            wait_until(lambda: not workers[0].alive(), ROUND_TIMEOUT_S, 0.02)
        except TimeoutError:
            pass
    finally:
        stop_workers(workers)
    if not journal.of("start", CRASH):
        return _failed(fb, f"your worker never started on '{CRASH}'", ACK_HINT)
    try:  # the broker notices the closed connection and puts an unacked job back
        wait_until(lambda: probes.ready_count(task.queue, task.settings) == 1, 3, 0.05)
    except TimeoutError:
        return _failed(fb, f"a worker died halfway through '{CRASH}', and the job is gone from "
                           "the broker: it was acknowledged before the work was done", ACK_HINT)
    fb.ok(f"a worker died halfway through '{CRASH}', and the broker put the job back: it had "
          "not been acknowledged yet")
    return True


def _broker_prefetches(task: FairWorkerTask) -> list[int]:
    """Each consumer's prefetch on the queue, as the broker reports it."""
    found: list[int] = []
    with Management(task.settings) as management:

        def both() -> bool:
            found[:] = [c.get("prefetch_count", 0) for c in management.consumers(task.queue)]
            return len(found) >= 2

        try:
            wait_until(both, 5, 0.1)
        except TimeoutError:
            pass
    return sorted(found)


def _judge_settling(fb: Feedback, task: FairWorkerTask, journal: Journal,
                    workers: list[LearnerWorker], jobs: tuple[str, ...]) -> bool:
    """Every job done and acked after its work, nothing left on the broker."""
    for worker in workers:
        if worker.error is not None and not isinstance(worker.error, TryAgain):
            return _failed(fb, f"your callback raised {describe_error(worker.error, task.label)}",
                               ACK_HINT)
    early = [job for job in jobs if journal.of("ack", job) and journal.of("start", job)
             and journal.first("ack", job) < journal.first("start", job)]
    if early:
        return _failed(fb, f"{quoted(early)} {_were(early)} acknowledged before the work "
                           "started: had the worker crashed in between, the job would be lost",
                           ACK_HINT)
    unsettled = [job for job in jobs if journal.of("done", job) and not journal.of("ack", job)]
    if unsettled:
        return _failed(fb, f"{quoted(unsettled)} {_were(unsettled)} done but never "
                           "acknowledged: the broker still counts them as unacked", ACK_HINT)
    not_done = [job for job in jobs if not journal.of("done", job)]
    if not_done:
        return _failed(fb, f"{count(len(not_done), 'job')} {_were(not_done)} never done: "
                           f"{quoted(not_done)}", ACK_HINT)
    left = probes.ready_count(task.queue, task.settings)
    if left:
        return _failed(fb, f"{count(left, 'job')} still wait in the queue "
                           f"`{task.label(task.queue)}`", ACK_HINT)
    return True


def _failed(fb: Feedback, text: str, hint: str) -> bool:
    """Record what is wrong; ``False``: this round cannot go on."""
    fb.fail(text, hint)
    return False


def _were(items: list[str]) -> str:
    return "was" if len(items) == 1 else "were"
