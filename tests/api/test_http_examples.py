"""Replays every request in test_main.http against the running API, so the examples never rot."""

import json
import re
from dataclasses import dataclass

from queue_exp.config import REPO_ROOT
from queue_exp.course import notebook
from queue_exp.server import start_api

HTTP_FILE = REPO_ROOT / "test_main.http"


@dataclass
class Example:
    title: str
    method: str
    path: str
    headers: dict
    body: str


def parse_http_file(text: str) -> list[Example]:
    """The REST Client format: `@var = value` lines, requests separated by `###`."""
    variables = dict(re.findall(r"^@(\w+)\s*=\s*(\S+)\s*$", text, flags=re.M))
    examples = []
    for block in text.split("###")[1:]:
        lines = block.splitlines()
        title = lines[0].strip()
        rest = [ln for ln in lines[1:] if not ln.lstrip().startswith("#")]
        while rest and not rest[0].strip():
            rest.pop(0)
        method, url = rest[0].split()[:2]
        url = re.sub(r"\{\{(\w+)\}\}", lambda m: variables[m.group(1)], url)
        headers, i = {}, 1
        while i < len(rest) and rest[i].strip():
            name, value = rest[i].split(":", 1)
            headers[name.strip()] = value.strip()
            i += 1
        body = "\n".join(rest[i:]).strip()
        path = "/" + url.split("://", 1)[1].split("/", 1)[1]
        examples.append(Example(title, method, path, headers, body))
    return examples


def test_file_has_the_six_seed_requests_and_health():
    examples = parse_http_file(HTTP_FILE.read_text())
    assert [(e.method, e.path) for e in examples] == [
        ("POST", "/kafka/send"), ("POST", "/kafka/consume"), ("GET", "/kafka/messages"),
        ("POST", "/rabbitmq/send"), ("POST", "/rabbitmq/consume"), ("GET", "/rabbitmq/messages"),
        ("GET", "/health"),
    ]
    for example in examples:
        if example.body:
            json.loads(example.body)  # every body is valid JSON


def test_every_example_succeeds_against_the_api(namespace):
    api = start_api(namespace=namespace)
    settings = api.settings
    try:
        for example in parse_http_file(HTTP_FILE.read_text()):
            reply = api.client.request(example.method, example.path, headers=example.headers,
                                       content=example.body or None)
            assert reply.is_success, f"{example.title}: {reply.status_code} {reply.text}"
        # and the sent messages come back through the consumers the examples started
        kafka = notebook.wait_for_messages(api, "kafka", 1, timeout_s=15)
        rabbit = notebook.wait_for_messages(api, "rabbitmq", 1, timeout_s=15)
        assert [m["message"] for m in kafka] == ["Hello Kafka!"]
        assert [m["message"] for m in rabbit] == ["Hello RabbitMQ!"]
    finally:
        api.stop()
        notebook.remove_api_resources(settings)
