"""Client of TradingView's screener, ``POST {base}/{market}/scan``: paging, retries, clear errors.

Payloads come from ``presets.build_payload`` (tradingview-screener's ``Query``); the transport is ours
because that library sends one request without retries, paging or error typing.
Response shape: ``{"totalCount": N, "data": [{"s": "EXCHANGE:SYMBOL", "d": [value per column]}]}``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import requests

from tvquant_assets.errors import SourceError
from tvquant_assets.sources.tradingview.presets import build_payload, scan_columns

PAGE_SIZE = 1000  # rows per request (TradingView allows more; 1000 keeps responses small)
RETRY_STATUS = {429, 500, 502, 503, 504}
HEADERS = {"content-type": "application/json", "origin": "https://www.tradingview.com",
           "referer": "https://www.tradingview.com/",
           "user-agent": ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                          "Chrome/131.0.0.0 Safari/537.36")}


class RetryableError(Exception):
    """A failure worth another attempt (rate limit, server error, timeout, garbled body)."""


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter and a hard attempt cap."""

    max_attempts: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Delay before attempt ``attempt + 1`` (attempt counts from 1): base * 2**(attempt-1), x[0.5, 1.5)."""
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        wait = base * (0.5 + self.rng.random())
        return max(wait, retry_after or 0.0)

    def run(self, what: str, call: Callable[[], object]):
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return call()
            except RetryableError as exc:
                last = str(exc)
                if attempt == self.max_attempts:
                    break
                self.sleep(self.delay(attempt, getattr(exc, "retry_after", None)))
        raise SourceError(f"{what}: gave up after {self.max_attempts} attempts, last error: {last}; "
                          "try later or raise source.max_attempts")


class ScreenerClient:
    """Runs preset scans page by page (``PAGE_SIZE`` rows) and returns one frame per scan."""

    def __init__(self, base_url: str, policy: RetryPolicy, timeout_s: float = 30.0,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.requests_sent = 0
        self.page_size = PAGE_SIZE

    def _post(self, market: str, payload: dict) -> dict:
        url = f"{self.base_url}/{market}/scan"
        self.requests_sent += 1
        try:
            resp = self.session.post(url, data=json.dumps(payload), headers=HEADERS, timeout=self.timeout_s)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise RetryableError(f"{url}: {type(exc).__name__}") from None
        if resp.status_code in RETRY_STATUS:
            err = RetryableError(f"{url}: HTTP {resp.status_code}")
            ra = resp.headers.get("Retry-After")
            err.retry_after = float(ra) if ra and ra.replace(".", "", 1).isdigit() else None
            raise err
        try:
            body = resp.json()
        except ValueError:
            raise RetryableError(f"{url}: malformed JSON (HTTP {resp.status_code}, body starts "
                                 f"{resp.text[:60]!r})") from None
        if resp.status_code != 200 or not isinstance(body, dict) or body.get("error"):
            msg = body.get("error") if isinstance(body, dict) else body
            raise SourceError(f"{url}: HTTP {resp.status_code}: {msg}; fix the preset's columns or filters")
        if not isinstance(body.get("data"), list) or not isinstance(body.get("totalCount"), int):
            raise RetryableError(f"{url}: response without data/totalCount")
        return body

    def scan(self, preset: dict, direction: str, max_rows: int | None = None) -> pd.DataFrame:
        """Every row of one preset scan (up to ``max_rows``), columns ``ticker`` + the scan's columns."""
        columns = scan_columns(preset)
        limit = min(max_rows or preset.get("limit") or 10**9, preset.get("limit") or 10**9)
        rows: list[list] = []
        offset, total = 0, None
        what = f"screener {preset['market']} preset {preset['name']!r} ({direction})"
        while total is None or offset < min(total, limit):
            size = min(self.page_size, limit - offset)
            payload = build_payload(preset, direction, offset, size)

            def page(payload=payload, offset=offset):
                body = self._post(preset["market"], payload)
                if not body["data"] and offset < body["totalCount"]:
                    raise RetryableError(f"empty page at offset {offset} of {body['totalCount']}")
                return body

            body = self.policy.run(what, page)
            total = body["totalCount"]
            for item in body["data"]:
                values = item.get("d")
                if not isinstance(item.get("s"), str) or not isinstance(values, list) or len(values) != len(columns):
                    raise SourceError(f"{what}: row {item!r:.80} does not match the {len(columns)} requested columns")
                rows.append([item["s"], *values])
            if not body["data"]:
                break
            offset += len(body["data"])
        frame = pd.DataFrame(rows, columns=["ticker", *columns])
        if "Value.Traded" not in frame and {"close", "volume"} <= set(frame):  # futures: no such field
            frame["Value.Traded"] = pd.to_numeric(frame["close"], errors="coerce") * \
                pd.to_numeric(frame["volume"], errors="coerce")
        return frame.drop_duplicates("ticker", keep="first").reset_index(drop=True)

    def snapshot(self, market: str, tickers: list[str], columns: list[str]) -> pd.DataFrame:
        """Current values of ``columns`` for named tickers; unknown tickers raise naming them."""
        payload = {"symbols": {"tickers": list(tickers)}, "columns": list(columns), "range": [0, len(tickers)],
                   "options": {"lang": "en"}}
        body = self.policy.run(f"screener {market} snapshot", lambda: self._post(market, payload))
        got = {item["s"]: item["d"] for item in body["data"]}
        unknown = sorted(set(tickers) - set(got))
        if unknown:
            raise SourceError(f"screener {market}: unknown symbols {', '.join(unknown)}; remove them from the "
                              "manifest or check the exchange prefix")
        return pd.DataFrame([[t, *got[t]] for t in tickers], columns=["ticker", *columns])
