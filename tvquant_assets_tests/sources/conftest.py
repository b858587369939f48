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


def shipped_manifest(name: str, fake, directory=None, **override):
    """A shipped manifest pointed at the fake server (``override``: top-level or ``source.*`` keys);
    written to ``directory`` when given (returns the path), else returned as a Manifest."""
    from pathlib import Path

    import yaml

    from tvquant_assets.manifest import load_manifest
    from tvquant_assets.manifest.schema import Manifest

    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "manifests" / f"{name}.yaml").read_text())
    raw["source"].update(scanner_url=fake.scanner_url, websocket_url=fake.websocket_url, backoff_s=0.0,
                         timeout_s=5.0)
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
