"""OHLCV over the websocket into the lake: framing, paging, incremental fetches, drops, toxic flags."""

import random

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.errors import SourceError
from tvquant_assets.sources.tradingview import TradingViewSource
from tvquant_assets.sources.tradingview.screener import RetryPolicy
from tvquant_assets.sources.tradingview.websocket import ChartClient, decode, encode, message
from tvquant_assets_tests.sources.tv_fixtures import TODAY


def source(fake, **over):
    params = {"scans": [{"preset": "binance_spot", "direction": "long"}], "quote_priority": ["USDT", "USDC"],
              "alternatives": "binance_perp", "history_start": "2024-01-01", "bars_per_request": 50,
              "max_attempts": 3, "backoff_s": 0.0, "timeout_s": 5.0, "scanner_url": fake.scanner_url,
              "websocket_url": fake.websocket_url, **over}
    return TradingViewSource(**params)


def test_framing_round_trip_and_garbled_frames():
    raw = message("create_series", "cs", "sds_1", "s1", "sds_sym_1", "1D", 300, "") + encode("~h~7")
    parts = decode(raw)
    assert parts[1] == "~h~7" and parts[0].startswith('{"m":"create_series"')
    assert raw.startswith(f"~m~{len(parts[0])}~m~")
    with pytest.raises(ValueError, match="truncated"):
        decode("~m~10~m~abc")


def test_history_pages_back_to_start_and_echoes_heartbeats(fake_tv, recorded_bars):
    policy = RetryPolicy(max_attempts=2, backoff_s=0.0)
    chart = ChartClient(fake_tv.websocket_url, policy, timeout_s=5, bars_per_request=100)
    bars, info = chart.history("NASDAQ:AAPL", pd.Timestamp("2023-06-01"))
    expected = recorded_bars["NASDAQ:AAPL"][0]
    expected = expected[expected["date"] >= "2023-06-01"].reset_index(drop=True)
    # session-open timestamps in New York map back to the session date, values unchanged
    pd.testing.assert_frame_equal(bars, expected, check_dtype=False)
    assert info["timezone"] == "America/New_York"
    methods = [m["m"] for m in fake_tv.ws_messages]
    assert methods[:4] == ["set_auth_token", "chart_create_session", "resolve_symbol", "create_series"]
    assert methods.count("request_more_data") == int(np.ceil(len(expected) / 100)) - 1
    assert fake_tv.heartbeats_echoed >= 1


def test_unknown_symbol_is_a_clear_error(fake_tv):
    chart = ChartClient(fake_tv.websocket_url, RetryPolicy(max_attempts=3, backoff_s=0.0), timeout_s=5)
    with pytest.raises(SourceError, match="NASDAQ:NOPE: symbol_error: invalid symbol; check the symbol"):
        chart.history("NASDAQ:NOPE", pd.Timestamp("2024-01-01"))


def test_drop_mid_history_retries_then_succeeds_else_clear_error_and_nothing_in_lake(fake_tv, tv_env):
    fake_tv.ws_drops["BINANCE:ETHUSDT"] = 2
    src = source(fake_tv)
    bars = src.history(["BINANCE:ETHUSDT"], pd.Timestamp("2024-01-01"), pd.Timestamp("2024-06-30"))
    assert bars["date"].min() == pd.Timestamp("2024-01-01") and bars["date"].max() == pd.Timestamp("2024-06-29")
    assert fake_tv.ws_drops["BINANCE:ETHUSDT"] == 0  # both drops happened, the third attempt completed
    fake_tv.ws_drops["BINANCE:SOLUSDT"] = 10
    src.history(["BINANCE:SOLUSDT", "BINANCE:ETHUSDT"], pd.Timestamp("2024-01-01"), pd.Timestamp("2024-06-30"))
    assert "BINANCE:SOLUSDT" in src.failures and "gave up after 3 attempts" in src.failures["BINANCE:SOLUSDT"]
    assert "connection closed mid-history" in src.failures["BINANCE:SOLUSDT"]
    assert src.stored_bars("BINANCE:SOLUSDT") is None  # nothing partial written
    files = sorted(p.name for p in (tv_env / "lake" / "_sources" / "tradingview" / "ohlcv").iterdir())
    assert files == ["BINANCE-3aETHUSDT.json", "BINANCE-3aETHUSDT.parquet"]
    with pytest.raises(SourceError, match="no history for any symbol"):
        src.history(["BINANCE:SOLUSDT"], pd.Timestamp("2024-01-01"), pd.Timestamp("2024-06-30"))


def test_incremental_fetch_asks_only_for_missing_bars_and_drops_the_forming_bar(fake_tv, tv_env, monkeypatch,
                                                                               recorded_bars):
    monkeypatch.setenv("TVQUANT_TODAY", "2024-06-20")
    src = source(fake_tv)
    first = src.history(["BINANCE:BTCUSDT"], pd.Timestamp("2024-01-01"), pd.Timestamp("2024-06-30"))
    assert first["date"].max() == pd.Timestamp("2024-06-19")  # 06-20 is still forming
    requests_before = len([m for m in fake_tv.ws_messages if m["m"] in ("create_series", "request_more_data")])
    assert requests_before == 4  # 171 bars back to Jan 1 in pages of 50
    seen = len(fake_tv.ws_messages)
    again = src.history(["BINANCE:BTCUSDT"], pd.Timestamp("2024-02-01"), pd.Timestamp("2024-06-19"))
    assert len(fake_tv.ws_messages) == seen  # covered: no connection at all
    assert again["date"].min() == pd.Timestamp("2024-02-01")
    monkeypatch.setenv(TODAY_ENV := "TVQUANT_TODAY", TODAY)
    src2 = source(fake_tv)
    fake_tv.ws_messages.clear()
    later = src2.history(["BINANCE:BTCUSDT"], pd.Timestamp("2024-01-01"), pd.Timestamp("2024-06-30"))
    series = [m for m in fake_tv.ws_messages if m["m"] == "create_series"]
    assert len(series) == 1 and series[0]["p"][5] == 13  # sessions 06-20..06-30 (today forming) + 2 overlap
    assert not any(m["m"] == "request_more_data" for m in fake_tv.ws_messages)
    truth = recorded_bars["BINANCE:BTCUSDT"][0].set_index("date")
    got = later.set_index("date")
    assert got.index.max() == pd.Timestamp("2024-06-29") and got.index.is_unique and len(got) == 181
    np.testing.assert_allclose(got["close"], truth.loc[got.index, "close"])
    assert TODAY_ENV == "TVQUANT_TODAY"


def test_toxic_bars_mark_the_symbol_with_a_reason_and_keep_the_data(fake_tv, tv_env):
    src = source(fake_tv)
    syms = ["BINANCE:SOLUSDT", "BINANCE:XRPUSDT", "BINANCE:ETHUSDT"]
    bars = src.history(syms, pd.Timestamp("2024-01-01"), pd.Timestamp("2024-06-29"))
    flags = src.toxic_flags(syms)
    sol = flags[flags["symbol"] == "BINANCE:SOLUSDT"]
    assert sol[["date", "flag"]].values.tolist() == [[pd.Timestamp("2024-03-01"), "return"]]
    assert "> 500%" in sol["detail"].iloc[0]
    xrp = flags[flags["symbol"] == "BINANCE:XRPUSDT"]
    # 04-09..04-13: the 5th equal close
    assert xrp[["date", "flag"]].values.tolist() == [[pd.Timestamp("2024-04-13"), "frozen"]]
    assert "BINANCE:ETHUSDT" not in set(flags["symbol"])
    # the data is still there, jump included
    sol_bars = bars[bars["symbol"] == "BINANCE:SOLUSDT"].set_index("date")["close"]
    assert sol_bars.loc["2024-03-01"] / sol_bars.loc["2024-02-29"] > 6


def test_volume_spike_flag():
    from tvquant_assets.sources.tradingview.quality import reason_as_of, toxic_flags

    dates = pd.date_range("2024-01-01", periods=40, freq="D")
    rng = random.Random(3)
    b = pd.DataFrame({"date": dates, "close": [100 + rng.random() for _ in dates],
                      "volume": [1000.0 + rng.random() * 100 for _ in dates]})
    b.loc[30, "volume"] = 1000.0 * 60
    f = toxic_flags("X", b, 5.0, 5, 50.0, 20)
    assert f[["date", "flag"]].values.tolist() == [[dates[30], "volume_spike"]]
    assert reason_as_of(f, ["X"], dates[29]).tolist() == [""]  # point in time: not flagged before it happens
    assert reason_as_of(f, ["X"], dates[35]).iloc[0].startswith("volume 6e+04 > 50 x median")


def test_time_budget_bounds_a_history_fetch(fake_tv):
    chart = ChartClient(fake_tv.websocket_url, RetryPolicy(max_attempts=3, backoff_s=0.0), timeout_s=5,
                        bars_per_request=10, time_budget_s=0.05)
    with pytest.raises(SourceError, match="NASDAQ:AAPL: time budget of 0.05s spent; raise source.time_budget_s"):
        chart.history("NASDAQ:AAPL", pd.Timestamp("2022-06-01"))  # ~520 bars in pages of 10
    assert sum(m["m"] == "create_series" for m in fake_tv.ws_messages) == 1  # not retried
