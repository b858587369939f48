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


# Session dating ------------------------------------------------------------------------------------------
# TradingView stamps a daily bar with its session's open in the exchange time zone: 09:30 New York for a US
# stock (13:30 UTC in summer), 00:00 UTC for crypto, and the evening before for FX, metals, CFDs and CME
# futures (XAUUSD's Monday bar: Sunday 17:00 New York = 21:00/22:00 UTC). A bar belongs to its session's
# trading date; a session that opens in the afternoon or evening belongs to the next trading date.
FX_TIMEZONE = "America/New_York"  # 24/5 sessions: 17:00 to 17:00 New York
EVENING_HOUR = 12


def next_sessions(name: str, days: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """For each date, the first session strictly after it."""
    if len(days) == 0:
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    cal = sessions(name, days.min(), days.max() + pd.Timedelta(days=15))
    i = cal.searchsorted(days, side="right")
    return pd.DatetimeIndex(cal[i]).as_unit("ns")


def trading_dates(name: str, stamps_s, tz: str) -> pd.DatetimeIndex:
    """Trading dates of bars stamped ``stamps_s`` (unix seconds, the session open) in time zone ``tz``."""
    utc = pd.to_datetime(pd.Index(stamps_s, dtype="float64"), unit="s", utc=True)
    local = utc.tz_convert(tz or "Etc/UTC")
    day = local.normalize().tz_localize(None).as_unit("ns")
    evening = local.hour >= EVENING_HOUR
    if not evening.any():
        return pd.DatetimeIndex(day)
    out = day.to_numpy().copy()
    out[evening] = next_sessions(name, pd.DatetimeIndex(day[evening])).to_numpy()
    return pd.DatetimeIndex(out).as_unit("ns")


def session_close(name: str, day) -> pd.Timestamp:
    """When the session of trading date ``day`` closes (UTC)."""
    day = pd.Timestamp(day).normalize()
    if name == ALWAYS:
        return (day + pd.Timedelta(days=1)).tz_localize("UTC")
    if name == WEEKDAYS:
        return (day + pd.Timedelta(hours=17)).tz_localize(FX_TIMEZONE).tz_convert("UTC")
    cal = _calendar(name, min(day.year, 2000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.Timestamp(cal.session_close(day)).tz_convert("UTC")


def last_closed_session(name: str, now) -> pd.Timestamp | None:
    """The newest session whose close is at or before ``now`` (a tz-aware or UTC-naive timestamp)."""
    now = pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    cands = sessions(name, now.tz_localize(None) - pd.Timedelta(days=15), now.tz_localize(None) + pd.Timedelta(days=1))
    for d in reversed(cands):
        if session_close(name, d) <= now:
            return d
    return None
