"""``tvquant sources check``: every point passes against the strict fake TradingView, each failure is one
FAIL line with its cause and exit 1, and no network is one line and exit 2. The fake's traffic follows the
public captures named in test_tv_protocol.py (TradingView-API, tvdatafeed, tradingview-screener)."""

import pytest

from tvquant_assets import cli
from tvquant_assets.sources.tradingview import smoke
from tvquant_assets_tests.sources.tv_fixtures import shipped_manifest


@pytest.fixture
def check(fake_tv, tv_env, monkeypatch):
    monkeypatch.setattr(smoke, "HISTORY_PAGE", 200)  # the fake's histories are ~550 bars: three pages

    def run(**over):
        lines = []
        m = shipped_manifest("binance_spot", fake_tv, **over)
        code = smoke.run_checks(m, tv_env / "lake", out=lines.append)
        return code, lines
    return run


def test_every_point_passes_against_the_fake(check, fake_tv, tv_env, capsys):
    code, lines = check()
    assert code == 0, lines
    assert [ln.split(":")[0] for ln in lines[:5]] == ["pass  handshake", "pass  scanner", "pass  history",
                                                     "pass  dating", "pass  parity"]
    assert "BINANCE:BTCUSDC: 547 bars in 3 pages, ended by data_completed" in lines[2]
    assert lines[-1] == "5/5 passed"
    path = shipped_manifest("binance_spot", fake_tv, tv_env)
    assert cli.main(["sources", "check", "--manifest", str(path), "--lake", str(tv_env / "lake")]) == 0
    assert "5/5 passed" in capsys.readouterr().out


def test_each_failure_is_one_line_with_its_cause(check, fake_tv):
    fake_tv.ws_faults[:] = ["403"]
    code, lines = check()
    assert code == 1 and lines[0] == "FAIL  handshake: websocket handshake: HTTP 403 (refused)"
    fake_tv.screener_faults[:] = ["500"] * 3
    code, lines = check(**{"source.max_attempts": 2})
    assert code == 1 and lines[1].startswith("FAIL  scanner: screener page: gave up after 2 attempts")
    assert lines[2] == "FAIL  history: no symbol (the scanner point failed)"
    fake_tv.ws_silent.add("BINANCE:BTCUSDC")
    code, lines = check(**{"source.timeout_s": 0.3, "source.max_attempts": 1})
    assert code == 1 and "FAIL  history" in lines[2] and "no data for 0.3s" in lines[2]
    fake_tv.ws_silent.clear()
    frame, tz, _ = fake_tv.bars["OANDA:XAUUSD"]
    fake_tv.bars["OANDA:XAUUSD"] = (frame, tz)  # stamped 09:30 New York instead of the evening before
    code, lines = check()
    assert code == 1 and lines[3].startswith("FAIL  dating: OANDA:XAUUSD: bars stamped ")
    assert "the session dating rule no longer matches the service" in lines[3]


def test_parity_failure_names_fields_and_symbols(check, fake_tv, tv_env):
    from tvquant_assets.sources.tradingview import TradingViewSource

    m = shipped_manifest("binance_spot", fake_tv)
    src = TradingViewSource(**m.source.model_dump(exclude={"kind"}))
    src.attach_lake(tv_env / "lake")
    src.snapshot()  # stored yesterday's view of the catalog
    row = next(r for r in fake_tv.tables["crypto"] if r["ticker"] == "BINANCE:ETHUSDT")
    row["pricescale"] = 1000  # the tick size changed since
    code, lines = check()
    assert code == 1 and lines[4].startswith("FAIL  parity: 1 mismatch(es) in tick_size (BINANCE:ETHUSDT)")


def test_no_network_is_one_line_and_exit_2(check):
    code, lines = check(**{"source.websocket_url": "ws://127.0.0.1:9/socket.io/websocket"})
    assert code == 2 and len(lines) == 1 and lines[0].startswith("no network: cannot reach 127.0.0.1:9")
