"""A local stand-in for TradingView on 127.0.0.1: the screener (HTTP) and the chart websocket.

The screener replays recorded scanner rows (``recordings/screener_<market>.json``, TradingView's
``{"s": ticker, "d": [...]}`` rows) and evaluates the request's filter, symbols, sort and range against
them as the real service does. The websocket speaks TradingView's ``~m~len~m~`` protocol and serves
daily bars from a seeded table (``bar_table``) as ``timescale_update`` messages.
Faults are scripted per test: ``screener_faults`` (a queue of "429", "500", "timeout", "malformed",
"empty") and ``ws_drops[ticker]`` (connections to drop after the first bars of that ticker).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd

RECORDINGS = Path(__file__).with_name("recordings")


def load_recording(market: str) -> tuple[list[str], list[dict]]:
    rec = json.loads((RECORDINGS / f"screener_{market}.json").read_text())
    return rec["columns"], rec["response"]["data"]


def _value(row: dict, x):
    return row.get(x, x) if isinstance(x, str) else x


def matches(row: dict, rule: dict) -> bool:
    left, op, right = row.get(rule["left"]), rule["operation"], _value(row, rule.get("right"))
    if op in ("greater", "egreater", "less", "eless"):
        if left is None or right is None:
            return False
        return {"greater": left > right, "egreater": left >= right, "less": left < right,
                "eless": left <= right}[op]
    if op == "equal":
        return left == right
    if op == "nequal":
        return left != right
    if op in ("in_range", "not_in_range"):
        if len(right) == 2 and all(isinstance(v, (int, float)) for v in right) and isinstance(left, (int, float)):
            inside = right[0] <= left <= right[1]
        else:
            inside = left in right
        return inside if op == "in_range" else not inside
    if op == "has":
        return bool(set(left or []) & set(right))
    if op == "has_none_of":
        return not set(left or []) & set(right)
    raise ValueError(f"fake screener: unsupported operation {op}")


class FakeTradingView:
    def __init__(self, bars: dict[str, tuple[pd.DataFrame, str]]) -> None:
        self.bars = bars  # ticker -> (frame date/open/high/low/close/volume, timezone)
        self.tables = {}
        for market in ("crypto", "america"):
            cols, data = load_recording(market)
            self.tables[market] = [{"ticker": r["s"], **dict(zip(cols, r["d"], strict=True)),
                                    "_in_SPX": r.get("in_SPX", False)} for r in data]
        self.screener_faults: list[str] = []
        self.ws_drops: dict[str, int] = {}
        self.scan_requests: list[dict] = []
        self.ws_messages: list[dict] = []
        self.heartbeats_echoed = 0
        self._http = None
        self._ws = None

    # screener --------------------------------------------------------------------------------------
    def scan(self, market: str, body: dict) -> tuple[int, dict]:
        rows = self.tables.get(market)
        if rows is None:
            return 400, {"totalCount": 0, "error": f"Unknown market {market}", "data": None}
        known = set(rows[0])
        unknown = [c for c in body.get("columns", []) if c not in known]
        if unknown:
            return 400, {"totalCount": 0, "error": f"Unknown field \"{unknown[0]}\"", "data": None}
        symbols = body.get("symbols") or {}
        if symbols.get("tickers"):
            rows = [r for r in rows if r["ticker"] in symbols["tickers"]]
        if "SYML:SP;SPX" in (symbols.get("symbolset") or []):
            rows = [r for r in rows if r["_in_SPX"]]
        rows = [r for r in rows if all(matches(r, f) for f in body.get("filter", []))]
        sort = body.get("sort")
        if sort:
            rows = sorted(rows, key=lambda r: (r.get(sort["sortBy"]) is None, r.get(sort["sortBy"]) or 0),
                          reverse=sort.get("sortOrder") == "desc")
        lo, hi = body.get("range", [0, 50])
        page = rows[lo:hi]
        return 200, {"totalCount": len(rows), "data": [{"s": r["ticker"], "d": [r[c] for c in body["columns"]]}
                                                        for r in page]}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                market = self.path.strip("/").split("/")[0]
                fake.scan_requests.append({"market": market, **body})
                fault = fake.screener_faults.pop(0) if fake.screener_faults else None
                if fault in ("429", "500", "503"):
                    self._send(int(fault), b'{"error":"busy"}', {"Retry-After": "0"} if fault == "429" else {})
                    return
                if fault == "timeout":
                    time.sleep(1.0)
                if fault == "malformed":
                    self._send(200, b'{"totalCount": 3, "data": [{"s": "BINANCE:BTC')
                    return
                status, out = fake.scan(market, body)
                if fault == "empty":
                    out = {"totalCount": out.get("totalCount", 0), "data": []}
                self._send(status, json.dumps(out).encode())

            def _send(self, status, payload, headers=None):
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first

        return Handler

    # websocket -------------------------------------------------------------------------------------
    def _serve_ws(self, ws):
        from tvquant_assets.sources.tradingview.websocket import decode, encode, message

        ws.send(encode({"session_id": "fake", "timestamp": 0, "release": "fake", "protocol": "json"}))
        ws.send(encode("~h~1"))
        state = {"ticker": None, "sent": 0}

        def bars_msg(frame: pd.DataFrame, tz: str) -> str:
            stamps = _stamps(frame["date"], tz)
            s = [{"i": i, "v": [t, *row]} for i, (t, row) in
                 enumerate(zip(stamps, frame[["open", "high", "low", "close", "volume"]].itertuples(index=False,
                                                                                                  name=None),
                               strict=True))]
            return message("timescale_update", "cs", {"sds_1": {"s": s, "t": "s1"}}, {})

        for raw in ws:
            for p in decode(raw):
                if p.startswith("~h~"):
                    self.heartbeats_echoed += 1
                    continue
                msg = json.loads(p)
                self.ws_messages.append(msg)
                m, params = msg["m"], msg["p"]
                if m == "resolve_symbol":
                    ticker = json.loads(params[2][1:])["symbol"]
                    if ticker not in self.bars:
                        ws.send(message("symbol_error", params[0], params[1], "invalid symbol"))
                        return
                    state["ticker"] = ticker
                    tz = self.bars[ticker][1]
                    ws.send(message("symbol_resolved", params[0], params[1], {"name": ticker, "timezone": tz}))
                elif m in ("create_series", "request_more_data"):
                    ticker = state["ticker"]
                    frame, tz = self.bars[ticker]
                    n = int(params[5] if m == "create_series" else params[2])
                    end = len(frame) - state["sent"]
                    chunk = frame.iloc[max(0, end - n):end]
                    state["sent"] += len(chunk)
                    if self.ws_drops.get(ticker, 0) > 0 and m == "request_more_data":
                        self.ws_drops[ticker] -= 1
                        ws.send(bars_msg(chunk, tz))
                        ws.close()  # drop mid-history
                        return
                    ws.send(encode("~h~2") + (bars_msg(chunk, tz) if len(chunk) else ""))
                    ws.send(message("series_completed", params[0], "sds_1", "streaming", "s1", {}))

    # lifecycle -------------------------------------------------------------------------------------
    def start(self) -> FakeTradingView:
        from websockets.sync.server import serve

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self._ws = serve(self._serve_ws, "127.0.0.1", 0)
        threading.Thread(target=self._ws.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http:
            self._http.shutdown()
            self._http.server_close()
        if self._ws:
            self._ws.shutdown()

    @property
    def scanner_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def websocket_url(self) -> str:
        return f"ws://127.0.0.1:{self._ws.socket.getsockname()[1]}"


def _stamps(dates: pd.Series, tz: str) -> list[float]:
    """Bar times as TradingView sends them: the session open in the exchange time zone, unix seconds."""
    local = pd.DatetimeIndex(dates).tz_localize(tz)
    if tz != "Etc/UTC":
        local = local + pd.Timedelta(hours=9, minutes=30)
    return [float(x) for x in local.tz_convert("UTC").as_unit("s").asi8]


def bar_table(dates: pd.DatetimeIndex, seed: int, start_price: float = 100.0, vol: float = 0.02) -> pd.DataFrame:
    """Seeded OHLCV: log-normal closes, opens near the previous close, wicks, positive volume."""
    rng = np.random.default_rng(seed)
    n = len(dates)
    r = rng.normal(0.0004, vol, n)
    close = start_price * np.exp(np.cumsum(r))
    open_ = np.concatenate([[start_price], close[:-1]]) * (1 + rng.normal(0, vol / 5, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, vol / 2, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, vol / 2, n)))
    volume = np.round(rng.lognormal(13, 0.3, n))
    return pd.DataFrame({"date": dates.as_unit("ns"), "open": open_, "high": high, "low": low, "close": close,
                         "volume": volume})
