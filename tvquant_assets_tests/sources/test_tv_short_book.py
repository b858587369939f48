"""The short side against the fake TradingView: ``binance_ratings_short`` (Rating All strong sells, a scan
with ``direction: short``) must hold the strong sells SHORT. The fake server's screener and websocket
traffic is shaped like the public captures listed in ``tv_fake_server.py`` (scanner.tradingview.com
``/crypto/scan`` responses, data.tradingview.com ``timescale_update`` series)."""

import numpy as np
from dagster import DagsterInstance

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import load_manifest
from tvquant_assets.runner import materialize_range
from tvquant_assets_tests.sources.test_tv_materialize import SMALL
from tvquant_assets_tests.sources.tv_fixtures import shipped_manifest


def test_ratings_short_holds_the_strong_sells_short(fake_tv, tmp_path, monkeypatch):
    start, end = "2024-06-24", "2024-06-29"
    monkeypatch.setenv("TVQUANT_TODAY", "2024-06-30")
    monkeypatch.setenv("TVQUANT_LAKE", str(tmp_path / "lake"))
    # daily decisions: the fake's reconstructed Recommend.All of ADA reaches the strong-sell -0.5 on 06-28 only
    over = {**SMALL, "tournament": {"book": "short", "constraints": {"max_weight": 1.0}},
            "rebalance": {"rule": "every_k_days", "every_k_days": 1}}
    path = shipped_manifest("binance_ratings_short", fake_tv, tmp_path, start=start, backtest={
        "start": start, "borrow_bps_per_year": 800}, **{"source.history_start": "2024-01-01"}, **over)
    report = materialize_range(path, start, end, lake_root=str(tmp_path / "lake"),
                               instance=DagsterInstance.ephemeral())
    m, lake = load_manifest(path), Lake(str(tmp_path / "lake"))
    assert m.book == "short"
    dates = manifest_dates(m, start, end)
    assert report.partitions == len(dates)
    d = "2024-06-28"
    scan = lake.read(m.name, "scan", d).set_index("symbol")
    assert scan.loc["BINANCE:ADAUSDT", "direction"] == "short" and scan.loc["BINANCE:ADAUSDT", "eligible"]
    sel = lake.read(m.name, "selection", d)
    picked = sel[sel["selected"]]
    assert list(picked["symbol"]) == ["BINANCE:ADAUSDT"] and (picked["direction"] == "short").all()
    t = lake.read(m.name, "tournament", d)
    held = t[t["symbol"] != ""]
    assert sorted(held["candidate"].unique()) == sorted(c.name for c in m.tournament.candidates)
    # the bug: every candidate held the strong sell at +1.0; short-only: -1.0
    np.testing.assert_allclose(held["weight"].to_numpy(), -1.0)
    bt = lake.read(m.name, "backtest", end)
    assert set(bt["candidate"]) == set(held["candidate"]) and np.isfinite(bt["equity"]).all()
    # one day short at 800 bps/year (daily calendar: 365 periods) is borrowed on 06-29
    np.testing.assert_allclose(bt["borrow"].to_numpy(), 0.08 / 365, rtol=0.05)
    verified = Ledger(lake.ledger_path(m.name)).verify()
    assert verified.ok and verified.n_entries == len(dates)


def test_selling_rips_presets_per_asset_class_are_shipped_and_valid():
    from pathlib import Path

    from tvquant_assets.sources.tradingview.presets import build_payload, check_presets, resolve_preset, scan_filters

    rsi = {"us_equities_selling_rips": 65, "forex_selling_rips": 65, "crypto_selling_rips": 75}
    check_presets({}, list(rsi))
    for name, level in rsi.items():
        p = resolve_preset(name)
        short = {(r["left"], r["operation"], str(r["right"])) for r in scan_filters(p, "short")}
        assert {("RSI", "egreater", str(level)), ("close", "less", "SMA200"), ("SMA50", "less", "SMA200")} <= short
        assert not any(r["left"] == "RSI" for r in scan_filters(p, "long")), name  # short-side rules only
        payload = build_payload(p, "short", 0, 50)
        assert {"left": "RSI", "operation": "egreater", "right": level} in payload["filter"]
        m = load_manifest(Path(__file__).resolve().parents[2] / "manifests" / f"{name}.yaml")
        assert m.book == "short" and m.source.scans[0].direction == "short"
    liquid = {n: next(r["right"] for r in scan_filters(resolve_preset(n), "short") if r["left"] == "Value.Traded")
              for n in ("us_equities_selling_rips", "crypto_selling_rips")}
    assert liquid == {"us_equities_selling_rips": 20_000_000, "crypto_selling_rips": 5_000_000}
