"""Consumers that each run in a thread of their own, on a connection of their own
(a pika ``BlockingConnection`` belongs to the thread that opened it), started in
a known order and stopped by a flag."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from queue_exp.config import Settings, get_settings
from queue_exp.rabbit_lessons.lab import open_channel


class ConsumerThread(threading.Thread):
    """A consumer on a connection of its own: calls ``on_message(worker, channel,
    method, properties, body)`` for each delivery until :meth:`stop`."""

    def __init__(
        self,
        name: str,
        queue_name: str,
        on_message: Callable[..., None],
        *,
        prefetch: int | None = None,
        auto_ack: bool = False,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.queue_name = queue_name
        self.on_message = on_message
        self.prefetch = prefetch
        self.auto_ack = auto_ack
        self.settings = settings or get_settings()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            # leaving this block closes the connection, which gives every delivery
            # we have not acked back to the queue
            with open_channel(self.settings, confirm=False) as channel:
                if self.prefetch:
                    channel.basic_qos(prefetch_count=self.prefetch)
                channel.basic_consume(
                    self.queue_name,
                    lambda ch, method, props, body: self.on_message(self, ch, method, props, body),
                    auto_ack=self.auto_ack,
                )
                self.ready.set()  # the broker has registered us: deliveries may start
                while not self._halt.is_set():
                    channel.connection.process_data_events(time_limit=0.05)
        except Exception as exc:  # noqa: BLE001 - reported to the caller by start_all/stop
            self.error = exc
        finally:
            self.ready.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._halt.set()
        self.join(timeout_s)


def start_all(threads: Sequence[ConsumerThread], timeout_s: float = 10.0) -> None:
    """Start consumers one after another, each registered before the next starts
    (so the broker's round-robin order is the order given)."""
    for thread in threads:
        thread.start()
        if not thread.ready.wait(timeout_s) or thread.error:
            stop_all(threads)
            raise RuntimeError(f"{thread.name} could not start consuming: {thread.error!r}")


def stop_all(threads: Sequence[ConsumerThread]) -> None:
    for thread in threads:
        if thread.is_alive():
            thread.stop()
    errors = [t.error for t in threads if t.error]
    if errors:
        raise RuntimeError(f"a consumer failed: {errors[0]!r}") from errors[0]
