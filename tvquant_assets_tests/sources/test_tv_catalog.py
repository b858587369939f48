"""Point-in-time catalog (SCD-2, as_of), exchange calendars and the metadata-parity check."""

import pandas as pd
from dagster import AssetCheckSeverity

from tvquant_assets.defs.resources import LakeResource
from tvquant_assets.defs.tradingview_checks import build_tradingview_checks
from tvquant_assets.lake import Lake
from tvquant_assets.sources.tradingview import calendars
from tvquant_assets.sources.tradingview.catalog import ATTRIBUTES, as_of, scd2_update
from tvquant_assets.stages.context import RunContext
from tvquant_assets_tests.sources.tv_fixtures import TODAY, shipped_manifest


def snap(rows):
    base = dict.fromkeys(ATTRIBUTES, "")
    return pd.DataFrame([{**base, "tick_size": 0.01, **r} for r in rows])


def test_scd2_versions_and_as_of():
    d1, d2, d3 = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01"), pd.Timestamp("2024-03-01")
    h = scd2_update(None, snap([{"symbol": "A", "exchange": "NYSE"}, {"symbol": "B", "exchange": "NYSE"}]), d1)
    h = scd2_update(h, snap([{"symbol": "A", "exchange": "NASDAQ"}, {"symbol": "B", "exchange": "NYSE"}]), d2)
    h = scd2_update(h, snap([{"symbol": "A", "exchange": "NASDAQ"}, {"symbol": "C", "exchange": "NYSE",
                                                                     "tick_size": 0.05}]), d3)
    a = h[h["symbol"] == "A"]
    assert a[["exchange", "valid_from", "valid_until"]].values.tolist() == [
        ["NYSE", d1, pd.Timestamp("2024-01-31")], ["NASDAQ", d2, pd.NaT]]
    assert h.loc[h["symbol"] == "B", "valid_until"].tolist() == [pd.Timestamp("2024-02-29")]  # gone on d3
    assert dict(zip(*as_of(h, "2024-01-31")[["symbol", "exchange"]].T.values, strict=True)) == {
        "A": "NYSE", "B": "NYSE"}
    assert dict(zip(*as_of(h, "2024-02-01")[["symbol", "exchange"]].T.values, strict=True)) == {
        "A": "NASDAQ", "B": "NYSE"}
    assert list(as_of(h, "2024-03-15")["symbol"]) == ["A", "C"]
    assert as_of(h, "2023-12-31").empty
    # re-applying an unchanged snapshot adds no version
    assert len(scd2_update(h, snap([{"symbol": "A", "exchange": "NASDAQ"},
                                    {"symbol": "C", "exchange": "NYSE", "tick_size": 0.05}]), "2024-04-01")) == len(h)


def test_exchange_calendars():
    nyse = calendars.sessions("XNYS", "2024-06-28", "2024-07-08")
    assert pd.Timestamp("2024-07-04") not in nyse and pd.Timestamp("2024-07-05") in nyse  # Independence Day
    assert len(calendars.sessions("24/7", "2024-06-28", "2024-07-08")) == 11
    assert calendars.last_session("XNYS", "2024-06-30") == pd.Timestamp("2024-06-28")
    assert calendars.missing_sessions("24/5", "2024-06-28", "2024-07-08") == 6


def test_catalog_snapshots_become_scd2_versions_and_parity_reports_planted_mismatches(fake_tv, tv_env, monkeypatch):
    m = shipped_manifest("us_equities", fake_tv, **{"source.parity": {"severity": "error"}})
    lake = Lake(str(tv_env / "lake"))
    src = RunContext(m, lake).source
    cat = src.catalog()
    # S&P members only, value traded >= $10M, ADX >= 20, above SMA200 (long): XOM, KO, TINY, NOTSP out
    assert list(cat["symbol"]) == ["NASDAQ:AAPL", "NASDAQ:MSFT", "NYSE:JPM"]
    assert cat.set_index("symbol").loc["NASDAQ:AAPL", "sector"] == "Electronic Technology"
    check = build_tradingview_checks(m)[0]
    ok = check(lake=LakeResource(root=str(tv_env / "lake")))
    assert ok.passed and ok.metadata["mismatches"].value == 0
    # the next day TradingView reports a new sector for AAPL and a finer tick for MSFT
    monkeypatch.setenv("TVQUANT_TODAY", "2024-07-01")
    rows = {r["ticker"]: r for r in fake_tv.tables["america"]}
    rows["NASDAQ:AAPL"]["sector"] = "Technology Services"
    rows["NASDAQ:MSFT"]["pricescale"] = 10000
    result = check(lake=LakeResource(root=str(tv_env / "lake")))
    assert not result.passed and result.severity == AssetCheckSeverity.ERROR
    assert result.metadata["fields"].value == "sector, tick_size"
    assert result.metadata["symbols"].value == "NASDAQ:AAPL, NASDAQ:MSFT"
    report = RunContext(m, lake).source.live_parity()
    assert report.values.tolist() == [["NASDAQ:AAPL", "sector", "Electronic Technology", "Technology Services"],
                                      ["NASDAQ:MSFT", "tick_size", "0.01", "0.0001"]]
    # taking today's snapshot versions the catalog: as_of before and after the change
    src2 = RunContext(m, lake).source
    src2.snapshot()
    hist = src2.catalog_history()
    aapl = hist[hist["symbol"] == "NASDAQ:AAPL"]
    assert aapl[["sector", "valid_from", "valid_until"]].values.tolist() == [
        ["Electronic Technology", pd.Timestamp(TODAY), pd.Timestamp(TODAY)],
        ["Technology Services", pd.Timestamp("2024-07-01"), pd.NaT]]
    assert src2.as_of(TODAY).set_index("symbol").loc["NASDAQ:AAPL", "sector"] == "Electronic Technology"
    assert src2.as_of("2024-07-01").set_index("symbol").loc["NASDAQ:AAPL", "sector"] == "Technology Services"
    assert src2.snapshot_dates() == [pd.Timestamp(TODAY), pd.Timestamp("2024-07-01")]


def test_catalog_stage_reads_attributes_as_of_each_date(fake_tv, tv_env, monkeypatch):
    from tvquant_assets.stages import Stage
    from tvquant_assets.stages.plan import run_stage

    m = shipped_manifest("us_equities", fake_tv, **{"source.history_start": "2024-01-02"})
    lake = Lake(str(tv_env / "lake"))
    RunContext(m, lake).source.snapshot()  # 2024-06-30: AAPL in Electronic Technology
    monkeypatch.setenv("TVQUANT_TODAY", "2024-07-02")
    next(r for r in fake_tv.tables["america"] if r["ticker"] == "NASDAQ:AAPL")["sector"] = "Technology Services"
    pipe = RunContext(m, lake)
    pipe.source.snapshot()  # 2024-07-02: the new sector
    dates = [pd.Timestamp("2024-06-03"), pd.Timestamp("2024-07-01"), pd.Timestamp("2024-07-02")]
    frames = run_stage(pipe, Stage.CATALOG, dates).frames
    sector = {d: f.set_index("symbol").loc["NASDAQ:AAPL", ["sector", "attributes_as_of"]].tolist()
              for d, f in frames.items()}
    assert sector == {  # before the first snapshot the earliest version stands in, and says so
        dates[0]: ["Electronic Technology", pd.Timestamp(TODAY)],
        dates[1]: ["Electronic Technology", pd.Timestamp(TODAY)],
        dates[2]: ["Technology Services", pd.Timestamp("2024-07-02")]}
    assert frames[dates[2]].set_index("symbol").loc["NASDAQ:MSFT", "sector"] == "Technology Services"
