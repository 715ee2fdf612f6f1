"""Safe defaults: credentials never appear in replies, /health or logs; the guest
user works on loopback only."""

import json
import logging

import pytest
from fastapi.testclient import TestClient

from queue_exp import brokers
from queue_exp.api import create_app
from queue_exp.brokers.rabbitmq import ctl
from queue_exp.config import read_state
from queue_exp.course import notebook
from tests.conftest import SEED_BODY


def test_no_password_in_replies_or_logs(settings, dead_address, caplog):
    """Drive every endpoint, working and failing, with passwords in both URLs."""
    host, port = dead_address
    live_password = settings.rabbitmq_url.split("@")[0].rsplit(":", 1)[1]
    secrets = {f":{live_password}@", "s3cret"}
    caplog.set_level(logging.DEBUG)
    replies = []
    with TestClient(create_app(settings)) as client:
        for path in ("/kafka/consume", "/rabbitmq/consume"):
            replies.append(client.post(path))
        replies.append(client.post("/rabbitmq/send", json=SEED_BODY))
        notebook.wait_for_messages(client, "rabbitmq", 1, timeout_s=15)
        replies += [client.get("/health"), client.get("/rabbitmq/messages")]
    dead = settings.replace(rabbitmq_url=f"amqp://teacher:s3cret@{host}:{port}/%2F")
    with TestClient(create_app(dead)) as client:
        replies += [client.post("/rabbitmq/send", json=SEED_BODY), client.get("/health"),
                    client.post("/rabbitmq/consume")]
    notebook.remove_api_resources(settings)
    assert [r.status_code for r in replies[-3:]] == [503, 200, 503]
    shown = "\n".join(r.text for r in replies)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in secrets:
        assert secret not in shown, f"{secret} in a reply"
        assert secret not in logged, f"{secret} in the logs"
    assert "teacher:***@" in shown  # the address is still named, redacted


def test_launcher_status_output_hides_the_password():
    status = json.dumps(brokers.status())
    assert "guest:guest" not in status and ":***@" in status


def test_guest_user_is_restricted_to_loopback():
    entry = read_state().get("rabbitmq") or {}
    if not entry.get("managed") or not entry.get("pid"):
        pytest.skip("this session uses an external RabbitMQ")
    result = ctl(entry, "eval", "application:get_env(rabbit, loopback_users).")
    assert result.returncode == 0, result.stderr
    assert '<<"guest">>' in result.stdout
