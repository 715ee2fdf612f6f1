"""Pictures for the Kafka chapter. Each function returns a matplotlib ``Figure``
(Jupyter displays it); none uses pyplot's global state, so nothing is drawn twice
and the functions work without a display."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch
from matplotlib.patches import Patch

COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3")


def _color_map(values: Sequence[Any]) -> dict[Any, str]:
    return {v: COLORS[i % len(COLORS)] for i, v in enumerate(sorted(set(values), key=str))}


def plot_log(rows: Sequence[dict[str, Any]], title: str = "") -> Figure:
    """The partitioned log: one row of boxes per partition, one box per record at
    its offset, labelled with its message and coloured by its key."""
    partitions = sorted({r["partition"] for r in rows})
    colors = _color_map([r.get("key") for r in rows])
    width = max(r["offset"] for r in rows) + 2
    fig = Figure(figsize=(min(2 + 1.3 * width, 14), 0.9 + 0.8 * len(partitions)))
    ax = fig.subplots()
    for r in rows:
        y = partitions.index(r["partition"])
        ax.add_patch(_box(r["offset"], y, colors[r.get("key")]))
        ax.text(r["offset"], y, r.get("message", ""), ha="center", va="center",
                fontsize=8, color="white")
    for y, partition in enumerate(partitions):
        end = max(r["offset"] for r in rows if r["partition"] == partition) + 1
        ax.annotate("", xy=(end + 0.4, y), xytext=(end - 0.4, y),
                    arrowprops={"arrowstyle": "->", "color": "grey"})
    ax.set_xlim(-0.6, width - 0.4)
    ax.set_xticks(range(width - 1))
    ax.set_ylim(len(partitions) - 0.5, -0.5)
    ax.set_yticks(range(len(partitions)), [f"partition {p}" for p in partitions])
    ax.set_xlabel("offset  (new records are appended on the right →)")
    ax.legend(handles=[Patch(color=c, label=k) for k, c in colors.items()],
              title="key", loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    ax.set_title(title or "a topic: one append-only log per partition")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def _box(offset: int, y: float, color: str) -> FancyBboxPatch:
    return FancyBboxPatch((offset - 0.45, y - 0.3), 0.9, 0.6, boxstyle="round,pad=0.02",
                          facecolor=color, edgecolor="white")


def plot_handled(handled: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]) -> Figure:
    """Which consumer handled which message: x = messages in the order they were
    sent, y = consumer, colour = partition; dashed lines mark group changes."""
    consumers = sorted({h["consumer"] for h in handled} | {_who(e) for e in events},
                       key=lambda name: int(name.rsplit("-", 1)[1]))
    colors = _color_map([h["partition"] for h in handled])
    fig = Figure(figsize=(11, 1.2 + 0.55 * len(consumers)))
    ax = fig.subplots()
    for h in handled:
        ax.scatter(h["n"], consumers.index(h["consumer"]), s=28,
                   color=colors[h["partition"]], zorder=3)
    for e in events:
        ax.axvline(e["n"] + 0.5, color="grey", linestyle="--", linewidth=0.8)
        ax.text(e["n"] + 0.8, -0.6, e["event"], fontsize=8, color="dimgrey", va="bottom")
    ax.set_yticks(range(len(consumers)), consumers)
    ax.set_ylim(len(consumers) - 0.5, -0.9)
    ax.set_xlabel("message number (in the order sent) →")
    ax.legend(handles=[Line2D([], [], marker="o", linestyle="", color=c, label=f"partition {p}")
                       for p, c in colors.items()],
              loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    ax.set_title("who handled what: the group splits the partitions among its consumers")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _who(event: dict[str, Any]) -> str:
    return event["event"].split(" ", 1)[1]


def plot_replay(
    rows: Sequence[dict[str, Any]], replayed: Sequence[dict[str, Any]], since_ms: int,
    now_ms: int,
) -> Figure:
    """Records on a time line, one lane per partition; the replayed ones filled,
    the others hollow; the dashed line is the timestamp given to offsets_for_times."""
    partitions = sorted({r["partition"] for r in rows})
    again = {(r["partition"], r["offset"]) for r in replayed}
    fig = Figure(figsize=(10, 1 + 0.7 * len(partitions)))
    ax = fig.subplots()
    for r in rows:
        minutes = (r["timestamp_ms"] - now_ms) / 60_000
        y = partitions.index(r["partition"])
        filled = (r["partition"], r["offset"]) in again
        ax.scatter(minutes, y, s=60, zorder=3, color=COLORS[0] if filled else "white",
                   edgecolors=COLORS[0])
        ax.text(minutes, y - 0.25, f"{r.get('message', '')}\n@{r['offset']}", ha="center",
                va="bottom", fontsize=7)
    ax.axvline((since_ms - now_ms) / 60_000, color=COLORS[3], linestyle="--")
    ax.set_yticks(range(len(partitions)), [f"partition {p}" for p in partitions])
    ax.set_ylim(len(partitions) - 0.5, -0.9)
    ax.set_xlabel("record timestamp (minutes from now)")
    ax.set_title("replay from a timestamp: filled = read again, @n = offset")
    fig.tight_layout()
    return fig
