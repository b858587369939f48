"""Partition calendars: weekdays (equities; holidays show up as dates without bars) or every day."""

from __future__ import annotations

import pandas as pd

from tvquant_assets.errors import ManifestError
from tvquant_assets.manifest.schema import Manifest

CRON = {"weekdays": "0 0 * * 1-5", "daily": "0 0 * * *"}


def calendar_dates(calendar: str, start, end) -> list[pd.Timestamp]:
    """Partition dates of ``calendar`` in [start, end], ascending."""
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if calendar == "weekdays":
        idx = pd.bdate_range(start, end)
    elif calendar == "daily":
        idx = pd.date_range(start, end, freq="D")
    else:
        raise ManifestError(f"calendar: unknown calendar {calendar!r} (allowed: weekdays, daily)")
    return list(idx.as_unit("ns"))


def manifest_dates(manifest: Manifest, start, end) -> list[pd.Timestamp]:
    return calendar_dates(manifest.calendar, max(pd.Timestamp(start), pd.Timestamp(manifest.start)), end)


def is_partition(manifest: Manifest, date) -> bool:
    d = pd.Timestamp(date)
    if d < pd.Timestamp(manifest.start) or d != d.normalize():
        return False
    return manifest.calendar == "daily" or d.day_of_week < 5


def previous_dates(manifest: Manifest, date, count: int) -> list[pd.Timestamp]:
    """The ``count`` calendar dates before ``date`` (may precede the manifest start: warm-up history)."""
    d = pd.Timestamp(date)
    if manifest.calendar == "weekdays":
        idx = pd.bdate_range(end=d - pd.Timedelta(days=1), periods=count)
    else:
        idx = pd.date_range(end=d - pd.Timedelta(days=1), periods=count, freq="D")
    return list(idx.as_unit("ns"))
