"""`make bench`: measure, print and write bench/results/latest.json.

Every ratio divides two measurements taken in the same run, interleaved, so a
noisy machine moves both sides together. `--quick` runs the same measurements
small (a test checks it produces every key); timings are never asserted.

    python -m bench.run [--quick] [--output PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench import ingest
from bench import ready
from queue_exp import brokers
from queue_exp.brokers import procs
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.config import get_settings
from queue_exp.course import notebook
from queue_exp.course.perf.load import SEED_BODY
from queue_exp.course.perf.load import run_load
from queue_exp.course.run import fresh_namespace
from queue_exp.waiting import wait_until

RESULTS = Path(__file__).with_name("results") / "latest.json"
CLIENTS = 32


def broker_pids() -> dict[str, int | None]:
    """The embedded brokers' pids (``None`` for a broker the launcher did not start)."""
    report = brokers.status()
    return {name: report[name].get("pid") for name in ("kafka", "rabbitmq")}


def load_with_cpu(url: str, pids: dict[str, int | None], seconds: float,
                  cpu: dict[str, float]) -> dict:
    """:func:`run_load` on ``url`` for ``seconds``; adds to ``cpu`` the CPU seconds each
    of ``pids`` (and the processes it started) used meanwhile, and the load
    generator's own as ``load``. Returns the load's summary."""
    before = {name: procs.cpu_seconds(pid) for name, pid in pids.items()}
    result = run_load(url, CLIENTS, seconds=seconds)
    for name, pid in pids.items():
        now = procs.cpu_seconds(pid)
        if now is not None and before[name] is not None:
            cpu[name] = cpu.get(name, 0.0) + now - before[name]
    cpu["load"] = cpu.get("load", 0.0) + result["cpu_s"]
    return result


def per_request_ms(cpu: dict[str, float], requests: int) -> dict[str, float]:
    return {name: round(1000 * total / requests, 3) for name, total in cpu.items()}


def api_send(namespace: str, seconds: float, rounds: int) -> dict:
    """req/s of POST /kafka/send, /rabbitmq/send and a bare endpoint on one server,
    and where the CPU went per request: the API process, the load generator (this
    process) and each broker. On a machine with fewer cores than busy processes the
    ratio of two endpoints' throughputs is about the inverse ratio of their CPU per
    request, so these figures say what limits ``api_kafka_send_vs_bare``. (The load
    generator runs in a process of its own and reports its CPU while sending.)"""
    port = procs.free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.server", str(port), namespace],
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    endpoints = (("bare", "/bench/bare"), ("kafka", "/kafka/send"),
                 ("rabbitmq", "/rabbitmq/send"))
    pids = {"api": server.pid, **broker_pids()}
    try:
        wait_until(lambda: procs.port_open("127.0.0.1", port), 30, 0.1)
        for path in ("/kafka/send", "/rabbitmq/send"):  # open the producer and publisher
            httpx.post(base + path, json=SEED_BODY, timeout=30).raise_for_status()
        rps: dict[str, list[float]] = {name: [] for name, _ in endpoints}
        cpu: dict[str, dict[str, float]] = {name: {} for name, _ in endpoints}
        requests: dict[str, int] = dict.fromkeys(rps, 0)
        for _ in range(rounds):
            for name, path in endpoints:
                result = load_with_cpu(base + path, pids, seconds, cpu[name])
                if result["failed"]:
                    raise RuntimeError(f"{result['failed']} requests to {path} failed")
                rps[name].append(result["rps"])
                requests[name] += result["ok"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    bare, kafka, rabbit = (statistics.mean(rps[n]) for n in ("bare", "kafka", "rabbitmq"))
    per_request = {f"cpu_ms_per_request_{name}": per_request_ms(cpu[name], requests[name])
                   for name in rps}
    return {
        "api_bare_rps": round(bare),
        "api_kafka_send_rps": round(kafka),
        "api_rabbitmq_send_rps": round(rabbit),
        "api_kafka_send_vs_bare": round(kafka / bare, 3),
        "api_rabbitmq_send_vs_bare": round(rabbit / bare, 3),
        "load_clients": CLIENTS,
        **per_request,
    }


def consumer_ingest(namespace: str, count: int, rounds: int) -> dict:
    """``count`` messages per RabbitMQ read, five times as many per Kafka read:
    kafka-python reads about five times faster, and a read should last long
    enough (a second or more) that joining the group is not most of it."""
    settings = get_settings().replace(namespace=namespace)
    timeout = 120.0
    topic = settings.name("ingest")
    kafka_count = 5 * count
    ingest.fill_kafka(topic, kafka_count, settings)
    kafka_raw, kafka_api = [], []
    for _ in range(rounds):  # each read is a fresh group over the same records
        kafka_raw.append(ingest.kafka_raw(topic, kafka_count, settings, timeout))
        kafka_api.append(ingest.kafka_api(topic, kafka_count, settings, timeout))
    kafka_admin.delete_topics([topic], settings=settings)

    rabbit_raw, rabbit_api = [], []
    for i in range(rounds):  # a queue empties as it is read: fill a pair per round
        raw_q, api_q = settings.name(f"ingest-raw-{i}"), settings.name(f"ingest-api-{i}")
        ingest.fill_rabbit([raw_q, api_q], count, settings, timeout)
        rabbit_raw.append(ingest.rabbit_raw(raw_q, count, settings, timeout))
        rabbit_api.append(ingest.rabbit_api(api_q, count, settings, timeout))
        rabbitmq.delete_queues([raw_q, api_q], settings=settings)

    def mean(values: list[float]) -> float:
        return statistics.mean(values)

    return {
        "kafka_consumer_raw_msgs_per_s": round(mean(kafka_raw)),
        "kafka_consumer_api_msgs_per_s": round(mean(kafka_api)),
        "kafka_consumer_ingest_vs_raw": round(mean(kafka_api) / mean(kafka_raw), 3),
        "rabbitmq_consumer_raw_msgs_per_s": round(mean(rabbit_raw)),
        "rabbitmq_consumer_api_msgs_per_s": round(mean(rabbit_api)),
        "rabbitmq_consumer_ingest_vs_raw": round(mean(rabbit_api) / mean(rabbit_raw), 3),
        "kafka_ingest_messages": kafka_count,
        "rabbitmq_ingest_messages": count,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds, not minutes)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    brokers.up()
    namespace = fresh_namespace("bench")
    began = time.monotonic()
    results: dict = {}
    try:
        results.update(api_send(namespace, seconds=1.0 if args.quick else 8.0,
                                rounds=1 if args.quick else 3))
        results.update(consumer_ingest(namespace, count=2_000 if args.quick else 30_000,
                                       rounds=1 if args.quick else 3))
        results["brokers_ready_s"] = round(ready.brokers_ready_seconds(), 2)
    finally:
        notebook.remove_api_resources(get_settings().replace(namespace=namespace))
    results["quick"] = args.quick
    results["bench_wall_s"] = round(time.monotonic() - began, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
