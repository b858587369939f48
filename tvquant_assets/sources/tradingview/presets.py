"""Layered screener presets: a preset may ``extends`` another; dicts deep-merge, lists and scalars replace.

A preset holds the shared rules (``filter``) and direction rules (``long.filter`` / ``short.filter``).
Filters are mappings ``name -> {left, operation, right}`` so a child can override a rule by name or drop
it with ``null``. Shared filters may not use a directional field (ratings, performance, moving-average
trend...): such a rule belongs to one direction, so a short scan can never inherit a long trend rule.
No imports from the rest of ``sources`` here: the manifest schema validates presets through this module.
"""

from __future__ import annotations

import copy
from typing import Any

PRESET_KEYS = {"extends", "description", "market", "columns", "filter", "long", "short", "sort", "symbols",
               "preset", "limit", "base_field"}
DIRECTION_KEYS = {"filter"}
MARKETS = ("crypto", "america", "forex", "futures", "cfd")  # cfd: metals and index CFDs (XAUUSD...)
OPERATIONS = {"greater", "egreater", "less", "eless", "equal", "nequal", "in_range", "not_in_range", "empty",
              "nempty", "match", "nmatch", "smatch", "has", "has_none_of", "above%", "below%", "in_range%",
              "not_in_range%", "crosses", "crosses_above", "crosses_below"}
# Fields whose value says which way a market moves: they may only appear in long/short filters.
DIRECTIONAL_PREFIXES = ("Recommend.", "Perf.", "change", "Mom", "RSI", "MACD", "Stoch", "CCI", "AO", "W.R",
                        "BBPower", "UO", "EMA", "SMA", "HullMA", "VWMA", "Ichimoku", "gap", "High.", "Low.",
                        "price_52_week", "ADX+DI", "ADX-DI")
# Columns every scan fetches: the catalog, the parity check and the live side of scanner fields need them
# (a market without one of them, e.g. futures without Value.Traded, skips it: see columns.py).
REQUIRED_COLUMNS = ("name", "description", "exchange", "type", "currency", "pricescale", "minmov", "close",
                    "volume", "Value.Traded", "Perf.W", "Perf.1M", "Perf.3M", "Volatility.D", "ATR", "ADX",
                    "Recommend.All", "Recommend.MA", "Recommend.Other")
MARKET_COLUMNS = {"crypto": (), "america": ("sector", "industry"), "forex": (), "futures": (), "cfd": ()}
# base_field "derived": the base asset is the symbol's name without a perpetual suffix and its quote currency
# (BTCUSDT.P quoted in USDT -> BTC); TradingView's scanner has no base_currency column.
DERIVED_BASE = "derived"
USD_STABLE = ["USDT", "USDC", "FDUSD", "TUSD", "DAI", "USD"]


def _rule(left: str, operation: str, right: Any = None) -> dict:
    return {"left": left, "operation": operation, "right": right}


BUILTIN_PRESETS: dict[str, dict] = {
    "crypto_base": {
        "description": "Crypto market, most liquid first.",
        "market": "crypto",
        "sort": {"sortBy": "Value.Traded", "sortOrder": "desc"},
        "base_field": DERIVED_BASE,
        "filter": {"priced": _rule("close", "greater", 0)},
    },
    "binance_spot": {
        "extends": "crypto_base",
        "description": "Binance spot pairs quoted in USD stablecoins, value traded >= $1M.",
        "filter": {"exchange": _rule("exchange", "equal", "BINANCE"), "spot": _rule("type", "equal", "spot"),
                   "usd_quote": _rule("currency", "in_range", USD_STABLE),
                   "liquid": _rule("Value.Traded", "egreater", 1_000_000)},
        "long": {"filter": {"trend": _rule("Recommend.MA", "greater", 0)}},
        "short": {"filter": {"trend": _rule("Recommend.MA", "less", 0)}},
    },
    "binance_perp": {
        "extends": "crypto_base",
        "description": "Binance USD-margined perpetual swaps, value traded >= $50M.",
        "filter": {"exchange": _rule("exchange", "equal", "BINANCE"), "swap": _rule("type", "equal", "swap"),
                   "perpetual": _rule("typespecs", "has", ["perpetual"]),
                   "usd_quote": _rule("currency", "in_range", USD_STABLE),
                   "liquid": _rule("Value.Traded", "egreater", 50_000_000)},
        "long": {"filter": {"trend": _rule("Recommend.MA", "greater", 0)}},
        "short": {"filter": {"trend": _rule("Recommend.MA", "less", 0)}},
    },
    "binance_rating": {
        "extends": "binance_spot",
        "description": "Rating All: strong buy (long) / strong sell (short) on Binance spot.",
        "long": {"filter": {"trend": None, "rating": _rule("Recommend.All", "egreater", 0.5)}},
        "short": {"filter": {"trend": None, "rating": _rule("Recommend.All", "eless", -0.5)}},
    },
    "us_equities": {
        "description": "S&P 500 members, value traded >= $10M, trend strength ADX >= 20.",
        "market": "america",
        "preset": "index_components_market_pages",
        "symbols": {"symbolset": ["SYML:SP;SPX"]},
        "sort": {"sortBy": "market_cap_basic", "sortOrder": "desc"},
        "base_field": "name",
        "filter": {"stock": _rule("type", "in_range", ["stock", "dr"]),
                   "liquid": _rule("Value.Traded", "egreater", 10_000_000),
                   "trending": _rule("ADX", "egreater", 20)},
        "long": {"filter": {"trend": _rule("close", "greater", "SMA200")}},
        "short": {"filter": {"trend": _rule("close", "less", "SMA200")}},
    },
    "forex_majors": {
        "description": "The seven USD major pairs.",
        "market": "forex",
        "sort": {"sortBy": "name", "sortOrder": "asc"},
        "base_field": "name",
        "filter": {"majors": _rule("name", "in_range", ["EURUSD", "GBPUSD", "USDJPY", "USDCHF", "AUDUSD",
                                                         "USDCAD", "NZDUSD"]),
                   "venue": _rule("exchange", "equal", "FX")},
    },
    "futures_cme": {
        "description": "Continuous front-month futures on CME, CME mini, COMEX and NYMEX.",
        "market": "futures",
        "sort": {"sortBy": "volume", "sortOrder": "desc"},  # futures have no Value.Traded field
        "base_field": "name",
        "filter": {"venue": _rule("exchange", "in_range", ["CME", "CME_MINI", "COMEX", "NYMEX"]),
                   "continuous": _rule("typespecs", "has", ["continuous"])},
    },
    "metals": {
        "description": "Spot precious metals against USD (CFDs on OANDA: gold, silver, platinum, palladium).",
        "market": "cfd",
        "sort": {"sortBy": "name", "sortOrder": "asc"},
        "base_field": "name",
        "filter": {"metals": _rule("name", "in_range", ["XAUUSD", "XAGUSD", "XPTUSD", "XPDUSD"]),
                   "venue": _rule("exchange", "equal", "OANDA")},
    },
}


# --- selling rips (short mean reversion): overbought inside a confirmed downtrend, per asset class -------
# Use with ``direction: short``. The short side keeps the parent's "close below its 200-day average" and
# adds a falling 50/200 average (the downtrend is confirmed) and an overbought RSI; thresholds follow each
# class's volatility: equities and FX revert from a lower RSI than crypto, which runs hot.
SELLING_RIPS_PRESETS: dict[str, dict] = {
    "us_equities_selling_rips": {
        "extends": "us_equities",
        "description": "Selling rips, US equities: S&P 500 members below a falling 200-day average with RSI >= 65, "
                       "value traded >= $20M.",
        "filter": {"liquid": _rule("Value.Traded", "egreater", 20_000_000), "trending": None},
        "short": {"filter": {"trend": _rule("close", "less", "SMA200"), "confirmed": _rule("SMA50", "less", "SMA200"),
                             "overbought": _rule("RSI", "egreater", 65)}},
    },
    "forex_selling_rips": {
        "extends": "forex_majors",
        "description": "Selling rips, FX majors: below a falling 200-day average with RSI >= 65 and ADX >= 15.",
        "filter": {"trending": _rule("ADX", "egreater", 15)},
        "short": {"filter": {"trend": _rule("close", "less", "SMA200"), "confirmed": _rule("SMA50", "less", "SMA200"),
                             "overbought": _rule("RSI", "egreater", 65)}},
    },
    "crypto_selling_rips": {
        "extends": "binance_spot",
        "description": "Selling rips, crypto: Binance spot below a falling 200-day average with RSI >= 75, "
                       "value traded >= $5M.",
        "filter": {"liquid": _rule("Value.Traded", "egreater", 5_000_000)},
        "short": {"filter": {"trend": _rule("close", "less", "SMA200"), "confirmed": _rule("SMA50", "less", "SMA200"),
                             "overbought": _rule("RSI", "egreater", 75)}},
    },
}
BUILTIN_PRESETS.update(SELLING_RIPS_PRESETS)


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: nested dicts merge, everything else (lists too) replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _drop_nulls(filters: dict | None) -> dict:
    return {k: v for k, v in (filters or {}).items() if v is not None}


def resolve_preset(name: str, presets: dict[str, dict] | None = None) -> dict:
    """The preset ``name`` with its ``extends`` chain merged (manifest presets shadow built-ins)."""
    table = {**BUILTIN_PRESETS, **(presets or {})}
    chain, cur = [], name
    while cur is not None:
        if cur in chain:
            raise ValueError(f"preset {name!r}: extends cycle {' -> '.join([*chain, cur])}")
        if cur not in table:
            where = f"preset {name!r}" + (f" extends {cur!r}" if cur != name else "")
            raise ValueError(f"{where}: unknown preset (known: {', '.join(sorted(table))})")
        chain.append(cur)
        cur = table[cur].get("extends")
    merged: dict = {}
    for link in reversed(chain):
        merged = deep_merge(merged, {k: v for k, v in table[link].items() if k != "extends"})
    merged["filter"] = _drop_nulls(merged.get("filter"))
    for side in ("long", "short"):
        merged[side] = {"filter": _drop_nulls((merged.get(side) or {}).get("filter"))}
    merged["name"] = name
    return merged


def _directional(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(DIRECTIONAL_PREFIXES)


def _check_rule(where: str, rule: Any) -> None:
    if not isinstance(rule, dict) or set(rule) - {"left", "operation", "right"} or "left" not in rule:
        raise ValueError(f"{where}: a rule is {{left, operation, right}}, got {rule!r}")
    if rule.get("operation") not in OPERATIONS:
        raise ValueError(f"{where}: unknown operation {rule.get('operation')!r} "
                         f"(allowed: {', '.join(sorted(OPERATIONS))})")


def validate_preset(name: str, preset: dict) -> None:
    """Raise ValueError naming the preset and field for an invalid or direction-incorrect preset."""
    unknown = sorted(set(preset) - PRESET_KEYS - {"name"})
    if unknown:
        raise ValueError(f"preset {name!r}: unknown key(s) {', '.join(unknown)} "
                         f"(allowed: {', '.join(sorted(PRESET_KEYS))})")
    if preset.get("market") not in MARKETS:
        raise ValueError(f"preset {name!r}: market {preset.get('market')!r} (allowed: {', '.join(MARKETS)})")
    _check_columns(name, preset)
    for rule_name, rule in preset.get("filter", {}).items():
        _check_rule(f"preset {name!r}: filter.{rule_name}", rule)
        if _directional(rule["left"]) or _directional(rule.get("right")):
            raise ValueError(f"preset {name!r}: filter.{rule_name} uses directional field "
                             f"{rule['left']!r}; move it under long.filter or short.filter")
    for side in ("long", "short"):
        extra = sorted(set(preset.get(side) or {}) - DIRECTION_KEYS)
        if extra:
            raise ValueError(f"preset {name!r}: {side}: unknown key(s) {', '.join(extra)} (allowed: filter)")
        for rule_name, rule in preset[side]["filter"].items():
            _check_rule(f"preset {name!r}: {side}.filter.{rule_name}", rule)


def _check_columns(name: str, preset: dict) -> None:
    """Every column a preset names must exist in its market's scanner fields (the real scanner refuses others)."""
    from tvquant_assets.sources.tradingview.columns import known

    market = preset["market"]
    named = [("columns", c) for c in preset.get("columns") or []]
    if (preset.get("sort") or {}).get("sortBy"):
        named.append(("sort.sortBy", preset["sort"]["sortBy"]))
    if preset.get("base_field") not in (None, DERIVED_BASE):
        named.append(("base_field", preset["base_field"]))
    for where, filters in (("filter", preset.get("filter", {})), ("long.filter", preset["long"]["filter"]),
                           ("short.filter", preset["short"]["filter"])):
        for rule_name, rule in filters.items():
            named.append((f"{where}.{rule_name}", rule["left"]))
    for where, col in named:
        if not known(market, col):
            raise ValueError(f"preset {name!r}: {where}: {col!r} is not a TradingView {market} scanner field "
                             "(the scanner answers HTTP 400 Unknown field)")


def check_presets(presets: dict[str, dict], used: list[str]) -> None:
    """Validate every manifest preset and every preset a scan uses (raises ValueError)."""
    for name in sorted(set(presets) | {u for u in used if u}):
        validate_preset(name, resolve_preset(name, presets))


def scan_filters(preset: dict, direction: str) -> list[dict]:
    """Shared rules plus the rules of ``direction`` only, in name order within each group."""
    rules = [preset["filter"][k] for k in sorted(preset["filter"])]
    if direction not in ("long", "short"):  # a neutral scan (implementation alternatives): shared rules only
        return rules
    side = preset[direction]["filter"]
    return rules + [side[k] for k in sorted(side)]


def scan_columns(preset: dict) -> list[str]:
    from tvquant_assets.sources.tradingview.columns import known

    market = preset["market"]
    required = [c for c in REQUIRED_COLUMNS if known(market, c)]
    cols = required + list(MARKET_COLUMNS[market]) + list(preset.get("columns") or [])
    return list(dict.fromkeys(cols))


def build_payload(preset: dict, direction: str, offset: int, limit: int) -> dict:
    """The POST body of one page, built with tradingview-screener's ``Query``."""
    from tradingview_screener import Query

    q = Query().set_markets(preset["market"]).select(*scan_columns(preset)).where(*scan_filters(preset, direction))
    sort = preset.get("sort")
    if sort:
        q = q.order_by(sort["sortBy"], ascending=sort.get("sortOrder", "desc") == "asc")
    q = q.offset(offset).limit(offset + limit)
    if preset.get("symbols"):
        q = q.set_property("symbols", copy.deepcopy(preset["symbols"]))
    if preset.get("preset"):
        q = q.set_property("preset", preset["preset"])
    payload = copy.deepcopy(q.query)
    payload.pop("filter2", None)  # Query's default is a US-stock type filter; our presets say what they mean
    payload["markets"] = [preset["market"]]
    return payload
