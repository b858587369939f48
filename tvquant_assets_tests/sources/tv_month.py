"""Month-long traffic of the fake TradingView for every shipped live manifest: screener tables per market and
daily bars that end at the screener's close.

The screener rows follow the recorded ``/{market}/scan`` answers of ``recordings/`` (field order and
values as scanner.tradingview.com returns them: tradingview-screener's README and ``data/metainfo`` field
lists, TradingView-API's and tvdatafeed's symbol forms ``EXCHANGE:SYMBOL``) plus the real listings a
market's scan returns beside them: Binance spot pairs and USD-margined perpetuals (``BINANCE:BNBUSDT``,
``BINANCE:AVAXUSDT``... as on tradingview.com/crypto-screener), S&P 500 members (``NYSE:BA``,
``NYSE:WFC``...: the ``SYML:SP;SPX`` symbol set), the seven USD majors on the ``FX`` feed and CME Globex
continuous contracts (``CME_MINI:ES1!``...). Each row carries the fields its market's presets filter on
(``RSI``, ``SMA50``, ``SMA200`` of TradingView's field lists) with values of a session in that state:
strong buys and sells of Rating All, S&P members and majors below a falling 200-day average with an
overbought RSI (the selling-rips screens). Bars are seeded log-normal OHLCV whose trend matches the row
(an uptrend for a strong buy, a steady decline for a strong sell, a relief rally inside a decline for a
rip), whose last close is the row's close and whose value traded is the row's ``Value.Traded``; their
stamps are TradingView's (``tv_fake_server._stamps``: 00:00 UTC crypto, 09:30 New York stocks, 17:00 the
evening before for FX and CME).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tvquant_assets.sources.tradingview.calendars import sessions
from tvquant_assets_tests.sources.tv_fake_server import load_recording

# manifest -> (first partition, last partition, "now" of the run: the daily tick after the month's last close)
CRYPTO_MONTH = ("2024-03-01", "2024-03-31", "2024-04-01T04:30:00Z")  # 00:30 New York; backtest.start 03-01
CLASSIC_MONTH = ("2021-01-01", "2021-01-29", "2021-01-29T22:30:00Z")  # Friday 17:30 New York; backtest 01-04
CME_MONTH = ("2021-01-01", "2021-01-29", "2021-01-29T23:30:00Z")  # 17:30 Chicago, after Globex's 17:00 close
MONTHS = {
    **{n: CRYPTO_MONTH for n in ("binance_spot", "binance_perp", "binance_ratings_long", "binance_ratings_short",
                                 "crypto_selling_rips")},
    **{n: CLASSIC_MONTH for n in ("forex_majors", "forex_selling_rips", "us_equities", "us_equities_selling_rips")},
    "futures": CME_MONTH,
}

# trend of each recorded or added row over the months before "now": up, down (a steady decline: strong
# sell), rip (a decline whose last weeks rally: overbought below a falling 200-day average), flat
TRENDS = {
    "BINANCE:BTCUSDT": "up", "BINANCE:BTCUSDC": "up", "BINANCE:ETHUSDT": "up", "BINANCE:SOLUSDT": "up",
    "BINANCE:BNBUSDT": "up", "BINANCE:AVAXUSDT": "up", "BINANCE:LINKFDUSD": "up", "COINBASE:BTCUSD": "up",
    "BINANCE:DOGEUSDT": "down", "BINANCE:ADAUSDT": "down", "BINANCE:DOTUSDT": "down", "BINANCE:LTCUSDT": "down",
    **{f"BINANCE:{b}USDT{p}": "rip" for b in ("FIL", "ATOM", "NEAR", "APT") for p in ("", ".P")},
    "BINANCE:BTCUSDT.P": "up", "BINANCE:ETHUSDT.P": "up", "BINANCE:SOLUSDT.P": "up", "BINANCE:BNBUSDT.P": "up",
    "BINANCE:DOGEUSDT.P": "down", "BINANCE:XRPUSDT.P": "down",
    **{f"BINANCE:{b}USDT": "up" for b in ("PEPE", "WIF", "FET", "RNDR", "INJ", "ARB", "OP", "SHIB")},
    **{f"BINANCE:{b}USDT": "down" for b in ("TRX", "BCH", "XLM", "ALGO", "EOS", "ICP", "ETC", "VET")},
    "NASDAQ:AAPL": "up", "NASDAQ:MSFT": "up", "NYSE:JPM": "up", "NASDAQ:NVDA": "up", "NYSE:KO": "up",
    "NYSE:XOM": "rip", "NYSE:WFC": "rip", "NYSE:BA": "rip", "NYSE:T": "rip", "NYSE:CVX": "rip",
    "FX:EURUSD": "up", "FX:GBPUSD": "up", "FX:AUDUSD": "up", "FX:NZDUSD": "up",
    "FX:USDJPY": "rip", "FX:USDCHF": "rip", "FX:USDCAD": "rip",
}


def _row(base: dict, **over) -> dict:
    return {**base, **over}


def tables() -> dict[str, list[dict]]:
    """Screener rows per market (the fake's ``tables``): the recordings plus the listings named above."""
    out = {}
    for market in ("crypto", "america", "forex", "futures", "cfd"):
        cols, data = load_recording(market)
        out[market] = [{"ticker": r["s"], **dict(zip(cols, r["d"], strict=True)), "_in_SPX": r.get("in_SPX", False)}
                       for r in data]
    spot = next(r for r in out["crypto"] if r["ticker"] == "BINANCE:SOLUSDT")
    perp = next(r for r in out["crypto"] if r["ticker"] == "BINANCE:SOLUSDT.P")

    def coin(ticker, desc, close, traded, rating, ma, rsi, sma50, sma200, base=spot):
        name = ticker.split(":")[1]
        return _row(base, ticker=ticker, name=name, description=desc, close=close, volume=traded / close,
                    **{"Value.Traded": traded, "Recommend.All": rating, "Recommend.MA": ma,
                       "Recommend.Other": 2 * rating - ma, "RSI": rsi, "SMA50": sma50, "SMA200": sma200,
                       "ATR": close * 0.04})

    out["crypto"] += [
        coin("BINANCE:BNBUSDT", "BNB / TetherUS", 580.0, 2.5e8, 0.62, 0.8, 66.0, 520.0, 410.0),
        coin("BINANCE:AVAXUSDT", "Avalanche / TetherUS", 52.0, 1.8e8, 0.58, 0.73, 63.0, 44.0, 31.0),
        coin("BINANCE:DOTUSDT", "Polkadot / TetherUS", 6.1, 6.0e7, -0.62, -0.8, 31.0, 7.0, 7.9),
        coin("BINANCE:LTCUSDT", "Litecoin / TetherUS", 62.0, 5.5e7, -0.58, -0.73, 34.0, 70.0, 79.0),
        coin("BINANCE:FILUSDT", "Filecoin / TetherUS", 5.8, 4.0e7, -0.2, -0.47, 78.0, 5.1, 6.4),
        coin("BINANCE:ATOMUSDT", "Cosmos / TetherUS", 8.9, 3.5e7, -0.15, -0.4, 77.0, 8.0, 10.2),
        coin("BINANCE:NEARUSDT", "NEAR Protocol / TetherUS", 3.9, 3.0e7, -0.18, -0.47, 81.0, 3.4, 4.6),
        coin("BINANCE:APTUSDT", "Aptos / TetherUS", 7.2, 2.8e7, -0.1, -0.33, 76.0, 6.5, 8.3),
        *(coin(f"BINANCE:{b}USDT", f"{d} / TetherUS", c, vt, 0.6, 0.8, 64.0, c * 0.9, c * 0.72)
          for b, d, c, vt in (("PEPE", "Pepe", 8.5e-6, 9.0e8), ("WIF", "dogwifhat", 3.1, 4.0e8),
                              ("FET", "Fetch.ai", 2.9, 3.0e8), ("RNDR", "Render", 10.5, 2.2e8),
                              ("INJ", "Injective", 41.0, 1.5e8), ("ARB", "Arbitrum", 1.6, 1.4e8),
                              ("OP", "Optimism", 3.6, 1.2e8), ("SHIB", "Shiba Inu", 2.9e-5, 3.5e8))),
        *(coin(f"BINANCE:{b}USDT", f"{d} / TetherUS", c, vt, -0.6, -0.8, 33.0, c * 1.1, c * 1.3)
          for b, d, c, vt in (("TRX", "TRON", 0.11, 9.0e7), ("BCH", "Bitcoin Cash", 420.0, 8.0e7),
                              ("XLM", "Stellar Lumens", 0.11, 3.0e7), ("ALGO", "Algorand", 0.19, 2.5e7),
                              ("EOS", "EOS", 0.8, 2.0e7), ("ICP", "Internet Computer", 12.0, 4.5e7),
                              ("ETC", "Ethereum Classic", 27.0, 6.0e7), ("VET", "VeChain", 0.035, 2.2e7))),
        coin("BINANCE:BNBUSDT.P", "BNBUSDT Perpetual", 580.2, 9.0e8, 0.62, 0.8, 66.0, 520.0, 410.0, base=perp),
        # the perpetuals of the rips: where a short of them is traded (implementation alternatives)
        *(coin(f"BINANCE:{b}USDT.P", f"{b}USDT Perpetual", c, vt, -0.15, -0.4, 77.0, c * 0.88, c * 1.12, base=perp)
          for b, c, vt in (("FIL", 5.81, 1.2e8), ("ATOM", 8.91, 9.0e7), ("NEAR", 3.91, 1.1e8), ("APT", 7.21, 8.0e7))),
    ]
    for r in out["crypto"]:  # the other rows: RSI and SMA50 of their trend
        r.setdefault("RSI", 35.0 if TRENDS.get(r["ticker"]) == "down" else 58.0)
        r.setdefault("SMA50", r["SMA200"] * (0.98 if TRENDS.get(r["ticker"]) == "down" else 1.05))
    for r in out["crypto"]:  # the perps of DOGE and XRP declined: below their averages
        if r["ticker"] in ("BINANCE:DOGEUSDT.P", "BINANCE:XRPUSDT.P", "BINANCE:DOGEUSDT"):
            r["SMA200"] = r["close"] * 1.12

    aapl = out["america"][0]

    def stock(ticker, desc, close, traded, sector, industry, rsi, sma50, sma200, adx=24.0, rating=-0.2):
        return _row(aapl, ticker=ticker, name=ticker.split(":")[1], description=desc, exchange=ticker.split(":")[0],
                    close=close, volume=traded / close, sector=sector, industry=industry, ADX=adx,
                    market_cap_basic=traded * 150, **{"Value.Traded": traded, "RSI": rsi, "SMA50": sma50,
                                                      "SMA200": sma200, "Recommend.All": rating,
                                                      "Recommend.MA": -0.4, "ATR": close * 0.025})

    for r in out["america"]:
        if r["ticker"] == "NYSE:XOM":  # below a falling 200-day average, a rally into it: a rip
            r.update(RSI=67.0, SMA50=116.0, SMA200=121.0)
        else:
            r.setdefault("RSI", 58.0)
            r.setdefault("SMA50", r["SMA200"] * 1.05)
    out["america"] += [
        stock("NASDAQ:NVDA", "NVIDIA Corporation", 130.0, 3.0e10, "Electronic Technology", "Semiconductors", 61.0,
              120.0, 100.0, adx=33.0, rating=0.5),
        stock("NYSE:WFC", "Wells Fargo & Company", 29.0, 7.0e8, "Finance", "Major Banks", 68.0, 30.5, 33.0),
        stock("NYSE:BA", "Boeing Company (The)", 205.0, 1.9e9, "Electronic Technology", "Aerospace & Defense", 66.0,
              212.0, 226.0),
        stock("NYSE:T", "AT&T Inc.", 28.5, 9.0e8, "Communications", "Major Telecommunications", 69.0, 29.4, 30.8),
        stock("NYSE:CVX", "Chevron Corporation", 92.0, 1.1e9, "Energy Minerals", "Integrated Oil", 70.0, 95.0, 101.0),
    ]
    for r in out["america"][-5:]:
        r["_in_SPX"] = True
    nvda = out["america"][-5]
    nvda["Recommend.MA"] = 0.6
    nvda["SMA50"] = 120.0

    eur = out["forex"][0]

    def pair(name, desc, close, currency, scale, rsi, sma50, sma200, adx):
        return _row(eur, ticker=f"FX:{name}", name=name, description=desc, currency=currency, pricescale=scale,
                    close=close, ADX=adx, RSI=rsi, SMA50=sma50, SMA200=sma200, ATR=close * 0.006,
                    **{"Value.Traded": close * eur["volume"], "Recommend.All": -0.3, "Recommend.MA": -0.5})

    for r in out["forex"]:
        if r["ticker"] == "FX:USDJPY":  # the dollar fell against the yen: a rally inside the decline
            r.update(close=104.0, SMA200=106.5, SMA50=104.6, RSI=66.0, ADX=21,
                     **{"Recommend.All": -0.2, "Recommend.MA": -0.4})
        else:
            r.setdefault("RSI", 57.0)
            r.setdefault("SMA50", r["SMA200"] * 1.02)
    out["forex"] += [
        pair("USDCHF", "U.S. Dollar / Swiss Franc", 0.889, "CHF", 100000, 67.0, 0.893, 0.925, 22),
        pair("USDCAD", "U.S. Dollar / Canadian Dollar", 1.279, "CAD", 100000, 65.5, 1.284, 1.331, 24),
        pair("NZDUSD", "New Zealand Dollar / U.S. Dollar", 0.718, "USD", 100000, 58.0, 0.707, 0.66, 25),
    ]
    out["forex"][-1].update(**{"Recommend.All": 0.3, "Recommend.MA": 0.4})
    for market in ("futures", "cfd"):
        for r in out[market]:
            r.setdefault("RSI", 57.0)
            r.setdefault("SMA50", r["SMA200"] * 1.02)
    return out


def _path(dates: pd.DatetimeIndex, seed: int, close: float, trend: str, vol: float, traded: float | None,
          volume: float) -> pd.DataFrame:
    """OHLCV on ``dates`` ending at ``close``: a random walk, then the trend over the last 260 sessions."""
    rng = np.random.default_rng(seed)
    n = len(dates)
    drift = np.full(n, 0.0002)
    tail = min(260, n)
    k = np.arange(tail)
    step = 0.15 * vol  # the trend's daily log drift, in proportion to the market's volatility
    if trend == "up":
        drift[-tail:] = step
    elif trend == "down":
        drift[-tail:] = -step
    elif trend == "rip":  # a decline, then a relief rally over the last three weeks
        drift[-tail:] = np.where(k < tail - 15, -0.6 * step, 1.5 * step)
    noise = rng.normal(0.0, vol * (0.35 if trend in ("up", "down") else 1.0), n)
    logc = np.cumsum(drift + noise)
    c = close * np.exp(logc - logc[-1])
    o = np.concatenate([[c[0]], c[:-1]]) * (1 + rng.normal(0, vol / 6, n))
    hi = np.maximum(o, c) * (1 + np.abs(rng.normal(0, vol / 3, n)))
    lo = np.minimum(o, c) * (1 - np.abs(rng.normal(0, vol / 3, n)))
    level = traded / close if traded else volume
    v = np.round(level * rng.lognormal(0.0, 0.25, n)) + 1
    return pd.DataFrame({"date": dates.as_unit("ns"), "open": o, "high": hi, "low": lo, "close": c, "volume": v})


def bars(table: dict[str, list[dict]] | None = None) -> dict[str, tuple]:
    """The fake's bars of every screener row: sessions of the row's exchange from 2018 (2022 for crypto,
    every manifest's ``history_start``) to the run's "now"."""
    table = table or tables()
    out = {}
    crypto_days = pd.date_range("2022-01-01", CRYPTO_MONTH[2][:10], freq="D")
    end = CME_MONTH[2][:10]
    per_market = {"america": (sessions("XNYS", "2018-01-01", end), "America/New_York", None, 0.015),
                  "forex": (sessions("24/5", "2018-01-01", end), "America/New_York", "fx", 0.005),
                  "cfd": (sessions("24/5", "2018-01-01", end), "America/New_York", "fx", 0.008),
                  "futures": (sessions("CMES", "2018-01-01", end), "America/Chicago", "cme", 0.01)}
    for market, rows in table.items():
        for i, r in enumerate(rows):
            if market == "crypto":
                days, tz, kind, vol = crypto_days, "Etc/UTC", None, 0.03
            else:
                days, tz, kind, vol = per_market[market]
            frame = _path(days, 1000 * (1 + list(table).index(market)) + i, float(r["close"]),
                          TRENDS.get(r["ticker"], "flat"), vol, r.get("Value.Traded"), float(r["volume"]))
            out[r["ticker"]] = (frame, tz, kind) if kind else (frame, tz)
    return out
