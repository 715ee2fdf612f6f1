"""Pictures for the RabbitMQ chapter: who worked on which task when, and what
each confirm mode costs. Each function returns a matplotlib ``Figure`` (Jupyter
displays it); matplotlib is imported only when a picture is drawn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queue_exp.course.rabbitmq.work import WorkRun


def plot_work_runs(runs: Sequence[WorkRun]):
    """One timeline per run: a row per worker, a bar per task (slow ones orange)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 1.9 * len(runs) + 0.6), sharex=True,
                             squeeze=False)
    colors = {"slow": "tab:orange", "fast": "tab:blue"}
    for ax, run in zip(axes[:, 0], runs, strict=True):
        workers = sorted({r["worker"] for r in run.records})
        for r in run.records:
            y = workers.index(r["worker"])
            ax.barh(y, r["end_s"] - r["start_s"], left=r["start_s"], height=0.6,
                    color=colors[r["kind"]], edgecolor="white")
            ax.text(r["start_s"] + (r["end_s"] - r["start_s"]) / 2, y, str(r["task"]),
                    ha="center", va="center", fontsize=8, color="white")
        ax.set_yticks(range(len(workers)), workers)
        ax.set_xlim(left=0)
        ax.set_title(run.title, fontsize=10, loc="left")
        ax.invert_yaxis()
    axes[-1, 0].set_xlabel("seconds since the tasks were published")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    fig.legend(handles, [f"{k} task" for k in colors], loc="upper right", fontsize=8)
    fig.tight_layout()
    plt.close(fig)  # the caller displays the returned figure once
    return fig


def plot_confirm_timings(rows: Sequence[dict[str, Any]]):
    """One bar per confirm mode (rows of :func:`confirm_timings`): seconds and msg/s."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.4))
    modes = [r["mode"] for r in rows]
    bars = ax.barh(modes, [r["seconds"] for r in rows],
                   color=["tab:red", "tab:orange", "tab:green"][: len(rows)])
    for bar, r in zip(bars, rows, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f"  {r['msg/s']:,} msg/s",
                va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds to publish {rows[0]['messages']} messages, all confirmed")
    ax.set_xlim(0, max(r["seconds"] for r in rows) * 1.35)
    fig.tight_layout()
    plt.close(fig)
    return fig
