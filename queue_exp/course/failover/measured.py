"""Figures one replication notebook measured, kept for the other: notebook 13's
side-by-side quotes the Kafka failover times notebook 12 measured on this
machine (``QUEUE_EXP_HOME/cluster/measured.json``)."""

from __future__ import annotations

import json
from typing import Any

from queue_exp.config import home_dir


def _path():
    return home_dir() / "cluster" / "measured.json"


def remember(broker: str, figures: dict[str, Any]) -> None:
    """Keep ``figures`` (name -> number) as ``broker``'s latest measurements."""
    kept = remembered()
    kept[broker] = figures
    _path().parent.mkdir(parents=True, exist_ok=True)
    _path().write_text(json.dumps(kept, indent=2, sort_keys=True))


def remembered() -> dict[str, dict[str, Any]]:
    """Every broker's latest figures (empty until a notebook has kept some)."""
    try:
        return json.loads(_path().read_text())
    except (OSError, ValueError):
        return {}
