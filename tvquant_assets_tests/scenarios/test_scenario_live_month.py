"""Scenario: every shipped live manifest (``manifests/*.yaml`` with ``kind: tradingview``), as shipped, runs one
calendar month of daily partitions through real Dagster against the strict fake TradingView
(``sources/tv_fake_server.py``); only the three endpoints are pointed at the fake.

The fake's traffic per market is ``sources/tv_month.py``: screener rows as scanner.tradingview.com answers
them (the recordings of ``sources/recordings/`` and the listings named there: tradingview-screener's README
and field lists, TradingView-API's and tvdatafeed's ``EXCHANGE:SYMBOL`` forms), chart-websocket bars stamped
as the real service stamps them (TradingView-API ``src/chart/session.js`` captures: the session open in UTC
seconds, 00:00 UTC crypto, 13:30/14:30 UTC US stocks, 22:00/23:00 UTC the evening before for FX and CME).
The month is the first month of each manifest's backtest (March 2024 for the crypto books, January 2021 for
the others: a NYSE and CME holiday on its first day); "now" is the first tick after its last close.

Per manifest: every asset-partition materialized, every blocking check passed, each price partition holds
its trading date's session (the overnight classes dated to the trading date, never the evening's), the
tournament's weights are valid for the traded book (long: >= 0 summing to 1 within the cap; short: <= 0
summing to -1 within the cap), the backtest leaderboard has a ranked row per candidate and simulator, and
the ledger verifies with every date. One fake server and, per manifest, one lake and one Dagster instance
are shared by the tests of this module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from dagster import AssetCheckKey, AssetKey, DagsterInstance
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.defs.checks import CHECKS
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import load_manifest
from tvquant_assets.runner import materialize_range
from tvquant_assets.sources.tradingview.calendars import sessions
from tvquant_assets.stages import ASSETS
from tvquant_assets_tests.sources import tv_month
from tvquant_assets_tests.sources.tv_fake_server import FakeTradingView, _stamps

pytestmark = pytest.mark.scenario
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
LIVE = sorted(p.stem for p in MANIFESTS.glob("*.yaml") if yaml.safe_load(p.read_text())["source"]["kind"] ==
              "tradingview")
TOL = 1e-6


@dataclass
class Month:
    manifest: object
    path: Path
    lake_root: str
    lake: Lake
    instance: DagsterInstance
    report: object
    dates: list[pd.Timestamp]
    seconds: float


def test_every_shipped_live_manifest_has_a_month():
    assert LIVE == sorted(tv_month.MONTHS), "a shipped live manifest without its month in tv_month.MONTHS"


@pytest.fixture(scope="module")
def fake():
    table = tv_month.tables()
    server = FakeTradingView(tv_month.bars(table)).start()
    server.tables = table
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def month(fake, tmp_path_factory):
    """``month(name) -> Month``: the shipped manifest's month materialized (once per module)."""
    cache: dict[str, Month] = {}
    mp = pytest.MonkeyPatch()

    def run(name: str) -> Month:
        if name not in cache:
            start, end, now = tv_month.MONTHS[name]
            tmp = tmp_path_factory.mktemp(name)
            raw = yaml.safe_load((MANIFESTS / f"{name}.yaml").read_text())
            raw["source"].update(scanner_url=fake.scanner_url, websocket_url=fake.websocket_url,
                                 auth_url=fake.auth_url)
            path = tmp / f"{name}.yaml"
            path.write_text(yaml.safe_dump(raw, sort_keys=False))
            mp.setenv("TVQUANT_NOW", now)
            mp.setenv("TVQUANT_LAKE", str(tmp / "lake"))
            fake.now = pd.Timestamp(now)
            instance = DagsterInstance.ephemeral()
            t0 = time.perf_counter()
            report = materialize_range(path, start, end, lake_root=str(tmp / "lake"), instance=instance)
            m = load_manifest(path)
            root = str(tmp / "lake")
            cache[name] = Month(m, path, root, Lake(root), instance, report, manifest_dates(m, start, end),
                                time.perf_counter() - t0)
        return cache[name]

    yield run
    mp.undo()


@pytest.mark.parametrize("name", LIVE)
def test_shipped_live_manifest_runs_a_month_against_the_fake(month, fake, name, monkeypatch):
    r = month(name)
    monkeypatch.setenv("TVQUANT_LAKE", r.lake_root)
    m, lake = r.manifest, r.lake
    start, end, now = tv_month.MONTHS[name]
    assert r.report.failures == [], [f.line() for f in r.report.failures[:5]]
    assert f"{r.dates[-1]:%Y-%m-%d}" == end
    # "now" is the manifest's own daily tick: its schedule targets the month's last partition
    from dagster import build_schedule_context

    from tvquant_assets.definitions import build_definitions

    defs = build_definitions([r.path])
    daily = defs.resolve_schedule_def(f"{m.name}_daily")
    with build_schedule_context(scheduled_execution_time=pd.Timestamp(now).to_pydatetime(),
                                repository_def=defs.get_repository_def()) as ctx:
        reqs = daily.evaluate_tick(ctx).run_requests
    assert [q.partition_key or q.tags["dagster/asset_partition_range_end"] for q in reqs] == [end]
    keys = {f"{d:%Y-%m-%d}" for d in r.dates}
    for stage in ASSETS:
        assert all(lake.exists(m.name, stage, d) for d in r.dates), stage
        assert keys <= r.instance.get_materialized_partitions(AssetKey([m.name, stage])), stage
    # every blocking check ran and passed on every partition
    for check, (stage, blocking, _) in CHECKS.items():
        records = r.instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(AssetKey([m.name, stage.value]), check), limit=500)
        done = [x for x in records if x.status != AssetCheckExecutionRecordStatus.PLANNED]
        assert done, check
        if blocking:
            assert all(x.status == AssetCheckExecutionRecordStatus.SUCCEEDED for x in done), check
            assert all(x.evaluation and x.evaluation.passed for x in done), check
    # each partition holds the bars of its trading date's session
    src = m.source
    open_days = set(sessions(src.exchange_calendar, start, end))
    bars_held = 0
    for d in r.dates:
        prices = lake.read(m.name, "prices", d)
        catalog = lake.read(m.name, "catalog", d)
        active = set(catalog.loc[catalog["active"].astype(bool), "symbol"]) if "active" in catalog else set()
        if d not in open_days:
            assert prices.empty, (d, "no session, no bar")
            continue
        assert set(prices["symbol"]) >= active and len(prices), d
        assert (prices["date"] == d).all(), d
        for sym, row in prices.set_index("symbol").iterrows():
            frame, tz, *kind = fake.bars[sym]
            truth = frame.set_index("date")
            np.testing.assert_allclose(row[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float),
                                       truth.loc[d, ["open", "high", "low", "close", "volume"]].to_numpy(dtype=float),
                                       err_msg=f"{sym} {d:%Y-%m-%d}")
            if kind:  # the overnight classes: served with the previous evening's stamp, stored under D
                stamp = pd.Timestamp(_stamps(pd.Series([d]), tz, kind[0])[0], unit="s", tz="UTC")
                assert stamp.date() < d.date(), (sym, d)
            bars_held += 1
    assert bars_held >= len(open_days) * 2
    # tournament weights valid for the traded book, and the book is held
    cap = m.tournament.constraints.max_weight
    held_dates = 0
    for d in r.dates:
        t = lake.read(m.name, "tournament", d)
        assert set(t["candidate"]) == {c.name for c in m.tournament.candidates}, d
        for cand, g in t[t["symbol"] != ""].groupby("candidate"):
            w = g["weight"].to_numpy(dtype=float)
            assert np.isfinite(w).all() and (np.abs(w) <= cap + TOL).all(), (d, cand, w)
            if m.book == "short":
                assert (w <= TOL).all() and abs(w.sum() + 1) < TOL, (d, cand, w)
            else:
                assert (w >= -TOL).all() and abs(w.sum() - 1) < TOL, (d, cand, w)
        if (t["symbol"] != "").any():
            held_dates += 1
        else:  # an empty book only when its decision date selected nobody on the traded side
            sel = lake.read(m.name, "selection", t["decision_date"].max())
            side = sel[sel["selected"].astype(bool)]
            if m.book != "long_short" and "direction" in side:
                side = side[side["direction"] == m.book]
            assert side.empty, (d, "a selection but no book")
    assert held_dates >= len(r.dates) / 2, f"{held_dates} of {len(r.dates)} dates hold a book"
    # the leaderboard of the month's last date: one ranked row per candidate and simulator, finite equity
    board = lake.read(m.name, "backtest", r.dates[-1])
    assert len(board) == len(m.tournament.candidates) * len(m.backtest.simulators)
    assert sorted(board["rank"]) == list(range(1, len(board) + 1))
    assert np.isfinite(board["equity"]).all() and (board["equity"] > 0).all()
    ledger = Ledger(lake.ledger_path(m.name))
    assert ledger.verify().ok
    assert {e["payload"]["date"] for e in ledger.entries()} >= keys
    top = sorted(r.report.stage_seconds.items(), key=lambda kv: -kv[1])[:4]
    print(f"{name}: {len(r.dates)} partitions in {r.seconds:.1f} s (compute {r.report.compute_seconds:.1f} s; "
          + ", ".join(f"{k} {v:.1f}" for k, v in top) + ")")


def test_ratings_books_hold_their_side_of_the_screen(month):
    """binance_ratings_short holds the strong sells short (weights <= 0 summing to -1), binance_ratings_long
    the strong buys long; each held symbol is on its book's side in the selection of its decision date."""
    for name, side in (("binance_ratings_short", "short"), ("binance_ratings_long", "long")):
        r = month(name)
        m = r.manifest
        assert m.book == side
        decisions = 0
        for d in r.dates:
            t = r.lake.read(m.name, "tournament", d)
            held = t[t["symbol"] != ""]
            if held.empty:
                continue
            w = held["weight"].to_numpy(dtype=float)
            assert (w < 0).all() if side == "short" else (w >= 0).all(), (name, d)
            for cand, g in held.groupby("candidate"):
                assert abs(g["weight"].sum() - (-1.0 if side == "short" else 1.0)) < TOL, (name, d, cand)
            for decided, g in held.groupby("decision_date"):
                sel = r.lake.read(m.name, "selection", decided).set_index("symbol")
                picked = sel.loc[sorted(set(g["symbol"]))]
                assert picked["selected"].all() and (picked["direction"] == side).all(), (name, d)
            decisions += 1
        assert decisions >= len(r.dates) / 2, name


def test_selling_rips_of_crypto_record_each_coins_perpetual(month):
    """crypto_selling_rips shorts spot rips whose execution is on the perpetual: the catalog of each date
    names the coin's perp as its implementation alternative (``source.alternatives: binance_perp``)."""
    r = month("crypto_selling_rips")
    cat = r.lake.read(r.manifest.name, "catalog", r.dates[-1]).set_index("symbol")
    rips = [s for s in cat.index if tv_month.TRENDS.get(s) == "rip"]
    assert len(rips) == 4
    assert {s: cat.loc[s, "alt_ticker"] for s in rips} == {s: f"{s}.P" for s in rips}
