"""queue_exp.clients.share against the real Kafka: a share consumer's settings,
group settings through kafka-python's admin client, and the members as Apache
Kafka's own kafka-share-groups tool lists them."""

from __future__ import annotations

import pytest

from queue_exp.clients import share
from queue_exp.course.run import Run
from queue_exp.waiting import wait_until


@pytest.fixture
def run():
    with Run("test-share-client", brokers=["kafka"]) as run:
        yield run


def test_members_lists_every_partition_of_every_topic_a_member_shares(run):
    orders, audit = run.topic("orders", partitions=3), run.topic("audit", partitions=1)
    group = run.group("readers")
    member = share.ShareConsumerThread([orders, audit], lambda *_: None, group_id=group,
                                       name="reader-1", settings=run.settings)
    member.start()
    try:
        member.wait_ready()
        [listed] = wait_until(lambda: [m for m in share.members(group, run.settings)
                                       if m["assignment"]], 20, 0.5, what="an assignment")
    finally:
        member.stop()
    assert listed["client_id"] == run.settings.name(f"{group}.reader-1")
    assert listed["partitions"] == 4
    assert listed["assignment"] == [f"{audit}:0", f"{orders}:0", f"{orders}:1", f"{orders}:2"]
    # a stopped member leaves at once (no session timeout to wait for)
    assert wait_until(lambda: not share.members(group, run.settings), 5, 0.5)


def test_share_consumer_settings_take_kafka_python_style_names(run):
    consumer = share.share_consumer(run.group("named"), run.settings, max_poll_records=7)
    consumer.close()
    with pytest.raises(Exception, match="No such configuration property"):
        share.share_consumer(run.group("named"), run.settings, no_such_setting=1)
