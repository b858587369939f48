"""Daily bars over TradingView's chart websocket.

Handshake: ``wss://data.tradingview.com/socket.io/websocket?from=chart&type=chart`` with a browser
``User-Agent`` and ``Origin: https://www.tradingview.com`` (the service sits behind a WAF that refuses
other clients with HTTP 403), as the public clients that work do (TradingView-API's ``client.js``).
Wire format: each message is ``~m~<length>~m~<payload>``, the length counted in UTF-16 code units as
TradingView's JavaScript counts ``string.length`` (an emoji counts 2); several may share one frame.
A payload ``~h~<n>`` is a heartbeat the client echoes; others are JSON ``{"m": method, "p": params}``.
A history fetch: ``set_auth_token`` (the user's token, else ``unauthorized_user_token``) ->
``chart_create_session`` -> ``resolve_symbol`` -> ``create_series`` (the newest N bars), then
``request_more_data`` for older pages. Bars arrive in ``timescale_update`` and ``du``
(``p[1][series]["s"] = [{"i": k, "v": [unix_s, open, high, low, close, volume]}]``); each request ends with
``series_completed``; the series carries ``"data_completed": "end"`` once the server has no older bar.
``symbol_error`` / ``series_error`` name a symbol the server refuses. A bar's time is its session's open;
``calendars.trading_dates`` turns it into the session's trading date.
"""

from __future__ import annotations

import json
import random
import string
import time
import urllib.parse

import pandas as pd

from tvquant_assets.errors import SourceError
from tvquant_assets.sources.tradingview import calendars
from tvquant_assets.sources.tradingview.screener import RetryableError, RetryPolicy

ORIGIN = "https://www.tradingview.com"
USER_AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
BROWSER_HEADERS = {"Accept-Language": "en-US,en;q=0.9", "Cache-Control": "no-cache", "Pragma": "no-cache"}
CHART_QUERY = {"from": "chart", "type": "chart"}
ANONYMOUS_TOKEN = "unauthorized_user_token"
BAR_COLUMNS = ["date", "open", "high", "low", "close", "volume"]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def encode(payload: str | dict) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"~m~{utf16_len(text)}~m~{text}"


def decode(raw: str) -> list[str]:
    """Split one websocket frame into its ``~m~``-framed payloads (raises ValueError when garbled).
    Lengths are UTF-16 code units, so the frame is walked in UTF-16."""
    data = raw.encode("utf-16-le")
    out, i, n_units = [], 0, len(data) // 2
    marker = "~m~".encode("utf-16-le")

    def text(a: int, b: int) -> str:
        return data[2 * a:2 * b].decode("utf-16-le")

    while i < n_units:
        if data[2 * i:2 * i + 6] != marker:
            raise ValueError(f"expected '~m~' at {i}: {text(i, i + 20)!r}")
        j = i + 3
        while j < n_units and data[2 * j:2 * j + 6] != marker:
            j += 1
        if j >= n_units:
            raise ValueError(f"unterminated length at {i}: {text(i, i + 20)!r}")
        n = int(text(i + 3, j))
        start = j + 3
        if start + n > n_units:
            raise ValueError(f"truncated payload: {n} announced, {n_units - start} received")
        try:
            out.append(text(start, start + n))
        except UnicodeDecodeError:
            raise ValueError(f"payload length {n} splits a character") from None
        i = start + n
    return out


def message(method: str, *params) -> str:
    return encode({"m": method, "p": list(params)})


def chart_url(url: str) -> str:
    """The websocket URL with the chart query the WAF expects (kept when the URL has its own query)."""
    parts = urllib.parse.urlsplit(url)
    if parts.query:
        return url
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(CHART_QUERY)))


class ChartClient:
    """Fetches daily bars of one symbol at a time, newest first, page by page, within a time budget.

    ``timeout_s`` bounds the wait for data after each request: heartbeats keep the connection alive but
    do not count as an answer. ``time_budget_s`` bounds one whole fetch."""

    def __init__(self, url: str, policy: RetryPolicy, timeout_s: float = 30.0, bars_per_request: int = 1000,
                 time_budget_s: float = 600.0, auth_token=None) -> None:
        self.url = chart_url(url)
        self.policy = policy
        self.timeout_s = timeout_s
        self.bars_per_request = bars_per_request
        self.time_budget_s = time_budget_s
        self._auth_token = auth_token  # a callable returning the token (fetched on first use), or None
        self.requests_sent = 0
        self.last_fetch: dict = {}  # pages, end marker and raw stamps of the last completed fetch

    def token(self) -> str:
        return self._auth_token() if callable(self._auth_token) else (self._auth_token or ANONYMOUS_TOKEN)

    def history(self, ticker: str, start: pd.Timestamp, first_request: int | None = None,
                calendar: str = calendars.ALWAYS) -> tuple[pd.DataFrame, dict]:
        """Daily bars of ``ticker`` by trading date of ``calendar`` from ``start`` (or its first bar) to the
        newest, and the resolved symbol info (``info["_history_ended"]``: the server said it has no older
        bar). Retries the whole fetch when the connection drops; returns only complete results."""
        deadline = time.monotonic() + self.time_budget_s
        token = self.token()
        return self.policy.run(f"websocket history {ticker}",
                               lambda: self._fetch(ticker, pd.Timestamp(start), first_request, deadline, calendar,
                                                   token))

    def _fetch(self, ticker: str, start: pd.Timestamp, first_request: int | None, deadline: float, calendar: str,
               token: str):
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
        from websockets.sync.client import connect

        try:
            with connect(self.url, origin=ORIGIN, user_agent_header=USER_AGENT, additional_headers=BROWSER_HEADERS,
                         open_timeout=self.timeout_s, close_timeout=1, max_size=2**25) as ws:
                return _Session(ws, ticker, self, deadline, calendar, token).run(start, first_request)
        except ConnectionClosed as exc:
            raise RetryableError(f"connection closed mid-history ({exc})") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = (exc.response.body or b"")[:80].decode("utf-8", "replace").strip()
            err = f"websocket handshake: HTTP {status}" + (f": {body}" if body else "")
            if status in (429, 500, 502, 503, 504):
                raise RetryableError(err) from None
            raise SourceError(f"{err} (refused by the server; the chart websocket wants a browser "
                              "User-Agent and Origin https://www.tradingview.com)") from None
        except (TimeoutError, OSError, InvalidHandshake) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None
        except InvalidURI as exc:
            raise SourceError(f"source.websocket_url: {exc}") from None


def _session_id(prefix: str) -> str:
    return prefix + "".join(random.choices(string.ascii_letters, k=12))


class _Session:
    SERIES = "sds_1"
    SYMBOL = "sds_sym_1"

    def __init__(self, ws, ticker: str, client: ChartClient, deadline: float, calendar: str, token: str) -> None:
        self.ws, self.ticker, self.client, self.deadline = ws, ticker, client, deadline
        self.calendar, self.token = calendar, token
        self.chart = _session_id("cs_")
        self.bars: dict[float, list] = {}
        self.info: dict = {}
        self.ended = False

    def send(self, method: str, *params) -> None:
        self.client.requests_sent += 1
        self.ws.send(message(method, *params))

    def budget_spent(self) -> SourceError:
        return SourceError(f"websocket history {self.ticker}: time budget of {self.client.time_budget_s:g}s "
                           "spent; raise source.time_budget_s or lower history_start")

    def wait_completed(self) -> int:
        """Read until ``series_completed``; return how many new bars arrived. Times out when no data
        message (anything but a heartbeat) came for ``timeout_s``."""
        before = len(self.bars)
        data_deadline = time.monotonic() + self.client.timeout_s
        while True:
            now = time.monotonic()
            if now >= self.deadline:
                raise self.budget_spent()
            if now >= data_deadline:
                raise RetryableError(f"no data for {self.client.timeout_s:g}s (heartbeats only)")
            try:
                raw = self.ws.recv(timeout=min(self.deadline, data_deadline) - now)
            except TimeoutError:
                if time.monotonic() >= self.deadline:  # the budget ran out while waiting: not worth a retry
                    raise self.budget_spent() from None
                raise RetryableError(f"no data for {self.client.timeout_s:g}s") from None
            try:
                payloads = decode(raw if isinstance(raw, str) else raw.decode())
            except ValueError as exc:
                raise RetryableError(f"garbled frame: {exc}") from None
            for p in payloads:
                if p.startswith("~h~"):
                    self.ws.send(encode(p))
                    continue
                data_deadline = time.monotonic() + self.client.timeout_s
                try:
                    msg = json.loads(p)
                except ValueError as exc:
                    raise RetryableError(f"unparsable message ({exc}): {p[:60]!r}") from None
                if not isinstance(msg, dict) or "m" not in msg:
                    continue  # the server's hello (session id, release)
                if self._handle(msg["m"], msg.get("p", [])):
                    return len(self.bars) - before

    def _handle(self, m: str, params: list) -> bool:
        if m == "symbol_resolved":
            self.info = params[2] if len(params) > 2 and isinstance(params[2], dict) else {}
        elif m in ("symbol_error", "series_error", "critical_error", "protocol_error"):
            detail = params[-1] if params else m
            raise SourceError(f"websocket history {self.ticker}: {m}: {detail}; check the symbol "
                              "(EXCHANGE:NAME) in the manifest")
        elif m in ("timescale_update", "du"):
            series = params[1].get(self.SERIES, {}) if len(params) > 1 and isinstance(params[1], dict) else {}
            for bar in series.get("s", []):
                v = list(bar["v"][:6])
                self.bars[float(v[0])] = [float(x) if x is not None else float("nan") for x in v] + \
                    [float("nan")] * (6 - len(v))
            if series.get("data_completed") == "end":
                self.ended = True
        elif m == "series_completed":
            return True
        return False

    def run(self, start: pd.Timestamp, first_request: int | None):
        per = self.client.bars_per_request
        self.send("set_auth_token", self.token)
        self.send("chart_create_session", self.chart, "")
        sym = json.dumps({"symbol": self.ticker, "adjustment": "splits"}, separators=(",", ":"))
        self.send("resolve_symbol", self.chart, self.SYMBOL, "=" + sym)
        self.send("create_series", self.chart, self.SERIES, "s1", self.SYMBOL, "1D", int(first_request or per), "")
        new, pages = self.wait_completed(), 1
        # page back until the start, the server's end marker, or a page without bars (a history limit)
        while first_request is None and new > 0 and not self.ended and self._earliest() > start:
            self.send("request_more_data", self.chart, self.SERIES, per)
            new, pages = self.wait_completed(), pages + 1
        info = dict(self.info, _history_ended=self.ended)
        self.client.last_fetch = {"pages": pages, "ended": self.ended, "stamps": sorted(self.bars),
                                  "timezone": self.info.get("timezone") or "Etc/UTC"}
        return self.frame(start), info

    def _earliest(self) -> pd.Timestamp:
        return self._dates([min(self.bars)])[0]

    def _dates(self, stamps) -> pd.DatetimeIndex:
        return calendars.trading_dates(self.calendar, stamps, self.info.get("timezone") or "Etc/UTC")

    def frame(self, start: pd.Timestamp) -> pd.DataFrame:
        if not self.bars:
            return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "date" else "float64")
                                 for c in BAR_COLUMNS})
        stamps = sorted(self.bars)
        values = [self.bars[t][1:6] for t in stamps]
        df = pd.DataFrame(values, columns=BAR_COLUMNS[1:], dtype="float64")
        df.insert(0, "date", self._dates(stamps))
        df = df.drop_duplicates("date", keep="last")
        return df[df["date"] >= start].reset_index(drop=True)
