"""Daily bars are filed under their session's trading date, and a session that has not closed is never stored.

Stamps as the real service sends them (TradingView-API ``src/chart/session.js`` reads ``p.v[0]`` as the bar
time; captures in its issues and in tvdatafeed's show daily FX and metal bars at 21:00/22:00 UTC of the
evening before, US stocks at 13:30/14:30 UTC, crypto at 00:00 UTC, CME futures at 17:00 Chicago the
evening before): the fake server sends exactly these.
"""

import pandas as pd
import pytest

from tvquant_assets.sources.tradingview import TradingViewSource
from tvquant_assets_tests.sources.tv_fake_server import _stamps


def source(fake, calendar, **over):
    params = {"scans": [{"preset": "forex_majors", "direction": "long"}], "history_start": "2024-05-01",
              "exchange_calendar": calendar, "bars_per_request": 100, "max_attempts": 2, "backoff_s": 0.0,
              "timeout_s": 5.0, "scanner_url": fake.scanner_url, "websocket_url": fake.websocket_url,
              "auth_url": fake.auth_url, **over}
    return TradingViewSource(**params)


def at(fake, monkeypatch, when: str):
    monkeypatch.setenv("TVQUANT_NOW", when)
    fake.now = pd.Timestamp(when, tz="UTC")


def truth(recorded_bars, ticker, dates):
    t = recorded_bars[ticker][0].set_index("date")
    return t.loc[pd.DatetimeIndex(dates), ["open", "high", "low", "close", "volume"]].reset_index(drop=True)


def test_overnight_sessions_belong_to_the_next_trading_date(fake_tv, tv_env, monkeypatch, recorded_bars):
    # XAUUSD's Monday 2024-06-24 bar is stamped Sunday 17:00 New York = 21:00 UTC
    (stamp,) = _stamps(pd.Series([pd.Timestamp("2024-06-24")]), "America/New_York", "fx")
    assert pd.Timestamp(stamp, unit="s", tz="UTC") == pd.Timestamp("2024-06-23 21:00", tz="UTC")
    at(fake_tv, monkeypatch, "2024-06-30 23:00")  # Sunday evening: Monday's session is open (forming)
    src = source(fake_tv, "24/5")
    for ticker in ("OANDA:XAUUSD", "FX:EURUSD"):
        bars = src.history([ticker], pd.Timestamp("2024-06-03"), pd.Timestamp("2024-07-05"))
        assert bars["date"].dt.day_of_week.max() <= 4  # no Sunday rows
        assert bars["date"].max() == pd.Timestamp("2024-06-28")  # Monday 07-01 is still open: not stored
        got = bars[["open", "high", "low", "close", "volume"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, truth(recorded_bars, ticker, bars["date"]))  # no shift by a session
    at(fake_tv, monkeypatch, "2024-07-01 21:30")  # Monday's session closed at 17:00 New York
    src = source(fake_tv, "24/5")
    bars = src.history(["OANDA:XAUUSD"], pd.Timestamp("2024-06-03"), pd.Timestamp("2024-07-05"))
    assert bars["date"].max() == pd.Timestamp("2024-07-01")
    assert bars["close"].iloc[-1] == pytest.approx(truth(recorded_bars, "OANDA:XAUUSD", ["2024-07-01"])["close"][0])


def test_us_stock_crypto_and_cme_futures_dates_and_the_open_session(fake_tv, tv_env, monkeypatch, recorded_bars):
    at(fake_tv, monkeypatch, "2024-06-28 19:00")  # NYSE open until 20:00 UTC; crypto's 06-28 open until 24:00
    stock = source(fake_tv, "XNYS").history(["NASDAQ:AAPL"], pd.Timestamp("2024-06-03"), pd.Timestamp("2024-06-28"))
    assert stock["date"].max() == pd.Timestamp("2024-06-27") and pd.Timestamp("2024-06-19") not in set(stock["date"])
    pd.testing.assert_frame_equal(stock[["open", "high", "low", "close", "volume"]].reset_index(drop=True),
                                  truth(recorded_bars, "NASDAQ:AAPL", stock["date"]))
    crypto = source(fake_tv, "24/7").history(["BINANCE:ETHUSDT"], pd.Timestamp("2024-06-03"),
                                             pd.Timestamp("2024-06-28"))
    assert crypto["date"].max() == pd.Timestamp("2024-06-27") and len(crypto) == 25
    fut = source(fake_tv, "CMES").history(["COMEX:GC1!"], pd.Timestamp("2024-06-03"), pd.Timestamp("2024-06-28"))
    from tvquant_assets.sources.tradingview.calendars import sessions

    assert list(fut["date"]) == list(sessions("CMES", "2024-06-03", "2024-06-27"))  # evening stamps -> sessions
    pd.testing.assert_frame_equal(fut[["open", "high", "low", "close", "volume"]].reset_index(drop=True),
                                  truth(recorded_bars, "COMEX:GC1!", fut["date"]))


def test_point_in_time_what_d_sees_does_not_change_when_the_next_session_opens(fake_tv, tmp_path, monkeypatch):
    """D = Friday 2024-06-28: the bars <= D read after Friday's close and after Monday's session opened
    (Sunday 21:00 UTC, its forming bar streaming) are identical."""
    seen = {}
    for i, when in enumerate(("2024-06-28 22:00", "2024-06-30 23:30")):
        monkeypatch.setenv("TVQUANT_LAKE", str(tmp_path / f"lake{i}"))
        at(fake_tv, monkeypatch, when)
        src = source(fake_tv, "24/5")
        seen[when] = src.history(["OANDA:XAUUSD", "FX:EURUSD"], pd.Timestamp("2024-06-03"), pd.Timestamp("2024-06-28"))
    a, b = seen.values()
    pd.testing.assert_frame_equal(a, b)
    assert a["date"].max() == pd.Timestamp("2024-06-28")


def test_partitions_end_is_the_newest_closed_session(fake_tv, tv_env):
    import datetime as dt

    utc = dt.UTC
    assert source(fake_tv, "24/7").partitions_end(dt.datetime(2024, 7, 2, 4, 30, tzinfo=utc)) == dt.date(2024, 7, 1)
    nyse = source(fake_tv, "XNYS")
    assert nyse.partitions_end(dt.datetime(2024, 7, 2, 19, 30, tzinfo=utc)) == dt.date(2024, 7, 1)
    assert nyse.partitions_end(dt.datetime(2024, 7, 2, 21, 30, tzinfo=utc)) == dt.date(2024, 7, 2)
    assert nyse.partitions_end(dt.datetime(2024, 7, 6, 12, 0, tzinfo=utc)) == dt.date(2024, 7, 5)  # 07-04 closed
    fx = source(fake_tv, "24/5")
    assert fx.partitions_end(dt.datetime(2024, 6, 30, 23, 0, tzinfo=utc)) == dt.date(2024, 6, 28)
