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
from queue_exp.course.perf.spread import Figure
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


def test_repeat_keeps_the_median_and_the_range_of_what_moved():
    runs = iter([
        [{"what": "send", "msg/s": 300, "CPU %": None, "done": True, "size": 9, "ms": [1.0]},
         {"what": "read", "msg/s": 50, "CPU %": 7, "done": True, "size": 9, "ms": [2.0]}],
        [{"what": "send", "msg/s": 100, "CPU %": 20, "done": False, "size": 9, "ms": [3.0]},
         {"what": "read", "msg/s": 50, "CPU %": 9, "done": True, "size": 9, "ms": [4.0]}],
        [{"what": "send", "msg/s": 200, "CPU %": 40, "done": True, "size": 9, "ms": []},
         {"what": "read", "msg/s": 50, "CPU %": 8, "done": True, "size": 9, "ms": []}],
    ])
    send, read = perf.repeat(lambda: next(runs), times=3)
    assert send == {"what": "send", "msg/s": 200, "msg/s min": 100, "msg/s max": 300,
                    "CPU %": 20, "CPU % min": 20, "CPU % max": 40,  # no figure: left out
                    "done": False, "size": 9, "ms": [1.0, 3.0], "runs": 3}
    assert read["msg/s"] == 50 and "msg/s min" not in read  # the same every run
    assert (read["CPU %"], read["CPU % min"], read["CPU % max"], read["done"]) == (8, 7, 9, True)
    # an even number of runs: the lower middle one, a figure a run really had
    assert perf.repeat(iter([{"x": 4}, {"x": 1}, {"x": 3}, {"x": 2}]).__next__, 4)["x"] == 2
    shown = perf.with_range([send, read], ["what", "msg/s", "CPU %"])
    assert shown == [{"what": "send", "msg/s": "200 (100–300)", "CPU %": "20 (20–40)"},
                     {"what": "read", "msg/s": "50", "CPU %": "8 (7–9)"}]


def test_leader_says_who_is_ahead_and_whether_the_ranges_overlap():
    rows = perf.repeat(iter([[{"n": "a", "v": 10}, {"n": "b", "v": 5}, {"n": "c", "v": 1}],
                             [{"n": "a", "v": 14}, {"n": "b", "v": 9}, {"n": "c", "v": 2}],
                             [{"n": "a", "v": 12}, {"n": "b", "v": 11}, {"n": "c", "v": 3}]]
                            ).__next__, 3)
    figures = {row["n"]: perf.figure(row, "v") for row in rows}
    assert figures["a"] == Figure(12, 10, 14, 3)
    assert perf.leader(figures) == "a by the median; its range overlaps b"
    wide = {**figures, "d": Figure(11, 1, 20, 3)}
    assert perf.leader(wide) == "a by the median; its range overlaps b and d"
    assert perf.leader({k: figures[k] for k in "ac"}).startswith("a, clearly")
    assert perf.leader(figures, lowest=True).startswith("c, clearly")
    assert perf.leader({"x": perf.figure({"v": 3}, "v"), "y": perf.figure({"v": 2}, "v")}) \
        == "x (one run each: no range)"
    assert perf.leader({"x": None}) == "no figure to compare"
    assert perf.figure({"v": None}, "v") is None


def test_repeat_refuses_runs_that_do_not_line_up():
    runs = iter([[{"what": "send"}], [{"what": "read"}]])
    with pytest.raises(ValueError, match="do not line up"):
        perf.repeat(lambda: next(runs), times=2)
    runs = iter([[{"x": 1}], [{"x": 1}, {"x": 2}]])
    with pytest.raises(ValueError, match="same number"):
        perf.repeat(lambda: next(runs), times=2)


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
    bodies = perf.make_bodies(500, 200)
    with perf.Stopwatch() as watch:  # long enough for a broker figure
        perf.kafka_produce(topic("cpu"), bodies, seconds=0.3)
        perf.rabbit_publish(queue("cpu"), bodies, seconds=0.3)
    assert watch.wall_s >= 0.6 and watch.client_cpu_s > 0
    shares = watch.percent()
    assert set(shares) == {"client CPU %", "Kafka CPU %", "RabbitMQ CPU %"}
    # both brokers did work, and the figures are measured numbers, not gaps
    assert watch.broker_cpu_s.get("kafka", 0) > 0 and watch.broker_cpu_s.get("rabbitmq", 0) > 0
    assert all(isinstance(v, int) and v >= 0 for v in shares.values()), shares
    assert set(watch.percent("kafka")) == {"client CPU %", "broker CPU %"}


def test_a_block_too_short_to_count_ticks_gives_no_broker_figure():
    if not perf.broker_pids():
        pytest.skip("this session uses external brokers: their CPU is not ours to read")
    with perf.Stopwatch() as watch:
        pass
    shares = watch.percent()
    assert shares["Kafka CPU %"] is None and shares["RabbitMQ CPU %"] is None
    assert isinstance(shares["client CPU %"], int)


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
    codec_topics = {codec: topic(f"codec-{codec}") for codec in ("none", "gzip")}
    rows = perf.kafka_compression(codec_topics, bodies, seconds=0.2, settings=settings)
    assert [r["compression"] for r in rows] == ["none", "gzip"]
    assert all(r["all acknowledged"] and r["messages"] > 0 for r in rows)
    assert rows[1]["bytes on disk per message"] < rows[0]["bytes on disk per message"]
    assert rows[1]["compressed/raw"] < 1.0 == rows[0]["compressed/raw"]


def test_a_timed_produce_sends_for_its_time_and_everything_is_acknowledged(settings, names):
    topic, _ = names
    name = topic("timed")
    start = time.monotonic()
    sent = perf.kafka_produce(name, perf.make_bodies(50, 300), seconds=0.5, settings=settings)
    assert time.monotonic() - start >= 0.5 and sent["seconds"] >= 0.5
    assert sent["all acknowledged"] and sent["messages"] > 50  # the bodies, over and over
    assert kafka_admin.log_offsets(name, settings)[0]["records"] == sent["messages"]


def test_a_timed_consume_reads_the_log_again_from_the_start(settings, names):
    topic, _ = names
    name = topic("reread")
    perf.kafka_produce(name, perf.make_bodies(20, 100), settings=settings)
    read = perf.kafka_consume(name, seconds=0.5, settings=settings)
    assert read["seconds"] >= 0.5
    assert read["messages"] > 20  # 20 records, read again and again
    with pytest.raises(ValueError):
        perf.kafka_consume(name, 20, seconds=0.5, settings=settings)


def test_the_unacknowledged_window_holds_eight_batches_and_at_least_256_kib():
    from queue_exp.course.perf.kafka import unacked_window

    assert unacked_window(1024, 200) == 256 * 1024
    assert unacked_window(262_144, 200) == 8 * 262_144
    assert unacked_window(16_384, 60_000) == 8 * 60_000


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
    name = queue("confirms", durable=True)
    counts = {"one at a time": 20, "in batches": 150, "asynchronously": 300, "no confirms": 300}
    rows = perf.confirm_modes(name, counts, settings=settings)
    assert [r["mode"] for r in rows] == [
        "one at a time", "in batches", "asynchronously", "no confirms"]
    assert [r["messages"] for r in rows] == [20, 150, 300, 300]
    assert all(r["all arrived"] for r in rows)
    assert [r["all confirmed"] for r in rows] == [True, True, True, None]
    assert [r["unconfirmed at most"] for r in rows] == [1, 100, 1000, None]
    with rabbitmq.connect(settings) as connection:  # purged after each mode
        assert connection.channel().queue_declare(name, passive=True).method.message_count == 0


def test_size_sweep_sends_and_receives_everything(settings, names):
    topic, queue = names
    rows = perf.size_sweep(lambda size: topic(f"size-{size}"), queue("sizes"),
                           sizes=(100, 5000), seconds=0.2, pool_bytes=50_000,
                           settings=settings)
    assert [(r["size B"], r["broker"], r["what"]) for r in rows] == [
        (size, broker, what) for size in (100, 5000) for broker in ("Kafka", "RabbitMQ")
        for what in ("send", "receive")]
    assert all(r["messages"] > 0 for r in rows)
    # Kafka's log is read for its time (records again and again): no "complete"
    assert [r["complete"] for r in rows if r["size B"] == 100] == [True, None, True, True]
    sent, received = (r["messages"] for r in rows[6:8])  # RabbitMQ, 5,000 bytes
    assert sent == received


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
        timed = perf.api_load(api.base_url, "/rabbitmq/send", seconds=0.5, concurrency=4,
                              marker="timed")
        assert timed["seconds"] >= 0.5 and timed["ok"] == timed["requests"] > 0
        assert timed["failed"] == 0 and len(timed["latencies_ms"]) == timed["ok"]
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
