"""Repeat a measurement and keep its spread: on a machine shared with other work
one run says little, three runs say how much the figure moves. :func:`repeat`
turns the rows of several runs into one row per measured thing, with the median
and the lowest and highest value of every figure that changed between runs;
:func:`with_range` shows such rows as ``median (min–max)`` for a table, and
:func:`leader` says which of several figures is ahead, and whether clearly."""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

Row = dict[str, Any]
Progress = Callable[..., Iterable[Any]]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def middle(values: Sequence[float]) -> float:
    """The median; for an even number of values the lower of the two middle ones,
    so that the figure shown is always one a run really measured."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def combine(rows: Sequence[Row]) -> Row:
    """One row from the same measurement's rows of several runs:

    * a number: the median, and ``"<key> min"`` / ``"<key> max"`` if the runs
      differ (``None`` where a run has no figure is left out; all ``None``: ``None``);
    * a yes/no: yes only if it is yes in every run;
    * anything else (labels, settings): the same in every run, or ``ValueError``;
    * ``"runs"``: how many runs there were."""
    if not rows:
        raise ValueError("no runs to combine")
    out: Row = {}
    for key in rows[0]:
        values = [row.get(key) for row in rows]
        numbers = [v for v in values if _is_number(v)]
        if all(isinstance(v, bool) for v in values):
            out[key] = all(values)
        elif numbers and all(v is None or _is_number(v) for v in values):
            out[key] = middle(numbers)
            if min(numbers) != max(numbers):
                out[f"{key} min"], out[f"{key} max"] = min(numbers), max(numbers)
        elif all(v is None for v in values):
            out[key] = None
        elif isinstance(values[0], str | tuple) or values[0] is None:
            if any(v != values[0] for v in values):
                raise ValueError(f"the runs' rows do not line up: {key} is {values}")
            out[key] = values[0]
        else:  # lists of samples and the like: every run's, one after the other
            out[key] = [item for v in values for item in v]
    out["runs"] = len(rows)
    return out


def repeat(
    measure: Callable[[], Row | list[Row]],
    times: int = 3,
    *,
    progress: Progress | None = None,
    desc: str = "runs",
) -> Row | list[Row]:
    """Call ``measure()`` ``times`` times and :func:`combine` what it returned:
    a row gives a row, a list of rows gives a list (its rows matched by
    position, so a measurement that goes through several settings interleaves
    them: a busy second on the machine hits one run of each, not three runs of
    one)."""
    if times < 1:
        raise ValueError("times must be at least 1")
    runs = []
    for number in progress(range(times), desc=desc) if progress else range(times):
        runs.append(measure())
        logger.debug("run %d of %d done", number + 1, times)
    if isinstance(runs[0], dict):
        return combine(runs)
    if any(len(run) != len(runs[0]) for run in runs):
        raise ValueError("every run must return the same number of rows")
    return [combine(same) for same in zip(*runs, strict=True)]


def _show(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    magnitude = abs(value)
    return f"{value:,.0f}" if magnitude >= 100 else f"{value:.1f}" if magnitude >= 10 \
        else f"{value:.2f}"


def with_range(rows: Sequence[Row], columns: Sequence[str]) -> list[Row]:
    """``rows`` cut to ``columns``, a figure that moved between runs shown as
    ``"median (min–max)"`` text (for a table: a pandas ``DataFrame`` of it)."""
    shown = []
    for row in rows:
        line = {}
        for column in columns:
            value = row.get(column)
            if _is_number(value) and f"{column} min" in row:
                line[column] = (f"{_show(value)} ({_show(row[f'{column} min'])}–"
                                f"{_show(row[f'{column} max'])})")
            elif _is_number(value):
                line[column] = _show(value)
            else:
                line[column] = value
        shown.append(line)
    return shown


@dataclass(frozen=True)
class Figure:
    """One measured figure: its median, lowest and highest run, and how many runs."""

    median: float
    low: float
    high: float
    runs: int


def figure(row: Row, key: str) -> Figure | None:
    """``row[key]`` with its range (a single run: the value three times); ``None``
    if the row has no figure for ``key``."""
    value = row.get(key)
    if not _is_number(value):
        return None
    low, high = row.get(f"{key} min", value), row.get(f"{key} max", value)
    return Figure(value, low, high, row.get("runs", 1))


def leader(figures: Mapping[str, Figure | None], lowest: bool = False) -> str:
    """Which figure is ahead (the highest median, or the lowest with ``lowest``),
    in words: *clearly* when its range and every other's do not overlap (its
    worst run beats their best), else *by the median* and whose range it
    overlaps. Figures that are ``None`` are left out."""
    named = {name: f for name, f in figures.items() if f is not None}
    if not named:
        return "no figure to compare"
    sign = -1 if lowest else 1
    best = max(named, key=lambda name: sign * named[name].median)
    top = named[best]
    others = {name: f for name, f in named.items() if name != best}
    if not others:
        return best
    ties = [name for name, f in others.items() if f.median == top.median]
    if ties:
        return f"no single one: {best} and {', '.join(ties)} have the same median"
    overlap = [name for name, f in others.items()
               if (top.low <= f.high if not lowest else top.high >= f.low)]
    if max(f.runs for f in named.values()) == 1:
        return f"{best} (one run each: no range)"
    if not overlap:
        return f"{best}, clearly (the ranges do not overlap)"
    names = overlap[0] if len(overlap) == 1 else f"{', '.join(overlap[:-1])} and {overlap[-1]}"
    return f"{best} by the median; its range overlaps {names}"
