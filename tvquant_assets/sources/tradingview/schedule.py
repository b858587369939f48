"""Which partition a daily run of a live manifest should target: the newest one whose session has closed.

A crypto manifest ticking at 00:30 New York has no bar yet for its UTC day (that session closes at
midnight UTC, hours later): its run targets the day before. A NYSE manifest ticking at 17:30 New York targets
today (closed at 16:00). No Dagster here; ``defs/schedules.py`` calls it.
"""

from __future__ import annotations

import pandas as pd

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.manifest import Manifest
from tvquant_assets.sources.tradingview.calendars import last_closed_session, sessions


def closed_partition(manifest: Manifest, when) -> pd.Timestamp | None:
    """The newest partition date of ``manifest`` whose session (``source.exchange_calendar``) closed by ``when``."""
    day = last_closed_session(manifest.source.exchange_calendar, when)
    if day is None:
        return None
    dates = manifest_dates(manifest, day - pd.Timedelta(days=14), day)
    return dates[-1] if dates else None


def closed_sessions(manifest: Manifest, start, end, when=None) -> list[pd.Timestamp]:
    """Partition dates in [start, end] that are sessions of the source's calendar and have closed by
    ``when`` (default: the source's now): the dates on which every active symbol must have a bar."""
    from tvquant_assets.sources.tradingview.source import now

    last = last_closed_session(manifest.source.exchange_calendar, now() if when is None else when)
    if last is None:
        return []
    days = set(sessions(manifest.source.exchange_calendar, start, min(pd.Timestamp(end), last)))
    return [d for d in manifest_dates(manifest, start, min(pd.Timestamp(end), last)) if d in days]
