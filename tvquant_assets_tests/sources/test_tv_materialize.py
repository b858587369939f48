"""Full materializations of the shipped live manifests against the fake TradingView (no network)."""

import numpy as np
import pytest
from dagster import DagsterInstance

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import load_manifest
from tvquant_assets.runner import materialize_range
from tvquant_assets.stages import STAGES
from tvquant_assets_tests.sources.tv_fixtures import shipped_manifest

SMALL = {  # short windows so a few weeks of history suffice
    "universe": {"min_history_days": 40},
    "selection": {"momentum_lookback": 40, "momentum_skip": 0, "correlation_lookback": 30, "max_symbols": 5},
    "regime": {"short_window": 10, "long_window": 30, "growth_window": 20},
    "estimation": {"lookback": 30},
    # three or four symbols: a 0.35 cap is infeasible on dates when fewer than three are eligible
    "tournament": {"constraints": {"max_weight": 1.0}},
}


def materialize(name, fake, tmp, start, end, today, monkeypatch, **over):
    monkeypatch.setenv("TVQUANT_TODAY", today)
    monkeypatch.setenv("TVQUANT_LAKE", str(tmp / "lake"))
    path = shipped_manifest(name, fake, tmp, start=start, backtest={"start": start, **over.pop("backtest", {})},
                            **{"source.history_start": "2024-01-01"}, **SMALL, **over)
    report = materialize_range(path, start, end, lake_root=str(tmp / "lake"),
                               instance=DagsterInstance.ephemeral())
    m = load_manifest(path)
    return m, Lake(str(tmp / "lake")), report


def test_us_equities_materializes_every_stage_from_the_fake_server(fake_tv, recorded_bars, tmp_path, monkeypatch):
    m, lake, report = materialize("us_equities", fake_tv, tmp_path, "2024-06-17", "2024-06-28", "2024-06-30",
                                  monkeypatch)
    dates = manifest_dates(m, "2024-06-17", "2024-06-28")
    for stage in STAGES:
        assert all(lake.exists(m.name, stage.value, d) for d in dates), stage
    assert report.partitions == len(dates) == 10
    cat = lake.read(m.name, "catalog", "2024-06-28")
    assert list(cat["symbol"]) == ["NASDAQ:AAPL", "NASDAQ:MSFT", "NYSE:JPM"]
    prices = lake.read(m.name, "prices", "2024-06-20")
    truth = recorded_bars["NASDAQ:MSFT"][0].set_index("date").loc["2024-06-20"]
    row = prices.set_index("symbol").loc["NASDAQ:MSFT"]
    np.testing.assert_allclose(row[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float),
                               truth[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float))
    assert lake.read(m.name, "prices", "2024-06-19").empty  # Juneteenth: NYSE closed, no bars
    scan = lake.read(m.name, "scan", "2024-06-28")
    assert {"tv_Recommend.All", "tv_ADX", "tv_Value.Traded", "toxic", "direction"} <= set(scan.columns)
    # the us_equities preset's ADX >= 20 rule is applied to the value reconstructed for that date
    low_adx = scan[(scan["tv_ADX"] < 20) & (scan["reason"].str.startswith("long rule ADX"))]
    assert (scan.loc[scan["tv_ADX"] < 20, "eligible"] == False).all()  # noqa: E712
    assert len(low_adx) == int((scan["tv_ADX"] < 20).sum())
    assert len(lake.read(m.name, "audit", "2024-06-28")) == 1


def test_binance_spot_materializes_with_live_fields_beside_reconstructed(fake_tv, tmp_path, monkeypatch):
    m, lake, _ = materialize("binance_spot", fake_tv, tmp_path, "2024-06-20", "2024-06-29", "2024-06-29",
                             monkeypatch, backtest={"drift": {"instrument": "alternative", "threshold": 0.001}})
    dates = manifest_dates(m, "2024-06-20", "2024-06-29")
    assert len(dates) == 10
    for stage in STAGES:
        assert all(lake.exists(m.name, stage.value, d) for d in dates), stage
    cat = lake.read(m.name, "catalog", "2024-06-29")
    # one venue per base asset (BTC via USDT, not USDC), USD-stable quotes only, value traded >= $1M, long trend
    assert list(cat["symbol"]) == ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:LINKFDUSD", "BINANCE:SOLUSDT"]
    # the screener snapshot was taken on 2024-06-29: live values stored beside the reconstructed ones
    live = lake.read(m.name, "scan", "2024-06-29").set_index("symbol")
    assert live.loc["BINANCE:ETHUSDT", "live_Recommend.All"] == 0.2
    assert live.loc["BINANCE:ETHUSDT", "diff_Recommend.All"] == pytest.approx(
        0.2 - live.loc["BINANCE:ETHUSDT", "tv_Recommend.All"])
    assert "live_Recommend.All" not in lake.read(m.name, "scan", "2024-06-28").columns
    # the +600% day of SOL (2024-03-01) marks it toxic with its reason; its bars are still in the lake
    assert live.loc["BINANCE:SOLUSDT", "toxic"].startswith("daily return +600%")
    assert not live.loc["BINANCE:SOLUSDT", "eligible"] and live.loc["BINANCE:SOLUSDT", "reason"].startswith("toxic")
    assert lake.read(m.name, "prices", "2024-06-29").empty  # today: its bar is still forming
    assert "BINANCE:SOLUSDT" in set(lake.read(m.name, "prices", "2024-06-28")["symbol"])
    # implementation alternatives recorded for the spot universe
    from tvquant_assets.stages.context import RunContext

    alts = RunContext(m, lake).source.alternatives().set_index("ticker")["alt_ticker"].to_dict()
    assert alts == {"BINANCE:BTCUSDT": "BINANCE:BTCUSDT.P", "BINANCE:ETHUSDT": "BINANCE:ETHUSDT.P",
                    "BINANCE:SOLUSDT": "BINANCE:SOLUSDT.P"}
    # ... they reach each date's catalog (LINKFDUSD has no perpetual: empty, not "nan") and, with
    # backtest.drift.instrument: alternative, every drift order names the perpetual of D's catalog
    traded = []
    for d in dates:
        alt = lake.read(m.name, "catalog", d).set_index("symbol")["alt_ticker"].to_dict()
        assert alt == {**alts, "BINANCE:LINKFDUSD": ""}, d
        orders = lake.read(m.name, "drift", d)
        assert list(orders["instrument"]) == [alt[s] or s for s in orders["symbol"]], d
        traded += [(r.symbol, r.instrument) for r in orders.itertuples() if r.side != "none" and r.quantity > 0]
    assert traded and set(traded) == {("BINANCE:BTCUSDT", "BINANCE:BTCUSDT.P")}
