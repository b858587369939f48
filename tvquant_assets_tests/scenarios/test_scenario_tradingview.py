"""Scenario: a TradingView manifest (``tv_binance_spot_daily.yaml``: Binance spot pairs, daily calendar)
materialized through real Dagster against the fake TradingView (``sources/tv_fake_server.py``, whose traffic
follows the public captures named there), today fixed at 2024-06-30. Same assertions as every scenario, and
the property it exists for: crypto trades every day, so weekend partitions hold bars and decisions of their
own, and a weekend date replays alone as in the range."""

from __future__ import annotations

import pytest
import yaml
from dagster import DagsterInstance

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import load_manifest
from tvquant_assets.replay import replay
from tvquant_assets.runner import materialize_range
from tvquant_assets_tests.scenarios.conftest import HERE, Ran, assert_complete_checked_sealed_replayed
from tvquant_assets_tests.sources.tv_fake_server import FakeTradingView
from tvquant_assets_tests.sources.tv_fixtures import TODAY, fake_bars

pytestmark = pytest.mark.scenario
NAME = "tv_binance_spot_daily"
START, END = "2024-06-20", "2024-06-29"


@pytest.fixture
def fake_tv():
    server = FakeTradingView(fake_bars(), now=TODAY).start()
    try:
        yield server
    finally:
        server.stop()


def test_tradingview_daily_crypto_materializes_checks_seals_and_replays_weekends(fake_tv, tmp_path, monkeypatch):
    monkeypatch.setenv("TVQUANT_TODAY", TODAY)
    monkeypatch.setenv("TVQUANT_LAKE", str(tmp_path / "lake"))
    raw = yaml.safe_load((HERE / f"{NAME}.yaml").read_text())
    raw["source"].update(scanner_url=fake_tv.scanner_url, websocket_url=fake_tv.websocket_url,
                         auth_url=fake_tv.auth_url, backoff_s=0.0, timeout_s=5.0)
    path = tmp_path / f"{NAME}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    m, instance, root = load_manifest(path), DagsterInstance.ephemeral(), str(tmp_path / "lake")
    report = materialize_range(path, START, END, lake_root=root, instance=instance)
    ran = Ran(NAME, path, m, report, root, instance, manifest_dates(m, report.start, report.end))
    assert [d.strftime("%Y-%m-%d") for d in ran.dates[:1] + ran.dates[-1:]] == [START, END]
    assert_complete_checked_sealed_replayed(ran)

    lake = Lake(root)
    weekend = [d for d in ran.dates if d.day_of_week >= 5]
    assert len(weekend) == 3  # 06-22, 06-23, 06-29
    for d in weekend:  # bars and a scan of their own: the window counts every daily bar
        prices = lake.read(NAME, "prices", d)
        assert len(prices) >= 3 and (prices["date"] == d).all(), d
        scan = lake.read(NAME, "scan", d)
        assert "tv_Recommend.All" in scan.columns and scan["eligible"].any(), d
    sunday = lake.read(NAME, "backtest", weekend[1]).set_index("candidate")["equity"]
    saturday = lake.read(NAME, "backtest", weekend[0]).set_index("candidate")["equity"]
    assert (sunday != saturday).all()  # the book moved on a weekend day
    alone = replay(m, root, weekend[0])
    assert alone.ok, [(s.stage, s.problems) for s in alone.failed]
