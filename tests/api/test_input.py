"""Bad input gets a clear 4xx naming the problem, and nothing reaches a broker."""


import pytest
from fastapi.testclient import TestClient

from queue_exp.api import create_app
from queue_exp.course import notebook
from tests.conftest import SEED_BODY

SEED_BYTES = (b'{"message": "Hello", "timestamp": "2023-01-01T12:00:00", '
              b'"source": "test_client"}')

BAD_REQUESTS = [
    # (what, body bytes, content type, status, words the reply must contain)
    ("malformed JSON", b'{"message": "x",', "application/json", 422, "invalid JSON"),
    ("not an object", b"[1, 2]", "application/json", 422, "body"),
    ("empty body", b"", "application/json", 422, "Field required"),
    ("wrong type", SEED_BYTES.replace(b'"Hello"', b"42"), "application/json", 422,
     "body.message"),
    ("missing field", b'{"message": "x", "source": "y"}', "application/json", 422,
     "body.timestamp"),
    ("non-UTF-8 bytes", SEED_BYTES.replace(b"Hello", b"\xff\xfe"), "application/json", 400,
     "UTF-8"),
    ("text/plain", SEED_BYTES, "text/plain", 415, "Content-Type: application/json"),
    ("form encoded", b"message=x", "application/x-www-form-urlencoded", 415,
     "Content-Type: application/json"),
    ("huge string", SEED_BYTES.replace(b"Hello", b"x" * 200_000), "application/json", 422,
     "at most 65536 characters"),
    ("over the body cap", SEED_BYTES.replace(b"Hello", b"x" * (2 * 1024 * 1024)),
     "application/json", 413, "QUEUE_EXP_MAX_BODY_BYTES"),
]


@pytest.mark.parametrize("broker", ["kafka", "rabbitmq"])
def test_bad_requests_get_a_clear_4xx_and_send_nothing(client, broker):
    assert client.post(f"/{broker}/consume").json()["status"] == "started"
    for what, body, content_type, status, words in BAD_REQUESTS:
        reply = client.post(f"/{broker}/send", content=body,
                            headers={"content-type": content_type})
        assert reply.status_code == status, f"{what}: {reply.status_code} {reply.text[:200]}"
        assert words in reply.text, f"{what}: {reply.text[:300]}"
        assert len(reply.content) < 2000, f"{what}: the reply echoes the input back"
    client.post(f"/{broker}/send", json={**SEED_BODY, "message": "marker"})
    received = notebook.wait_for_messages(client, broker, 1, timeout_s=15)
    assert [m["message"] for m in received] == ["marker"]  # none of the bad ones got through


def test_422_names_every_wrong_field_in_a_readable_summary(client):
    reply = client.post("/kafka/send", json={"message": 1, "source": ""})
    assert reply.status_code == 422
    summary = reply.json()["message"]
    for field in ("body.message", "body.timestamp", "body.source"):
        assert field in summary


def test_body_cap_is_configurable(settings):
    small = settings.replace(max_body_bytes=200)
    with TestClient(create_app(small)) as client:
        ok = client.post("/kafka/send", json=SEED_BODY)
        too_big = client.post("/kafka/send", json={**SEED_BODY, "message": "x" * 300})
    notebook.remove_api_resources(small)
    assert ok.status_code == 200
    assert too_big.status_code == 413 and "200 bytes" in too_big.json()["detail"]


def test_get_endpoints_ignore_the_body_guard(client):
    assert client.get("/kafka/messages").status_code == 200
    assert client.post("/kafka/consume").status_code == 200  # POST without a body is fine
