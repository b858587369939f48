"""The partition calendar's date lists (slices of cached years) equal pandas' own date ranges."""

import random

import pandas as pd

from tvquant_assets import calendar


def _reference(cal: str, start, end) -> list[pd.Timestamp]:
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    idx = pd.bdate_range(start, end) if cal == "weekdays" else pd.date_range(start, end, freq="D")
    return list(idx.as_unit("ns"))


def _reference_previous(cal: str, d: pd.Timestamp, n: int) -> list[pd.Timestamp]:
    end = d - pd.Timedelta(days=1)
    idx = pd.bdate_range(end=end, periods=n) if cal == "weekdays" else pd.date_range(end=end, periods=n, freq="D")
    return list(idx.as_unit("ns"))


def test_windows_and_previous_dates_match_pandas_date_ranges():
    rng = random.Random(7)
    base = pd.Timestamp("1988-01-01")
    for _ in range(400):
        cal = rng.choice(["weekdays", "daily"])
        start = base + pd.Timedelta(days=rng.randrange(0, 12000))
        end = start + pd.Timedelta(days=rng.randrange(-3, 2500))  # across years; sometimes empty
        if rng.random() < 0.2:
            start += pd.Timedelta(hours=rng.randrange(1, 23))
        got = calendar.calendar_dates(cal, start, end)
        assert got == _reference(cal, start, end)
        assert all(d.unit == "ns" for d in got)
        d = base + pd.Timedelta(days=rng.randrange(0, 12000))
        if rng.random() < 0.1:
            d += pd.Timedelta(hours=5)  # not a partition date
        n = rng.randrange(0, 700)
        assert list(calendar._previous_tuple(cal, d, n)) == _reference_previous(cal, d, n)
    # a year boundary and a weekend start
    assert calendar.calendar_dates("weekdays", "2018-12-29", "2019-01-02") == [
        pd.Timestamp("2018-12-31"), pd.Timestamp("2019-01-01"), pd.Timestamp("2019-01-02")]
    assert calendar.previous_weekdays(pd.Timestamp("2019-01-01"), 2) == [pd.Timestamp("2018-12-28"),
                                                                         pd.Timestamp("2018-12-31")]
