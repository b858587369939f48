"""Fixtures of the TradingView tests: a fake TradingView on 127.0.0.1 (stopped in the finalizer)."""

from __future__ import annotations

import pandas as pd
import pytest
from tv_fake_server import FakeTradingView, bar_table, load_recording

TODAY = "2024-06-30"  # a Sunday: crypto has a forming bar today, NYSE's last session was Friday


def fake_bars() -> dict[str, tuple[pd.DataFrame, str]]:
    from tvquant_assets.sources.tradingview.calendars import sessions

    bars = {}
    crypto_days = pd.date_range("2023-01-01", TODAY, freq="D")
    for i, ticker in enumerate(r["s"] for r in load_recording("crypto")[1]):
        frame = bar_table(crypto_days, seed=100 + i, start_price=50.0 + 10 * i)
        if ticker == "BINANCE:SOLUSDT":  # a +600% day: toxic, must be flagged, not deleted
            jump = frame["date"] >= "2024-03-01"
            frame.loc[jump, ["open", "high", "low", "close"]] *= 7.0
        if ticker == "BINANCE:XRPUSDT":  # six identical closes in a row: frozen price
            frozen = (frame["date"] >= "2024-04-10") & (frame["date"] <= "2024-04-15")
            frame.loc[frozen, ["open", "high", "low", "close"]] = frame.loc[frame["date"] == "2024-04-09",
                                                                            "close"].iloc[0]
        bars[ticker] = (frame, "Etc/UTC")
    nyse = sessions("XNYS", "2022-06-01", TODAY)
    for i, row in enumerate(load_recording("america")[1]):
        bars[row["s"]] = (bar_table(nyse, seed=200 + i, start_price=100.0 + 20 * i, vol=0.015), "America/New_York")
    return bars


@pytest.fixture(scope="session")
def recorded_bars():
    return fake_bars()


@pytest.fixture
def fake_tv(recorded_bars):
    server = FakeTradingView(recorded_bars).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tv_env(tmp_path, monkeypatch):
    """A temp lake and a fixed 'today' for the source."""
    monkeypatch.setenv("TVQUANT_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("TVQUANT_TODAY", TODAY)
    return tmp_path
