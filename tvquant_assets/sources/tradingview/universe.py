"""From screener scans to one universe: raw pool by (identity, direction), one venue per base asset,
and implementation alternatives (e.g. the perpetual of a spot pair's base asset)."""

from __future__ import annotations

import pandas as pd


def merge_pool(scans: list[tuple[str, str, pd.DataFrame]]) -> pd.DataFrame:
    """One row per (ticker, direction); ``scans`` lists every preset that returned it (first row wins)."""
    parts = [f.assign(direction=direction, scan=name) for name, direction, f in scans if len(f)]
    if not parts:
        return pd.DataFrame(columns=["ticker", "direction", "scans"])
    raw = pd.concat(parts, ignore_index=True)
    names = raw.groupby(["ticker", "direction"], sort=False)["scan"].agg(lambda s: ",".join(dict.fromkeys(s)))
    pool = raw.drop_duplicates(["ticker", "direction"], keep="first").drop(columns="scan")
    pool = pool.merge(names.rename("scans").reset_index(), on=["ticker", "direction"])
    return pool.reset_index(drop=True)


def derived_base(name: str, currency: str) -> str:
    """The base asset of a pair from its name and quote currency: ``BTCUSDT.P`` / USDT -> ``BTC``."""
    core = name.split(".")[0] if name.endswith((".P", ".PERP")) else name
    return core[: -len(currency)] if currency and core.endswith(currency) and len(core) > len(currency) else core


def base_asset(pool: pd.DataFrame, base_field: str) -> pd.Series:
    if base_field == "derived":
        names = pool["name"] if "name" in pool else pool["ticker"].str.split(":").str[-1]
        cur = pool["currency"] if "currency" in pool else pd.Series("", index=pool.index)
        return pd.Series([derived_base(str(n), "" if c is None else str(c)) for n, c in zip(names, cur, strict=True)],
                         index=pool.index, dtype=object)
    if base_field in pool and pool[base_field].notna().all():
        return pool[base_field].astype(str)
    return pool["ticker"].str.split(":").str[-1]


def one_venue_per_base(pool: pd.DataFrame, base_field: str, quote_priority: list[str]) -> pd.DataFrame:
    """Keep one ticker per (base asset, direction): the best-ranked quote currency, then the most value
    traded, then the ticker name (deterministic)."""
    if pool.empty:
        return pool.assign(base=pd.Series(dtype=str))
    out = pool.assign(base=base_asset(pool, base_field))
    rank = {q: i for i, q in enumerate(quote_priority)}
    out["_quote_rank"] = out["currency"].map(rank).fillna(len(rank)).astype(int)
    out["_vt"] = -pd.to_numeric(out.get("Value.Traded"), errors="coerce").fillna(0.0)
    out = out.sort_values(["base", "direction", "_quote_rank", "_vt", "ticker"], kind="stable")
    out = out.drop_duplicates(["base", "direction"], keep="first").drop(columns=["_quote_rank", "_vt"])
    return out.sort_values(["direction", "ticker"], kind="stable").reset_index(drop=True)


def alternatives(universe: pd.DataFrame, alt: pd.DataFrame, base_field: str,
                 quote_priority: list[str]) -> pd.DataFrame:
    """For each universe base asset, the best alternative instrument (e.g. its perpetual) and venue."""
    cols = ["ticker", "alt_ticker", "alt_exchange", "alt_type"]
    if universe.empty or alt.empty:
        return pd.DataFrame(columns=cols)
    best = one_venue_per_base(alt.assign(direction="any"), base_field, quote_priority)
    best = best.rename(columns={"ticker": "alt_ticker", "exchange": "alt_exchange", "type": "alt_type"})
    merged = universe[["ticker", "base"]].merge(best[["base", "alt_ticker", "alt_exchange", "alt_type"]],
                                                on="base", how="inner")
    return merged[cols].drop_duplicates("ticker").sort_values("ticker").reset_index(drop=True)
