"""`python -m bench.run --quick` produces every figure `make bench` promises.
Timings are never asserted: only that each figure is there and is a number."""

import json
import subprocess
import sys

import pytest

from queue_exp.config import REPO_ROOT

pytestmark = pytest.mark.slow

KEYS = {
    "api_kafka_send_vs_bare", "api_rabbitmq_send_vs_bare", "kafka_consumer_ingest_vs_raw",
    "rabbitmq_consumer_ingest_vs_raw", "brokers_ready_s",
    # the absolute figures behind the ratios
    "api_bare_rps", "api_kafka_send_rps", "api_rabbitmq_send_rps",
    "kafka_consumer_raw_msgs_per_s", "kafka_consumer_api_msgs_per_s",
    "rabbitmq_consumer_raw_msgs_per_s", "rabbitmq_consumer_api_msgs_per_s",
}


def test_quick_bench_writes_every_figure(tmp_path):
    output = tmp_path / "latest.json"
    run = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--output", str(output)],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(output.read_text())
    assert KEYS <= set(results), KEYS - set(results)
    for key in KEYS:
        assert isinstance(results[key], int | float) and results[key] > 0, (key, results[key])
    assert json.loads(run.stdout[run.stdout.index("{"):]) == results  # printed as well
