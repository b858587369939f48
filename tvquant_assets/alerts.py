"""Operational alerts: one JSON line per alert, appended to a file a person or a log shipper watches.

``TVQUANT_ALERTS`` names the file (default ``$DAGSTER_HOME/alerts.jsonl``, else ``./.tvquant/alerts.jsonl``).
Messages never carry secrets: they are built from run ids, partition keys and check names only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

ALERTS_ENV = "TVQUANT_ALERTS"
log = logging.getLogger("tvquant.alerts")


def alerts_path() -> Path:
    if os.environ.get(ALERTS_ENV):
        return Path(os.environ[ALERTS_ENV])
    home = os.environ.get("DAGSTER_HOME")
    return Path(home) / "alerts.jsonl" if home else Path(".tvquant") / "alerts.jsonl"


def alert(message: str, details: dict | None = None) -> dict:
    entry = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "message": message,
             "details": details or {}}
    path = alerts_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
    log.error("ALERT %s", message)
    return entry


def read_alerts(path: Path | None = None) -> list[dict]:
    p = path or alerts_path()
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []
