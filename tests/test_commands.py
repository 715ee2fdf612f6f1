"""The README's commands, run as a learner runs them."""

import os
import signal
import subprocess
import sys

import httpx
import pytest

from queue_exp.brokers import procs
from queue_exp.config import REPO_ROOT
from queue_exp.waiting import wait_until


def test_brokers_status_command_shows_both_up():
    result = subprocess.run([sys.executable, "-m", "queue_exp", "brokers", "status"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("kafka") and " up " in line for line in lines), result.stdout
    assert any(line.startswith("rabbitmq") and " up " in line for line in lines), result.stdout
    assert "guest:guest" not in result.stdout


def test_launcher_errors_are_one_clear_line_not_a_traceback():
    port = procs.free_port()
    env = {**os.environ, "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{port}/%2F"}
    result = subprocess.run([sys.executable, "-m", "queue_exp", "brokers", "up"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"RABBITMQ_URL=amqp://guest:***@127.0.0.1:{port}" in result.stderr


@pytest.mark.slow
def test_make_lab_serves_jupyterlab_headless():
    """`make lab` with no display: brokers ensured, JupyterLab serving, no browser."""
    port = procs.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.Popen(
        ["make", "lab", f"LAB_PORT={port}", "LAB_ARGS=--IdentityProvider.token=test-token"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        def lab_answers():
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/api/contents",
                                  params={"token": "test-token"}, timeout=2)
            except httpx.HTTPError:
                return None
            return reply.json() if reply.status_code == 200 else None

        contents = wait_until(lab_answers, timeout_s=60, interval_s=0.5)
        names = {item["name"] for item in contents["content"]}
        assert "00-setup-check.ipynb" in names  # serving notebooks/, not the repo root
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            output = proc.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output = proc.communicate()[0].decode(errors="replace")
    assert "--no-browser" in output or "no-browser" in output.lower()
