"""Unattended daily operation: the real ``<manifest>_daily`` schedule, tick by tick, against the fake TradingView.

Two weeks of ticks for ``binance_spot`` (00:30 New York: the UTC day before has closed) and ``us_equities``
(17:30 New York, after the NYSE close), each run executed in process on one temp Dagster instance, the
repair sensor evaluated after every run. One tick is missed (machine off), one bar is bad when first
served (a NaN close, corrected at the server later) and one symbol is delisted mid-way (it leaves the
screener and its bars stop). The fake's traffic follows the public captures named in test_tv_protocol.py.
"""

import datetime as dt
import zoneinfo

import numpy as np
import pandas as pd
from dagster import DagsterInstance, build_schedule_context, build_sensor_context

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.definitions import build_definitions
from tvquant_assets.defs.checks import REPAIRABLE, evaluate
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import load_manifest
from tvquant_assets.runner import QUIET, materialize_range
from tvquant_assets_tests.sources.tv_fixtures import shipped_manifest

NY = zoneinfo.ZoneInfo("America/New_York")
LEAN = {
    "universe": {"min_history_days": 40},
    "selection": {"momentum_lookback": 40, "momentum_skip": 0, "correlation_lookback": 30, "max_symbols": 5},
    "regime": {"short_window": 10, "long_window": 30, "growth_window": 20},
    "estimation": {"lookback": 30},
    "tournament": {"candidates": [{"engine": "custom", "profile": "equal_weight"},
                                  {"engine": "custom", "profile": "min_variance"}],
                   "constraints": {"max_weight": 1.0}},
}


def drive(name, fake, tmp, monkeypatch, first_tick: dt.datetime, days: int, missed: dt.date, events, after=None):
    """Backfill up to the day before the first tick's target, then tick the daily schedule ``days`` times
    (skipping the tick on ``missed``); ``events[date]`` runs before that tick, ``after[date]`` after its run
    and before the repair sensor. Returns manifest, lake, run requests."""
    lake_root = tmp / "lake"
    monkeypatch.setenv("TVQUANT_LAKE", str(lake_root))
    path = shipped_manifest(name, fake, tmp, start="2024-06-03", backtest={"start": "2024-06-03"},
                            **{"source.history_start": "2024-01-01"}, **LEAN)
    m = load_manifest(path)
    (tmp / "dagster_home").mkdir()
    instance = DagsterInstance.local_temp(str(tmp / "dagster_home"))  # schedule contexts need an instance ref
    defs = build_definitions([path])
    repo = defs.get_repository_def()
    daily, sensor = defs.resolve_schedule_def(f"{m.name}_daily"), defs.resolve_sensor_def("data_repair_sensor")

    def now(when: dt.datetime):
        utc = pd.Timestamp(when).tz_convert("UTC")
        monkeypatch.setenv("TVQUANT_NOW", utc.isoformat())
        fake.now = utc

    now(first_tick - dt.timedelta(days=1))
    backfill_end = manifest_dates(m, "2024-06-03", pd.Timestamp(first_tick.date()) - pd.Timedelta(days=2))[-1]
    materialize_range(path, "2024-06-03", str(backfill_end.date()), lake_root=str(lake_root), instance=instance)
    cursor, targets, requests = None, [], []
    weekdays_only = daily.cron_schedule.split()[4] == "1-5"
    for k in range(days):
        when = first_tick + dt.timedelta(days=k)
        if when.date() in events:
            events[when.date()]()
        if when.date() == missed or (weekdays_only and when.weekday() >= 5):
            continue  # the machine is off, or the cron has no tick that day
        now(when)
        with build_schedule_context(instance=instance, scheduled_execution_time=when, repository_def=repo) as ctx:
            reqs = daily.evaluate_tick(ctx).run_requests
        for req in reqs:
            requests.append(req)
            targets.append(req.partition_key or req.tags["dagster/asset_partition_range_end"])
            job = defs.resolve_job_def(daily.job_name)
            job.execute_in_process(instance=instance, partition_key=req.partition_key, tags=req.tags,
                                   run_config=QUIET, raise_on_error=False)
        if when.date() in (after or {}):
            after[when.date()]()
        with build_sensor_context(instance=instance, cursor=cursor, repository_def=repo) as sctx:
            out = sensor.evaluate_tick(sctx)
        cursor = out.cursor or cursor
        for req in out.run_requests:
            defs.resolve_job_def(req.job_name).execute_in_process(instance=instance, tags=req.tags,
                                                                 run_config=QUIET, raise_on_error=False)
    return m, Lake(str(lake_root)), requests


def assert_healthy(m, lake, dates, recorded_bars):
    from tvquant_assets.repair.records import load_records
    from tvquant_assets.sources.tradingview.calendars import sessions

    fills = load_records(lake, m.name).fills
    skip = {(s, pd.Timestamp(d)) for d, syms in fills.items() for s in syms}  # carried forward by data_repair
    for name in sorted(REPAIRABLE):
        report = evaluate(m, lake, name, dates)
        assert report.passed, report.summary()
    open_days = set(sessions(m.source.exchange_calendar, dates[0], dates[-1]))
    for d in dates:
        prices = lake.read(m.name, "prices", d).set_index("symbol")
        if d not in open_days:  # an exchange holiday of a weekday calendar: its partition holds no bar
            assert prices.empty, d
            continue
        assert len(prices), d
        assert (prices["date"] == d).all(), d
        for sym, row in prices.iterrows():
            if (sym, d) in skip:
                continue
            truth = recorded_bars[sym][0].set_index("date").loc[d]
            np.testing.assert_allclose(row["close"], truth["close"])  # the session of D, not D+1
    assert Ledger(str(lake.ledger_path(m.name))).verify().ok
    assert all(lake.exists(m.name, "audit", d) for d in dates)


def test_binance_spot_two_weeks_of_daily_ticks(fake_tv, recorded_bars, tmp_path, monkeypatch):
    fake_tv.descriptions["BINANCE:SOLUSDT"] = "Solana 🌞 / TetherUS"  # an emoji on the wire every day
    bad = ("BINANCE:BTCUSDT", "2024-06-15")
    eth = "BINANCE:ETHUSDT"

    def plant_bad_bar():
        fake_tv.bad_bars[bad] = {"close": float("nan")}

    def correct_bad_bar():
        fake_tv.bad_bars.clear()

    def delist():
        fake_tv.tables["crypto"] = [r for r in fake_tv.tables["crypto"] if r["ticker"] != eth]
        frame, tz = fake_tv.bars[eth]
        fake_tv.bars[eth] = (frame[frame["date"] < "2024-06-19"], tz)

    first = dt.datetime(2024, 6, 11, 0, 30, tzinfo=NY)  # targets 2024-06-10
    # the bad bar is served by the tick's run only; the server has corrected it when data_repair re-fetches
    events = {dt.date(2024, 6, 16): plant_bad_bar, dt.date(2024, 6, 19): delist}
    m, lake, requests = drive("binance_spot", fake_tv, tmp_path, monkeypatch, first, 14, dt.date(2024, 6, 13),
                              events, after={dt.date(2024, 6, 16): correct_bad_bar})
    keys = [r.partition_key or (r.tags["dagster/asset_partition_range_start"], r.tags[
        "dagster/asset_partition_range_end"]) for r in requests]
    assert keys[0] == "2024-06-10" and keys[-1] == "2024-06-23"  # each tick: the UTC day that has closed
    assert ("2024-06-12", "2024-06-13") in keys  # the missed day caught up by the next tick
    dates = manifest_dates(m, "2024-06-10", "2024-06-23")
    assert_healthy(m, lake, dates, recorded_bars)
    # the bad bar was downloaded again (not filled): the repaired close is the server's corrected one
    from tvquant_assets.repair.records import load_records

    assert not load_records(lake, m.name).fills.get(bad[1], {}).get(bad[0])
    repaired = lake.read(m.name, "prices", bad[1]).set_index("symbol").loc[bad[0], "close"]
    assert repaired == recorded_bars[bad[0]][0].set_index("date").loc[bad[1], "close"]
    # the delisted symbol: in the universe while it was listed, gone from the day its screener row vanished
    assert eth in set(lake.read(m.name, "catalog", "2024-06-17")["symbol"])
    assert eth not in set(lake.read(m.name, "catalog", "2024-06-20")["symbol"])
    assert lake.read(m.name, "prices", "2024-06-23").shape[0] >= 3


def test_us_equities_two_weeks_of_daily_ticks(fake_tv, recorded_bars, tmp_path, monkeypatch):
    """NYSE: 17:30 New York ticks on weekdays, bars stamped 09:30 New York (13:30 UTC), Juneteenth (06-19)
    closed. The 06-12 tick is missed, AAPL's 06-14 close is NaN when first served (corrected at the server
    before data_repair re-fetches it), JPM is delisted from 06-18 (its screener row and bars stop)."""
    bad, jpm = ("NASDAQ:AAPL", "2024-06-14"), "NYSE:JPM"
    stamps = []

    def plant_bad_bar():
        fake_tv.bad_bars[bad] = {"close": float("nan")}

    def correct_bad_bar():
        fake_tv.bad_bars.clear()

    def delist():
        fake_tv.tables["america"] = [r for r in fake_tv.tables["america"] if r["ticker"] != jpm]
        frame, tz = fake_tv.bars[jpm]
        fake_tv.bars[jpm] = (frame[frame["date"] < "2024-06-18"], tz)

    def record_stamps():  # what the server sends for the session of 06-20
        frame, served, _ = fake_tv.served("NASDAQ:MSFT")
        stamps.append(pd.Timestamp(served[list(frame["date"]).index(pd.Timestamp("2024-06-20"))], unit="s",
                                   tz="UTC"))

    first = dt.datetime(2024, 6, 10, 17, 30, tzinfo=NY)  # Monday, after the 16:00 close
    events = {dt.date(2024, 6, 14): plant_bad_bar, dt.date(2024, 6, 18): delist}
    after = {dt.date(2024, 6, 14): correct_bad_bar, dt.date(2024, 6, 20): record_stamps}
    m, lake, requests = drive("us_equities", fake_tv, tmp_path, monkeypatch, first, 12, dt.date(2024, 6, 12),
                              events, after=after)
    keys = [r.partition_key or (r.tags["dagster/asset_partition_range_start"], r.tags[
        "dagster/asset_partition_range_end"]) for r in requests]
    assert keys[0] == "2024-06-10" and keys[-1] == "2024-06-21"
    assert ("2024-06-12", "2024-06-13") in keys  # the missed tick caught up by the next one
    assert not any("2024-06-15" in str(k) or "2024-06-16" in str(k) for k in keys)  # no weekend tick
    assert stamps == [pd.Timestamp("2024-06-20 13:30", tz="UTC")]  # the session's open, 09:30 New York
    dates = manifest_dates(m, "2024-06-10", "2024-06-21")
    assert pd.Timestamp("2024-06-19") in dates  # a weekday partition on an exchange holiday
    assert_healthy(m, lake, dates, recorded_bars)
    from tvquant_assets.repair.records import load_records

    assert not load_records(lake, m.name).fills.get(bad[1], {}).get(bad[0])  # re-downloaded, not filled
    repaired = lake.read(m.name, "prices", bad[1]).set_index("symbol").loc[bad[0], "close"]
    assert repaired == recorded_bars[bad[0]][0].set_index("date").loc[bad[1], "close"]
    assert jpm in set(lake.read(m.name, "catalog", "2024-06-17")["symbol"])
    assert jpm not in set(lake.read(m.name, "catalog", "2024-06-20")["symbol"])
    assert set(lake.read(m.name, "prices", "2024-06-21")["symbol"]) == {"NASDAQ:AAPL", "NASDAQ:MSFT"}


def test_us_equities_daily_tick_targets_the_closed_nyse_session(fake_tv, tmp_path, monkeypatch):
    monkeypatch.setenv("TVQUANT_LAKE", str(tmp_path / "lake"))
    path = shipped_manifest("us_equities", fake_tv, tmp_path, start="2024-06-03", backtest={"start": "2024-06-03"})
    defs = build_definitions([path])
    daily = defs.resolve_schedule_def("us_equities_daily")

    def target(when):
        with build_schedule_context(scheduled_execution_time=when, repository_def=defs.get_repository_def()) as ctx:
            return [r.partition_key for r in daily.evaluate_tick(ctx).run_requests]

    assert daily.cron_schedule == "30 17 * * 1-5"
    assert target(dt.datetime(2024, 6, 28, 17, 30, tzinfo=NY)) == ["2024-06-28"]  # after the 16:00 close
    assert target(dt.datetime(2024, 6, 19, 17, 30, tzinfo=NY)) == ["2024-06-18"]  # Juneteenth: no session
    assert target(dt.datetime(2024, 6, 28, 15, 0, tzinfo=NY)) == ["2024-06-27"]  # a tick before the close
