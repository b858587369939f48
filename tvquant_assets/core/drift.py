"""Drift monitor: the book a candidate holds after D's close (drifted since its last trade) against its
latest targets, and the orders that bring it back when the drift exceeds the threshold.

Drift is ``sum_i |held_i - target_i|`` (the turnover a full rebalance would need). Above ``threshold`` the
monitor emits orders: ``full`` trades every name to its target; ``partial`` only names off by more than
``band`` (the manifest's drift band). Quantities are in units of the instrument at D's close on a book worth
``notional x equity`` (fractional: lot rounding belongs to the broker). Point in time: everything for D comes
from closes and decisions dated <= D.

Execution ranking: when a limit binds (``max_orders`` per day, ``max_traded`` notional as a fraction of the
book) or a name to trade has no price, the monitor restores **cluster** allocations instead of single names
(names of a selection cluster are close substitutes): clusters by the size of their net gap
``sum_i (target_i - held_i)``, largest first; inside a cluster the names in execution rank (the selection's
``execution_score``: higher value traded, lower realized volatility first) each take their own gap in the
cluster's direction while orders remain; what is left of the cluster's gap (names without a price, or cut by
the order count) goes to the best-ranked name ordered. Opposite-signed trades inside a cluster are not sent
(the cluster's allocation does not need them). ``max_traded`` clips the last order. Each row says why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tvquant_assets.core.frames import typed

COLUMNS: dict[str, str] = {
    "candidate": "str",
    "symbol": "str",
    "weight": "float64",
    "target": "float64",
    "price": "float64",
    "side": "str",
    "quantity": "float64",
    "notional": "float64",
    "reason": "str",
    "drift": "float64",
    "threshold": "float64",
    "book_value": "float64",
    "cost": "float64",
    "cluster": "int64",
    "execution_rank": "int64",
    "instrument": "str",
}
INSTRUMENT_RULES = ("primary", "alternative")
"""What an order trades (``backtest.drift.instrument``): the symbol, or its implementation alternative of D."""
SIDES = ("buy", "sell", "sell_short", "buy_to_cover", "none")
"""Order sides: a sell that leaves the name short is ``sell_short``; a buy of a name held short is
``buy_to_cover`` (an order that crosses zero is one ticket named after its first leg's side, its reason says
so)."""


def drift_orders(candidate: str, held: pd.Series, target: pd.Series, prices: pd.Series, book_value: float,
                 threshold: float, band: float = 0.0, mode: str = "partial", *, cost_rate: float | pd.Series = 0.0,
                 clusters: pd.Series | None = None, execution_score: pd.Series | None = None,
                 max_orders: int | None = None, max_traded: float | None = None) -> pd.DataFrame:
    """One row per name held or targeted: drifted weight, target, and the order (side ``none`` when no trade).

    Parameters
    ----------
    candidate : str
    held, target : Series
        Weights by symbol after D's close (drifted) and of the latest decision (absent = 0).
    prices : Series
        Last close <= D by symbol (NaN: no price yet, the name cannot be ordered).
    book_value : float
        Portfolio value the quantities are sized on.
    threshold : float
        Drift above which orders are emitted.
    band : float
        ``partial`` mode: names within the band are left alone.
    mode : {"partial", "full"}
    cost_rate : float or Series
        Expected cost per unit of traded notional (commission + slippage estimate) by symbol: ``cost`` column.
    clusters, execution_score : Series, optional
        The selection's cluster id and execution score by symbol (absent: a cluster of its own, ranked last).
    max_orders, max_traded : optional
        Most orders, and most traded notional as a fraction of the book; either (or a name without a
        price) switches to cluster restoration in execution rank.
    """
    if mode not in ("partial", "full"):
        raise ValueError(f"drift mode {mode!r} must be partial or full")
    names = sorted(set(held.index[held.fillna(0.0) != 0.0]) | set(target.index[target.fillna(0.0) != 0.0]))
    w = held.reindex(names).fillna(0.0).to_numpy(dtype=float)
    t = target.reindex(names).fillna(0.0).to_numpy(dtype=float)
    px = prices.reindex(names).to_numpy(dtype=float)
    gap = t - w
    drift = float(np.abs(gap).sum())
    over = drift > threshold
    trade = over & (np.abs(gap) > (band if mode == "partial" else 0.0)) & (np.abs(gap) > 1e-12)
    priced = np.isfinite(px) & (px > 0)
    notional = np.where(trade & priced, np.abs(gap) * book_value, 0.0)
    cluster_id = np.full(len(names), -1, dtype=np.int64)
    exec_rank = np.zeros(len(names), dtype=np.int64)
    reasons_by_rank: dict[int, str] = {}
    if clusters is not None:
        known = clusters.reindex(names)
        cluster_id = np.where(known.notna(), known.fillna(-1).to_numpy(dtype=float), -1).astype(np.int64)
    own = cluster_id < 0  # unclustered names: a cluster of their own
    cluster_id = np.where(own, -1 - np.arange(len(names)), cluster_id)
    score = (execution_score.reindex(names).to_numpy(dtype=float) if execution_score is not None
             else np.full(len(names), np.nan))
    for c in np.unique(cluster_id):
        idx = np.flatnonzero(cluster_id == c)
        order = sorted(idx, key=lambda i: (np.isnan(score[i]), -np.nan_to_num(score[i]), names[i]))
        exec_rank[order] = np.arange(1, len(order) + 1)
    limited = max_orders is not None or max_traded is not None
    if over and (limited or (clusters is not None and (trade & ~priced).any())):
        signed, reasons_by_rank = _restore_clusters(names, gap, trade, priced, cluster_id, exec_rank,
                                                    max_orders, max_traded)
        notional = np.abs(signed) * book_value
        gap_sign = np.sign(signed)
    else:
        gap_sign = np.sign(gap)
    with np.errstate(invalid="ignore", divide="ignore"):
        quantity = np.where(notional > 0, notional / px, 0.0)
    post = w + gap_sign * notional / book_value
    side = np.where(notional > 0, np.where(gap_sign > 0, np.where(w < -1e-12, "buy_to_cover", "buy"),
                                           np.where(post < -1e-12, "sell_short", "sell")), "none")
    rates = (cost_rate.reindex(names).fillna(0.0).to_numpy(dtype=float) if isinstance(cost_rate, pd.Series)
             else np.full(len(names), float(cost_rate)))
    reasons = []
    for i in range(len(names)):
        if i in reasons_by_rank:
            reasons.append(reasons_by_rank[i])
        elif not over:
            reasons.append(f"drift {drift:.4f} <= threshold {threshold:.4f}")
        elif trade[i] and not priced[i]:
            reasons.append("no price: cannot size an order")
        elif trade[i]:
            reasons.append(f"drift {drift:.4f} > {threshold:.4f}: weight {w[i]:.4f} -> target {t[i]:.4f}"
                           + (" (entry)" if w[i] == 0 else " (exit)" if t[i] == 0 else
                              " (crosses zero: close, then open the other side)" if w[i] * t[i] < 0 else ""))
        else:
            reasons.append(f"within band {band:.4f}" if mode == "partial" else "on target")
    frame = pd.DataFrame({
        "candidate": candidate, "symbol": names, "weight": w, "target": t, "price": px, "side": side,
        "quantity": quantity, "notional": notional, "reason": reasons, "drift": drift, "threshold": threshold,
        "book_value": book_value, "cost": notional * rates, "cluster": np.where(own, -1, cluster_id),
        "execution_rank": exec_rank, "instrument": names,
    })
    return typed(frame, COLUMNS)  # built in COLUMNS order


def order_instruments(frame: pd.DataFrame, alternatives: pd.Series, rule: str) -> pd.DataFrame:
    """Name the instrument each row trades: the symbol (``primary``), or with ``alternative`` the symbol's
    implementation alternative of D (``alternatives``: alt ticker by symbol, e.g. ``BINANCE:BTCUSDT.P`` for
    ``BINANCE:BTCUSDT``; empty or absent: none, the symbol is traded and its reason says so). Quantities stay in
    units of the base asset, which the alternative tracks."""
    if rule not in INSTRUMENT_RULES:
        raise ValueError(f"drift instrument {rule!r} must be one of {', '.join(INSTRUMENT_RULES)}")
    out = frame.copy()
    out["instrument"] = out["symbol"]
    if rule == "primary" or out.empty:
        return out
    alt = out["symbol"].map(alternatives).fillna("").astype(str)
    has = alt != ""
    out.loc[has, "instrument"] = alt[has]
    missing = ~has & (out["side"] != "none")
    out.loc[missing, "reason"] = out.loc[missing, "reason"] + "; no alternative on D: trades the symbol"
    return out


def _restore_clusters(names: list[str], gap: np.ndarray, trade: np.ndarray, priced: np.ndarray,
                      cluster: np.ndarray, rank: np.ndarray, max_orders: int | None, max_traded: float | None
                      ) -> tuple[np.ndarray, dict[int, str]]:
    """Signed weight to trade per name (see the module docstring) and the reason of every name it touches."""
    signed = np.zeros(len(names))
    why: dict[int, str] = {}
    left_orders = np.inf if max_orders is None else max_orders
    left_traded = np.inf if max_traded is None else max_traded
    need = {int(c): float(gap[(cluster == c) & trade].sum()) for c in np.unique(cluster[trade])}
    for c in sorted(need, key=lambda c: (-abs(need[c]), c)):
        total = need[c]
        if abs(total) <= 1e-12:
            for i in np.flatnonzero((cluster == c) & trade):
                why[i] = f"cluster {c} on target: opposite trades inside the cluster net out"
            continue
        label = f"cluster {c}" if c >= 0 else "own cluster"
        members = sorted(np.flatnonzero(cluster == c), key=lambda i: rank[i])
        remaining, chosen, missed = total, [], []
        for i in members:
            same_way = trade[i] and np.sign(gap[i]) == np.sign(total)
            if not same_way:
                if trade[i]:
                    why[i] = f"{label} gap {total:+.4f}: opposite trade not needed to restore the cluster"
                continue
            if not priced[i]:
                missed.append((i, "no price"))
                continue
            if left_orders < 1:
                missed.append((i, "order limit"))
                continue
            take = np.sign(total) * min(abs(gap[i]), abs(remaining))
            signed[i] += take
            remaining -= take
            chosen.append(i)
            left_orders -= 1
        if abs(remaining) > 1e-12:  # the unfilled part goes to the best-ranked tradable name
            best = chosen[0] if chosen else next((i for i in members if priced[i]), None)
            if best is not None and not chosen and left_orders < 1:
                best = None
            if best is not None:
                if not chosen:
                    left_orders -= 1
                    chosen.append(best)
                signed[best] += remaining
                remaining = 0.0
        for i in chosen:  # the traded-notional limit clips orders in this sequence
            size = min(abs(signed[i]), max(left_traded, 0.0))
            left_traded -= size
            clipped = size < abs(signed[i]) - 1e-15
            signed[i] = np.sign(signed[i]) * size
            extra = abs(signed[i]) - abs(gap[i]) if np.sign(gap[i]) == np.sign(signed[i]) else abs(signed[i])
            text = f"{label} gap {total:+.4f}, execution rank {rank[i]}: trade {signed[i]:+.4f}"
            if extra > 1e-12:
                text += " (fills " + ", ".join(f"{names[j]} {m}" for j, m in missed) + ")" if missed else ""
            if clipped:
                text += f" (clipped at max traded {max_traded:.4f})"
            why[i] = text
        for j, m in missed:
            to = names[chosen[0]] if chosen else "nobody"
            why[j] = (f"{m}: {label} gap filled through {to} in execution rank" if chosen
                      else "no price: cannot size an order" if m == "no price" else f"{m}: not traded")
        if not chosen:
            for i in members:
                if trade[i] and i not in why:
                    why[i] = f"{label}: no tradable name or order left"
    return signed, why
