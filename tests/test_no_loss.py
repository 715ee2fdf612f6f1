"""No acknowledged message is lost: 32 concurrent clients send through each send
endpoint for several seconds; every message that got a 2xx must later reach the
API's background consumer. Duplicates are counted and reported (at-least-once
delivery allows them)."""

import asyncio
import collections
import json
from dataclasses import replace

import pytest

from bench.load import drive
from queue_exp import teaching
from queue_exp.api import create_app
from queue_exp.server import start_api
from tests.conftest import SEED_BODY

pytestmark = pytest.mark.slow
CLIENTS = 32
SEND_FOR_S = 8.0


def body(client: int, request: int) -> bytes:
    return json.dumps({**SEED_BODY, "message": f"c{client}-{request}"}).encode()


@pytest.mark.parametrize("broker", ["kafka", "rabbitmq"])
def test_every_acknowledged_message_arrives(settings, broker):
    big = replace(settings, max_stored_messages=500_000)
    api = start_api(app=create_app(big))
    try:
        assert api.post(f"/{broker}/consume").json()["status"] == "started"
        acked_pairs, failed, elapsed = asyncio.run(
            drive(api.url(f"/{broker}/send"), CLIENTS, SEND_FOR_S, body))
        acked = {f"c{c}-{i}" for c, i in acked_pairs}
        assert len(acked) > 1000, f"only {len(acked)} sends were acknowledged"

        def all_arrived():
            reply = api.get(f"/{broker}/messages").json()
            return reply if acked <= {m["message"] for m in reply["messages"]} else None

        try:
            reply = teaching.wait_for(all_arrived, timeout_s=60, interval_s=0.5)
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
        teaching.remove_api_resources(big)
