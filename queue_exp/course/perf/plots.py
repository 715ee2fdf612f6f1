"""Pictures for notebook 09 (performance). Each function takes the rows that
:mod:`queue_exp.course.perf` returns and gives back a matplotlib ``Figure`` (Jupyter
displays it); none uses pyplot's global state."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from queue_exp.course.perf.latency import percentiles

BROKER_COLORS = {"Kafka": "#4C72B0", "RabbitMQ": "#DD8452"}
SHADES = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")


def _tidy(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def plot_throughput(rows: Sequence[dict[str, Any]]) -> Figure:
    """Left: messages per second of each run. Right: who was busy meanwhile, in %
    of one core: the Python client (this process) and the broker."""
    labels = [f"{r['broker']} {r['what']}" for r in rows]
    fig = Figure(figsize=(10, 0.55 * len(rows) + 1.4))
    rate_ax, cpu_ax = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    ys = range(len(rows))
    bars = rate_ax.barh(ys, [r["msg/s"] for r in rows],
                        color=[BROKER_COLORS[r["broker"]] for r in rows])
    for bar, r in zip(bars, rows, strict=True):
        rate_ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                     f"  {r['msg/s']:,}", va="center", fontsize=8)
    rate_ax.set_yticks(list(ys), labels)
    rate_ax.invert_yaxis()
    rate_ax.set_xlabel("messages per second")
    rate_ax.set_xlim(0, max(r["msg/s"] for r in rows) * 1.25)
    height = 0.38
    client = [r["client CPU %"] for r in rows]
    broker = [r["broker CPU %"] or 0 for r in rows]
    cpu_ax.barh([y - height / 2 for y in ys], client, height, color="#555555",
                label="Python client (this process)")
    cpu_ax.barh([y + height / 2 for y in ys], broker, height, color="#BBBBBB",
                label="broker process")
    cpu_ax.axvline(100, color="black", lw=0.8, ls="--")
    cpu_ax.text(100, 0.01, " one core", fontsize=8, va="bottom",
                transform=cpu_ax.get_xaxis_transform())
    cpu_ax.set_xlabel("CPU during the run, % of one core")
    cpu_ax.set_xlim(0, max(130, *client, *broker) * 1.1)
    cpu_ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False)
    for ax in (rate_ax, cpu_ax):
        _tidy(ax)
    fig.tight_layout()
    return fig


def _kib(n: int) -> str:
    return f"{n // 1024} KiB" if n >= 1024 else f"{n} B"


def plot_producer_grid(rows: Sequence[dict[str, Any]]) -> Figure:
    """Kafka producer throughput per ``batch_size`` (groups) and ``linger_ms``
    (bars), each bar labelled with the records the producer put in one request."""
    sizes = sorted({r["batch_size"] for r in rows})
    lingers = sorted({r["linger_ms"] for r in rows})
    fig = Figure(figsize=(8, 3.4))
    ax = fig.subplots()
    width = 0.8 / len(lingers)
    for j, linger in enumerate(lingers):
        mine = {r["batch_size"]: r for r in rows if r["linger_ms"] == linger}
        xs = [i + (j - (len(lingers) - 1) / 2) * width for i in range(len(sizes))]
        values = [mine[s]["msg/s"] if s in mine else 0 for s in sizes]
        bars = ax.bar(xs, values, width * 0.95, color=SHADES[j % len(SHADES)],
                      label=f"linger_ms={linger}")
        for bar, s in zip(bars, sizes, strict=True):
            if s in mine:
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(),
                        f"{mine[s]['records per request']:g}\nper request", ha="center",
                        va="bottom", fontsize=7)
    ax.set_xticks(range(len(sizes)), [f"batch_size={_kib(s)}" for s in sizes])
    ax.set_ylabel("messages per second")
    ax.set_ylim(0, max(r["msg/s"] for r in rows) * 1.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Kafka producer: batch size and linger", fontsize=10, loc="left")
    _tidy(ax)
    fig.tight_layout()
    return fig


def plot_compression(rows: Sequence[dict[str, Any]]) -> Figure:
    """Left: bytes the broker stored per compression type. Right: producer and
    consumer messages per second."""
    codecs = [r["compression"] for r in rows]
    fig = Figure(figsize=(10, 3.2))
    disk_ax, rate_ax = fig.subplots(1, 2)
    stored = [(r["bytes on disk"] or 0) / 1e6 for r in rows]
    bars = disk_ax.bar(codecs, stored, color=[SHADES[i % len(SHADES)] for i in range(len(rows))])
    for bar, r in zip(bars, rows, strict=True):
        disk_ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(),
                     f"×{r['compressed/raw']:.2f}", ha="center", va="bottom", fontsize=8)
    disk_ax.set_ylabel("MB stored by the broker")
    disk_ax.set_title(f"the same {rows[0]['messages']:,} messages", fontsize=10, loc="left")
    xs = range(len(rows))
    rate_ax.bar([x - 0.2 for x in xs], [r["produce msg/s"] for r in rows], 0.4,
                color="#555555", label="produce")
    rate_ax.bar([x + 0.2 for x in xs], [r["consume msg/s"] for r in rows], 0.4,
                color="#BBBBBB", label="consume")
    rate_ax.set_xticks(list(xs), codecs)
    rate_ax.set_ylabel("messages per second")
    rate_ax.legend(fontsize=8)
    for ax in (disk_ax, rate_ax):
        _tidy(ax)
    fig.tight_layout()
    return fig


def plot_sizes(rows: Sequence[dict[str, Any]]) -> Figure:
    """Messages per second (left) and megabytes per second (right) against the
    message size, one line per broker and direction (log scales)."""
    fig = Figure(figsize=(10, 3.4))
    axes = fig.subplots(1, 2)
    series = sorted({(r["broker"], r["what"]) for r in rows})
    for ax, metric in zip(axes, ("msg/s", "MB/s"), strict=True):
        for broker, what in series:
            mine = sorted((r for r in rows if (r["broker"], r["what"]) == (broker, what)),
                          key=lambda r: r["size B"])
            ax.plot([r["size B"] for r in mine], [max(r[metric], 1e-3) for r in mine],
                    marker="o", color=BROKER_COLORS[broker],
                    ls="-" if what == "send" else "--", label=f"{broker} {what}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("message size (bytes)")
        ax.set_ylabel(metric.replace("msg/s", "messages per second")
                      .replace("MB/s", "megabytes per second"))
        _tidy(ax)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


LATENCY_SHARES = (0.1, 0.5, 0.9, 0.95, 0.99, 0.999)


def plot_latency(samples: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Each run's latencies as a cumulative curve: the share of messages (up)
    that took at most that long (right, log scale), with p50, p95 and p99 marked.
    The share axis is a logit scale, which spreads out the tail (90 %, 99 %, ...)."""
    fig = Figure(figsize=(10, 3.8))
    ax = fig.subplots()
    ax.set_xscale("log")
    ax.set_yscale("logit")
    largest, fastest = 1, []
    for i, (label, values) in enumerate(samples.items()):
        ordered = sorted(max(v, 1e-3) for v in values)
        if not ordered:
            continue
        n = len(ordered)
        largest = max(largest, n)
        fastest.append(ordered[int(0.05 * n)])  # the curve's lowest visible point
        color = SHADES[i % len(SHADES)]
        # plotting positions (k + 0.5) / n stay inside (0, 1), where logit is finite
        ax.plot(ordered, [(k + 0.5) / n for k in range(n)], color=color, label=label,
                drawstyle="steps-post")
        stats = percentiles(ordered)
        for point, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
            ax.plot(stats[point], share, "o", color=color, ms=4)
    shares = [s for s in LATENCY_SHARES if s < 1 - 0.5 / largest]
    names = {0.5: " (p50)", 0.95: " (p95)", 0.99: " (p99)"}
    ax.set_yticks(shares, [f"{100 * s:g} %{names.get(s, '')}" for s in shares])
    ax.yaxis.set_minor_formatter("")
    ax.set_ylim(0.05, 1 - 0.5 / largest)
    if fastest:
        ax.set_xlim(left=min(fastest) / 1.5)
    ax.grid(axis="y", color="grey", lw=0.4, ls=":")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("messages at least this fast")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    _tidy(ax)
    fig.tight_layout()
    return fig


def plot_confirm_modes(rows: Sequence[dict[str, Any]]) -> Figure:
    """Notebook 07's confirm-mode chart, with the run without confirms in grey."""
    from queue_exp.course.rabbitmq import plot_confirm_timings

    fig = plot_confirm_timings(rows)
    ax = fig.axes[0]
    for bar, row in zip(ax.patches, rows, strict=True):
        if row["mode"] == "no confirms":
            bar.set_color("#999999")
    ax.set_xlabel(f"seconds until the broker has all {rows[0]['messages']:,} messages "
                  "(confirmed, or counted in the queue)")
    return fig
