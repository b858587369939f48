"""Walk-forward backtest of candidate decisions: one leaderboard frame per requested date.

Point in time: the frame for date ``D`` depends only on close rows stamped <= ``D`` and decisions
dated <= ``D``; one call over a range gives the same frames (hash-equal) as one call per date.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tvquant_assets.core.metrics import expanding_metrics
from tvquant_assets.core.simulators import get_simulator

# Output schema of every leaderboard frame (rows sorted by rank).
COLUMNS: dict[str, str] = {
    "candidate": "str",
    "day_return": "float64",
    "equity": "float64",
    "total_return": "float64",
    "ann_return": "float64",
    "ann_vol": "float64",
    "sharpe": "float64",
    "max_drawdown": "float64",
    "turnover": "float64",
    "costs": "float64",
    "n_days": "int64",
    "rank": "int64",
}


@dataclass(frozen=True)
class _Plan:
    """One candidate's decisions, mapped onto simulation days."""

    dates: pd.DatetimeIndex  # decision dates <= horizon, ascending
    pos: np.ndarray  # simulation-day position each decision trades at (pre-start ones folded to 0)
    weights: np.ndarray  # (n_decisions, N), NaN -> 0


def walk_forward(
    close: pd.DataFrame,
    decisions: Mapping[str, pd.DataFrame],
    start: pd.Timestamp,
    dates: Iterable[pd.Timestamp],
    cost_rate: float,
    periods_per_year: int,
    simulator: str = "vectorized",
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Simulate every candidate from ``start`` and rank them on each requested date.

    Parameters
    ----------
    close : DataFrame
        Wide closes: trading days ascending (index), symbols (columns), NaN where no bar. A missing
        price is carried forward for valuation, so a held name keeps its last value across a gap.
    decisions : mapping of str to DataFrame
        Per candidate, target weights indexed by decision date (ascending, any calendar day) with
        symbol columns; NaN or absent means 0, an all-NaN row means all cash. A decision dated ``D``
        trades at the close of the last trading day <= ``D`` (the same information set); when several
        map to one trading day the latest wins. Decisions from before the first simulated day are
        folded into it: the book opens at that close with the latest decision known then.
    start : Timestamp
        First day of the walk-forward; the book is all cash until its first trade.
    dates : iterable of Timestamp
        Dates to report; the simulation runs over trading days in ``[start, max(dates)]``.
    cost_rate : float
        Cost per unit of traded notional.
    periods_per_year : int
        For annualization.
    simulator : str
        A name registered in ``tvquant_assets.core.simulators.SIMULATORS``.

    Returns
    -------
    dict of Timestamp to DataFrame
        Per requested date, one row per candidate with ``COLUMNS``, sorted by rank (1 = best Sharpe,
        ties by candidate name, NaN Sharpe last). ``day_return`` is the return of ``D`` itself (0.0
        when ``D`` is not a trading day); ``equity`` is the growth of 1 since ``start``; ``turnover``
        and ``costs`` are sums so far; ``max_drawdown`` is <= 0. Dates before ``start`` give an empty
        frame with the schema.
    """
    simulate = get_simulator(simulator)
    if not (np.isfinite(cost_rate) and cost_rate >= 0):
        raise ValueError(f"cost_rate {cost_rate!r} must be a finite number >= 0")
    if periods_per_year < 1:
        raise ValueError(f"periods_per_year {periods_per_year!r} must be >= 1")
    if close.empty and not isinstance(close.index, pd.DatetimeIndex):
        close = close.set_axis(pd.DatetimeIndex(close.index), axis=0)  # an empty panel: no trading days yet
    if not isinstance(close.index, pd.DatetimeIndex) or not close.index.is_monotonic_increasing \
            or not close.index.is_unique:
        raise ValueError("close must have a unique, ascending DatetimeIndex of trading days")
    start = pd.Timestamp(start)
    dates = [pd.Timestamp(d) for d in dates]
    if not dates:
        return {}
    horizon = max(dates)

    # Everything below sees only rows <= horizon, so later rows cannot leak into any frame.
    past = close.loc[close.index <= horizon]
    days = past.index[past.index >= start]
    returns = past.ffill().pct_change(fill_method=None).to_numpy(dtype=float)[len(past) - len(days):]
    names = sorted(decisions)
    plans = {c: _plan(c, decisions[c], past.columns, days, horizon) for c in names}

    def run(plan: _Plan, n_days: int, upto: pd.Timestamp | None = None) -> dict[str, np.ndarray]:
        keep = slice(None) if upto is None else slice(0, plan.dates.searchsorted(upto, side="right"))
        return _metrics(simulate, returns[:n_days], plan.pos[keep], plan.weights[keep], cost_rate, periods_per_year)

    asked = pd.DatetimeIndex([d for d in dates if d >= start])
    k = days.searchsorted(asked, side="right") - 1  # last simulated day <= each date (-1: none yet)
    kk = np.maximum(k, 0)
    on_day = (k >= 0) & (days[kk] == asked) if len(days) else np.zeros(len(asked), dtype=bool)

    # (date, candidate) tables, pre-filled with the values of a book that has not traded yet
    table = {col: np.full((len(asked), len(names)), value) for col, value in _UNTRADED.items()}
    for j, c in enumerate(names if len(days) else []):
        plan = plans[c]
        _fill(table, j, np.flatnonzero(k >= 0), run(plan, len(days)), kk, on_day)
        # A decision dated after d (e.g. on the following holiday) may map to day k's close as well;
        # d must not see it, so such dates re-run this candidate on what was known at d.
        later = plan.dates.searchsorted(asked, side="right")
        hidden = (k >= 0) & (later < len(plan.pos))
        hidden[hidden] = plan.pos[later[hidden]] == k[hidden]
        for i in np.flatnonzero(hidden):
            _fill(table, j, np.array([i]), run(plan, k[i] + 1, asked[i]), kk, on_day)
    frames = _frames(names, table)

    empty = _frames([], {col: np.zeros((1, 0)) for col in _UNTRADED})[0]
    by_date = dict(zip(asked, frames))
    return {d: by_date[d] if d >= start else empty.copy() for d in dates}


# A candidate with no simulated day yet: flat equity, undefined ratios.
_UNTRADED: dict[str, float] = {
    "day_return": 0.0, "equity": 1.0, "total_return": 0.0, "ann_return": np.nan, "ann_vol": np.nan,
    "sharpe": np.nan, "max_drawdown": 0.0, "turnover": 0.0, "costs": 0.0, "n_days": 0,
}


def _fill(table: dict[str, np.ndarray], j: int, rows: np.ndarray, m: dict[str, np.ndarray],
          kk: np.ndarray, on_day: np.ndarray) -> None:
    for col in _UNTRADED:
        if col != "day_return":
            table[col][rows, j] = m[col][kk[rows]]
    table["day_return"][rows, j] = np.where(on_day[rows], m["returns"][kk[rows]], 0.0)


def _plan(name: str, frame: pd.DataFrame, symbols: pd.Index, days: pd.DatetimeIndex, horizon: pd.Timestamp) -> _Plan:
    index = pd.DatetimeIndex(frame.index)
    if not index.is_monotonic_increasing:
        raise ValueError(f"decisions for {name!r} must be indexed by ascending decision dates")
    frame = frame.loc[index <= horizon]
    index = index[index <= horizon]
    weights = frame.astype(float)
    unknown = [s for s in weights.columns if s not in symbols and weights[s].fillna(0.0).ne(0.0).any()]
    if unknown:
        raise ValueError(f"decisions for {name!r} weight symbols without prices: {', '.join(map(str, unknown))}")
    w = weights.reindex(columns=symbols).to_numpy(dtype=float, na_value=np.nan)
    pos = np.maximum(days.searchsorted(index, side="right") - 1, 0) if len(days) else np.zeros(len(index), int)
    return _Plan(index, pos.astype(np.int64), np.nan_to_num(w, nan=0.0))


def _metrics(simulate: Callable, returns: np.ndarray, pos: np.ndarray, weights: np.ndarray,
             cost_rate: float, periods_per_year: int) -> dict[str, np.ndarray]:
    targets = np.full(returns.shape, np.nan)
    if len(pos):
        last = np.r_[pos[1:] != pos[:-1], True]  # the latest decision per trading day wins
        targets[pos[last]] = weights[last]
    res = simulate(returns, targets, cost_rate)
    m = expanding_metrics(res.returns, res.turnover, periods_per_year)
    m["costs"] = np.cumsum(res.costs)
    m["returns"] = res.returns
    return m


def _frames(names: list[str], table: dict[str, np.ndarray]) -> list[pd.DataFrame]:
    """One ranked frame per row of the (date, candidate) tables, cut from one frame built once."""
    n_dates, n = table["sharpe"].shape
    sharpe = table["sharpe"]
    # lexsort: last key is primary -> NaN last, then higher Sharpe, then name (names are pre-sorted).
    order = np.lexsort((np.broadcast_to(np.arange(n), sharpe.shape), -np.nan_to_num(sharpe, nan=0.0),
                        np.isnan(sharpe)), axis=-1)
    data = {"candidate": pd.array(np.asarray(names, dtype=object)[order].ravel(), dtype="str")}
    for col, dtype in COLUMNS.items():
        if col in table:
            data[col] = np.take_along_axis(table[col], order, axis=1).ravel().astype(dtype)
    data["rank"] = np.tile(np.arange(1, n + 1, dtype=np.int64), n_dates)
    big = pd.DataFrame({col: data[col] for col in COLUMNS})
    return [big.iloc[i * n : (i + 1) * n].reset_index(drop=True) for i in range(n_dates)]
