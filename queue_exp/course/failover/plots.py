"""Pictures for the replication notebooks (12, 13). Each function returns a
matplotlib ``Figure``; none uses pyplot's global state. Colours: the Okabe-Ito
palette of the course's diagrams; meaning is also in labels and line styles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

BLUE, VERMILLION, GREEN, ORANGE, SKY, PURPLE, GREY = (
    "#0072B2", "#D55E00", "#009E73", "#E69F00", "#56B4E9", "#CC79A7", "#999999")
PARTITION_COLORS = (BLUE, GREEN, PURPLE, ORANGE, SKY)


def plot_replicas(rows: Sequence[dict[str, Any]], nodes: Sequence[int] = (1, 2, 3),
                  down: Sequence[int] = (), title: str = "") -> Figure:
    """One column per node with a box per partition replica it holds: the leader
    filled, an in-sync follower outlined, a replica out of the ISR dashed grey."""
    fig = Figure(figsize=(8, 1.2 + 0.75 * len(rows)))
    ax = fig.subplots()
    for x, node in enumerate(nodes):
        state = " (down)" if node in down else ""
        ax.text(x, -0.8, f"node {node}{state}", ha="center", fontsize=12,
                color=GREY if node in down else "#222", weight="bold")
        for y, row in enumerate(rows):
            if node not in row["replicas"]:
                continue
            leader, in_sync = row["leader"] == node, node in row["ISR"]
            label = f"P{row['partition']} " + (
                "leader" if leader else "follower" if in_sync else "out of ISR")
            ax.add_patch(FancyBboxPatch(
                (x - 0.4, y - 0.3), 0.8, 0.6, boxstyle="round,pad=0.02",
                facecolor=BLUE if leader else "white", linewidth=2,
                edgecolor=BLUE if in_sync else GREY, linestyle="-" if in_sync else "--"))
            ax.text(x, y, label, ha="center", va="center", fontsize=11,
                    color="white" if leader else "#222" if in_sync else GREY)
    ax.set_xlim(-0.6, len(nodes) - 0.4)
    ax.set_ylim(len(rows) - 0.4, -1.2)
    ax.axis("off")
    ax.set_title(title or "where each partition's replicas live", fontsize=13)
    fig.tight_layout()
    return fig


def _finish(fig: Figure, ax: Any, xlabel: str, ylabel: str, title: str,
            legend_at: str) -> Figure:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend_at == "outside":
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9)
    else:
        ax.legend(loc=legend_at, fontsize=9)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _marks(ax: Any, events: Sequence[tuple[float, str]]) -> None:
    """A dashed line at each event, its label beside it near the top (staggered,
    so that close events stay readable)."""
    left, right = ax.get_xlim()
    for i, (t, label) in enumerate(events):
        ax.axvline(t, color=VERMILLION, linestyle="--", linewidth=1.2)
        near_right = t > left + 0.7 * (right - left)  # then the label goes left of the line
        ax.text(t, 0.95 - 0.11 * (i % 4), f"{label} " if near_right else f" {label}",
                ha="right" if near_right else "left", va="top", color=VERMILLION, fontsize=10,
                transform=ax.get_xaxis_transform(),
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})


def plot_acks(result: dict[str, Any]) -> Figure:
    """Each record's wait for its ``acks='all'`` acknowledgement against the time
    it was sent (0 = the kill), one colour per partition."""
    producer, killed = result["producer"], result["killed at"]
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    for p in sorted({part for part, _ in producer.sent.values()}):
        points = [(sent - killed, producer.acked[n] - sent)
                  for n, (part, sent) in producer.sent.items() if part == p and n in producer.acked]
        ax.scatter(*zip(*points, strict=True), s=6, color=PARTITION_COLORS[p % 5],
                   label=f"partition {p}", zorder=4)
    _marks(ax, [(0, f"kill -9 node {result['victim']}"),
                (result["new leader after s"], f"new leader of P{result['partition']}")])
    return _finish(fig, ax, "when the record was sent (s after the kill)", "wait for its ack (s)",
                   "acks='all' through a leader's crash: every partition waits, none loses",
                   "center right")


def plot_isr_timeline(watch: Any) -> Figure:
    """Each partition's number of in-sync replicas over time, with the events."""
    fig = Figure(figsize=(9, 3.6))
    ax = fig.subplots()
    for p in sorted({s["partition"] for s in watch.samples}):
        points = [(s["t"], s["isr"] + 0.04 * p) for s in watch.samples if s["partition"] == p]
        points.append((points[-1][0] + watch.interval_s, points[-1][1]))  # the last value, drawn
        ax.step(*zip(*points, strict=True), where="post", color=PARTITION_COLORS[p % 5],
                linewidth=2, label=f"partition {p}")
    ax.set_ylim(0.5, 3.6)
    ax.set_yticks([1, 2, 3])
    _marks(ax, watch.events)
    ax.axhline(2, color=GREY, linestyle=":", linewidth=1)
    ax.text(ax.get_xlim()[0], 2.2, " min.insync.replicas = 2 (dotted)", color=GREY, fontsize=9)
    return _finish(fig, ax, "seconds", "replicas in sync (ISR)",
                   "the ISR shrinks as nodes stop, and refills as they come back", "outside")


def plot_confirms(result: dict[str, Any]) -> Figure:
    """Each message's wait for its publisher confirm against the time it was
    published (0 = the kill), and when the consumer on a third node got it."""
    publisher, killed = result["publisher"], result["killed at"]
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    points = [(publisher.sent[n] - killed, t - publisher.sent[n])
              for n, t in publisher.confirmed.items()]
    ax.scatter(*zip(*points, strict=True), s=6, color=ORANGE, label="confirm waited (s)",
               zorder=4)
    got = sorted(t - killed for t in result["receipts"].values())
    ax.scatter(got, [-0.05] * len(got), s=4, marker="|", color=GREEN,
               label=f"received by the consumer on {result['consumer on']}")
    _marks(ax, [(0, f"kill -9 {result['killed']}"),
                (result["new leader shown after s"], "new leader shown")])
    return _finish(fig, ax, "seconds after the kill", "wait for the confirm (s)",
                   "a quorum queue through its leader's crash", "upper right")


def plot_api_sends(result: dict[str, Any], broker: str) -> Figure:
    """Every API send: when it was made (0 = the node loss) and how long its reply
    took, successful ones and failed ones apart."""
    fig = Figure(figsize=(9, 3.6))
    ax = fig.subplots()
    for ok, color, marker in ((True, BLUE if broker == "kafka" else ORANGE, "o"),
                              (False, VERMILLION, "x")):
        points = [(t, latency / 1000) for t, status, latency in result["replies"]
                  if (status == 200) == ok]
        if points:
            ax.scatter(*zip(*points, strict=True), s=8 if ok else 30, color=color,
                       marker=marker, label="200 (stored)" if ok else "not 200", zorder=4)
    _marks(ax, [(0, "node lost")])
    return _finish(fig, ax, "when the request was sent (s after the node was lost)",
                   "reply took (s)", f"POST /{broker}/send while a node dies", "upper right")
