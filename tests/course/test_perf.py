"""queue_exp.perf against the real brokers: the helpers count what they claim to,
stop at their limits, and leave no thread behind. Nothing here asserts a speed."""

from __future__ import annotations

import math
import os
import threading
import time

import pytest

from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.course import notebook
from queue_exp.course import perf
from queue_exp.course.run import Run
from queue_exp.messages import decode
from queue_exp.server import start_api


@pytest.fixture
def run():
    with Run("test-perf") as run:
        yield run


@pytest.fixture
def settings(run):  # the run's namespace
    return run.settings


@pytest.fixture
def names(run):
    """Make a topic (one partition unless told) and a durable queue in the run."""

    def topic(label: str, partitions: int = 1) -> str:
        return run.topic(label, partitions)

    def queue(label: str, durable: bool = True) -> str:
        return run.queue(label)

    return topic, queue


def perf_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("queue_exp-perf-")]


# ------------------------------------------------------------------ pure helpers


def test_percentiles_are_nearest_rank_samples_in_order():
    samples = [float(v) for v in range(100, 0, -1)]
    assert perf.percentiles(samples) == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert perf.percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0, "max": 7.0}
    assert all(math.isnan(v) for v in perf.percentiles([]).values())


def test_bodies_are_valid_messages_of_the_asked_size_and_the_same_every_run():
    bodies = perf.make_bodies(50, 300)
    assert len(bodies) == 50 and {len(b) for b in bodies} == {300}
    assert len(set(bodies)) == 50  # different texts, like real events
    assert decode(bodies[0]).source == "perf"
    assert perf.make_bodies(50, 300) == bodies


def test_stopwatch_counts_this_process_and_the_brokers_at_work(names):
    topic, queue = names
    if set(perf.broker_pids()) != {"kafka", "rabbitmq"}:
        pytest.skip("this session uses external brokers: their CPU is not ours to read")
    bodies = perf.make_bodies(3000, 200)
    with perf.Stopwatch() as watch:
        perf.kafka_produce(topic("cpu"), bodies)
        perf.rabbit_publish(queue("cpu"), bodies)
    assert watch.wall_s > 0 and watch.client_cpu_s > 0
    shares = watch.percent()
    assert set(shares) == {"client CPU %", "Kafka CPU %", "RabbitMQ CPU %"}
    # both brokers did work, and the figures are measured numbers, not gaps
    assert watch.broker_cpu_s.get("kafka", 0) > 0 and watch.broker_cpu_s.get("rabbitmq", 0) > 0
    assert all(isinstance(v, int) and v >= 0 for v in shares.values()), shares
    assert set(watch.percent("kafka")) == {"client CPU %", "broker CPU %"}


def test_broker_pids_are_the_launchers_brokers_only(monkeypatch):
    pids = perf.broker_pids()
    for pid in pids.values():
        assert os.path.exists(f"/proc/{pid}")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # somebody else's broker
    assert "kafka" not in perf.broker_pids()


def test_every_codec_listed_round_trips_through_the_broker(names):
    topic, _queue = names
    codecs = perf.available_codecs()
    assert codecs[0] == "gzip" and set(codecs) <= {"gzip", "snappy", "lz4", "zstd"}
    bodies = perf.make_bodies(200, 500)
    for codec in codecs:
        name = topic(f"codec-{codec}")
        sent = perf.kafka_produce(name, bodies, compression_type=codec)
        read = perf.kafka_consume(name, len(bodies))
        assert (sent["messages"], read["messages"]) == (200, 200), codec
        assert sent["compressed/raw"] < 0.9, codec  # it did compress


def test_kafka_produce_then_consume_counts_every_message(settings, names):
    topic, _ = names
    name = topic("raw")
    bodies = perf.make_bodies(2000, 150)
    sent = perf.kafka_produce(name, bodies, settings=settings)
    assert sent["messages"] == 2000 and sent["records per request"] >= 1
    assert kafka_admin.log_offsets(name, settings)[0]["records"] == 2000
    read = perf.kafka_consume(name, 2000, settings=settings)
    assert (read["broker"], read["what"], read["messages"]) == ("Kafka", "consume", 2000)
    assert read["MB/s"] > 0


@pytest.mark.parametrize("broker", ["kafka", "rabbitmq"])
def test_consume_stops_at_its_timeout_and_returns_what_there_is(settings, names, broker):
    topic, queue = names
    bodies = perf.make_bodies(10, 100)
    if broker == "kafka":
        name = topic("short")
        perf.kafka_produce(name, bodies, settings=settings)
        consume = perf.kafka_consume
    else:
        name = queue("short")
        perf.rabbit_publish(name, bodies, settings=settings)
        consume = perf.rabbit_consume
    start = time.monotonic()
    read = consume(name, 1000, timeout_s=1.0, settings=settings)
    assert read["messages"] == 10
    assert time.monotonic() - start < 8  # 1 s of reading, plus connecting and closing


def test_settings_grid_and_compression_rows(settings, names):
    topic, _ = names
    bodies = perf.make_bodies(300, 500)
    grid = [{"batch_size": 1024, "linger_ms": 0}, {"batch_size": 65536, "linger_ms": 5}]
    rows = perf.kafka_settings_grid(topic("grid"), bodies, grid, settings=settings)
    assert [(r["batch_size"], r["linger_ms"], r["messages"]) for r in rows] == [
        (1024, 0, 300), (65536, 5, 300)]
    codec_topics = {}

    def topic_of(codec: str) -> str:
        codec_topics[codec] = topic(f"codec-{codec}")
        return codec_topics[codec]

    rows = perf.kafka_compression(topic_of, bodies, ["gzip"], settings=settings)
    assert [r["compression"] for r in rows] == ["none", "gzip"]
    assert all(r["messages"] == r["read back"] == 300 for r in rows)
    assert rows[1]["bytes on disk"] < rows[0]["bytes on disk"]
    assert rows[1]["compressed/raw"] < 1.0 == rows[0]["compressed/raw"]


# ------------------------------------------------------------------ RabbitMQ


def test_rabbit_publish_then_consume_counts_every_message(settings, names):
    _, queue = names
    name = queue("raw")
    bodies = perf.make_bodies(2000, 150)
    sent = perf.rabbit_publish(name, bodies, settings=settings)
    assert (sent["broker"], sent["messages"]) == ("RabbitMQ", 2000)
    read = perf.rabbit_consume(name, 2000, prefetch=100, settings=settings)
    assert read["messages"] == 2000 and read["prefetch"] == 100
    with rabbitmq.connect(settings) as connection:
        assert connection.channel().queue_declare(name, passive=True).method.message_count == 0


def test_confirm_modes_has_four_modes_and_every_message(settings, names):
    _, queue = names
    rows = perf.confirm_modes(queue("confirms", durable=True), count=200, repeats=1,
                              settings=settings)
    assert [r["mode"] for r in rows] == [
        "one at a time", "in batches", "asynchronously", "no confirms"]
    assert all(r["all arrived"] and r["messages"] == 200 for r in rows)


def test_size_sweep_sends_and_receives_everything(settings, names):
    topic, queue = names
    rows = perf.size_sweep(lambda size: topic(f"size-{size}"), queue("sizes"),
                           sizes=(100, 5000), bytes_per_run=200_000, max_count=500,
                           min_count=20, settings=settings)
    counts = {(r["size B"], r["broker"], r["what"]): r["messages"] for r in rows}
    assert counts == {
        (size, broker, what): expected
        for size, expected in ((100, 500), (5000, 40))
        for broker in ("Kafka", "RabbitMQ") for what in ("send", "receive")
    }


# ------------------------------------------------------------------ latency


def test_latency_runs_receive_every_message_sent(settings, names):
    topic, queue = names
    runs = [
        perf.latency("kafka", topic("latency"), count=200, rate=1000, settings=settings),
        perf.latency("rabbitmq", queue("latency"), count=200, rate=1000, settings=settings),
    ]
    for run in runs:
        assert run.sent == run.received == 200
        assert min(run.latencies_ms) >= 0
        summary = run.summary()
        assert summary["p50 ms"] <= summary["p95 ms"] <= summary["p99 ms"] <= summary["max ms"]
    assert perf_threads() == []


def test_latency_run_stops_sending_at_its_timeout(settings, names):
    topic, _ = names
    start = time.monotonic()
    run = perf.latency("kafka", topic("slow"), count=1000, rate=20, timeout_s=1.0,
                             settings=settings)
    assert 0 < run.sent < 1000
    assert run.received == run.sent
    assert time.monotonic() - start < 15
    assert perf_threads() == []


# ------------------------------------------------------------------ through the API


@pytest.mark.slow
def test_api_load_counts_replies_and_every_message_arrives(settings):
    api = start_api(namespace=settings.namespace)
    try:
        assert api.settings.namespace == settings.namespace  # not another test's server
        for broker in ("kafka", "rabbitmq"):
            api.post(f"/{broker}/consume").raise_for_status()
        baseline = perf.api_load(api.base_url, "/kafka/send", count=40, concurrency=4,
                                 invalid=True)
        assert (baseline["ok"], baseline["failed"]) == (40, 0)
        for broker in ("kafka", "rabbitmq"):
            run = perf.api_load(api.base_url, f"/{broker}/send", count=60, concurrency=4,
                                marker="t")
            assert (run["ok"], run["failed"], len(run["latencies_ms"])) == (60, 0, 60)
            arrived = notebook.wait_for_messages(api, broker, 60, timeout_s=15)
            latencies = perf.api_end_to_end(arrived, "t")
            assert len(latencies) == 60
    finally:
        api_settings = api.settings
        api.stop()
        notebook.remove_api_resources(api_settings)


def test_load_generator_needs_a_count_or_a_time():
    from queue_exp.course.perf import load

    with pytest.raises(SystemExit):
        load.main(["http://127.0.0.1:1/kafka/send"])  # neither --count nor --seconds
    with pytest.raises(SystemExit):
        load.main(["http://127.0.0.1:1/kafka/send", "--count", "5", "--seconds", "1"])
