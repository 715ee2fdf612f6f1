"""The one Run every notebook, comparison, exercise sheet and benchmark uses:
fresh names, and a clean-up that leaves nothing of the run on either broker."""

from queue_exp.clients import kafka
from queue_exp.clients import kafka_admin
from queue_exp.clients import rabbitmq
from queue_exp.course.run import Run
from queue_exp.messages import Message


def listed_topics():
    return set(kafka_admin.list_names()["topics"])


def test_names_are_fresh_per_run_and_tables_show_the_labels():
    first, second = Run("naming"), Run("naming")
    assert first.namespace != second.namespace
    assert first.name("orders") == f"{first.namespace}.orders"
    assert first.label(first.name("orders")) == "orders"
    assert [first.fresh_name("orders") for _ in range(3)] == [
        first.name("orders"), first.name("orders-2"), first.name("orders-3")]
    assert first.shorten(f"no queue {first.name('x')!r} here") == "no queue 'x' here"


def test_clean_up_deletes_what_the_run_and_others_made_with_its_names():
    with Run("cleanup") as run:
        topic = run.topic("events", partitions=2)
        group = run.group("readers")
        kafka.consume(topic, group_id=group, max_messages=1, timeout_s=2, settings=run.settings)
        queue = run.queue("jobs")
        exchange = run.exchange("fan", "fanout", bind=[queue])
        # made outside the run's own methods, with one of its names
        stray = run.name("made-by-a-learner")
        with rabbitmq.open_channel(run.settings) as channel:
            rabbitmq.declare_queue(channel, stray)
        found = run.owned()
        assert found["topics"] == [topic] and found["groups"] == [group]
        assert found["queues"] == sorted([queue, stray]) and found["exchanges"] == [exchange]
    # leaving the block cleaned up
    assert topic not in listed_topics()
    assert group not in kafka_admin.list_names()["groups"]
    assert not rabbitmq.queue_exists(queue) and not rabbitmq.queue_exists(stray)
    assert not rabbitmq.exchange_exists(exchange)
    assert run.owned() == {"topics": [], "groups": [], "queues": [], "exchanges": []}


def test_a_kafka_only_run_cleans_up_without_rabbitmq():
    run = Run("kafka-only", brokers=["kafka"])
    run.settings = run.settings.replace(rabbitmq_url="amqp://guest:guest@127.0.0.1:1/%2F",
                                        rabbitmq_management_url="http://127.0.0.1:1")
    topic = run.topic("t", partitions=1)
    assert run.clean_up() == {"topics deleted": 1, "groups deleted": 0}
    assert topic not in listed_topics()


def test_a_topic_that_comes_back_after_its_delete_is_deleted_again(monkeypatch):
    """On a broker that auto-creates topics, a client closing right after the
    delete can revive a topic with a metadata request. Here the revival happens
    for certain: the first delete is followed at once by a re-create."""
    run = Run("revival", brokers=["kafka"])
    topic = run.topic("comes-back", partitions=3)
    real_delete = kafka_admin.delete_topics
    revived = []

    def delete_then_revive(names, settings=None):
        real_delete(names, settings=settings)
        if not revived:
            # what auto-creation does: a fresh topic, one partition (wait until the
            # broker has finished deleting, or the create is refused)
            from queue_exp.waiting import wait_until

            wait_until(lambda: topic not in listed_topics(), 10)
            revived.append(kafka_admin.create_topic(topic, 1, settings=settings))

    monkeypatch.setattr(kafka_admin, "delete_topics", delete_then_revive)
    run.clean_up()
    assert revived == [True]  # it did come back...
    assert topic not in listed_topics()  # ...and clean_up deleted it again


def test_produce_spread_puts_message_i_on_partition_i_mod_n():
    from queue_exp.course.kafka.log import produce

    with Run("spread", brokers=["kafka"]) as run:
        topic = run.topic("even", partitions=3)
        rows = produce(topic, [Message.now(f"#{i}", key="same") for i in range(6)],
                       spread=True, settings=run.settings)
    assert [r["partition"] for r in rows] == [0, 1, 2, 0, 1, 2]


def test_queue_arguments_go_to_the_broker():
    with Run("queue-args", brokers=["rabbitmq"]) as run:
        queue = run.queue("quorum-jobs", **{"x-queue-type": "quorum"})
        assert run.management.queue(queue)["type"] == "quorum"
