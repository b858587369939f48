"""Point-in-time catalog as an SCD-2 table and metadata parity against a live screener snapshot.

Each (symbol, attribute set) version has ``valid_from`` and ``valid_until`` (NaT while current). A new
snapshot closes a version whose attributes changed (``valid_until`` = the day before) and opens a new one;
a symbol missing from the snapshot is closed. ``as_of(D)`` returns the versions valid on D.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ATTRIBUTES = ["exchange", "type", "sector", "industry", "currency", "tick_size", "description"]
SCD_COLUMNS = ["symbol", *ATTRIBUTES, "valid_from", "valid_until"]


def catalog_rows(universe: pd.DataFrame) -> pd.DataFrame:
    """Catalog attributes from screener rows (``ticker`` + TradingView columns)."""
    u = universe.drop_duplicates("ticker")

    def col(name, default=""):
        return u[name].fillna(default).astype(str) if name in u else pd.Series(default, index=u.index)

    pricescale = pd.to_numeric(u.get("pricescale"), errors="coerce")
    minmov = pd.to_numeric(u.get("minmov"), errors="coerce")
    out = pd.DataFrame({
        "symbol": u["ticker"].astype(str),
        "exchange": col("exchange"),
        "type": col("type"),
        "sector": col("sector"),
        "industry": col("industry"),
        "currency": col("currency"),
        "tick_size": (minmov / pricescale).astype("float64"),
        "description": col("description"),
    })
    return out.sort_values("symbol").reset_index(drop=True)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    eq = np.ones(len(a), dtype=bool)
    for c in ATTRIBUTES:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        if c == "tick_size":
            eq &= np.isclose(x.astype(float), y.astype(float), rtol=1e-9, atol=0) | (np.isnan(x.astype(float))
                                                                                      & np.isnan(y.astype(float)))
        else:
            eq &= x == y
    return eq


def scd2_update(history: pd.DataFrame | None, snapshot: pd.DataFrame, date) -> pd.DataFrame:
    """Apply the snapshot of ``date`` (from ``catalog_rows``) to the SCD-2 history."""
    d = pd.Timestamp(date).normalize()
    snap = snapshot[["symbol", *ATTRIBUTES]].drop_duplicates("symbol")
    if history is None or history.empty:
        return snap.assign(valid_from=d, valid_until=pd.NaT).astype({"valid_from": "datetime64[ns]",
                                                                     "valid_until": "datetime64[ns]"})
    hist = history.copy()
    if (hist["valid_from"] > d).any():
        raise ValueError(f"catalog snapshot {d.date()} is older than the history's last version; "
                         "snapshots must be applied in date order")
    current = hist["valid_until"].isna()
    cur = hist.loc[current].set_index("symbol")
    new = snap.set_index("symbol")
    both = cur.index.intersection(new.index)
    changed = both[~_same(cur.loc[both].reset_index(), new.loc[both].reset_index())]
    gone = cur.index.difference(new.index)
    close = current & hist["symbol"].isin(changed.union(gone))
    hist.loc[close, "valid_until"] = d - pd.Timedelta(days=1)
    opened = new.loc[changed.union(new.index.difference(cur.index))].reset_index()
    opened = opened.assign(valid_from=d, valid_until=pd.NaT)
    out = pd.concat([hist, opened], ignore_index=True)
    out["valid_from"] = pd.to_datetime(out["valid_from"]).astype("datetime64[ns]")
    out["valid_until"] = pd.to_datetime(out["valid_until"]).astype("datetime64[ns]")
    return out.sort_values(["symbol", "valid_from"], kind="stable").reset_index(drop=True)[SCD_COLUMNS]


def as_of(history: pd.DataFrame, date) -> pd.DataFrame:
    """The version of every symbol valid on ``date`` (none for symbols not known then)."""
    d = pd.Timestamp(date).normalize()
    ok = (history["valid_from"] <= d) & (history["valid_until"].isna() | (history["valid_until"] >= d))
    return history.loc[ok].sort_values("symbol").reset_index(drop=True)


PARITY_COLUMNS = ["symbol", "field", "stored", "live"]


def parity(stored: pd.DataFrame, live: pd.DataFrame, fields: list[str]) -> pd.DataFrame:
    """Mismatches between the stored catalog and live screener rows (both in ``catalog_rows`` form), one
    row per (symbol, field); a symbol missing on either side is reported with field ``listed``."""
    s, lv = stored.set_index("symbol"), live.set_index("symbol")
    rows = []
    for sym in sorted(s.index.union(lv.index)):
        if sym not in lv.index or sym not in s.index:
            rows.append((sym, "listed", str(sym in s.index), str(sym in lv.index)))
            continue
        for f in fields:
            a, b = s.at[sym, f], lv.at[sym, f]
            if f == "tick_size":
                bad = not (np.isclose(float(a), float(b), rtol=1e-9, atol=0) or (np.isnan(float(a))
                                                                                  and np.isnan(float(b))))
            else:
                bad = str(a) != str(b)
            if bad:
                rows.append((sym, f, str(a), str(b)))
    return pd.DataFrame(rows, columns=PARITY_COLUMNS)
