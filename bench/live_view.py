"""What /live costs and how fast it follows: send -> visible in a real browser, and
the poller's load on the brokers and on the API process with 1 and 10 pages open.

    python -m bench.live_view [--samples 20] [--seconds 10]

Needs Playwright and Debian's Chromium (like the browser tests). Prints the figures
and writes them to bench/results/live_view.json. Not part of `make bench`: it
measures a page, not throughput, and takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import Counter
from pathlib import Path

from kafka.net.connection import KafkaConnection

from queue_exp.course import notebook
from queue_exp.course.perf.cpu import Stopwatch
from queue_exp.course.run import fresh_namespace
from queue_exp.server import start_api
from tests.api.browser import chromium
from tests.api.browser import missing_reason

RESULTS = Path(__file__).with_name("results") / "live_view.json"
SEED = {"message": "ping", "timestamp": "2023-01-01T12:00:00", "source": "bench"}
VIEWPORT = {"width": 1280, "height": 720}

kafka_requests: Counter[str] = Counter()  # client id -> Kafka requests sent on the wire


def count_kafka_requests() -> None:
    """Count every request kafka-python sends, per client id (the poller's admin
    client has its own), below the admin API: what the broker really receives."""
    original = KafkaConnection._send_request

    def counting(self, *args, **kwargs):
        kafka_requests[self.config.get("client_id", "?")] += 1
        return original(self, *args, **kwargs)

    KafkaConnection._send_request = counting


def latency(page, api, broker: str, samples: int) -> list[float]:
    """Seconds from just before the POST to the moment the page shows the change."""
    topic, queue = api.settings.kafka_topic, api.settings.rabbitmq_queue
    found = []
    for _ in range(samples):
        time.sleep(random.uniform(0, 1.0))  # land anywhere in the poll interval
        if broker == "kafka":
            started = time.perf_counter()
            sent = api.post("/kafka/send", json={**SEED, "key": "alice"}).json()
            selector = (f'.partition[data-topic="{topic}"][data-partition="{sent["partition"]}"]'
                        " .ends b")
            expected = f"{sent['offset'] + 1:,}"
        else:
            ready = page.locator(f'.queue[data-queue="{queue}"]').get_attribute("data-ready")
            started = time.perf_counter()
            api.post("/rabbitmq/send", json=SEED).raise_for_status()
            selector = f'.queue[data-queue="{queue}"] .counts .ready b'
            expected = f"{int(ready) + 1:,}"
        page.wait_for_function(
            "([s, e]) => { const n = document.querySelector(s); return n && n.textContent === e; }",
            arg=[selector, expected], polling="raf", timeout=10_000)
        found.append(time.perf_counter() - started)
    return found


def cost(api, seconds: float) -> dict[str, float]:
    """Requests/s to each broker; CPU (percent of one core) of the API process and
    of each local broker (which includes whatever else uses that broker meanwhile)."""
    poller = api._server.config.app.state.live
    admin_id = api.settings.name("queue_exp-admin")
    before, wire = poller.requests(), kafka_requests[admin_id]
    with Stopwatch(api.settings) as watch:
        time.sleep(seconds)
    after = poller.requests()
    return {
        "kafka_admin_calls_per_s": round((after["kafka"] - before["kafka"]) / seconds, 2),
        "kafka_wire_requests_per_s": round((kafka_requests[admin_id] - wire) / seconds, 2),
        "rabbitmq_management_requests_per_s":
            round((after["rabbitmq"] - before["rabbitmq"]) / seconds, 2),
        "api_process_cpu_percent": round(100 * watch.client_cpu_s / watch.wall_s, 1),
        **{f"{name}_broker_cpu_percent": round(100 * used / watch.wall_s, 1)
           for name, used in watch.broker_cpu_s.items() if used is not None},
        "viewers": poller.viewers,
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(values), 3), "worst_s": round(max(values), 3),
            "best_s": round(min(values), 3), "samples": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if missing_reason():
        raise SystemExit(missing_reason())
    count_kafka_requests()
    api = start_api(namespace=fresh_namespace("bench-live"))
    settings = api.settings
    results: dict[str, object] = {}
    try:
        for broker in ("kafka", "rabbitmq"):  # the API's topic and queue exist from here on
            api.post(f"/{broker}/send", json=SEED).raise_for_status()
        results["idle_no_viewer"] = cost(api, args.seconds)
        with chromium() as browser:
            contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(10)]
            first = contexts[0].new_page()
            first.goto(api.live_url())
            first.wait_for_selector(f'.queue[data-queue="{settings.rabbitmq_queue}"]')
            for broker in ("kafka", "rabbitmq"):
                results[f"{broker}_send_to_visible"] = summary(
                    latency(first, api, broker, args.samples))
            results["one_viewer"] = cost(api, args.seconds)
            for context in contexts[1:]:
                context.new_page().goto(api.live_url())
            results["ten_viewers"] = cost(api, args.seconds)
            for context in contexts:
                context.close()
    finally:
        api.stop()
        notebook.remove_api_resources(settings)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
