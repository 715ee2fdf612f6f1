"""Pictures for the comparison: who did how much work, and when each event was
handled. Each function returns a matplotlib figure (closed, so a notebook shows
it once, as the cell's result)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queue_exp.course.compare.ordering import KEYS

COLORS = dict(zip(KEYS, ("tab:blue", "tab:orange", "tab:green"), strict=True))


def plot_split(splits: Sequence[dict[str, Any]]):
    """Messages per consumer, one panel per broker, a group of bars per run."""
    import matplotlib.pyplot as plt

    brokers = list(dict.fromkeys(s["broker"] for s in splits))
    fig, axes = plt.subplots(1, len(brokers), figsize=(9, 3), sharey=True, squeeze=False)
    for ax, broker in zip(axes[0], brokers, strict=True):
        runs = [s for s in splits if s["broker"] == broker]
        width = 0.8 / len(runs)
        for i, run in enumerate(runs):
            counts = [row["messages"] for row in run["per consumer"]]
            xs = [c + 1 + (i - (len(runs) - 1) / 2) * width for c in range(len(counts))]
            ax.bar(xs, counts, width=width * 0.95,
                   label=f"{run['consumers']} consumers: done in {run['seconds']:.2f} s")
        ax.set_title(broker, loc="left", fontsize=10)
        ax.set_xlabel("consumer")
        ax.set_xticks(range(1, max(r["consumers"] for r in runs) + 1))
        ax.legend(fontsize=8, loc="lower right")
    axes[0, 0].set_ylabel("messages handled")
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_ordering(runs: Sequence[dict[str, Any]]):
    """One strip per run: every attempt at an event as a box, in the order the
    attempts ended, on its consumer's row; coloured by user and labelled with
    the step (``c2`` is ``carol #2``); a failed attempt is grey, with how long
    it took."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 1.35 * len(runs) + 0.7), squeeze=False)
    for ax, run in zip(axes[:, 0], runs, strict=True):
        handled = sorted(run["handled"], key=lambda h: h["t"])
        workers = sorted({h["worker"] for h in handled})
        for position, h in enumerate(handled, start=1):
            y = workers.index(h["worker"])
            key, step = h["message"].split(" #")
            failed = h["outcome"] != "done"
            ax.barh(y, 0.9, left=position - 0.45, height=0.7,
                    color="lightgrey" if failed else COLORS[key], edgecolor="white",
                    hatch="//" if failed else None)
            label = f"{key[0]}{step}" + (f"\nfailed\n{h['t'] - h['start']:.1f} s" if failed else "")
            ax.text(position, y, label, ha="center", va="center", fontsize=7,
                    color="black" if failed else "white")
        ax.set_yticks(range(len(workers)), workers)
        ax.set_ylim(len(workers) - 0.5, -0.5)
        ax.set_xlim(0.4, len(handled) + 0.6)
        ax.set_xticks([])
        kind = "consumer" if run["broker"] == "Kafka" else "worker"
        order = "each user in order" if run["each user in order"] else "a user out of order"
        ax.set_title(f"{run['broker']}, {run['consumers']} {kind}"
                     f"{'s' if run['consumers'] > 1 else ''}: {order}", loc="left", fontsize=10)
    axes[-1, 0].set_xlabel("attempts, in the order they ended \u2192")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLORS.values()]
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="lightgrey", hatch="//"))
    fig.legend(handles, [*KEYS, "failed attempt"], loc="upper right", fontsize=8, ncol=4)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    plt.close(fig)
    return fig
