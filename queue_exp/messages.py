"""The one message model and its JSON codec, shared by both brokers and the API.

A message travels as its JSON body, exactly what a client POSTs, e.g.
``{"message": "Hello Kafka!", "timestamp": "2023-01-01T12:00:00", "source": "test_client"}``,
so any Kafka or AMQP client in any language can read and write it.
"""

from __future__ import annotations

import re
from datetime import datetime
from datetime import timezone
from typing import Any

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError
from pydantic_core import from_json

MAX_TEXT_CHARS = 64 * 1024


class Message(BaseModel):
    """What a producer sends: the text, when it was written, and who wrote it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    message: str = Field(max_length=MAX_TEXT_CHARS, description="The payload text.")
    timestamp: datetime = Field(description="When the message was written (ISO 8601).")
    source: str = Field(min_length=1, max_length=200, description="Who sent it.")
    key: str | None = Field(
        default=None,
        max_length=1024,
        description="Optional Kafka record key: records with the same key go to the same "
        "partition. RabbitMQ ignores it.",
    )

    @classmethod
    def now(cls, message: str, source: str = "notebook", key: str | None = None) -> Message:
        """A message stamped with the current UTC time (to the second)."""
        stamp = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
        return cls(message=message, timestamp=stamp, source=source, key=key)


def encode(message: Message) -> bytes:
    """Message -> UTF-8 JSON bytes (the body on the wire). Unset fields are left out."""
    return message.model_dump_json(exclude_none=True).encode()


def decode(raw: bytes) -> Message:
    """UTF-8 JSON bytes -> Message. Raises ``ValueError`` for anything else."""
    try:
        return Message.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"not a queue_exp message: {exc.errors()[0]['msg']}") from exc


def decode_lenient(raw: bytes) -> dict[str, Any]:
    """Decode for display: a valid message as a dict, anything else as ``{"raw": ...}``.

    Background consumers use this so that a foreign record on the topic or queue
    is shown to the learner rather than crashing the consumer.
    """
    try:
        parsed = from_json(raw)
    except ValueError:
        parsed = None
    if _in_canonical_form(parsed):
        # what encode() writes: already valid, keep it (a consumer decodes
        # thousands of these a second; full validation would triple the cost)
        parsed.setdefault("key", None)
        return parsed
    try:
        return decode(raw).model_dump(mode="json")
    except ValueError as exc:
        return {"raw": raw.decode("utf-8", errors="replace"), "error": str(exc)}


_FIELDS = frozenset(Message.model_fields)
# exactly how pydantic writes a datetime (six fractional digits unless zero, "Z"
# for UTC); anything else takes the full validation path
_CANONICAL_TIMESTAMP = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.(?!000000)\d{6})?(Z|[+-](?!00:00)\d\d:\d\d)?"
)


def _in_canonical_form(parsed: Any) -> bool:
    """Is ``parsed`` exactly what ``encode`` produces for a valid message?"""
    if type(parsed) is not dict or not parsed.keys() <= _FIELDS:
        return False
    text, source, stamp = parsed.get("message"), parsed.get("source"), parsed.get("timestamp")
    key = parsed.get("key")
    return (
        type(text) is str and len(text) <= MAX_TEXT_CHARS
        and type(source) is str and 1 <= len(source) <= 200
        and type(stamp) is str and _CANONICAL_TIMESTAMP.fullmatch(stamp) is not None
        and _valid_datetime(stamp)
        and (key is None or (type(key) is str and len(key) <= 1024))
    )


def _valid_datetime(stamp: str) -> bool:
    try:
        datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:  # e.g. month 13
        return False
    return True
