"""`python -m bench.failover [--runs 5]`: the cluster chapter's figures over several
runs, on the launcher's three-node clusters (started if none runs, stopped again
if this started them). Prints and writes bench/results/failover.json.

Per broker: how long the cluster took to be ready and each node's memory; per run,
the time from a partition leader's (Kafka) or a quorum queue leader's (RabbitMQ)
``kill -9`` to a new leader, and acknowledged/confirmed against found/received
(must be equal); then the API's replies through the loss of a node. Notebooks 12
and 13 run each experiment once; this runs them ``--runs`` times. Not a test.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from pathlib import Path
from typing import Any

import pika
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from queue_exp.api import create_app
from queue_exp.brokers import cluster
from queue_exp.course.failover import api as failover_api
from queue_exp.course.failover import kafka as fk
from queue_exp.course.failover import rabbitmq as fr
from queue_exp.course.run import Run
from queue_exp.server import start_api

RESULTS = Path(__file__).with_name("results") / "failover.json"


def _cluster_facts(handle: Any) -> dict[str, Any]:
    return {"ready or found in s": round(handle.seconds, 1), "started here": handle.started,
            "rss per node (MB)": [node["rss_mb"] for node in handle.nodes()]}


def _api_through_node_loss(run: Run, broker: str, lose: Any) -> dict[str, Any]:
    api = start_api(app=create_app(run.settings.replace(max_stored_messages=50_000)))
    try:
        api.post(f"/{broker}/send", json={"message": "warm-up", "timestamp":
                                          "2024-01-01T12:00:00", "source": "bench"}
                 ).raise_for_status()
        sends = failover_api.sends_through_node_loss(api, broker, lambda: lose(api))
    finally:
        api.stop()
    return {key: sends[key] for key in ("by status", "failed window (s)", "longest reply (s)",
                                        "answered 200 but not delivered")}


def kafka(runs: int) -> dict[str, Any]:
    kc = cluster.use("kafka")
    result: dict[str, Any] = {"cluster": _cluster_facts(kc), "runs": []}
    try:
        with Run("bench-kafka-failover", kc.settings, brokers=["kafka"]) as run:
            servers = kc.bootstrap_servers
            for i in range(runs):
                topic = run.name(f"orders-{i}")
                admin = KafkaAdminClient(bootstrap_servers=servers)
                admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3,
                                              topic_configs={"min.insync.replicas": "2"})])
                admin.close()
                fk.wait_in_sync(servers, topic)
                crash = fk.produce_through_leader_kill(kc, run, topic)
                result["runs"].append({key: crash[key] for key in (
                    "victim", "victim was the active controller", "new leader after s",
                    "acknowledged", "found", "acknowledged but missing", "duplicates",
                    "failed")})
                kc.start(crash["victim"])
                fk.wait_in_sync(servers, topic)

            def lose(api: Any) -> None:
                kc.kill(fk.partitions(servers, api.settings.kafka_topic)[0]["leader"])

            result["api"] = _api_through_node_loss(run, "kafka", lose)
            for node in (1, 2, 3):
                if node not in kc.running():
                    kc.start(node)
    finally:
        kc.close()
    return result


def rabbitmq(runs: int) -> dict[str, Any]:
    rc = cluster.use("rabbitmq")
    result: dict[str, Any] = {"cluster": _cluster_facts(rc), "runs": []}
    try:
        with Run("bench-rabbitmq-failover", rc.settings, brokers=["rabbitmq"]) as run:
            for i in range(runs):
                jobs = run.name(f"jobs-{i}")
                connection = pika.BlockingConnection([pika.URLParameters(u) for u in rc.urls])
                connection.channel().queue_declare(jobs, durable=True,
                                                   arguments={"x-queue-type": "quorum"})
                connection.close()
                crash = fr.publish_through_leader_kill(rc, jobs)
                result["runs"].append({key: crash[key] for key in (
                    "killed", "new leader shown after s", "first confirm after the kill (s)",
                    "confirmed", "received", "confirmed but never received", "refused")})
                victim = rc.node_id(crash["killed"])
                rc.start(victim)
                fr.wait_caught_up(rc, 1 if victim != 1 else 2, jobs)
            result["api"] = _api_through_node_loss(run, "rabbitmq", lambda _api: rc.kill(1))
            rc.start(1)
    finally:
        rc.close()
    return result


def summary(results: dict[str, Any]) -> dict[str, Any]:
    k, r = results["kafka"]["runs"], results["rabbitmq"]["runs"]

    def spread(values: list[float]) -> str:
        return f"median {statistics.median(values):.2f}, {min(values):.2f}–{max(values):.2f}"

    return {
        "kafka new leader after kill -9 (s)": spread([x["new leader after s"] for x in k]),
        "kafka acknowledged == found (every run)": all(
            x["acknowledged but missing"] == 0 for x in k),
        "rabbitmq new leader after kill -9 (s)": spread(
            [x["new leader shown after s"] for x in r]),
        "rabbitmq confirmed == received (every run)": all(
            x["confirmed but never received"] == 0 for x in r),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    # kafka-python and pika log every lost connection; here they are lost on purpose
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    results = {"kafka": kafka(args.runs), "rabbitmq": rabbitmq(args.runs)}
    results["summary"] = summary(results)
    text = json.dumps(results, indent=2, default=str)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
