"""The API plus a bare endpoint that parses the same body and touches no broker, so the
ratio of their throughputs is what the broker round trip costs. Benchmarks only.

    python -m bench.server PORT NAMESPACE
"""

from __future__ import annotations

import sys

import uvicorn

from queue_exp.api import create_app
from queue_exp.config import get_settings
from queue_exp.messages import Message


def make_app(namespace: str):
    app = create_app(get_settings().replace(namespace=namespace))

    @app.post("/bench/bare")
    async def bare(message: Message) -> dict:
        # the same validation and a reply of the same shape as /kafka/send
        return {"status": "sent", "topic": "bare", "partition": 0, "offset": 0,
                "key": message.key}

    return app


if __name__ == "__main__":
    port, namespace = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(make_app(namespace), host="127.0.0.1", port=port, log_level="warning")
