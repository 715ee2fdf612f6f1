"""`python -m bench.send_options`: what would make `POST /kafka/send` faster, measured.

`make bench`'s `api_kafka_send_vs_bare` stays near 0.6–0.66 on two cores: the API's
Kafka path costs about half as much CPU again per request as the bare endpoint
(`cpu_ms_per_request_*`), and the load generator and the broker share the cores.
This runs, interleaved in one run, the same load against one server per option:

* `kafka-python` — the API as it is (kafka-python's producer, ``linger_ms=0``);
* `linger-2`, `linger-5` — the producer waits 2 or 5 ms to fill a batch;
* `confluent` — the same route with confluent-kafka's ``Producer`` (librdkafka: C
  threads that do not hold Python's GIL) instead of kafka-python's.

It prints each option's throughput as a ratio to the bare endpoint, and the CPU per
request of the API process, the load generator and the brokers. The API keeps
kafka-python (the client the course teaches); this measures what that costs.

    python -m bench.send_options [--seconds 6] [--rounds 3]
    python -m bench.send_options --serve PORT NAMESPACE OPTION   (one server)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import threading
from typing import Any

import httpx

from bench.run import CLIENTS
from bench.run import broker_pids
from bench.run import load_with_cpu
from bench.run import per_request_ms
from queue_exp import brokers
from queue_exp.brokers import procs
from queue_exp.config import get_settings
from queue_exp.course import notebook
from queue_exp.course.perf.load import SEED_BODY
from queue_exp.course.perf.load import run_load
from queue_exp.course.run import fresh_namespace
from queue_exp.waiting import wait_until

OPTIONS = ("kafka-python", "linger-2", "linger-5", "confluent")


def _with_linger(linger_ms: int) -> None:
    from queue_exp.clients import kafka

    make_producer = kafka.make_producer

    def patched(settings: Any = None, **overrides: Any) -> Any:
        return make_producer(settings, **{"linger_ms": linger_ms, **overrides})

    kafka.make_producer = patched


def _with_confluent() -> None:
    """The API's KafkaService.send on confluent-kafka's Producer (acks=all, idempotent,
    like the API's); a thread serves its delivery callbacks."""
    from confluent_kafka import Producer

    from queue_exp.api import kafka as api_kafka
    from queue_exp.api.bridge import LoopResolver
    from queue_exp.messages import encode

    shared: dict[str, Any] = {}
    lock = threading.Lock()

    def serve_callbacks(client: Any) -> None:  # for the server's lifetime (a daemon)
        while True:
            client.poll(0.05)

    def producer(service: Any) -> Any:
        with lock:
            if "producer" not in shared:
                service.producer()  # the API's topic, created as the API does
                shared["producer"] = Producer({
                    "bootstrap.servers": service.settings.kafka_bootstrap_servers,
                    "acks": "all", "enable.idempotence": True})
                threading.Thread(target=serve_callbacks, args=(shared["producer"],),
                                 daemon=True).start()
            return shared["producer"]

    async def send(service: Any, message: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        resolver = shared.setdefault("resolver", LoopResolver(loop))
        client = shared.get("producer") or await loop.run_in_executor(None, producer, service)
        done = loop.create_future()
        key = message.key.encode() if message.key is not None else None
        client.produce(service.topic, value=encode(message), key=key,
                       on_delivery=lambda err, msg: resolver.post(done, err or msg,
                                                                  failed=bool(err)))
        meta = await resolver.wait(done, service.settings.broker_timeout_s + 2)
        return {"status": "sent", "topic": meta.topic(), "partition": meta.partition(),
                "offset": meta.offset(), "key": message.key}

    api_kafka.KafkaService.send = send


def serve(port: int, namespace: str, option: str) -> None:
    import uvicorn

    from bench.server import make_app

    if option.startswith("linger-"):
        _with_linger(int(option.removeprefix("linger-")))
    elif option == "confluent":
        _with_confluent()
    uvicorn.run(make_app(namespace), host="127.0.0.1", port=port, log_level="warning")


def measure(seconds: float, rounds: int) -> dict[str, Any]:
    brokers.up()
    namespace = fresh_namespace("bench-send")
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    try:
        for option in OPTIONS:
            port = procs.free_port()
            server = subprocess.Popen([sys.executable, "-m", "bench.send_options", "--serve",
                                       str(port), namespace, option], start_new_session=True)
            servers[option] = (server, f"http://127.0.0.1:{port}")
        for option, (_, base) in servers.items():
            port = int(base.rsplit(":", 1)[1])
            wait_until(lambda port=port: procs.port_open("127.0.0.1", port), 30, 0.1,
                       what=f"the {option} server")
            httpx.post(base + "/kafka/send", json=SEED_BODY, timeout=30).raise_for_status()
        brokers_pids = broker_pids()
        bare: list[float] = []
        rps: dict[str, list[float]] = {option: [] for option in OPTIONS}
        cpu: dict[str, dict[str, float]] = {option: {} for option in OPTIONS}
        sent = dict.fromkeys(OPTIONS, 0)
        for _ in range(rounds):
            bare.append(run_load(servers[OPTIONS[0]][1] + "/bench/bare", CLIENTS,
                                 seconds=seconds)["rps"])
            for option, (server, base) in servers.items():
                result = load_with_cpu(base + "/kafka/send", {"api": server.pid, **brokers_pids},
                                       seconds, cpu[option])
                rps[option].append(result["rps"])
                sent[option] += result["ok"]
    finally:
        for server, _ in servers.values():
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        notebook.remove_api_resources(get_settings().replace(namespace=namespace))
    bare_rps = statistics.mean(bare)
    return {"bare_rps": round(bare_rps), "clients": CLIENTS, **{
        option: {"rps": round(statistics.mean(rps[option])),
                 "vs_bare": round(statistics.mean(rps[option]) / bare_rps, 3),
                 "cpu_ms_per_request": per_request_ms(cpu[option], sent[option])}
        for option in OPTIONS}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.send_options", description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "NAMESPACE", "OPTION"))
    args = parser.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], args.serve[2])
        return 0
    import json

    print(json.dumps(measure(args.seconds, args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
