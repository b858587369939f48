"""A symbol whose every fetch fails does not vanish silently (issue 24): ``tvquant backfill``'s runner reports
it with its cause in the notes the CLI prints, tags the run, and the ``prices:source_failures`` check fails;
with ``source.failed_symbols: fail`` the run fails naming it. The unparsable frame is shaped like the
``~m~len~m~`` frames of the public captures (TradingView-API ``src/protocol.js``) with a wrong length."""

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance

from tvquant_assets.runner import materialize_range
from tvquant_assets_tests.sources.test_tv_materialize import SMALL
from tvquant_assets_tests.sources.tv_fixtures import shipped_manifest


def test_failed_symbol_is_reported_everywhere_and_can_fail_the_run(fake_tv, tmp_path, monkeypatch):
    monkeypatch.setenv("TVQUANT_TODAY", "2024-06-29")
    monkeypatch.setenv("TVQUANT_LAKE", str(tmp_path / "lake"))
    fake_tv.ws_garble.add("BINANCE:SOLUSDT")
    path = shipped_manifest("binance_spot", fake_tv, tmp_path, start="2024-06-25", backtest={"start": "2024-06-25"},
                            **{"source.history_start": "2024-03-01", "source.max_attempts": 2}, **SMALL)
    instance = DagsterInstance.ephemeral()
    report = materialize_range(path, "2024-06-26", "2024-06-28", lake_root=str(tmp_path / "lake"), instance=instance)
    (note,) = [n for n in report.notes if n.startswith("failed symbol BINANCE:SOLUSDT")]
    assert "gave up after 2 attempts, last error: garbled frame" in note
    assert report.notes[-1].startswith("1 symbol(s) failed at the source (the run went on without them")
    assert instance.get_run_by_id(report.run_id).tags["tvquant/failed_symbols"] == "BINANCE:SOLUSDT"
    check = AssetCheckKey(AssetKey(["binance_spot", "prices"]), "source_failures")
    (record,) = instance.event_log_storage.get_asset_check_execution_history(check, limit=1)
    evaluation = record.event.dagster_event.event_specific_data
    assert not evaluation.passed and evaluation.metadata["symbols"].value == "BINANCE:SOLUSDT"
    # the manifest says a failed symbol fails the run: the source's error names the symbol and its real cause
    # (the step then fails with it; how the CLI prints a step's root cause is the CLI's business)
    from tvquant_assets.errors import SourceError
    from tvquant_assets.sources.tradingview import TradingViewSource

    m = shipped_manifest("binance_spot", fake_tv, **{"source.max_attempts": 2, "source.failed_symbols": "fail",
                                                     "source.history_start": "2024-03-01"})
    src = TradingViewSource(**m.source.model_dump(exclude={"kind"}))
    with pytest.raises(SourceError, match=r"1 symbol\(s\) failed \(source.failed_symbols: fail\): BINANCE:SOLUSDT: "
                                          r"websocket history BINANCE:SOLUSDT: gave up after 2 attempts, last error: "
                                          r"garbled frame: truncated payload"):
        src.history(["BINANCE:SOLUSDT", "BINANCE:ETHUSDT"], "2024-06-01", "2024-06-28")
    fake_tv.ws_garble.clear()  # the server recovers: the next run fetches it and the report is clean
    report = materialize_range(path, "2024-06-28", "2024-06-28", lake_root=str(tmp_path / "lake"), instance=instance)
    assert not [n for n in report.notes if "failed" in n]
    assert "BINANCE:SOLUSDT" in set(__import__("tvquant_assets.lake", fromlist=["Lake"]).Lake(
        str(tmp_path / "lake")).read("binance_spot", "prices", "2024-06-28")["symbol"])
