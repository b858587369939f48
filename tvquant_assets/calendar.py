"""Partition calendars: weekdays (equities; holidays show up as dates without bars) or every day."""

from __future__ import annotations

import functools

import pandas as pd

from tvquant_assets.errors import ManifestError
from tvquant_assets.manifest.schema import Manifest

CRON = {"weekdays": "0 0 * * 1-5", "daily": "0 0 * * *"}


def calendar_index(calendar: str, start, end) -> pd.DatetimeIndex:
    """Partition dates of ``calendar`` in [start, end] as an index (ns), ascending."""
    return _calendar_index(calendar, pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize())


@functools.lru_cache(maxsize=256)
def _calendar_index(calendar: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    if calendar == "weekdays":
        idx = pd.bdate_range(start, end)
    elif calendar == "daily":
        idx = pd.date_range(start, end, freq="D")
    else:
        raise ManifestError(f"calendar: unknown calendar {calendar!r} (allowed: weekdays, daily)")
    return idx.as_unit("ns")


@functools.lru_cache(maxsize=256)
def _calendar_tuple(calendar: str, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.Timestamp, ...]:
    return tuple(_calendar_index(calendar, start, end))


def calendar_dates(calendar: str, start, end) -> list[pd.Timestamp]:
    """Partition dates of ``calendar`` in [start, end], ascending (a fresh list; the dates are cached)."""
    return list(_calendar_tuple(calendar, pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()))


def manifest_dates(manifest: Manifest, start, end) -> list[pd.Timestamp]:
    return calendar_dates(manifest.calendar, max(pd.Timestamp(start), pd.Timestamp(manifest.start)), end)


def is_partition(manifest: Manifest, date) -> bool:
    d = pd.Timestamp(date)
    if d < pd.Timestamp(manifest.start) or d != d.normalize():
        return False
    return manifest.calendar == "daily" or d.day_of_week < 5


def previous_dates(manifest: Manifest, date, count: int) -> list[pd.Timestamp]:
    """The ``count`` calendar dates before ``date`` (may precede the manifest start: warm-up history)."""
    return list(_previous_tuple(manifest.calendar, pd.Timestamp(date), int(count)))


@functools.lru_cache(maxsize=4096)
def _previous_tuple(calendar: str, d: pd.Timestamp, count: int) -> tuple[pd.Timestamp, ...]:
    if calendar == "weekdays":
        idx = pd.bdate_range(end=d - pd.Timedelta(days=1), periods=count)
    else:
        idx = pd.date_range(end=d - pd.Timedelta(days=1), periods=count, freq="D")
    return tuple(idx.as_unit("ns"))
