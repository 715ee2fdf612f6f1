"""Run a learner's pika worker the way a check needs it: each worker on a
connection of its own, its I/O driven in a thread the check controls, and a
journal of everything it did (deliveries, the work, acks, nacks, rejects).

The learner writes ``start_worker(channel, queue, work)``: set up the channel
and register a consumer, then return. :class:`LearnerWorker` calls it in its
thread with a :class:`RecordingChannel` and runs ``process_data_events`` until
stopped. ``work(body)`` is the check's job; it may raise :class:`WorkerCrash`
to play a worker that dies mid-job (its connection then closes with the job
unsettled, as the broker would see a killed process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from queue_exp.clients import rabbitmq
from queue_exp.config import Settings
from queue_exp.waiting import wait_until

Event = tuple[str, str, str, Any]  # (worker, what, job, detail)


class WorkerCrash(BaseException):
    """The worker "dies" mid-job. A BaseException, so that ``except Exception`` in the
    learner's callback does not swallow it (nothing swallows a SIGKILL)."""


def job_name(body: Any) -> str:
    """A job's name from its body (checks publish plain text)."""
    return body.decode(errors="replace") if isinstance(body, bytes | bytearray) else repr(body)


@dataclass
class Journal:
    """Everything the workers did, in order."""

    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, worker: str, what: str, job: str, detail: Any = None) -> None:
        with self.lock:
            self.events.append((worker, what, job, detail))

    def of(self, what: str, job: str | None = None) -> list[Event]:
        with self.lock:
            return [e for e in self.events if e[1] == what and (job is None or e[2] == job)]

    def first(self, what: str, job: str) -> int | None:
        """Position of the first ``what`` for ``job`` in the journal."""
        with self.lock:
            return next((i for i, e in enumerate(self.events) if e[1:3] == (what, job)), None)


class RecordingChannel:
    """The channel ``start_worker`` gets: the real one, noting each consumer, each
    delivery and how it was settled (``ack``, or ``nack`` with its requeue flag)."""

    def __init__(self, channel: Any, worker: LearnerWorker) -> None:
        self._channel = channel
        self._worker = worker
        self._tags: dict[int, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    def basic_consume(self, queue: str, on_message_callback: Callable[..., Any],
                      auto_ack: bool = False, exclusive: bool = False,
                      consumer_tag: str | None = None, arguments: Any = None) -> str:
        worker = self._worker

        def deliver(_channel: Any, method: Any, properties: Any, body: bytes) -> None:
            job = job_name(body)
            self._tags[method.delivery_tag] = job
            worker.journal.add(worker.name, "deliver", job, bool(method.redelivered))
            on_message_callback(self, method, properties, body)

        worker.consumed.append((queue, auto_ack))
        return self._channel.basic_consume(queue, deliver, auto_ack=auto_ack,
                                           exclusive=exclusive, consumer_tag=consumer_tag,
                                           arguments=arguments)

    def _settled(self, what: str, tag: int, multiple: bool, requeue: bool) -> None:
        tags = [t for t in self._tags if t <= tag] if multiple else [tag]
        for settled in tags:
            job = self._tags.pop(settled, None)
            if job is not None:
                self._worker.journal.add(self._worker.name, what, job, requeue)

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        self._channel.basic_ack(delivery_tag, multiple)
        self._settled("ack", delivery_tag, multiple, False)

    def basic_nack(self, delivery_tag: int = 0, multiple: bool = False,
                   requeue: bool = True) -> None:
        self._channel.basic_nack(delivery_tag, multiple, requeue)
        self._settled("nack", delivery_tag, multiple, requeue)

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        self._channel.basic_reject(delivery_tag, requeue)
        self._settled("nack", delivery_tag, False, requeue)


class LearnerWorker:
    """One learner worker: a connection of its own, ``start_worker(channel, queue,
    work)`` called in its thread, then network I/O until stopped or crashed."""

    def __init__(self, name: str, settings: Settings, queue: str,
                 start_worker: Callable[..., Any], journal: Journal,
                 job: Callable[[LearnerWorker, str], None]) -> None:
        self.name, self.settings, self.queue = name, settings, queue
        self.start_worker, self.journal, self.job = start_worker, journal, job
        self.consumed: list[tuple[str, bool]] = []  # (queue, auto_ack) per basic_consume
        self.started, self.stop, self.crashed = (threading.Event() for _ in range(3))
        self.error: BaseException | None = None
        self.connection: Any = None
        self.channel: Any = None
        self.thread = threading.Thread(target=self._run, name=f"queue_exp-exercise-{name}",
                                       daemon=True)

    def work(self, body: bytes) -> None:
        """What the learner's callback calls: the check's job, journaled."""
        job = job_name(body)
        self.journal.add(self.name, "start", job)
        try:
            self.job(self, job)
        except WorkerCrash:
            self.crashed.set()
            raise
        self.journal.add(self.name, "done", job)

    def _run(self) -> None:
        try:
            self.connection = rabbitmq.connect(self.settings)
            self.channel = self.connection.channel()
            self.start_worker(RecordingChannel(self.channel, self), self.queue, self.work)
            self.started.set()
            while not self.stop.is_set() and not self.crashed.is_set():
                self.connection.process_data_events(time_limit=0.05)
        except WorkerCrash:
            pass  # the connection closes below with the job unsettled
        except Exception as exc:  # the learner's mistake, explained by the check
            self.error = exc
        finally:
            if self.connection is not None and self.connection.is_open:
                try:
                    self.connection.close()  # unacked deliveries go back to the queue
                except Exception:  # a broken connection is closed already
                    pass

    def alive(self) -> bool:
        return self.thread.is_alive()

    def halt(self) -> None:
        """End the I/O loop, and a ``start_consuming()`` in the learner's code too
        (pika's one thread-safe call schedules ``stop_consuming`` in its thread)."""
        self.stop.set()
        if not self.started.is_set() and self.connection is not None:
            try:
                self.connection.add_callback_threadsafe(self.channel.stop_consuming)
            except Exception:  # best effort: the thread is a daemon
                pass
        if self.thread.ident is not None:  # started
            self.thread.join(2)


def start_workers(workers: Sequence[LearnerWorker], timeout_s: float) -> None:
    """Start them in order (the first subscribes first); stop at the first one whose
    ``start_worker`` does not return in time or raises (the others would repeat it)."""
    for worker in workers:
        worker.thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and worker.alive() and not worker.started.is_set():
            worker.started.wait(0.05)
        if not worker.started.is_set():
            break


def stop_workers(workers: Sequence[LearnerWorker]) -> None:
    for worker in workers:
        worker.halt()


def publish_jobs(settings: Settings, queue: str, jobs: Sequence[str]) -> None:
    """Publish each job's name as a plain-text body (confirmed)."""
    with rabbitmq.open_channel(settings) as channel:
        for job in jobs:
            channel.basic_publish("", queue, job.encode())


def wait_until_settled(journal: Journal, jobs: Sequence[str], workers: Sequence[LearnerWorker],
                       timeout_s: float, idle_s: float = 1.0) -> None:
    """Until every job is done and acked, a worker failed or ended, nothing has
    happened for ``idle_s`` (a job held and never settled), or ``timeout_s``."""
    seen = {"events": -1, "since": time.monotonic()}

    def over() -> bool:
        if len(journal.events) != seen["events"]:
            seen.update(events=len(journal.events), since=time.monotonic())
        return bool(all(journal.of("done", job) and journal.of("ack", job) for job in jobs)
                    or any(w.error or not w.alive() for w in workers)
                    or (journal.events and time.monotonic() - seen["since"] > idle_s))

    try:
        wait_until(over, timeout_s, 0.02)
    except TimeoutError:
        pass
