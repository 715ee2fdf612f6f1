"""/live in a real browser (Debian's Chromium through Playwright), against the real
brokers: the page loads without errors, follows sends and reads within seconds,
shows an outage and recovers, costs the brokers the same with ten pages as with
one, and works inside a notebook's IFrame (``api.live()``).

Skipped, saying why, where there is no Chromium (a learner without root); under CI
(``CI`` set) a missing browser is a failure, so the tests cannot quietly vanish.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from queue_exp.api import create_app
from queue_exp.api.live import end_streams
from queue_exp.api.live_poller import LivePoller
from queue_exp.api.live_sources import Source
from queue_exp.brokers import procs
from queue_exp.brokers import rabbitmq as embedded_rabbitmq
from queue_exp.clients import kafka
from queue_exp.clients import rabbitmq
from queue_exp.course import notebook
from queue_exp.course.kafka import keyed_messages
from queue_exp.course.kafka import produce
from queue_exp.course.run import Run
from queue_exp.server import start_api
from queue_exp.server import stop_api
from queue_exp.waiting import wait_until
from tests.api import browser as chromium_helper
from tests.conftest import SEED_BODY

pytestmark = pytest.mark.slow

MISSING = chromium_helper.missing_reason()
if MISSING and os.environ.get("CI"):
    raise RuntimeError(f"CI must run the browser tests: {MISSING}")
if MISSING:
    pytest.skip(MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402 - only once we know it is installed

PROJECTOR = {"width": 1280, "height": 720}


@pytest.fixture(scope="module")
def browser():
    with chromium_helper.chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def api():
    """The API as a notebook starts it (start_api), on a namespace of its own."""
    from queue_exp.course.run import fresh_namespace

    stop_api()  # start_api() hands back a running server: make sure it is ours
    server = start_api(namespace=fresh_namespace("live-browser"))
    settings = server.settings
    yield server
    server.stop()
    notebook.remove_api_resources(settings)


def poller_of(app):
    return app.state.live


@pytest.fixture(scope="module")
def private_rabbitmq(tmp_path_factory):
    """A RabbitMQ of this module's own (the session's brokers are never stopped),
    started in the background by the first test that asks for it: the outage test,
    last, finds it up instead of waiting the seven seconds it takes. Not before the
    timing tests: its start takes a CPU core for those seconds."""
    if not (Path(embedded_rabbitmq.BIN) / "rabbitmq-server").exists():
        yield {"skip": "no rabbitmq-server to start a private RabbitMQ with "
                       "(scripts/system-deps.sh installs it)"}
        return
    if procs.port_open("localhost", 5672):
        yield {"skip": "a RabbitMQ runs on the default port; a private one would reuse it"}
        return
    home = tmp_path_factory.mktemp("rabbitmq-home")
    started: dict = {}

    def start():
        try:
            started["entry"] = embedded_rabbitmq.start(home, {}, timeout_s=60)
        except Exception as exc:  # noqa: BLE001 - reported by the test that needs it
            started["error"] = exc

    thread = threading.Thread(target=start, name="private-rabbitmq", daemon=True)
    thread.start()
    yield {"home": home, "thread": thread, "started": started}
    thread.join(60)
    if "entry" in started:
        embedded_rabbitmq.stop(started["entry"])


@pytest.fixture
def page(browser):
    """A page at projector size; the test fails if the page logs an error."""
    context = browser.new_context(viewport=PROJECTOR)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"the page logged errors: {errors}"


def queue_node(page, name):
    return page.locator(f'.queue[data-queue="{name}"]')


def end_offset(page, topic, partition):
    return page.locator(f'.partition[data-topic="{topic}"][data-partition="{partition}"] .ends b')


# ------------------------------------------------------------------- tests


def test_page_loads_without_errors_and_shows_both_brokers(page, api):
    page.goto(api.live_url())
    expect(page.locator("#kafka h2")).to_contain_text("Apache Kafka")
    expect(page.locator("#rabbitmq h2")).to_contain_text("RabbitMQ")
    # nothing created yet in the API's namespace: each half says what to run
    expect(page.locator("#kafka [data-empty]")).to_contain_text("POST /kafka/send")
    expect(page.locator("#rabbitmq [data-empty]")).to_contain_text("POST /rabbitmq/send")
    expect(page.locator("#connection")).to_contain_text("updated")
    expect(page.locator("#namespace")).to_have_value(api.settings.namespace)


def test_sends_through_the_api_show_within_two_seconds(page, api):
    topic, queue = api.settings.kafka_topic, api.settings.rabbitmq_queue
    for broker in ("kafka", "rabbitmq"):  # creates the API's topic and queue
        assert api.post(f"/{broker}/send", json=SEED_BODY).status_code == 200
    page.goto(api.live_url())
    ready = queue_node(page, queue).locator(".counts .ready b")
    expect(ready).to_have_text("1", timeout=10_000)

    sent = api.post("/kafka/send", json={**SEED_BODY, "key": "alice"}).json()
    expect(end_offset(page, topic, sent["partition"])).to_have_text(
        str(sent["offset"] + 1), timeout=2000)
    assert api.post("/rabbitmq/send", json=SEED_BODY).status_code == 200
    expect(ready).to_have_text("2", timeout=2000)


def test_a_groups_lag_falls_as_it_reads(page, api):
    with Run("lag", api.settings) as run:
        topic = run.topic("orders", partitions=3)
        produce(topic, keyed_messages(rounds=6), settings=run.settings)  # 24 records
        page.goto(api.live_url(topic=topic))
        group = run.group("billing")
        shown_lag = page.locator(f'.group[data-group="{group}"]')
        consumer = kafka.make_consumer(topic, group_id=group, enable_auto_commit=False,
                                       settings=run.settings)
        try:
            read = []

            def read_up_to(count):
                def more():
                    batch = consumer.poll(timeout_ms=200, max_records=count - len(read))
                    read.extend(r for records in batch.values() for r in records)
                    return len(read) >= count
                wait_until(more, 15, 0, what=f"{count} records read")
                consumer.commit()

            read_up_to(10)
            expect(shown_lag).to_have_attribute("data-lag", "14", timeout=3000)
            expect(shown_lag).to_contain_text("lag 14")
            read_up_to(24)
            expect(shown_lag).to_have_attribute("data-lag", "0", timeout=3000)
            # the member reading is the owner of every partition
            owners = page.locator(f'.partition[data-topic="{topic}"] .owner[data-group="{group}"]')
            expect(owners).to_have_count(3)
            for i in range(3):
                expect(owners.nth(i)).not_to_have_attribute("data-owner", "")
        finally:
            consumer.close(autocommit=False)


def test_unknown_topic_queue_or_namespace_in_the_url_says_so(page, api):
    page.goto(api.live_url(topic="no-such-topic", queue="no-such-queue"))
    expect(page.locator("#kafka [data-problem]")).to_contain_text("no topic “no-such-topic”")
    expect(page.locator("#rabbitmq [data-problem]")).to_contain_text("no queue “no-such-queue”")
    expect(page.locator("#focus")).to_contain_text("show everything")
    page.goto(api.live_url(namespace="<not one>"))
    expect(page.locator("#page-problem")).to_contain_text("“<not one>” is not a namespace")


def test_ten_pages_cost_the_brokers_what_one_page_does(browser, api, private_rabbitmq):
    # (private_rabbitmq starts booting now, for the outage test at the end: this
    # test compares request counts, not timings)
    poller = poller_of(api._server.config.app)
    # one context per page, as ten browsers would be: a browser opens at most six
    # connections to one server, and each open page holds one
    contexts = [browser.new_context(viewport=PROJECTOR) for _ in range(10)]
    try:
        first = contexts[0].new_page()
        first.goto(api.live_url())
        expect(first.locator("#connection")).to_contain_text("updated")
        sessions = poller.sessions
        one = requests_in(poller, 3.0)
        for context in contexts[1:]:
            context.new_page().goto(api.live_url())
        wait_until(lambda: poller.viewers == 10, 15, 0.1, what="ten pages connected")
        ten = requests_in(poller, 3.0)
        assert poller.sessions == sessions  # still the one polling session
        for broker in ("kafka", "rabbitmq"):
            # the same number of looks, give or take the one a window boundary cuts
            per_look = max(one[broker] / max(one["looks"], 1), 1)
            assert one[broker] > 0
            assert ten[broker] <= one[broker] + 1.5 * per_look, (broker, one, ten)
    finally:
        for context in contexts:
            context.close()
    wait_until(lambda: not poller.polling, 10, 0.1, what="polling to stop with the last page")


def requests_in(poller, seconds):
    """Requests the poller sent to each broker during ``seconds`` (and its looks)."""
    before = poller.requests()
    version = poller.version
    time.sleep(seconds)
    after = poller.requests()
    return {**{b: after[b] - before[b] for b in after},
            "looks": (poller.version - version) / 2}


def test_the_page_works_inside_the_notebook_iframe(page, api):
    frame = api.live(show="kafka", height=500)
    page.set_content(frame._repr_html_())
    inside = page.frame_locator("iframe")
    expect(inside.locator("#kafka h2")).to_contain_text("Apache Kafka", timeout=10_000)
    expect(inside.locator("#connection")).to_contain_text("updated")
    expect(inside.locator("#rabbitmq")).to_be_hidden()


# ------------------------------------------- a cluster, as fake looks describe it


class ClusterLook(Source):
    """A look at a three-node cluster (the suite's brokers are single nodes): one
    Kafka follower has fallen out of sync; a quorum queue's leader is node 2."""

    requests = 0

    def where(self):
        return {"address": "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"}

    def look(self, wanted):
        ns = self.settings.namespace
        if self.broker == "kafka":
            return {"brokers": [{"id": i} for i in (1, 2, 3)],
                    "names": {"topics": [f"{ns}.orders"], "groups": []},
                    "topics": {f"{ns}.orders": [{"partition": 0, "leader": 2, "start": 0,
                                                 "end": 5, "replicas": [1, 2, 3],
                                                 "isr": [2, 3]}]},
                    "groups": {}}
        queue = {"name": f"{ns}.orders", "type": "quorum", "messages_ready": 2,
                 "leader": "rabbit@node2", "members": ["rabbit@node1", "rabbit@node2",
                                                       "rabbit@node3"]}
        return {"names": {"queues": [queue["name"]], "exchanges": [""]}, "queues": [queue],
                "exchanges": [{"name": "", "type": "direct"}], "bindings": []}

    def close(self):
        pass


class KafkaClusterLook(ClusterLook):
    broker = "kafka"


class RabbitClusterLook(ClusterLook):
    broker = "rabbitmq"


def test_leaders_and_in_sync_replicas_show_when_there_are_several_brokers(page, api):
    app = create_app(api.settings)
    with serving(app) as base_url:
        app.state.live = LivePoller(api.settings, sources=lambda s: [KafkaClusterLook(s),
                                                                   RabbitClusterLook(s)])
        page.goto(f"{base_url}/live")
        expect(page.locator("#kafka h2")).to_contain_text("3 brokers")
        expect(page.locator(".partition .replicas")).to_have_text(
            "leader: broker 2 · in sync: 2, 3 · NOT in sync: 1")
        expect(page.locator(".queue .where")).to_have_text("leader: rabbit@node2 · 3 members")
        expect(page.locator(".queue .badge")).to_have_text("quorum")
        page.goto("about:blank")  # before its server stops, or the page logs that


# ------------------------------------------------------- RabbitMQ goes down


@contextmanager
def serving(app):
    """``app`` on a loopback port of its own (start_api serves one app at a time)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 15, 0.02, what="the second API to start")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        end_streams(app)
        server.should_exit = True
        thread.join(15)


def test_rabbitmq_outage_is_shown_and_the_page_recovers(page, api, private_rabbitmq):
    if "skip" in private_rabbitmq:
        pytest.skip(private_rabbitmq["skip"])
    private_rabbitmq["thread"].join(60)
    started = private_rabbitmq["started"]
    if "error" in started:
        raise started["error"]
    entry = started["entry"]
    settings = api.settings.replace(rabbitmq_url=entry["url"],
                                    rabbitmq_management_url=entry["management_url"])
    queue = settings.name("survivor")
    with rabbitmq.open_channel(settings, confirm=False) as channel:
        rabbitmq.declare_queue(channel, queue)  # durable: there again after the restart
    with serving(create_app(settings)) as base_url:
        page.goto(f"{base_url}/live")
        expect(queue_node(page, queue)).to_be_visible(timeout=10_000)

        embedded_rabbitmq.stop(entry)
        outage = page.locator("#rabbitmq [data-outage]")
        expect(outage).to_contain_text(
            f"RabbitMQ is not reachable at {settings.rabbitmq_url_redacted}", timeout=5000)
        expect(outage).to_contain_text("make brokers")
        expect(page.locator("#kafka [data-outage]")).to_have_count(0)  # Kafka is fine

        # on the same ports, with the same data: what `make brokers` would do
        started["entry"] = embedded_rabbitmq.start(private_rabbitmq["home"], entry, 60)
        expect(outage).to_have_count(0, timeout=20_000)
        expect(queue_node(page, queue)).to_be_visible()
        page.goto("about:blank")  # before its server stops, or the page logs that
