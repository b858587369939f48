"""Scanner columns TradingView accepts, per market: a request naming any other column is refused.

The real scanner answers ``HTTP 400 {"error": "Unknown field \"<name>\""}`` for a column its market does not
have. These lists are ours: the columns we request or let presets use, each checked against the per-market
field lists that the tradingview-screener project publishes (``data/metainfo/<market>.json`` and its
``*_fields.html`` pages, 2024-2026). Notably ``base_currency`` is in none of them (the base asset is derived
from the symbol) and futures have no ``Value.Traded`` (it is computed as close x volume).
A field may carry a timeframe suffix (``RSI|60``, ``close|1W``) when its base is a technical one.
"""

from __future__ import annotations

GENERAL = ("name", "description", "exchange", "type", "subtype", "typespecs", "currency", "currency_id",
           "pricescale", "minmov", "logoid", "update_mode", "is_primary", "sector")
TECHNICAL = ("open", "high", "low", "close", "volume", "change", "change_abs", "Perf.W", "Perf.1M", "Perf.3M",
             "Perf.6M", "Perf.Y", "Perf.YTD", "Volatility.D", "Volatility.W", "Volatility.M", "ATR", "ADX",
             "ADX+DI", "ADX-DI", "RSI", "MACD.macd", "MACD.signal", "Mom", "CCI20", "Stoch.K", "Stoch.D",
             "Recommend.All", "Recommend.MA", "Recommend.Other", "SMA20", "SMA50", "SMA100", "SMA200", "EMA20",
             "EMA50", "EMA200", "BB.upper", "BB.lower", "High.1M", "Low.1M", "price_52_week_high",
             "price_52_week_low", "relative_volume_10d_calc", "average_volume_10d_calc", "average_volume_30d_calc",
             "gap", "VWAP")
VALUE_TRADED = ("Value.Traded",)
STOCK = ("country", "fundamental_currency_code", "market_cap_basic", "industry", "price_earnings_ttm",
         "earnings_per_share_basic_ttm", "dividend_yield_recent", "float_shares_outstanding")
CRYPTO = ("country", "market_cap_calc", "24h_vol_cmc", "crypto_total_rank", "total_value_traded",
          "base_currency_kind")
TIMEFRAMES = ("1", "5", "15", "30", "60", "120", "240", "1W", "1M")

MARKET_FIELDS: dict[str, frozenset[str]] = {
    "america": frozenset(GENERAL + TECHNICAL + VALUE_TRADED + STOCK),
    "crypto": frozenset(GENERAL + TECHNICAL + VALUE_TRADED + CRYPTO),
    "forex": frozenset(GENERAL + TECHNICAL + VALUE_TRADED + ("country",)),
    "cfd": frozenset(GENERAL + TECHNICAL + VALUE_TRADED + ("country",)),
    "futures": frozenset(GENERAL + TECHNICAL),
}


def known(market: str, column: str) -> bool:
    fields = MARKET_FIELDS[market]
    if column in fields:
        return True
    base, _, tf = column.partition("|")
    return bool(tf) and tf in TIMEFRAMES and base in TECHNICAL


def unknown_columns(market: str, columns) -> list[str]:
    return [c for c in columns if not known(market, c)]
