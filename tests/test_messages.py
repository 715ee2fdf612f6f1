"""The message model and its JSON codec (no broker needed)."""

from datetime import datetime

import pytest
from pydantic import ValidationError

from queue_exp.messages import Message
from queue_exp.messages import decode
from queue_exp.messages import decode_lenient
from queue_exp.messages import encode

SEED = {"message": "Hello Kafka!", "timestamp": "2023-01-01T12:00:00", "source": "test_client"}


def test_seed_body_round_trips_byte_for_byte():
    message = Message.model_validate(SEED)
    assert message.timestamp == datetime(2023, 1, 1, 12, 0, 0)
    assert decode(encode(message)) == message
    # the wire format is the JSON body itself: any client can read it
    assert encode(message) == (
        b'{"message":"Hello Kafka!","timestamp":"2023-01-01T12:00:00","source":"test_client"}'
    )


def test_key_travels_when_set():
    message = Message.model_validate({**SEED, "key": "user-7"})
    assert decode(encode(message)).key == "user-7"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in SEED.items() if k != "timestamp"}, "timestamp"),
        ({**SEED, "timestamp": "yesterday"}, "timestamp"),
        ({**SEED, "message": 42}, "message"),
        ({**SEED, "source": ""}, "source"),
        ({**SEED, "colour": "blue"}, "colour"),
    ],
)
def test_invalid_bodies_name_the_field(body, field):
    with pytest.raises(ValidationError) as info:
        Message.model_validate(body)
    assert field in {str(loc) for error in info.value.errors() for loc in error["loc"]}


def test_decode_rejects_foreign_bytes_with_a_value_error():
    with pytest.raises(ValueError, match="not a queue_exp message"):
        decode(b"\xff\xfe not json")


def test_lenient_decode_shows_foreign_records_instead_of_failing():
    shown = decode_lenient(b"plain text from another producer")
    assert shown["raw"] == "plain text from another producer"
    assert "error" in shown
    assert decode_lenient(encode(Message.model_validate(SEED)))["message"] == "Hello Kafka!"


def test_now_stamps_the_current_time():
    before = datetime.utcnow().replace(microsecond=0)
    message = Message.now("hi")
    assert before <= message.timestamp <= datetime.utcnow()


@pytest.mark.parametrize(
    "body",
    [
        SEED,
        {**SEED, "key": "user-7"},
        {**SEED, "timestamp": "2023-01-01T12:00:00.123456"},
        {**SEED, "timestamp": "2023-01-01T12:00:00Z"},
        {**SEED, "timestamp": "2023-01-01T12:00:00+02:00"},
        {**SEED, "timestamp": "2023-01-01 12:00:00"},  # valid, not canonical
        {**SEED, "timestamp": "2023-01-01T12:00:00.12"},
        {**SEED, "timestamp": "2023-01-01T12:00:00.000000"},
        {**SEED, "timestamp": "2023-01-01T12:00:00+00:00"},
        {**SEED, "timestamp": "2023-01-01T12:00:00-00:00"},
        {**SEED, "timestamp": "2023-01-01T12:00:00.500000Z"},
        {**SEED, "timestamp": "2023-13-01T12:00:00"},  # month 13
        {**SEED, "timestamp": "yesterday"},
        {**SEED, "source": ""},
        {**SEED, "message": 5},
        {**SEED, "extra": 1},
        {**SEED, "key": 3},
        {"message": "only this"},
        ["not", "an", "object"],
    ],
)
def test_lenient_decode_fast_path_agrees_with_full_validation(body):
    """decode_lenient skips full validation for records in encode()'s own form: for
    every input it must answer exactly as the full validation would."""
    import json

    raw = json.dumps(body).encode()
    try:
        expected = Message.model_validate_json(raw).model_dump(mode="json")
    except ValidationError:
        expected = None
    shown = decode_lenient(raw)
    if expected is None:
        assert "raw" in shown and "error" in shown
    else:
        assert shown == expected
