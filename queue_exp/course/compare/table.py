"""The comparison table, built from the experiments' results: every cell quotes
a number or a yes/no that an experiment produced, and names that experiment."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from queue_exp.course.compare.delivery import AT_LEAST_ONCE
from queue_exp.course.compare.delivery import AT_MOST_ONCE

# The experiments whose results the table is built from, by name (the last two
# from compare.crossings: where notebooks 10 and 11 cross the table's lines).
RESULTS = ("retention", "fan_out", "splits", "orderings", "crashes", "transaction",
           "replay", "per_message")

# The comparison table notebook 08 quotes (from the README this course grew out of), word for word.
QUOTED_TABLE = {
    "Model": ("Distributed log", "Message broker"),
    "Use case": ("High-throughput event streaming", "Traditional message queuing"),
    "Scalability": ("Highly scalable", "Moderately scalable"),
    "Message retention": ("Can retain messages for a configurable time",
                          "Removes messages once consumed"),
    "Ordering": ("Guarantees order within a partition", "FIFO within a queue"),
    "Delivery guarantee": ("At-least-once (can be exactly-once with transactions)",
                           "At-least-once, at-most-once, exactly-once"),
}


def numbers(ns: Sequence[int]) -> str:
    """[5, 6, 7, 8] -> '#5-#8'; [5] -> '#5'; [1, 3] -> '#1, #3'; [] -> 'none'."""
    ns = sorted(ns)
    if not ns:
        return "none"
    if len(ns) > 2 and ns == list(range(ns[0], ns[-1] + 1)):
        return f"#{ns[0]}–#{ns[-1]}"
    return ", ".join(f"#{n}" for n in ns)


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _pick(rows: Sequence[dict[str, Any]], **match: Any) -> dict[str, Any]:
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    raise LookupError(f"no result with {match}")


def _read(retention: dict[str, Any], store: str, n: int) -> int:
    return _pick(retention["reads"], store=store, read=n)["messages"]


def comparison_rows(results: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per line of the quoted table: what Kafka and RabbitMQ did, and
    the experiments (notebook sections) that showed it. ``results`` holds each
    experiment's result by name (see :data:`RESULTS`)."""
    retention, fan_out, splits, orderings, crashes, transaction, replay, per_message = (
        results[name] for name in RESULTS)
    sent = _read(retention, "Kafka topic", 1)
    kafka_stored = fan_out["stored"]["Kafka"]
    got = {r["subscriber"]: r for r in fan_out["rows"]}
    late = got["late"]
    k4 = _pick(splits, broker="Kafka", consumers=4)
    r4 = _pick(splits, broker="RabbitMQ", consumers=4)
    partitions = sum(len(p) for p in k4["assignment"].values())
    k_order = _pick(orderings, broker="Kafka")
    r_one = _pick(orderings, broker="RabbitMQ", consumers=1)
    r_two = _pick(orderings, broker="RabbitMQ", consumers=2)
    crash = {(c["broker"], c["consumer A"]): c for c in crashes}
    k_most, k_least = crash["Kafka", AT_MOST_ONCE], crash["Kafka", AT_LEAST_ONCE]
    r_most, r_least = crash["RabbitMQ", AT_MOST_ONCE], crash["RabbitMQ", AT_LEAST_ONCE]
    tx = transaction
    return [
        {"feature": "Model",
         "Kafka (observed)": f"a log: {sent} records written, still {kafka_stored} after "
                             f"3 groups read all of them; no copy per group",
         "RabbitMQ (observed)": f"queues: an acked message is deleted; fan-out put a copy in "
                                f"each bound queue ({fan_out['stored']['RabbitMQ']} held for "
                                f"2 subscribers); a stream is a log",
         "experiments": "1, 2"},
        {"feature": "Use case",
         "Kafka (observed)": f"history: a late group still read "
                             f"{late['Kafka: consumer group got']}; "
                             f"a new group re-read {_read(retention, 'Kafka topic', 3)}; "
                             f"per-key order survived a retry",
         "RabbitMQ (observed)": f"tasks: per-message ack/requeue (a failed message was "
                                f"requeued and retried); {r4['busy']} workers on one queue",
         "experiments": "1, 2, 3"},
        {"feature": "Scalability",
         "Kafka (observed)": f"{k4['consumers']} consumers, {partitions} partitions: "
                             f"{k4['busy']} busy, {k4['consumers'] - k4['busy']} idle",
         "RabbitMQ (observed)": f"{r4['consumers']} workers, 1 queue: {r4['busy']} busy",
         "experiments": "2"},
        {"feature": "Message retention",
         "Kafka (observed)": f"kept after reading: a new group got "
                             f"{_read(retention, 'Kafka topic', 3)} of {sent}; the same group "
                             f"got {_read(retention, 'Kafka topic', 2)} (it resumes)",
         "RabbitMQ (observed)": f"classic queue: a 2nd read got "
                                f"{_read(retention, 'RabbitMQ classic queue', 2)}; stream: "
                                f"read again from 'first', got "
                                f"{_read(retention, 'RabbitMQ stream', 3)}",
         "experiments": "1"},
        {"feature": "Ordering",
         "Kafka (observed)": f"a retried event, {k_order['consumers']} consumers: each user in "
                             f"order: {yes(k_order['each user in order'])}; "
                             f"send order across partitions: "
                             f"{yes(k_order['send order kept'])}",
         "RabbitMQ (observed)": f"requeue with 1 worker: in send order: "
                                f"{yes(r_one['send order kept'])}; with 2 workers: each user "
                                f"in order: {yes(r_two['each user in order'])}",
         "experiments": "3"},
        {"feature": "Delivery guarantee",
         "Kafka (observed)": f"commit, then work: lost {numbers(k_most['lost'])}; work, then "
                             f"commit: {numbers(k_least['worked on twice'])} done twice; "
                             f"transaction: {tx['read_committed reader: receipts']} receipts "
                             f"each once, yet {tx['emails sent (outside Kafka)']} emails",
         "RabbitMQ (observed)": f"auto-ack: lost {numbers(r_most['lost'])}; ack after work: "
                                f"{numbers(r_least['worked on twice'])} done twice "
                                f"(flagged redelivered: {r_least['B got flagged redelivered']})",
         "experiments": "4, 5"},
        _replay_row(replay),
        _per_message_row(per_message),
    ]


def _replay_row(replay: Mapping[str, Any]) -> dict[str, str]:
    """Replay: a consumer resumes where the broker says it stopped, and a new one
    reads everything again. On RabbitMQ that takes a stream."""
    runs = {(r["broker"].split(" ")[0], r["consumer"].split(",")[0]): r for r in replay["rows"]}
    again, sent = replay["read again from the start"], replay["sent"]

    def resumed(broker: str, kept: str) -> str:
        first, second = runs[broker, "1st run"], runs[broker, "2nd run"]
        return (f"read {first['read']}, stopped; restarted, it found {kept} "
                f"{second['position found on the server']} and read {second['read']}")

    return {"feature": "Replay and resume",
            "Kafka (observed)": f"{resumed('Kafka', 'committed offset')}; a new reader "
                                f"got {again['Kafka topic']} of {sent} again",
            "RabbitMQ (observed)": f"classic queue: no (1); stream: "
                                   f"{resumed('RabbitMQ', 'stored offset')}; from 'first' got "
                                   f"{again['RabbitMQ stream']} of {sent} again",
            "experiments": "6"}


def _per_message_row(result: Mapping[str, Any]) -> dict[str, str]:
    """Per-message acknowledgement: a consumer group commits a position; a share
    group and a queue settle each message, redeliver and give up on a poison one."""
    split = result["split"]
    counts: dict[str, list[int]] = {}
    for row in result["deliveries"]:
        counts.setdefault(row["record"], []).append(row["delivery count"])
    released = max(counts["#2"])
    poison = max(counts[next(r for r in counts if "poison" in r)])
    attempts = len(result["quorum"]["attempts"])
    reason = result["quorum"]["dead letter"].get("reason")
    return {"feature": "Per-message acks and a delivery limit",
            "Kafka (observed)": f"consumer group: no, a retry seeks back (3); share group: "
                                f"{split['busy']} of {split['consumers']} consumers busy on 1 "
                                f"partition, a released record came back (delivery count "
                                f"{released}), a poison record was delivered {poison} times "
                                f"and archived (share.delivery.count.limit="
                                f"{result['limit']})",
            "RabbitMQ (observed)": f"ack, nack, reject per message; a poison message in a "
                                   f"quorum queue with x-delivery-limit="
                                   f"{result['quorum limit']}: delivered {attempts} times, "
                                   f"then dead-lettered ({reason})",
            "experiments": "3, 7"}


def check_claims(results: Mapping[str, Any]) -> list[dict[str, str]]:
    """The quoted table's claims next to a verdict that follows from the results (the
    same mapping as :func:`comparison_rows`)."""
    retention, _fan_out, splits, orderings, crashes, transaction, *_crossings = (
        results[name] for name in RESULTS)
    stream_kept = _read(retention, "RabbitMQ stream", 3) == _read(retention, "Kafka topic", 1)
    k4 = _pick(splits, broker="Kafka", consumers=4)
    idle = k4["consumers"] - k4["busy"]
    r_two = _pick(orderings, broker="RabbitMQ", consumers=2)
    reordered = not r_two["each user in order"]
    duplicate = bool(_pick(crashes, broker="RabbitMQ", **{"consumer A": AT_LEAST_ONCE})
                     ["worked on twice"])
    kafka_lost = bool(_pick(crashes, broker="Kafka", **{"consumer A": AT_MOST_ONCE})["lost"])
    twice_outside = bool(transaction["emails sent twice"])
    verdicts = {
        "Model": "right, but too simple: a RabbitMQ stream is a log as well"
                 if stream_kept else "right",
        "Use case": "not a measurable property; the table above shows what each did",
        "Scalability": "not measurable on one machine (needs clusters); measured instead: "
                       + (f"partitions cap a Kafka group ({idle} idle), a queue does not"
                          if idle else "no idle consumer"),
        "Message retention": ("wrong for streams: a classic queue deletes what was acked, "
                              "a stream keeps it" if stream_kept else "right"),
        "Ordering": ("too simple: a queue hands messages out FIFO, but competing "
                     "consumers plus a requeue finish them out of order"
                     if reordered else "right"),
        "Delivery guarantee": (
            ("wrong: RabbitMQ has no exactly-once (a duplicate came through); "
             if duplicate else "")
            + ("Kafka can be at-most-once too; " if kafka_lost else "")
            + ("Kafka's exactly-once covers Kafka-to-Kafka only (emails went twice)"
               if twice_outside else "")),
    }
    return [{"feature": feature, "claimed: Kafka": kafka, "claimed: RabbitMQ": rabbit,
             "verdict": verdicts[feature]}
            for feature, (kafka, rabbit) in QUOTED_TABLE.items()]
