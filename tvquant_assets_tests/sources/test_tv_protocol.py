"""Wire fidelity of the live source against the strict fake TradingView.

The traffic is shaped like public captures of the real service: the handshake and session order of
TradingView-API (Mathieu2301, ``src/client.js``: browser User-Agent, ``Origin: https://www.tradingview.com``,
``?from=chart&type=chart``; ``src/chart/session.js``: ``resolve_symbol`` / ``create_series`` /
``request_more_data``, ``timescale_update`` and ``du``), its ``src/protocol.js`` framing (``~m~`` lengths are
JavaScript ``string.length``, i.e. UTF-16 code units), tvdatafeed (rongardF, ``tvDatafeed/main.py``:
heartbeats echoed, ``series_completed``), TradingView-API's ``getUser`` (``"auth_token"`` read from the home
page fetched with the ``sessionid`` cookie) and the field lists of tradingview-screener (shner-elmo,
``data/metainfo/<market>.json``: no ``base_currency``; futures without ``Value.Traded``), whose issues quote the
scanner's ``{"error": "Unknown field ..."}`` answer. Daily bars are stamped with the session open, the evening
before for FX, metals, CFDs and CME futures (XAUUSD Monday = Sunday 17:00 New York).
"""

import json
import time

import pandas as pd
import pytest

from tvquant_assets.errors import SourceError
from tvquant_assets.sources.tradingview import TradingViewSource, columns
from tvquant_assets.sources.tradingview.presets import BUILTIN_PRESETS, check_presets, resolve_preset
from tvquant_assets.sources.tradingview.screener import RetryPolicy, ScreenerClient
from tvquant_assets.sources.tradingview.websocket import ChartClient, decode, encode, utf16_len
from tvquant_assets_tests.sources.tv_fake_server import MARKETS, load_recording


def chart(fake, **kw):
    return ChartClient(fake.websocket_url, RetryPolicy(max_attempts=kw.pop("attempts", 2), backoff_s=0.0),
                       timeout_s=kw.pop("timeout_s", 5), **kw)


def source(fake, **over):
    params = {"scans": [{"preset": "binance_spot", "direction": "long"}], "quote_priority": ["USDT", "USDC"],
              "history_start": "2024-01-01", "bars_per_request": 200, "max_attempts": 2, "backoff_s": 0.0,
              "timeout_s": 5.0, "scanner_url": fake.scanner_url, "websocket_url": fake.websocket_url,
              "auth_url": fake.auth_url, **over}
    return TradingViewSource(**params)


# 1. handshake ----------------------------------------------------------------------------------------
def test_waf_refuses_a_plain_python_client_and_accepts_ours(fake_tv):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus, match="403"):  # what websockets sends by default
        connect(fake_tv.websocket_url + "?from=chart&type=chart", origin="https://www.tradingview.com")
    with pytest.raises(InvalidStatus, match="403"):  # a browser agent but no chart query
        connect(fake_tv.websocket_url, origin="https://www.tradingview.com", user_agent_header="Mozilla/5.0 (X11)")
    bars, _ = chart(fake_tv).history("NASDAQ:AAPL", pd.Timestamp("2024-06-01"), calendar="XNYS")
    assert len(bars) == 19
    ours = fake_tv.handshakes[-1]
    assert ours["user-agent"].startswith("Mozilla/5.0") and ours["origin"] == "https://www.tradingview.com"
    assert ours["path"] == "/socket.io/websocket?from=chart&type=chart"


def test_handshake_refusal_names_the_status_and_429_is_retried(fake_tv):
    fake_tv.ws_faults[:] = ["403"]
    with pytest.raises(SourceError, match="websocket handshake: HTTP 403: Forbidden"):
        chart(fake_tv, attempts=3).history("NASDAQ:AAPL", pd.Timestamp("2024-06-01"))
    assert len(fake_tv.handshakes) == 1  # a WAF refusal is not retried
    fake_tv.ws_faults[:] = ["429", "429"]
    bars, _ = chart(fake_tv, attempts=3).history("NASDAQ:AAPL", pd.Timestamp("2024-06-01"), calendar="XNYS")
    assert len(bars) == 19 and len(fake_tv.handshakes) == 4


# 2. session order ------------------------------------------------------------------------------------
def test_session_messages_in_the_order_the_server_requires(fake_tv):
    chart(fake_tv, bars_per_request=100).history("BINANCE:ETHUSDT", pd.Timestamp("2024-01-01"))
    methods = [m["m"] for m in fake_tv.ws_messages]
    assert methods[:4] == ["set_auth_token", "chart_create_session", "resolve_symbol", "create_series"]
    cs = fake_tv.ws_messages[1]["p"][0]
    assert cs.startswith("cs_") and len(cs) == 15
    assert all(m["p"][0] == cs for m in fake_tv.ws_messages[1:])
    # a client that skips the token gets a protocol_error, as the real server answers
    from websockets.sync.client import connect

    from tvquant_assets.sources.tradingview.websocket import BROWSER_HEADERS, USER_AGENT, message

    with connect(fake_tv.websocket_url + "?from=chart&type=chart", origin="https://www.tradingview.com",
                 user_agent_header=USER_AGENT, additional_headers=BROWSER_HEADERS) as ws:
        ws.recv(timeout=2)
        ws.send(message("chart_create_session", "cs_x", ""))
        got = "".join(ws.recv(timeout=2) for _ in range(2))
    assert "protocol_error" in got


# 3. end of history, coverage of what was received ------------------------------------------------------
def test_paging_stops_on_the_end_marker_and_coverage_is_what_was_received(fake_tv, tv_env):
    src = source(fake_tv, history_start="2020-01-01")
    bars = src.history(["BINANCE:ETHUSDT"], pd.Timestamp("2020-01-01"), pd.Timestamp("2024-06-30"))
    assert bars["date"].min() == pd.Timestamp("2023-01-01")  # the table's first bar: nothing older exists
    more = [m for m in fake_tv.ws_messages if m["m"] == "request_more_data"]
    assert len(more) == 2  # 546 bars in pages of 200: no request after data_completed "end"
    assert src.coverage("BINANCE:ETHUSDT") == {"from": "2020-01-01", "to": "2024-06-29"}
    # an anonymous history limit: the server stops sending without the end marker
    fake_tv.anonymous_limit = 100
    src.history(["BINANCE:BTCUSDT"], pd.Timestamp("2020-01-01"), pd.Timestamp("2024-06-30"))
    cov = src.coverage("BINANCE:BTCUSDT")
    assert cov["from"] == "2024-03-23"  # the earliest bar received (100 newest incl. the open one), not 2020
    fake_tv.anonymous_limit = None
    fake_tv.ws_messages.clear()
    src.history(["BINANCE:BTCUSDT"], pd.Timestamp("2020-01-01"), pd.Timestamp("2024-06-30"))
    assert any(m["m"] == "create_series" for m in fake_tv.ws_messages)  # the gap is fetched again
    assert src.coverage("BINANCE:BTCUSDT")["from"] == "2020-01-01"


# 4. scanner columns -----------------------------------------------------------------------------------
def test_recorded_columns_exist_in_tradingviews_field_lists():
    for market in MARKETS:
        cols, _ = load_recording(market)
        assert columns.unknown_columns(market, cols) == [], market
    assert not columns.known("crypto", "base_currency") and not columns.known("forex", "base_currency")
    assert not columns.known("futures", "Value.Traded") and columns.known("crypto", "RSI|60")


def test_unknown_column_is_refused_by_the_fake_as_by_the_service_and_the_error_names_it(fake_tv):
    client = ScreenerClient(fake_tv.scanner_url, RetryPolicy(max_attempts=3, backoff_s=0.0), timeout_s=5)
    bad = dict(resolve_preset("binance_spot"), columns=["base_currency"])
    with pytest.raises(SourceError, match=r'HTTP 400: Unknown field "base_currency"'):
        client.scan(bad, "long")
    assert len(fake_tv.scan_requests) == 1  # a 400 is not retried
    with pytest.raises(ValueError, match="preset 'mine': columns: 'base_currency' is not a TradingView crypto "
                                         "scanner field"):
        check_presets({"mine": {"extends": "binance_spot", "columns": ["base_currency"]}}, ["mine"])
    with pytest.raises(ValueError, match="preset 'fut': sort.sortBy: 'Value.Traded' is not a TradingView futures"):
        check_presets({"fut": {"extends": "futures_cme", "sort": {"sortBy": "Value.Traded"}}}, ["fut"])


def test_every_builtin_preset_is_accepted_by_the_strict_scanner(fake_tv):
    client = ScreenerClient(fake_tv.scanner_url, RetryPolicy(max_attempts=1, backoff_s=0.0), timeout_s=5)
    found = {}
    for name in BUILTIN_PRESETS:
        preset = resolve_preset(name)
        for direction in ("long", "short"):
            found[name, direction] = sorted(client.scan(preset, direction)["ticker"])
    assert found["metals", "long"] == ["OANDA:XAGUSD", "OANDA:XAUUSD", "OANDA:XPDUSD", "OANDA:XPTUSD"]
    assert found["forex_majors", "long"] == ["FX:AUDUSD", "FX:EURUSD", "FX:GBPUSD", "FX:USDJPY"]
    assert found["futures_cme", "long"] == ["CME:6E1!", "CME_MINI:ES1!", "COMEX:GC1!", "NYMEX:CL1!"]
    fut = client.scan(resolve_preset("futures_cme"), "long").set_index("ticker")
    assert fut.loc["COMEX:GC1!", "Value.Traded"] == pytest.approx(2336.0 * 180000)  # close x volume


# 5. framing --------------------------------------------------------------------------------------------
def test_lengths_count_utf16_units_and_an_emoji_does_not_fail_the_symbol(fake_tv):
    text = json.dumps({"m": "symbol_resolved", "p": ["cs", "s", {"description": "Silver \U0001F948"}]},
                      ensure_ascii=False)
    framed = encode(text)
    assert framed.startswith(f"~m~{len(text) + 1}~m~") and utf16_len(text) == len(text) + 1
    assert decode(framed + encode("~h~4")) == [text, "~h~4"]
    with pytest.raises(ValueError):
        decode(f"~m~{len(text)}~m~{text}")  # a code-point count cuts the emoji's surrogate pair
    fake_tv.descriptions["OANDA:XAGUSD"] = "Silver Spot / U.S. Dollar \U0001F948"
    bars, info = chart(fake_tv).history("OANDA:XAGUSD", pd.Timestamp("2024-06-01"), calendar="24/5")
    assert info["description"].endswith("\U0001F948") and len(bars) == 20


# 6. session auth ---------------------------------------------------------------------------------------
def test_session_id_gives_the_users_token_anonymous_otherwise_and_is_never_shown(fake_tv, tv_env, monkeypatch):
    monkeypatch.delenv("TVQUANT_TV_SESSIONID", raising=False)
    source(fake_tv).history(["BINANCE:ETHUSDT"], pd.Timestamp("2024-06-01"), pd.Timestamp("2024-06-29"))
    assert fake_tv.tokens_seen[-1] == "unauthorized_user_token"
    monkeypatch.setenv("TVQUANT_TV_SESSIONID", "good-session")
    src = source(fake_tv)
    src.history(["BINANCE:BTCUSDT"], pd.Timestamp("2024-06-01"), pd.Timestamp("2024-06-29"))
    assert fake_tv.tokens_seen[-1] == "user-token-1"
    monkeypatch.setenv("TVQUANT_TV_SESSIONID", "expired-secret-123")
    src = source(fake_tv)
    with pytest.raises(SourceError) as err:
        src.history(["BINANCE:SOLUSDT"], pd.Timestamp("2024-06-01"), pd.Timestamp("2024-06-29"))
    assert "TVQUANT_TV_SESSIONID: TradingView did not accept the session" in str(err.value)
    assert "expired-secret-123" not in str(err.value) and "expired-secret-123" not in repr(src.chart._auth_token)
    stored = src.failures_path().read_text()
    assert "expired-secret-123" not in stored and "user-token-1" not in stored


# issue 24: a data request times out on data, not on heartbeats ----------------------------------------------
def test_heartbeats_do_not_keep_a_silent_request_alive(fake_tv):
    fake_tv.ws_silent.add("NASDAQ:MSFT")
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=r"gave up after 2 attempts, last error: no data for 0.5s"):
        chart(fake_tv, timeout_s=0.5, time_budget_s=600).history("NASDAQ:MSFT", pd.Timestamp("2024-06-01"))
    assert time.monotonic() - t0 < 4.0  # two attempts of 0.5 s, not the 600 s budget
    assert fake_tv.heartbeats_echoed >= 4  # heartbeats were answered meanwhile
