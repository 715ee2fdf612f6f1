"""No acknowledged message is lost: 32 concurrent clients send through each send
endpoint for several seconds; every message that got a 2xx must later reach the
API's background consumer. Duplicates are counted and reported (at-least-once
delivery allows them)."""

import asyncio
import collections
import json

import pytest

from queue_exp.api import create_app
from queue_exp.course import notebook
from queue_exp.course.perf.load import drive
from queue_exp.server import start_api
from queue_exp.waiting import wait_until
from tests.conftest import SEED_BODY

pytestmark = pytest.mark.slow
CLIENTS = 32
SEND_FOR_S = 8.0


def body(client: int, request: int) -> bytes:
    return json.dumps({**SEED_BODY, "message": f"c{client}-{request}"}).encode()


@pytest.mark.parametrize("broker", ["kafka", "rabbitmq"])
def test_every_acknowledged_message_arrives(settings, broker):
    big = settings.replace(max_stored_messages=500_000)
    api = start_api(app=create_app(big))
    try:
        assert api.post(f"/{broker}/consume").json()["status"] == "started"
        result = asyncio.run(
            drive(api.url(f"/{broker}/send"), CLIENTS, seconds=SEND_FOR_S, make_body=body))
        acked = {f"c{c}-{i}" for c, i in result.acked}
        failed, elapsed = result.failed, result.seconds
        assert len(acked) > 1000, f"only {len(acked)} sends were acknowledged"

        def all_arrived():
            reply = api.get(f"/{broker}/messages").json()
            return reply if acked <= {m["message"] for m in reply["messages"]} else None

        try:
            reply = wait_until(all_arrived, timeout_s=60, interval_s=0.5)
        except TimeoutError:
            reply = api.get(f"/{broker}/messages").json()
        counts = collections.Counter(m["message"] for m in reply["messages"])
        lost = acked - set(counts)
        duplicated = sum(n - 1 for n in counts.values() if n > 1)
        print(f"\n{broker}: {len(acked)} acknowledged in {elapsed:.1f} s "
              f"({len(acked) / elapsed:.0f}/s), {failed} not acknowledged, "
              f"lost {len(lost)}, duplicated {duplicated}")
        assert not lost, f"{len(lost)} acknowledged messages never arrived, e.g. {sorted(lost)[:5]}"
        assert failed == 0, f"{failed} sends failed while both brokers were up"
    finally:
        api.stop()
        notebook.remove_api_resources(big)
