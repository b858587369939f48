"""Trading sessions per venue: exchange-calendars for exchanges, 24/7 (crypto) and 24/5 (forex)."""

from __future__ import annotations

import functools
import warnings

import pandas as pd

from tvquant_assets.errors import SourceError

ALWAYS = "24/7"
WEEKDAYS = "24/5"


@functools.lru_cache(maxsize=16)
def _calendar(name: str, first_year: int):
    import exchange_calendars as xc

    try:
        with warnings.catch_warnings():  # exchange-calendars 4.13 trips a pandas 3.1 deprecation warning
            warnings.simplefilter("ignore")
            return xc.get_calendar(name, start=f"{first_year}-01-01")
    except xc.errors.InvalidCalendarName:
        raise SourceError(f"source.exchange_calendar: unknown calendar {name!r} (use 24/7, 24/5 or an "
                          "exchange-calendars name such as XNYS, CMES)") from None


def check_calendar(name: str) -> None:
    if name not in (ALWAYS, WEEKDAYS):
        _calendar(name, 2000)


def sessions(name: str, start, end) -> pd.DatetimeIndex:
    """Session dates of calendar ``name`` in [start, end]."""
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if end < start:
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    if name == ALWAYS:
        return pd.date_range(start, end, freq="D").as_unit("ns")
    if name == WEEKDAYS:
        return pd.bdate_range(start, end).as_unit("ns")
    cal = _calendar(name, min(start.year, 2000))
    lo, hi = max(start, cal.first_session), min(end, cal.last_session)
    if hi < lo:
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        days = cal.sessions_in_range(lo, hi)
    return pd.DatetimeIndex(days).tz_localize(None).as_unit("ns")


def last_session(name: str, on_or_before) -> pd.Timestamp | None:
    d = pd.Timestamp(on_or_before).normalize()
    s = sessions(name, d - pd.Timedelta(days=15), d)
    return s[-1] if len(s) else None


def missing_sessions(name: str, have_until, until) -> int:
    """Sessions after ``have_until`` up to ``until`` (how many bars an incremental fetch needs)."""
    return len(sessions(name, pd.Timestamp(have_until) + pd.Timedelta(days=1), until))
