"""/live without a browser: what a page is sent (the view builder, on made-up looks
and on the real brokers), the one poller behind every page, and its shutdown."""

import re
import threading
import time
from importlib import resources

import httpx
import pytest

from queue_exp.api import create_app
from queue_exp.api import live_view
from queue_exp.api.live_poller import Prefixes
from queue_exp.api.live_sources import KafkaSource
from queue_exp.api.live_sources import RabbitSource
from queue_exp.api.live_sources import Rates
from queue_exp.api.live_sources import look_safely
from queue_exp.course import kafka as kl
from queue_exp.course.rabbitmq.channels import publish
from queue_exp.course.run import Run
from queue_exp.server import start_api
from queue_exp.waiting import wait_until

NS = "lesson.run-abc123"


def partition(p, start, end, leader=1, isr=(1,)):
    return {"partition": p, "start": start, "end": end, "leader": leader,
            "replicas": list(isr), "isr": list(isr)}


def member(client_id, member_id, assigned=None, subscribed=()):
    return {"client_id": client_id, "member_id": member_id, "host": "127.0.0.1",
            "assigned": assigned or {}, "subscribed": list(subscribed)}


def kafka_look(**overrides):
    topic = f"{NS}.work"
    look = {
        "status": "up", "address": "127.0.0.1:9092", "brokers": [{"id": 1}],
        "names": {"topics": [topic, f"{NS}.other", "alice.orders"], "groups": [f"{NS}.workers"]},
        "topics": {
            topic: [partition(0, 0, 10), partition(1, 2, 6), partition(2, 0, 0)],
            f"{NS}.other": [partition(0, 0, 1)],
            "alice.orders": [partition(0, 0, 5)],
        },
        "groups": {f"{NS}.workers": {
            "state": "Stable",
            "members": [
                member(f"{NS}.workers.consumer-1", "m1", {topic: [0, 1]}, [topic]),
                member(f"{NS}.workers.consumer-2", "m2", {topic: [2]}, [topic]),
                member(f"{NS}.workers.consumer-3", "m3", {}, [topic]),  # idle: 3 partitions
            ],
            "committed": {topic: {0: 7, 1: 6}},
        }},
    }
    look.update(overrides)
    return look


def rabbit_look(**overrides):
    look = {
        "status": "up", "address": "amqp://guest:***@127.0.0.1:5672/%2F",
        "management_url": "http://127.0.0.1:15672",
        "names": {"queues": [f"{NS}.jobs", "alice.jobs"], "exchanges": ["", f"{NS}.events"]},
        "queues": [
            {"name": f"{NS}.jobs", "type": "quorum", "durable": True, "messages_ready": 4,
             "messages_unacknowledged": 3, "consumers": 2, "leader": "rabbit@a",
             "members": ["rabbit@a", "rabbit@b"],
             "rates": {"publish": 2.5, "deliver_get": None, "ack": 1.0, "redeliver": 0.0}},
            {"name": "alice.jobs", "type": "classic", "messages_ready": 1},
        ],
        "exchanges": [{"name": "", "type": "direct"}, {"name": "amq.topic", "type": "topic"},
                      {"name": f"{NS}.events", "type": "topic"}],
        "bindings": [
            {"source": "", "destination": f"{NS}.jobs", "destination_type": "queue",
             "routing_key": f"{NS}.jobs", "arguments": {}},
            {"source": f"{NS}.events", "destination": f"{NS}.jobs", "destination_type": "queue",
             "routing_key": "job.*", "arguments": {}},
            {"source": "", "destination": "alice.jobs", "destination_type": "queue",
             "routing_key": "alice.jobs", "arguments": {}},
        ],
    }
    look.update(overrides)
    return look


def world(**overrides):
    return {"kafka": kafka_look(), "rabbitmq": rabbit_look(), **overrides}


# ------------------------------------------------------------ the view builder


def test_each_partition_shows_its_log_owner_and_lag():
    view = live_view.build(world(), NS)
    [other, work] = view["kafka"]["topics"]  # sorted by name
    assert (other["label"], work["label"]) == ("other", "work")
    assert [(p["start"], p["end"]) for p in work["partitions"]] == [(0, 10), (2, 6), (0, 0)]
    assert work["records"] == 14
    [group] = work["groups"]
    assert group["label"] == "workers" and group["state"] == "Stable"
    assert [(r["owner"], r["committed"], r["lag"]) for r in group["partitions"]] == [
        ("consumer-1", 7, 3), ("consumer-1", 6, 0), ("consumer-2", None, None)]
    assert group["lag"] == 3
    assert [(m["label"], m["partitions"]) for m in group["members"]] == [
        ("consumer-1", [0, 1]), ("consumer-2", [2]), ("consumer-3", [])]  # consumer-3 idle
    assert other["groups"] == []  # the group neither reads nor committed on it


def test_only_the_namespace_is_shown_and_the_selector_offers_the_others():
    view = live_view.build(world(), NS)
    assert "alice.orders" not in [t["name"] for t in view["kafka"]["topics"]]
    assert [q["name"] for q in view["rabbitmq"]["queues"]] == [f"{NS}.jobs"]
    assert {"alice", "lesson", NS} <= set(view["namespaces"])
    everything = live_view.build(world(), "")
    assert "alice.orders" in [t["name"] for t in everything["kafka"]["topics"]]


def test_queues_show_counts_rates_type_and_leader_and_bindings_form_a_graph():
    view = live_view.build(world(), NS)["rabbitmq"]
    [jobs] = view["queues"]
    assert (jobs["label"], jobs["type"], jobs["ready"], jobs["unacked"], jobs["consumers"]) == (
        "jobs", "quorum", 4, 3, 2)
    assert jobs["leader"] == "rabbit@a" and jobs["rates"]["publish"] == 2.5
    assert jobs["rates"]["deliver"] is None  # one look so far: no rate, not 0
    assert [x["rate_in"] for x in view["exchanges"]] == [None, None]  # shared or unknown
    assert [(x["name"], x["label"]) for x in view["exchanges"]] == [
        ("", "(default)"), (f"{NS}.events", "events")]  # amq.topic feeds nothing here
    assert [(b["source"], b["key"], b["implicit"]) for b in view["bindings"]] == [
        ("", f"{NS}.jobs", True), (f"{NS}.events", "job.*", False)]


def consumer(tag, unacked=0):
    return {"tag": tag, "unacked": unacked, "prefetch": 1, "manual_ack": True}


def test_a_long_consumer_list_is_cut_and_says_by_how_many():
    many = [consumer(f"worker-{n}") for n in range(1, 10)]
    queue = {**rabbit_look()["queues"][0], "consumers": 9, "consumer_list": many}
    [jobs] = live_view.build(world(rabbitmq=rabbit_look(queues=[queue])), NS)["rabbitmq"]["queues"]
    assert [c["tag"] for c in jobs["consumer_list"]] == [f"worker-{n}" for n in range(1, 7)]
    assert jobs["consumers_hidden"] == 3


def test_consumers_not_yet_listed_are_not_counted_as_hidden():
    # the queue's count and the consumer list are two snapshots of the management
    # API: for a moment after two workers subscribe, the count says 2, the list none
    queue = {**rabbit_look()["queues"][0], "consumers": 2, "consumer_list": []}
    [jobs] = live_view.build(world(rabbitmq=rabbit_look(queues=[queue])), NS)["rabbitmq"]["queues"]
    assert (jobs["consumers"], jobs["consumer_list"], jobs["consumers_hidden"]) == (2, [], 0)


def test_unknown_topic_or_queue_in_the_url_names_what_exists():
    kafka = live_view.build(world(), NS, topic="nope")["kafka"]
    assert "no topic “nope”" in kafka["problem"] and "other, work" in kafka["problem"]
    assert kafka["known"] == ["other", "work"]
    rabbit = live_view.build(world(), NS, queue="gone")["rabbitmq"]
    assert "no queue “gone”" in rabbit["problem"] and "jobs" in rabbit["problem"]
    only = live_view.build(world(), NS, topic="work", queue=f"{NS}.jobs")
    assert [t["label"] for t in only["kafka"]["topics"]] == ["work"]
    assert [q["label"] for q in only["rabbitmq"]["queues"]] == ["jobs"]


def test_an_empty_namespace_says_what_to_run():
    view = live_view.build(world(), "nobody")
    assert view["kafka"]["topics"] == [] and "run.topic(" in view["kafka"]["empty"]
    assert "POST /kafka/send" in view["kafka"]["empty"]
    assert "run.queue(" in view["rabbitmq"]["empty"]


def test_a_broker_down_says_where_and_how_to_start_it():
    down = {"status": "down", "broker": "rabbitmq", "address": "amqp://guest:***@h:1/%2F",
            "error": "RabbitMQ is not reachable", "how_to_start": "run `make brokers`"}
    view = live_view.build(world(rabbitmq=down), NS)
    assert view["rabbitmq"] == down
    assert view["kafka"]["status"] == "up"  # the other half still works


def test_a_bad_namespace_is_a_message_not_an_error():
    view = live_view.build(world(), "<script>")
    assert "not a namespace" in view["problem"] and "kafka" not in view


def test_repeated_client_ids_are_told_apart():
    topic = f"{NS}.work"
    look = kafka_look(groups={f"{NS}.api": {"state": "Stable", "committed": {}, "members": [
        member("queue_exp-consumer", "queue_exp-consumer-1111aaaa", {topic: [0]}),
        member("queue_exp-consumer", "queue_exp-consumer-2222bbbb", {topic: [1, 2]}),
    ]}})
    [group] = live_view.build(world(kafka=look), NS, topic="work")["kafka"]["topics"][0]["groups"]
    assert [m["label"] for m in group["members"]] == ["queue_exp-consumer #1111",
                                                     "queue_exp-consumer #2222"]


def test_rates_are_steady_over_a_window_of_looks():
    rates = Rates(window_s=3.0)
    assert rates.update("q", {"ack": 0}, now=0.0) == {"ack": None}  # one look: no rate yet
    # the broker's totals move in steps (statistics every 0.5 s), the rate does not jump
    seen = [rates.update("q", {"ack": total}, now=t)["ack"]
            for t, total in [(1.0, 10), (2.0, 20), (3.0, 30), (4.0, 40), (5.0, 50)]]
    assert seen == [10.0, 10.0, 10.0, 10.0, 10.0]
    assert rates.update("q", {"ack": 0}, now=6.0) == {"ack": 0.0}  # deleted and made again


def test_prefixes_match_whole_namespaces_only():
    wanted = Prefixes(frozenset(["alice"]))
    assert wanted("alice.orders") and not wanted("alicex.orders") and not wanted("bob.x")
    assert Prefixes(frozenset([""]))("anything")


def test_the_page_fetches_nothing_from_elsewhere():
    static = resources.files("queue_exp.api").joinpath("static")
    names = sorted(f.name for f in static.iterdir())
    assert names == ["live.css", "live.html", "live.js"]
    for name in names:
        text = static.joinpath(name).read_text("utf-8")
        # the SVG namespace is a name, not an address anything is fetched from
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+", text)) - {"http://www.w3.org"}
        assert not urls, f"{name} refers to {urls}"


# -------------------------------------------------------- on the real brokers


def test_snapshot_shows_the_real_brokers(settings):
    with Run("live", settings) as run:
        topic = run.topic("orders", partitions=3)
        kl.produce(topic, kl.keyed_messages(rounds=2), settings=run.settings)  # 8 records
        group = run.group("billing")
        kl.read_to_end(topic, group_id=group, commit=True, settings=run.settings)
        kl.produce(topic, kl.keyed_messages(rounds=1, first_round=3), settings=run.settings)
        queue = run.queue("jobs")
        events = run.exchange("events", "topic", bind={queue: "job.*"})
        publish(queue, ["a", "b", "c"], settings=run.settings)

        with create_client(run.settings) as client:
            def look():
                view = client.get("/live/snapshot").json()
                queues = view["rabbitmq"].get("queues") or []
                return view if queues and queues[0]["ready"] == 3 else None

            view = wait_until(look, 15, 0.3, what="the queue's 3 messages in the statistics")
        [shown] = view["kafka"]["topics"]
        assert shown["label"] == "orders" and shown["records"] == 12
        assert sum(p["end"] for p in shown["partitions"]) == 12
        [billing] = shown["groups"]
        assert billing["label"] == "billing" and billing["lag"] == 4  # read 8 of 12
        assert billing["members"] == []  # it read, committed and left
        [jobs] = view["rabbitmq"]["queues"]
        assert (jobs["label"], jobs["type"], jobs["unacked"]) == ("jobs", "classic", 0)
        assert (events, "job.*") in [(b["source"], b["key"]) for b in view["rabbitmq"]["bindings"]]


def test_snapshot_shows_who_owns_which_partition(settings):
    with Run("live", settings) as run:
        topic = run.topic("work", partitions=3)
        with kl.ConsumerGroupLab(topic, run.group("workers"), run.settings) as lab:
            lab.add_consumer()
            lab.add_consumer()
            with create_client(run.settings) as client:
                def owners():
                    [shown] = client.get("/live/snapshot").json()["kafka"]["topics"]
                    rows = shown["groups"][0]["partitions"] if shown["groups"] else []
                    found = {r["partition"]: r["owner"] for r in rows}
                    return found if len(set(found.values()) - {None}) == 2 else None

                found = wait_until(owners, 15, 0.3, what="two owners of the partitions")
        assert set(found) == {0, 1, 2}
        assert set(found.values()) == {"consumer-1", "consumer-2"}


def test_a_broker_that_does_not_answer_is_a_look_that_says_where(settings, dead_address):
    host, port = dead_address
    dead = settings.replace(kafka_bootstrap_servers=f"{host}:{port}",
                            rabbitmq_url=f"amqp://guest:guest@{host}:{port}/%2F",
                            rabbitmq_management_url=f"http://{host}:{port}",
                            broker_timeout_ms=1000)
    wanted = Prefixes(frozenset([""]))
    for source in (KafkaSource(dead), RabbitSource(dead)):
        try:
            look = look_safely(source, wanted)
        finally:
            source.close()
        assert look["status"] == "down", look
        assert f"{host}:{port}" in look["address"] and "make brokers" in look["how_to_start"]
        assert "password" not in look["address"] and "guest:guest" not in look["address"]


def test_each_consumer_shows_the_unacked_messages_it_holds(settings):
    from queue_exp.clients.consumers import RabbitConsumerThread

    with Run("live", settings) as run:
        queue = run.queue("jobs")
        forgetful = RabbitConsumerThread(queue, lambda *_: None, name="forgetful",
                                         settings=run.settings)  # never acks
        forgetful.start()
        try:
            forgetful.wait_ready()
            publish(queue, ["a", "b", "c"], settings=run.settings)
            with create_client(run.settings) as client:
                def held():
                    [jobs] = client.get("/live/snapshot").json()["rabbitmq"]["queues"]
                    return jobs if jobs["consumer_list"] and \
                        jobs["consumer_list"][0]["unacked"] == 3 else None

                jobs = wait_until(held, 15, 0.3, what="3 unacked at the forgetful consumer")
        finally:
            forgetful.stop()
    assert jobs["consumer_list"] == [
        {"tag": "forgetful", "prefetch": 0, "manual_ack": True, "unacked": 3}]


def test_the_api_consumers_newest_messages_are_shown(client):
    from tests.conftest import SEED_BODY

    assert "received" not in client.get("/live/snapshot").json()["kafka"]  # nothing yet
    client.post("/kafka/consume")
    for i in range(7):
        client.post("/kafka/send", json={**SEED_BODY, "message": f"m{i}"})

    wait_until(lambda: len(client.get("/kafka/messages").json()["messages"]) == 7, 15, 0.2,
               what="the consumer to receive all seven")
    received = client.get("/live/snapshot").json()["kafka"]["received"]
    newest_first = client.get("/kafka/messages").json()["messages"][::-1][:5]
    assert [m["message"] for m in received] == [m["message"] for m in newest_first]
    assert [(m["partition"], m["offset"]) for m in received] == [
        (m["partition"], m["offset"]) for m in newest_first]


def create_client(settings):
    from fastapi.testclient import TestClient

    return TestClient(create_app(settings))


# --------------------------------------------------------------- the poller


def read_events(url, count, timeout_s=15):
    """The first ``count`` data events of the stream at ``url``."""
    import json

    events = []
    with httpx.stream("GET", url, timeout=timeout_s) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if len(events) == count:
                    break
    return events


def test_polling_starts_with_the_first_page_and_stops_with_the_last(namespace):
    api = start_api(namespace=namespace)
    poller = api._server.config.app.state.live
    try:
        assert not poller.polling and poller.requests() == {"kafka": 0, "rabbitmq": 0}
        events = read_events(api.url("/live/stream"), 3)
        assert {e["namespace"] for e in events} == {namespace}
        assert any(e["kafka"]["status"] == "up" for e in events)
        wait_until(lambda: not poller.polling, 10, 0.1, what="polling to stop")
        spent = poller.requests()
        assert spent["kafka"] > 0 and spent["rabbitmq"] > 0
        time.sleep(2.5)  # no page open: nothing is asked of the brokers
        assert poller.requests() == spent
        read_events(api.url("/live/stream"), 2)
        assert poller.sessions == 2
    finally:
        api.stop()


def test_stopping_the_server_ends_open_pages_promptly(namespace):
    api = start_api(namespace=namespace)
    ended = threading.Event()

    def watch():
        try:
            read_events(api.url("/live/stream"), 10_000, timeout_s=30)
        except httpx.HTTPError:
            pass
        ended.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    poller = api._server.config.app.state.live
    wait_until(lambda: poller.viewers == 1, 10, 0.05, what="the page to connect")
    started = time.monotonic()
    api.stop()
    assert time.monotonic() - started < 5
    assert ended.wait(5)


def test_api_live_is_an_iframe_of_the_page(namespace):
    api = start_api(namespace=namespace)
    try:
        frame = api.live(namespace="lesson.run-abc123", show="kafka", height=400)
        assert frame.src == api.url("/live") + "?namespace=lesson.run-abc123&show=kafka"
        assert frame.height == 400
        assert "<iframe" in frame._repr_html_()
        page = httpx.get(frame.src, timeout=10)
        assert page.status_code == 200 and "live/static/live.js" in page.text
    finally:
        api.stop()


@pytest.mark.parametrize("path", ["/live/static/live.js", "/live/static/live.css"])
def test_assets_are_served_with_their_types(client, path):
    reply = client.get(path)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith(
        "text/javascript" if path.endswith(".js") else "text/css")
    assert client.get("/live/static/secrets.txt").status_code == 404
