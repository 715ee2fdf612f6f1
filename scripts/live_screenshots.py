"""The screenshots of /live in docs/: the page at projector size (1280x720) during
notebook 03's rebalance and notebook 05's competing consumers with a forgotten ack.

    python -m scripts.live_screenshots [OUTPUT_DIR]     # default: docs/

Runs the scenarios on the configured brokers (`make brokers`), in namespaces of
their own that are deleted afterwards. Needs Playwright and Debian's Chromium.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from queue_exp.clients import rabbitmq
from queue_exp.clients.consumers import RabbitConsumerThread
from queue_exp.course import kafka as kl
from queue_exp.course.rabbitmq.channels import publish
from queue_exp.course.run import Run
from queue_exp.messages import Message
from queue_exp.server import start_api
from queue_exp.server import stop_api
from tests.api.browser import chromium

DOCS = Path(__file__).resolve().parent.parent / "docs"
PROJECTOR = {"width": 1280, "height": 720}


def shoot(browser, url: str, path: Path, ready: str, settle_s: float = 2.5) -> None:
    page = browser.new_page(viewport=PROJECTOR)
    page.goto(url)
    page.wait_for_selector(ready, timeout=15_000)
    time.sleep(settle_s)  # let the bars finish growing and the rates fill in
    page.screenshot(path=str(path))
    page.close()


def kafka_rebalance(browser, out: Path) -> None:
    """Notebook 03: a 3-partition topic, consumers joining one by one (the fourth
    stays idle), then the first leaving; a second group that is behind."""
    with Run("kafka-groups") as run:
        api = start_api(namespace=run.namespace)
        try:
            billing = run.topic("billing", partitions=3)
            kl.produce(billing, kl.keyed_messages(rounds=3), settings=run.settings)
            kl.read_to_end(billing, group_id=run.group("billing-service"), commit=True,
                           settings=run.settings)
            kl.produce(billing, kl.keyed_messages(rounds=2, first_round=4),
                       settings=run.settings)
            work = run.topic("work", partitions=3)
            with kl.ConsumerGroupLab(work, run.group("workers"), run.settings) as lab:
                for _ in range(4):
                    lab.add_consumer()
                    lab.send(12)
                lab.stop_consumer("consumer-1")
                lab.send(6)
                shoot(browser, api.live_url(), out / "live-kafka.png",
                      f'.topic[data-topic-card="{work}"] .owner[data-owner="consumer-4"]')
        finally:
            api.stop()


def rabbitmq_forgotten_ack(browser, out: Path) -> None:
    """Notebook 05: two workers on one queue; one acks each task, the other forgets
    to ack, so its deliveries pile up as unacked. Plus a quorum queue (its leader)."""
    with Run("rabbitmq-queues") as run:
        api = start_api(namespace=run.namespace)
        jobs = run.queue("jobs")
        durable = run.queue("durable-jobs", **{"x-queue-type": "quorum"})
        publish(durable, [f"order {i}" for i in range(7)], persistent=True,
                settings=run.settings)

        def careful(_worker, channel, method, _props, _body):
            time.sleep(0.15)  # the work
            channel.basic_ack(method.delivery_tag)

        def forgetful(_worker, _channel, _method, _props, _body):
            pass  # ...and no basic_ack

        # prefetch=1: the careful worker takes one task at a time; the forgetful
        # one has no limit, so it keeps taking tasks it never acknowledges
        workers = [RabbitConsumerThread(jobs, careful, prefetch=1, name="careful",
                                        settings=run.settings),
                   RabbitConsumerThread(jobs, forgetful, name="forgetful",
                                        settings=run.settings)]
        stop = threading.Event()

        def publisher():  # one producer on one channel, ten tasks a second
            with rabbitmq.open_channel(run.settings) as channel:
                n = 0
                while not stop.wait(0.1):
                    n += 1
                    rabbitmq.publish(channel, Message.now(f"job {n}"), jobs, "")

        feeding = threading.Thread(target=publisher, daemon=True)
        try:
            for worker in workers:
                worker.start()
                worker.wait_ready()
            feeding.start()
            time.sleep(4)
            shoot(browser, api.live_url(), out / "live-rabbitmq.png",
                  f'.queue[data-queue="{jobs}"]')
        finally:
            stop.set()
            feeding.join(5)
            for worker in workers:
                worker.stop()
            api.stop()


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS
    out.mkdir(parents=True, exist_ok=True)
    stop_api()
    with chromium() as browser:
        kafka_rebalance(browser, out)
        rabbitmq_forgotten_ack(browser, out)
    print(f"wrote {out / 'live-kafka.png'} and {out / 'live-rabbitmq.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
