"""A local stand-in for TradingView on 127.0.0.1: the screener (HTTP), the sign-in page and the chart websocket.

It is at least as strict as the real service, whose traffic it imitates from public captures:
TradingView-API (Mathieu2301, ``src/client.js``, ``src/chart/session.js``, ``src/protocol.js``), tvdatafeed
(rongardF, ``tvDatafeed/main.py``), tradingview-screener (shner-elmo, its README and ``data/metainfo``
field lists) and the TradingView websocket captures quoted in their issues.

- Screener: ``POST /{market}/scan`` replays recorded rows (``recordings/screener_<market>.json``,
  ``{"s": ticker, "d": [...]}``) and evaluates filter, symbols, sort and range; any column, filter field or
  sort field outside the recording's columns (a subset of TradingView's field list of that market) is
  ``HTTP 400 {"error": "Unknown field \"<name>\""}``. Faults per test: ``screener_faults`` ("429" with
  ``Retry-After``, "500", "503", "timeout", "malformed", "empty").
- Sign-in: ``GET /`` with cookie ``sessionid=<one of sessions>`` returns a page embedding ``"auth_token"``.
- Websocket (WAF first): a handshake without a browser ``User-Agent``, ``Origin: https://www.tradingview.com``
  and the ``?from=chart&type=chart`` query is refused with HTTP 403; ``ws_faults`` scripts handshake
  refusals ("429" with ``Retry-After``, "403"). Then the ``~m~len~m~`` protocol with lengths in UTF-16
  units, a hello and heartbeats, and strict session order: ``set_auth_token`` first (a known token),
  ``chart_create_session``, ``resolve_symbol`` in that session, ``create_series`` on the resolved symbol,
  ``request_more_data`` on that series; anything else is a ``protocol_error`` and the connection closes.
  Bars (``bar_table``) are served newest first in ``timescale_update``, stamped with the session's open:
  00:00 UTC for crypto, 09:30 New York for US stocks, 17:00 the evening before for FX and metals (New York)
  and CME futures (Chicago); sessions not yet open at ``now`` are not served, the open one is (and updated by
  ``du``); each request ends with ``series_completed`` and the oldest page carries ``data_completed: "end"``.
  Per ticker faults: ``ws_drops`` (close mid-history), ``ws_silent`` (heartbeats only), ``ws_garble``
  (a frame whose announced length is wrong), ``bad_bars`` (a value replaced, e.g. a NaN close).
"""

from __future__ import annotations

import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd

RECORDINGS = Path(__file__).with_name("recordings")
MARKETS = ("crypto", "america", "forex", "cfd", "futures")
ORIGIN = "https://www.tradingview.com"
ANONYMOUS = "unauthorized_user_token"
EVENING = {"fx": "America/New_York", "cme": "America/Chicago"}  # sessions that open at 17:00 the evening before


def browser_like(user_agent: str | None) -> bool:
    return bool(user_agent) and user_agent.startswith("Mozilla/5.0") and "Python" not in user_agent


def load_recording(market: str) -> tuple[list[str], list[dict]]:
    rec = json.loads((RECORDINGS / f"screener_{market}.json").read_text())
    return rec["columns"], rec["response"]["data"]


def _value(row: dict, x):
    return row.get(x, x) if isinstance(x, str) else x


def tradingview_field(market: str, column: str) -> bool:
    """Whether ``column`` is on TradingView's published field list of ``market`` (tradingview-screener's
    ``data/metainfo`` lists, as transcribed in ``sources/tradingview/columns.py``)."""
    from tvquant_assets.sources.tradingview import columns

    return columns.known(market, column)


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
    def __init__(self, bars: dict[str, tuple], now: str | pd.Timestamp | None = None) -> None:
        # ticker -> (frame date/open/high/low/close/volume by trading date, timezone[, "fx" | "cme"])
        self.bars = bars
        self.now = pd.Timestamp(now, tz="UTC") if now is not None else None  # None: serve every bar
        self.tables, self.fields = {}, {}
        for market in MARKETS:
            cols, data = load_recording(market)
            self.fields[market] = set(cols)
            self.tables[market] = [{"ticker": r["s"], **dict(zip(cols, r["d"], strict=True)),
                                    "_in_SPX": r.get("in_SPX", False)} for r in data]
        self.sessions = {"good-session": "user-token-1"}  # sessionid cookie -> auth token
        self.descriptions: dict[str, str] = {}  # ticker -> symbol_resolved description (emoji...)
        self.screener_faults: list[str] = []
        self.ws_faults: list[str] = []
        self.ws_drops: dict[str, int] = {}
        self.ws_silent: set[str] = set()
        self.ws_garble: set[str] = set()
        self.bad_bars: dict[tuple[str, str], dict] = {}  # (ticker, date) -> values replaced
        self.anonymous_limit: int | None = None  # newest bars an anonymous token may page back to
        self.scan_requests: list[dict] = []
        self.ws_messages: list[dict] = []
        self.handshakes: list[dict] = []
        self.tokens_seen: list[str] = []
        self.heartbeats_echoed = 0
        self._http = None
        self._ws = None

    # screener --------------------------------------------------------------------------------------
    def scan(self, market: str, body: dict) -> tuple[int, dict]:
        rows = self.tables.get(market)
        if rows is None:
            return 400, {"totalCount": 0, "error": f"Unknown market {market}", "data": None}
        known = self.fields[market]
        named = list(body.get("columns", [])) + [f["left"] for f in body.get("filter", [])]
        if body.get("sort"):
            named.append(body["sort"]["sortBy"])
        # A field of TradingView's list for the market that the recording lacks is known but has no values
        # (null in rows, never matching a comparison), as the real scanner answers for an empty field.
        unknown = [c for c in named if c not in known and not tradingview_field(market, c)]
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
        return 200, {"totalCount": len(rows), "data": [{"s": r["ticker"], "d": [r.get(c) for c in body["columns"]]}
                                                        for r in page]}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 (the sign-in page: the auth token of a known session cookie)
                cookies = dict(c.strip().split("=", 1) for c in (self.headers.get("cookie") or "").split(";")
                               if "=" in c)
                token = fake.sessions.get(cookies.get("sessionid", ""))
                page = (f'<html><script>window.user = {{"username":"u","auth_token":"{token}"}};</script></html>'
                        if token else "<html><script>window.user = {};</script></html>")
                self._send(200, page.encode(), content_type="text/html")

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

            def _send(self, status, payload, headers=None, content_type="application/json"):
                try:
                    self.send_response(status)
                    self.send_header("content-type", content_type)
                    self.send_header("content-length", str(len(payload)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first

        return Handler

    # websocket -------------------------------------------------------------------------------------
    def _process_request(self, connection, request):
        """The WAF: browser User-Agent, TradingView origin and the chart query, else HTTP 403."""
        headers = request.headers
        self.handshakes.append({"path": request.path, "user-agent": headers.get("User-Agent"),
                                "origin": headers.get("Origin")})
        fault = self.ws_faults.pop(0) if self.ws_faults else None
        if fault == "429":
            response = connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "Too Many Requests\n")
            response.headers["Retry-After"] = "0"
            return response
        if fault == "403" or not browser_like(headers.get("User-Agent")) or headers.get("Origin") != ORIGIN \
                or "from=chart" not in request.path or "type=chart" not in request.path:
            return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")
        return None

    def served(self, ticker: str) -> tuple[pd.DataFrame, list[float], str]:
        """The bars the server has for ``ticker`` now, their stamps (session opens) and time zone."""
        frame, tz, *kind = self.bars[ticker]
        frame = frame.reset_index(drop=True)
        for (t, day), values in self.bad_bars.items():
            if t == ticker:
                frame = frame.copy()
                for col, v in values.items():
                    frame.loc[frame["date"] == pd.Timestamp(day), col] = v
        stamps = np.array(_stamps(frame["date"], tz, kind[0] if kind else None))
        if self.now is not None:
            keep = stamps <= self.now.timestamp()
            frame, stamps = frame[keep].reset_index(drop=True), stamps[keep]
        return frame, list(stamps), tz

    def _serve_ws(self, ws):
        from tvquant_assets.sources.tradingview.websocket import decode, encode, message

        ws.send(encode({"session_id": "<0.1.2>_fake", "timestamp": int(time.time()), "timestampMs": 0,
                        "release": "registry.tradingview.com/tvbs:fake", "studies_metadata_hash": "x",
                        "auth_scheme_vsn": 2, "protocol": "json", "via": "127.0.0.1:443", "javastudies": []}))
        ws.send(encode("~h~1"))
        st = {"token": None, "chart": None, "symbols": {}, "series": None, "ticker": None, "sent": 0, "hb": 1}

        def refuse(why: str):
            ws.send(message("protocol_error", why))
            ws.close()

        def bars_msg(chart, frame, stamps, first: int, ended: bool, method="timescale_update") -> str:
            s = [{"i": first + k, "v": [t, *row]} for k, (t, row) in
                 enumerate(zip(stamps, frame[["open", "high", "low", "close", "volume"]].itertuples(
                     index=False, name=None), strict=True))]
            series = {"node": "fake", "s": s, "ns": {"d": "", "indexes": []}, "t": "s1",
                      "lbs": {"bar_close_time": int(stamps[-1]) + 86400 if stamps else 0}}
            if ended:
                series["data_completed"] = "end"
            return message(method, chart, {st["series"]: series},
                           {"index": first, "zoffset": 0, "changes": [], "marks": [], "index_diff": []})

        for raw in ws:
            for p in decode(raw):
                if p.startswith("~h~"):
                    self.heartbeats_echoed += 1
                    continue
                msg = json.loads(p)
                self.ws_messages.append(msg)
                m, params = msg["m"], msg["p"]
                if st["token"] is None and m != "set_auth_token":
                    return refuse("wrong data: set_auth_token first")
                if m == "set_auth_token":
                    if params[0] != ANONYMOUS and params[0] not in self.sessions.values():
                        return refuse("invalid auth token")
                    st["token"] = params[0]
                    self.tokens_seen.append(params[0])
                elif m == "chart_create_session":
                    st["chart"] = params[0]
                elif m == "resolve_symbol":
                    if params[0] != st["chart"] or not params[2].startswith("="):
                        return refuse("wrong data: resolve_symbol outside the chart session")
                    ticker = json.loads(params[2][1:])["symbol"]
                    if ticker not in self.bars:
                        ws.send(message("symbol_error", params[0], params[1], "invalid symbol"))
                        continue
                    st["symbols"][params[1]] = ticker
                    tz = self.bars[ticker][1]
                    info = {"name": ticker.split(":")[1], "exchange": ticker.split(":")[0], "timezone": tz,
                            "description": self.descriptions.get(ticker, ticker), "pricescale": 100, "minmov": 1,
                            "session": "24x7" if tz == "Etc/UTC" else "0930-1600", "type": "stock"}
                    ws.send(message("symbol_resolved", params[0], params[1], info))
                elif m == "create_series":
                    if params[0] != st["chart"] or params[3] not in st["symbols"]:
                        return refuse("wrong data: create_series on an unresolved symbol")
                    st["series"], st["ticker"], st["sent"] = params[1], st["symbols"][params[3]], 0
                    if not self._page(ws, st, int(params[5]), bars_msg, encode, message):
                        return
                elif m == "request_more_data":
                    if params[0] != st["chart"] or params[1] != st["series"]:
                        return refuse("wrong data: request_more_data on an unknown series")
                    if not self._page(ws, st, int(params[2]), bars_msg, encode, message, more=True):
                        return
                else:
                    return refuse(f"unknown method {m}")

    def _page(self, ws, st, n, bars_msg, encode, message, more=False) -> bool:
        ticker, chart = st["ticker"], st["chart"]
        if ticker in self.ws_silent:  # heartbeats only, never an answer
            from websockets.exceptions import ConnectionClosed

            try:
                until = time.monotonic() + 20.0
                while time.monotonic() < until:
                    time.sleep(0.05)
                    st["hb"] += 1
                    ws.send(encode(f"~h~{st['hb']}"))
                    try:
                        if "~h~" in ws.recv(timeout=0.05):
                            self.heartbeats_echoed += 1
                    except TimeoutError:
                        pass
            except ConnectionClosed:
                pass
            return False
        frame, stamps, tz = self.served(ticker)
        floor = 0
        if self.anonymous_limit is not None and st["token"] == ANONYMOUS:
            floor = max(0, len(frame) - self.anonymous_limit)  # older bars exist but are not served
        end = len(frame) - st["sent"]
        lo = max(floor, end - n)
        chunk, chunk_stamps = frame.iloc[lo:end], stamps[lo:end]
        st["sent"] += len(chunk)
        ended = lo == 0
        if more and self.ws_drops.get(ticker, 0) > 0:
            self.ws_drops[ticker] -= 1
            ws.send(bars_msg(chart, chunk, chunk_stamps, lo, ended))
            ws.close()  # drop mid-history
            return False
        st["hb"] += 1
        empty = {"s": [], **({"data_completed": "end"} if ended else {})}
        payload = bars_msg(chart, chunk, chunk_stamps, lo, ended) if len(chunk) else \
            message("timescale_update", chart, {st["series"]: empty}, {})
        if ticker in self.ws_garble:
            payload = payload.replace("~m~", "~m~9", 1)  # an announced length that does not match
        ws.send(encode(f"~h~{st['hb']}") + payload)
        ws.send(message("series_completed", chart, st["series"], "streaming", "s1", {"rt_update_period": 1}))
        kind = (self.bars[ticker][2:] or (None,))[0]
        length = 23 * 3600 if kind in EVENING else 86400 if tz == "Etc/UTC" else 6.5 * 3600
        if not more and len(frame) and self.now is not None and stamps[-1] + length > self.now.timestamp():
            # the open session ticks: its bar is updated by "du"
            last = frame.iloc[[-1]].copy()
            last["close"] = last["close"] * 1.001
            from websockets.exceptions import ConnectionClosed

            try:
                ws.send(bars_msg(chart, last, [stamps[-1]], len(frame) - 1, False, method="du"))
            except ConnectionClosed:  # the client had what it asked for and left, as real clients do
                return False
        return True

    # lifecycle -------------------------------------------------------------------------------------
    def start(self) -> FakeTradingView:
        from websockets.sync.server import serve

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self._ws = serve(self._serve_ws, "127.0.0.1", 0, process_request=self._process_request)
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
        return f"ws://127.0.0.1:{self._ws.socket.getsockname()[1]}/socket.io/websocket"

    @property
    def auth_url(self) -> str:
        return f"{self.scanner_url}/"


def _stamps(dates: pd.Series, tz: str, kind: str | None = None) -> list[float]:
    """Bar times as TradingView sends them: the session open, unix seconds. Crypto (Etc/UTC) opens at
    00:00 UTC, US stocks at 09:30 New York, FX/metals/CFDs and CME futures at 17:00 the evening before."""
    days = pd.DatetimeIndex(dates)
    if kind in EVENING:
        local = (days - pd.Timedelta(days=1) + pd.Timedelta(hours=17)).tz_localize(EVENING[kind])
    else:
        local = days.tz_localize(tz)
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
