"""Helpers of the TradingView tests: the fixed "today", the fake server's bars, shipped manifests pointed at it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from tvquant_assets.manifest import load_manifest
from tvquant_assets.manifest.schema import Manifest
from tvquant_assets.sources.tradingview.calendars import sessions
from tvquant_assets_tests.sources.tv_fake_server import bar_table, load_recording

TODAY = "2024-06-30"  # a Sunday: crypto has a forming bar today, NYSE's last session was Friday


def fake_bars() -> dict[str, tuple[pd.DataFrame, str]]:
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
    fx_days = sessions("24/5", "2023-01-01", "2024-07-31")  # sessions open the evening before (17:00 NY)
    for market, seed in (("forex", 300), ("cfd", 400)):
        for i, row in enumerate(load_recording(market)[1]):
            price = float(row["d"][8])
            bars[row["s"]] = (bar_table(fx_days, seed=seed + i, start_price=price, vol=0.006), "America/New_York",
                              "fx")
    cme = sessions("CMES", "2023-01-01", "2024-07-31")
    for i, row in enumerate(load_recording("futures")[1]):
        bars[row["s"]] = (bar_table(cme, seed=500 + i, start_price=float(row["d"][8]), vol=0.01), "America/Chicago",
                          "cme")
    return bars


def shipped_manifest(name: str, fake, directory=None, **override):
    """A shipped manifest pointed at the fake server (``override``: top-level or ``source.*`` keys);
    written to ``directory`` when given (returns the path), else returned as a Manifest."""
    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "manifests" / f"{name}.yaml").read_text())
    raw["source"].update(scanner_url=fake.scanner_url, websocket_url=fake.websocket_url, auth_url=fake.auth_url,
                         backoff_s=0.0, timeout_s=5.0)
    for key, value in override.items():
        if key.startswith("source."):
            raw["source"][key.split(".", 1)[1]] = value
        elif isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key].update(value)
        else:
            raw[key] = value
    if directory is None:
        return Manifest.model_validate(raw)
    path = Path(directory) / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    load_manifest(path)
    return path
