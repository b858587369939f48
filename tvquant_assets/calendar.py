"""Partition calendars: weekdays (equities; holidays show up as dates without bars) or every day."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable

import numpy as np
import pandas as pd

from tvquant_assets.errors import ManifestError
from tvquant_assets.manifest.schema import Manifest, RebalanceConfig

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


@functools.lru_cache(maxsize=512)
def _year(calendar: str, year: int) -> tuple[pd.Timestamp, ...]:
    """Every partition date of ``calendar`` in ``year``: the dates of any window are slices of these (a
    lineage asks a different window per date; slicing costs a bisect, building one cost a date range)."""
    return tuple(_calendar_index(calendar, pd.Timestamp(year=year, month=1, day=1),
                                 pd.Timestamp(year=year, month=12, day=31)))


def _between(calendar: str, start: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
    out: list[pd.Timestamp] = []
    for year in range(start.year, end.year + 1):
        days = _year(calendar, year)
        lo = bisect.bisect_left(days, start) if year == start.year else 0
        hi = bisect.bisect_right(days, end) if year == end.year else len(days)
        out.extend(days[lo:hi])
    return out


def calendar_dates(calendar: str, start, end) -> list[pd.Timestamp]:
    """Partition dates of ``calendar`` in [start, end], ascending (a fresh list; the dates are cached)."""
    if calendar not in CRON:
        raise ManifestError(f"calendar: unknown calendar {calendar!r} (allowed: weekdays, daily)")
    return _between(calendar, pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize())


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


def previous_weekdays(date, count: int) -> list[pd.Timestamp]:
    """The ``count`` weekdays before ``date``, whatever the manifest's calendar (bars of a weekday market)."""
    return list(_previous_tuple("weekdays", pd.Timestamp(date), int(count)))


def first_previous_weekday(date, count: int) -> pd.Timestamp:
    """``previous_weekdays(date, count)[0]`` without building the list (a trailing window's first date)."""
    d = pd.Timestamp(date)
    if count <= 0 or d.tzinfo is not None or d != d.normalize():
        return _previous_tuple("weekdays", d, int(count))[0]
    need, year = int(count), d.year
    while True:
        days = _year("weekdays", year)
        hi = bisect.bisect_left(days, d) if year == d.year else len(days)
        if hi >= need:
            return days[hi - need]
        need -= hi
        year -= 1


def _previous_tuple(calendar: str, d: pd.Timestamp, count: int) -> tuple[pd.Timestamp, ...]:
    """The ``count`` dates of ``calendar`` before ``d`` (slices of the cached years)."""
    calendar = "weekdays" if calendar == "weekdays" else "daily"
    if count <= 0:
        return ()
    if d.tzinfo is not None or d != d.normalize():  # not a partition date: the date range's own rules
        end = d - pd.Timedelta(days=1)
        idx = (pd.bdate_range(end=end, periods=count) if calendar == "weekdays"
               else pd.date_range(end=end, periods=count, freq="D"))
        return tuple(idx.as_unit("ns"))
    out: list[tuple[pd.Timestamp, ...]] = []
    need, year = count, d.year
    while need > 0:
        days = _year(calendar, year)
        hi = bisect.bisect_left(days, d) if year == d.year else len(days)
        take = days[max(0, hi - need):hi]
        out.append(take)
        need -= len(take)
        year -= 1
    return tuple(x for part in reversed(out) for x in part)


def rebalance_dates(calendar_dates: Iterable[pd.Timestamp], cfg: RebalanceConfig) -> list[pd.Timestamp]:
    """Rebalance dates among ``calendar_dates``.

    Parameters
    ----------
    calendar_dates : iterable of Timestamp
        The partition calendar. For ``every_k_days`` it must start at the partition start (the first
        partition date of the manifest), not at a backfill's first date: counting starts at the first
        date of the list, so a list cut elsewhere would move every rebalance date.
    cfg : RebalanceConfig
        ``monthly``: first date of each month in the list; ``weekly``: first date of each ISO week;
        ``every_k_days``: every k-th date of the list, starting with the first; ``drift``: every date (the
        backtest trades only when the drift exceeds ``backtest.drift.threshold``).

    Returns
    -------
    list of Timestamp, ascending
    """
    days = pd.DatetimeIndex(list(calendar_dates) if not isinstance(calendar_dates, pd.Index) else calendar_dates)
    days = days.unique().sort_values()
    if cfg.rule == "every_k_days":
        return list(days[:: int(cfg.every_k_days)])
    if cfg.rule == "drift":  # fresh targets every date; the backtest trades them only when drift exceeds
        return list(days)
    if cfg.rule == "monthly":
        key = days.year.to_numpy() * 12 + days.month.to_numpy()
    else:
        iso = days.isocalendar()
        key = iso["year"].to_numpy().astype("int64") * 53 + iso["week"].to_numpy().astype("int64")
    first = np.ones(len(days), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    return list(days[first])


def rebalance_set(manifest: Manifest, last) -> frozenset[pd.Timestamp]:
    """Rebalance dates of ``manifest`` up to ``last``, counted on the partition calendar from its start."""
    return _rebalance_set(manifest.calendar, pd.Timestamp(manifest.start), manifest.rebalance, pd.Timestamp(last))


@functools.lru_cache(maxsize=4096)
def _rebalance_set(calendar: str, start: pd.Timestamp, rule, last: pd.Timestamp) -> frozenset[pd.Timestamp]:
    dates = _rebalance_dates_to(calendar, start, rule, pd.Timestamp(year=last.year + 1, month=1, day=1))
    return frozenset(dates[: bisect.bisect_right(dates, last)])


@functools.lru_cache(maxsize=64)
def _rebalance_dates_to(calendar: str, start: pd.Timestamp, rule, horizon: pd.Timestamp) -> list[pd.Timestamp]:
    """Every rule (first date of a month or week, every k-th date from the start) only looks back, so the
    dates up to ``last`` are those up to a later horizon cut at ``last``: one calendar per year, not one per
    date (a backfill asks for every date)."""
    return rebalance_dates(calendar_index(calendar, start, horizon), rule)
