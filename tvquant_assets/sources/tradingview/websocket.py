"""Daily bars over TradingView's chart websocket.

Wire format: each message is ``~m~<length>~m~<payload>`` (several may share one websocket frame);
a payload ``~h~<n>`` is a heartbeat the client must echo; others are JSON ``{"m": method, "p": params}``.
A history fetch: ``set_auth_token`` -> ``chart_create_session`` -> ``resolve_symbol`` -> ``create_series``
(the newest N bars), then ``request_more_data`` for older pages; bars arrive in ``timescale_update``
(``p[1][series]["s"] = [{"i": k, "v": [unix_s, open, high, low, close, volume]}]``) and each request
ends with ``series_completed``. ``symbol_error`` / ``series_error`` name a symbol the server refuses.
"""

from __future__ import annotations

import json
import time

import pandas as pd

from tvquant_assets.errors import SourceError
from tvquant_assets.sources.tradingview.screener import RetryableError, RetryPolicy

ORIGIN = "https://www.tradingview.com"
BAR_COLUMNS = ["date", "open", "high", "low", "close", "volume"]


def encode(payload: str | dict) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"~m~{len(text)}~m~{text}"


def decode(raw: str) -> list[str]:
    """Split one websocket frame into its ``~m~``-framed payloads (raises ValueError when garbled)."""
    out, i = [], 0
    while i < len(raw):
        if not raw.startswith("~m~", i):
            raise ValueError(f"expected '~m~' at {i}: {raw[i:i + 20]!r}")
        j = raw.index("~m~", i + 3)
        n = int(raw[i + 3:j])
        out.append(raw[j + 3:j + 3 + n])
        if len(out[-1]) != n:
            raise ValueError(f"truncated payload: {n} announced, {len(out[-1])} received")
        i = j + 3 + n
    return out


def message(method: str, *params) -> str:
    return encode({"m": method, "p": list(params)})


class ChartClient:
    """Fetches daily bars of one symbol at a time, newest first, page by page, within a time budget."""

    def __init__(self, url: str, policy: RetryPolicy, timeout_s: float = 30.0, bars_per_request: int = 1000,
                 time_budget_s: float = 600.0) -> None:
        self.url = url
        self.policy = policy
        self.timeout_s = timeout_s
        self.bars_per_request = bars_per_request
        self.time_budget_s = time_budget_s
        self.requests_sent = 0

    def history(self, ticker: str, start: pd.Timestamp, first_request: int | None = None) -> tuple[pd.DataFrame, dict]:
        """Daily bars of ``ticker`` from ``start`` (or its first bar) to the newest, and the resolved symbol
        info. Retries the whole fetch when the connection drops; returns only complete results."""
        deadline = time.monotonic() + self.time_budget_s
        return self.policy.run(f"websocket history {ticker}",
                               lambda: self._fetch(ticker, pd.Timestamp(start), first_request, deadline))

    def _fetch(self, ticker: str, start: pd.Timestamp, first_request: int | None, deadline: float):
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
        from websockets.sync.client import connect

        try:
            with connect(self.url, origin=ORIGIN, open_timeout=self.timeout_s, close_timeout=1,
                         max_size=2**25) as ws:
                return _Session(ws, ticker, self, deadline).run(start, first_request)
        except ConnectionClosed as exc:
            raise RetryableError(f"connection closed mid-history ({exc})") from None
        except (TimeoutError, OSError, InvalidHandshake) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None
        except InvalidURI as exc:
            raise SourceError(f"source.websocket_url: {exc}") from None


class _Session:
    CHART = "cs_tvquant"
    SERIES = "sds_1"

    def __init__(self, ws, ticker: str, client: ChartClient, deadline: float) -> None:
        self.ws, self.ticker, self.client, self.deadline = ws, ticker, client, deadline
        self.bars: dict[float, list] = {}
        self.info: dict = {}

    def send(self, method: str, *params) -> None:
        self.client.requests_sent += 1
        self.ws.send(message(method, *params))

    def budget_spent(self) -> SourceError:
        return SourceError(f"websocket history {self.ticker}: time budget of {self.client.time_budget_s:g}s "
                           "spent; raise source.time_budget_s or lower history_start")

    def wait_completed(self) -> int:
        """Read until ``series_completed``; return how many new bars arrived."""
        before = len(self.bars)
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise self.budget_spent()
            try:
                raw = self.ws.recv(timeout=min(left, self.client.timeout_s))
            except TimeoutError:
                if time.monotonic() >= self.deadline:  # the budget ran out while waiting: not worth a retry
                    raise self.budget_spent() from None
                raise RetryableError(f"no message for {self.client.timeout_s:g}s") from None
            try:
                payloads = decode(raw if isinstance(raw, str) else raw.decode())
            except ValueError as exc:
                raise RetryableError(f"garbled frame: {exc}") from None
            for p in payloads:
                if p.startswith("~h~"):
                    self.ws.send(encode(p))
                    continue
                msg = json.loads(p)
                if not isinstance(msg, dict) or "m" not in msg:
                    continue  # the server's hello (session id, release)
                m, params = msg["m"], msg.get("p", [])
                if m == "symbol_resolved":
                    self.info = params[2] if len(params) > 2 and isinstance(params[2], dict) else {}
                elif m in ("symbol_error", "series_error", "critical_error", "protocol_error"):
                    detail = params[-1] if params else m
                    raise SourceError(f"websocket history {self.ticker}: {m}: {detail}; check the symbol "
                                      "(EXCHANGE:NAME) in the manifest")
                elif m == "timescale_update":
                    series = params[1].get(self.SERIES, {}) if len(params) > 1 else {}
                    for bar in series.get("s", []):
                        v = bar["v"]
                        self.bars[float(v[0])] = [float(x) if x is not None else float("nan") for x in v[:6]] + \
                            [float("nan")] * (6 - len(v[:6]))
                elif m == "series_completed":
                    return len(self.bars) - before

    def run(self, start: pd.Timestamp, first_request: int | None):
        per = self.client.bars_per_request
        self.send("set_auth_token", "unauthorized_user_token")
        self.send("chart_create_session", self.CHART, "")
        sym = json.dumps({"symbol": self.ticker, "adjustment": "splits"}, separators=(",", ":"))
        self.send("resolve_symbol", self.CHART, "sds_sym_1", "=" + sym)
        self.send("create_series", self.CHART, self.SERIES, "s1", "sds_sym_1", "1D", int(first_request or per), "")
        new = self.wait_completed()
        while new > 0 and self.bars and self._earliest() > start:
            self.send("request_more_data", self.CHART, self.SERIES, per)
            new = self.wait_completed()
        return self.frame(start), self.info

    def _earliest(self) -> pd.Timestamp:
        return self._dates([min(self.bars)])[0]

    def _dates(self, stamps) -> pd.DatetimeIndex:
        tz = self.info.get("timezone") or "Etc/UTC"
        idx = pd.to_datetime(pd.Index(stamps, dtype="float64"), unit="s", utc=True).tz_convert(tz)
        return idx.normalize().tz_localize(None).as_unit("ns")

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
