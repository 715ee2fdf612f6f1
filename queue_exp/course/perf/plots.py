"""Pictures for notebook 09 (performance). Each function takes the rows that
:mod:`queue_exp.course.perf` returns and gives back a matplotlib ``Figure`` (Jupyter
displays it); none uses pyplot's global state. Where a row comes from
:func:`~queue_exp.course.perf.spread.repeat`, a bar or a point is the median run
and a black line across it spans the lowest to the highest run."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from queue_exp.course.perf.latency import percentiles

# the Okabe-Ito palette (colour-blind safe), as in the course's diagrams
BROKER_COLORS = {"Kafka": "#0072B2", "RabbitMQ": "#E69F00"}
SHADES = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7")
CLIENT_GREY, BROKER_GREY = "#555555", "#BBBBBB"
ERROR_BARS = {"ecolor": "black", "elinewidth": 1.2, "capsize": 3}


def _tidy(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


# log axes labelled 1, 10, 100, 1,000 rather than 10⁰, 10¹, ...
PLAIN = FuncFormatter(lambda value, _pos: f"{value:,.0f}" if value >= 1 else f"{value:g}")


def _range(rows: Sequence[dict[str, Any]], key: str) -> list[list[float]]:
    """Error bar lengths below and above each row's median (0: a single run)."""
    below, above = [], []
    for r in rows:
        value = r.get(key) or 0
        below.append(value - (r.get(f"{key} min") if r.get(f"{key} min") is not None else value))
        above.append((r.get(f"{key} max") if r.get(f"{key} max") is not None else value) - value)
    return [below, above]


def _top(rows: Sequence[dict[str, Any]], key: str) -> float:
    return max(r.get(f"{key} max") or r.get(key) or 0 for r in rows)


def plot_throughput(rows: Sequence[dict[str, Any]]) -> Figure:
    """Left: messages per second of each run. Right: who was busy meanwhile, in %
    of one core: the Python client (this process) and the broker."""
    labels = [f"{r['broker']} {r['what']}" for r in rows]
    fig = Figure(figsize=(10, 0.6 * len(rows) + 1.6))
    rate_ax, cpu_ax = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    ys = range(len(rows))
    bars = rate_ax.barh(ys, [r["msg/s"] for r in rows], xerr=_range(rows, "msg/s"),
                        color=[BROKER_COLORS[r["broker"]] for r in rows], error_kw=ERROR_BARS)
    for bar, r in zip(bars, rows, strict=True):
        rate_ax.text(_top([r], "msg/s"), bar.get_y() + bar.get_height() / 2,
                     f"  {r['msg/s']:,}", va="center", fontsize=9)
    rate_ax.set_yticks(list(ys), labels, fontsize=10)
    rate_ax.invert_yaxis()
    rate_ax.set_xlabel("messages per second")
    rate_ax.set_xlim(0, _top(rows, "msg/s") * 1.3)
    height = 0.38
    client = [r["client CPU %"] for r in rows]
    broker = [r["broker CPU %"] or 0 for r in rows]
    cpu_ax.barh([y - height / 2 for y in ys], client, height, xerr=_range(rows, "client CPU %"),
                color=CLIENT_GREY, label="Python client (this process)", error_kw=ERROR_BARS)
    cpu_ax.barh([y + height / 2 for y in ys], broker, height, xerr=_range(rows, "broker CPU %"),
                color=BROKER_GREY, hatch="//", label="broker process", error_kw=ERROR_BARS)
    cpu_ax.axvline(100, color="black", lw=0.8, ls="--")
    cpu_ax.text(100, 0.01, " one core", fontsize=9, va="bottom",
                transform=cpu_ax.get_xaxis_transform())
    cpu_ax.set_xlabel("CPU during the run, % of one core")
    cpu_ax.set_xlim(0, max(130, _top(rows, "client CPU %"), _top(rows, "broker CPU %")) * 1.1)
    cpu_ax.legend(fontsize=9, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False)
    for ax in (rate_ax, cpu_ax):
        _tidy(ax)
    fig.tight_layout()
    return fig


def _kib(n: int) -> str:
    return f"{n // 1024} KiB" if n >= 1024 else f"{n} B"


def plot_producer_grid(rows: Sequence[dict[str, Any]]) -> Figure:
    """Kafka producer throughput per ``batch_size`` (groups) and ``linger_ms``
    (bars; a combination not measured has none), each bar labelled with the
    records the producer put in one request."""
    sizes = sorted({r["batch_size"] for r in rows})
    lingers = sorted({r["linger_ms"] for r in rows})
    fig = Figure(figsize=(9, 3.8))
    ax = fig.subplots()
    width = 0.8 / len(lingers)
    for j, linger in enumerate(lingers):
        placed = [(i + (j - (len(lingers) - 1) / 2) * width, r) for i, s in enumerate(sizes)
                  for r in rows if (r["batch_size"], r["linger_ms"]) == (s, linger)]
        xs, mine = [x for x, _ in placed], [r for _, r in placed]  # a setting not run: no bar
        ax.bar(xs, [r["msg/s"] for r in mine], width * 0.95, yerr=_range(mine, "msg/s"),
               color=SHADES[j % len(SHADES)], hatch="" if j == 0 else "//",
               label=f"linger_ms={linger}", error_kw=ERROR_BARS)
        for x, r in zip(xs, mine, strict=True):
            ax.text(x, _top([r], "msg/s"), f"{r['records per request']:g}\nper request",
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(sizes)), [f"batch_size={_kib(s)}" for s in sizes], fontsize=10)
    ax.set_ylabel("messages per second")
    ax.set_ylim(0, _top(rows, "msg/s") * 1.35)
    ax.legend(fontsize=9, loc="upper left")
    ax.set_title("Kafka producer: batch size and linger", fontsize=11, loc="left")
    _tidy(ax)
    fig.tight_layout()
    return fig


def plot_compression(rows: Sequence[dict[str, Any]]) -> Figure:
    """Left: bytes the broker stores per message, per compression type. Right:
    producer and consumer messages per second."""
    codecs = [r["compression"] for r in rows]
    fig = Figure(figsize=(10, 3.6))
    disk_ax, rate_ax = fig.subplots(1, 2)
    stored = [r["bytes on disk per message"] or 0 for r in rows]
    bars = disk_ax.bar(codecs, stored, color=[SHADES[i % len(SHADES)] for i in range(len(rows))])
    for bar, r in zip(bars, rows, strict=True):
        disk_ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(),
                     f"×{r['compressed/raw']:.2f}", ha="center", va="bottom", fontsize=9)
    disk_ax.set_ylabel("bytes stored per message")
    disk_ax.set_title("on the broker's disk (×: compressed/raw)", fontsize=11, loc="left")
    xs = range(len(rows))
    rate_ax.bar([x - 0.2 for x in xs], [r["produce msg/s"] for r in rows], 0.4,
                yerr=_range(rows, "produce msg/s"), color=CLIENT_GREY, label="produce",
                error_kw=ERROR_BARS)
    rate_ax.bar([x + 0.2 for x in xs], [r["consume msg/s"] for r in rows], 0.4,
                yerr=_range(rows, "consume msg/s"), color=BROKER_GREY, hatch="//",
                label="consume", error_kw=ERROR_BARS)
    rate_ax.set_xticks(list(xs), codecs)
    rate_ax.set_ylabel("messages per second")
    rate_ax.set_title("speed", fontsize=11, loc="left")
    rate_ax.legend(fontsize=9)
    for ax in (disk_ax, rate_ax):
        _tidy(ax)
    fig.tight_layout()
    return fig


def plot_sizes(rows: Sequence[dict[str, Any]]) -> Figure:
    """Messages per second (left) and megabytes per second (right) against the
    message size, one line per broker and direction (log scales)."""
    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2)
    series = sorted({(r["broker"], r["what"]) for r in rows})
    for ax, metric in zip(axes, ("msg/s", "MB/s"), strict=True):
        for broker, what in series:
            mine = sorted((r for r in rows if (r["broker"], r["what"]) == (broker, what)),
                          key=lambda r: r["size B"])
            ax.errorbar([r["size B"] for r in mine], [max(r[metric], 1e-3) for r in mine],
                        yerr=_range(mine, metric), marker="o" if what == "send" else "s",
                        color=BROKER_COLORS[broker], ls="-" if what == "send" else "--",
                        capsize=3, label=f"{broker} {what}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(PLAIN)
        ax.yaxis.set_major_formatter(PLAIN)
        ax.set_xlabel("message size (bytes, log scale)")
        ax.set_ylabel(metric.replace("msg/s", "messages per second")
                      .replace("MB/s", "megabytes per second") + " (log scale)")
        _tidy(ax)
    axes[0].legend(fontsize=9)
    fig.tight_layout()
    return fig


LATENCY_SHARES = (0.1, 0.5, 0.9, 0.95, 0.99, 0.999)
SHARE_AXIS = "share of messages that arrived\nwithin x ms"


def _curve_color(label: str) -> str:
    """A curve's colour says its broker (the label names it), grey for neither."""
    for broker, color in BROKER_COLORS.items():
        if broker.lower() in label.lower():
            return color
    return CLIENT_GREY


def _latency_curves(ax, samples: Mapping[str, Sequence[float]]) -> tuple[int, list[float]]:
    """Draw each run's cumulative curve on ``ax``: coloured by broker, a second
    curve of the same colour dashed, a third dotted. Returns how many samples
    the largest run has, and each curve's 5 % point (for the x limits)."""
    largest, fastest, seen = 1, [], []
    for label, values in samples.items():
        ordered = sorted(max(v, 1e-3) for v in values)
        if not ordered:
            continue
        n = len(ordered)
        largest = max(largest, n)
        fastest.append(ordered[int(0.05 * n)])
        color = _curve_color(label)
        style = ("-", "--", ":")[min(seen.count(color), 2)]
        seen.append(color)
        # plotting positions (k + 0.5) / n stay inside (0, 1), where logit is finite
        ax.plot(ordered, [(k + 0.5) / n for k in range(n)], color=color, label=label,
                drawstyle="steps-post", ls=style, lw=1.8)
        stats = percentiles(ordered)
        for point, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
            ax.plot(stats[point], share, "o", color=color, ms=5)
    return largest, fastest


def _share_axis(ax, largest: int, label: bool = True) -> None:
    """The logit share axis: 10 %, 50 % (p50), 90 %, 95 % (p95), 99 % (p99)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(PLAIN)
    ax.set_yscale("logit")
    shares = [s for s in LATENCY_SHARES if s < 1 - 0.5 / largest]
    names = {0.5: " (p50)", 0.95: " (p95)", 0.99: " (p99)"}
    ax.set_yticks(shares, [f"{100 * s:g} %{names.get(s, '')}" for s in shares])
    ax.yaxis.set_minor_formatter("")
    ax.set_ylim(0.05, 1 - 0.5 / largest)
    ax.grid(axis="both", color="grey", lw=0.4, ls=":")
    ax.set_xlabel("latency x (ms, log scale)")
    if label:
        ax.set_ylabel(SHARE_AXIS)
    _tidy(ax)


def plot_latency(samples: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Each run's latencies as a cumulative curve: for a time x (right, log
    scale), the share of messages that arrived within x (up), with p50, p95 and
    p99 marked as dots. The share axis is a logit scale, which spreads out the
    tail (90 %, 99 %, ...). Kafka's curves are blue, RabbitMQ's orange, others
    grey (by the label); a broker's second curve is dashed."""
    fig = Figure(figsize=(10, 4.2))
    ax = fig.subplots()
    largest, fastest = _latency_curves(ax, samples)
    _share_axis(ax, largest)
    if fastest:
        ax.set_xlim(left=min(fastest) / 1.5)
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    if title:
        ax.set_title(title, fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def plot_latency_panels(panels: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Small multiples: one :func:`plot_latency` panel per entry of ``panels``
    (title: its curves), side by side on the same axes, so that a curve can be
    compared with the others in its panel and across panels."""
    fig = Figure(figsize=(11, 4.4))
    axes = fig.subplots(1, len(panels), sharex=True, sharey=True, squeeze=False)[0]
    largest, fastest = 1, []
    for ax, (title, samples) in zip(axes, panels.items(), strict=True):
        n, low = _latency_curves(ax, samples)
        largest, fastest = max(largest, n), fastest + low
        ax.set_title(title, fontsize=11, loc="left")
        ax.legend(fontsize=9, loc="lower right")
    for i, ax in enumerate(axes):
        _share_axis(ax, largest, label=i == 0)
    if fastest:
        axes[0].set_xlim(left=min(fastest) / 1.5)
    fig.tight_layout()
    return fig


def plot_confirm_modes(rows: Sequence[dict[str, Any]]) -> Figure:
    """Messages per second of each publisher-confirm mode (and of publishing
    without confirms, hatched), each bar labelled with its message count."""
    fig = Figure(figsize=(9, 2.9))
    ax = fig.subplots()
    modes = [r["mode"] for r in rows]
    colors = [BROKER_GREY if m == "no confirms" else SHADES[2 + i % 4] for i, m in enumerate(modes)]
    bars = ax.barh(modes, [r["msg/s"] for r in rows], xerr=_range(rows, "msg/s"), color=colors,
                   hatch=None, error_kw=ERROR_BARS)
    for bar, r in zip(bars, rows, strict=True):
        if r["mode"] == "no confirms":
            bar.set_hatch("//")
        ax.text(_top([r], "msg/s"), bar.get_y() + bar.get_height() / 2,
                f"  {r['msg/s']:,} msg/s ({r['messages']:,} messages a run)", va="center",
                fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("messages per second until the broker has them all "
                  "(confirmed, or counted in the queue)")
    ax.set_xlim(0, _top(rows, "msg/s") * 1.7)
    _tidy(ax)
    fig.tight_layout()
    return fig
