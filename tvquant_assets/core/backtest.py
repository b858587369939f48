"""Walk-forward backtest of candidate decisions: one leaderboard frame per requested date.

Point in time: the frame for date ``D`` depends only on close rows stamped <= ``D`` and decisions
dated <= ``D``; one call over a range gives the same frames (hash-equal) as one call per date.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from tvquant_assets.core.metrics import (
    RELATIVE_METRICS,
    deflated_sharpe,
    expanding_metrics,
    pbo_cscv,
    relative,
    tail_risk,
)
from tvquant_assets.core.simulators import get_simulator
from tvquant_assets.errors import SimulatorError

# Output schema of every leaderboard frame (rows sorted by rank).
COLUMNS: dict[str, str] = {
    "candidate": "str",
    "engine": "str",
    "profile": "str",
    "simulator": "str",
    "day_return": "float64",
    "equity": "float64",
    "total_return": "float64",
    "ann_return": "float64",
    "ann_vol": "float64",
    "sharpe": "float64",
    "sortino": "float64",
    "calmar": "float64",
    "max_drawdown": "float64",
    "var_95": "float64",
    "cvar_95": "float64",
    "hit_rate": "float64",
    "stability": "float64",
    "dsr": "float64",
    "pbo": "float64",
    "turnover": "float64",
    "costs": "float64",
    "borrow": "float64",
    "gross_exposure": "float64",
    "net_exposure": "float64",
    "long_exposure": "float64",
    "short_exposure": "float64",
    "long_contribution": "float64",
    "short_contribution": "float64",
    "liquidations": "int64",
    "n_days": "int64",
    "rank": "int64",
}
EXECUTIONS = ("close", "next_open")


@dataclass(frozen=True)
class _Plan:
    """One candidate's decisions, mapped onto simulation days."""

    dates: pd.DatetimeIndex  # decision dates <= horizon, ascending
    pos: np.ndarray  # simulation day each decision trades at (pre-start ones folded to 0); may be == n_days
    weights: np.ndarray  # (n_decisions, N), NaN -> 0


@dataclass(frozen=True)
class _Market:
    """Everything a simulator run needs besides the decisions, for the days of the walk-forward."""

    returns: np.ndarray  # (rows, N): one row per day at the close, or two (overnight, intraday) per day
    per_day: int  # 1 (trades at the close) or 2 (trades at the next open)
    tradable: np.ndarray | None
    liquidate: np.ndarray | None
    cost_rate: float | np.ndarray
    borrow_rate: float | np.ndarray  # per row: one, or one per symbol (N,)
    band: float
    threshold: float = 0.0  # drift-triggered trading (rebalance.rule drift): 0 = every decision trades


def walk_forward(
    close: pd.DataFrame,
    decisions: Mapping[str, pd.DataFrame],
    start: pd.Timestamp,
    dates: Iterable[pd.Timestamp],
    cost_rate: float | Mapping[str, float],
    periods_per_year: int,
    simulator: str = "vectorized",
    *,
    simulators: Iterable[str] | None = None,
    execution: str = "close",
    open_: pd.DataFrame | None = None,
    band: float = 0.0,
    borrow_bps_per_year: float | Mapping[str, float] = 0.0,
    delist_after: int | None = None,
    pbo_blocks: int = 8,
    events: list[dict] | None = None,
    benchmark: pd.Series | None = None,
    threshold: float = 0.0,
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Simulate every candidate from ``start`` and rank them on each requested date.

    Parameters
    ----------
    close : DataFrame
        Wide closes: trading days ascending (index), symbols (columns), NaN where no bar. A missing
        price is carried forward for valuation, so a held name keeps its last value across a gap; a
        name cannot trade on a day without a price (it keeps its drifted weight).
    decisions : mapping of str to DataFrame
        Per candidate (``"engine/profile"``), target weights indexed by decision date (ascending, any
        calendar day) with symbol columns; NaN or absent means 0, an all-NaN row means all cash. A
        decision dated ``D`` trades at the close of the last trading day <= ``D`` (the same information
        set), or at the next trading day's open with ``execution="next_open"``; when several map to one
        trading day the latest wins. Decisions from before the first simulated day are folded into it.
    start : Timestamp
        First day of the walk-forward; the book is all cash until its first trade.
    dates : iterable of Timestamp
        Dates to report; the simulation runs over trading days in ``[start, max(dates)]``.
    cost_rate : float or mapping of symbol to float or DataFrame
        Cost per unit of traded notional (commission + slippage), one rate, one per symbol, or one per
        trading day and symbol (a DataFrame covering every simulated day; the execution feedback).
    periods_per_year : int
        For annualization.
    simulator, simulators : str, iterable of str
        Names registered in ``tvquant_assets.core.simulators.SIMULATORS``; ``simulators`` (several) wins.
    execution : {"close", "next_open"}
    open_ : DataFrame, optional
        Wide opens like ``close``; required for ``next_open``.
    band : float
        Drift band of partial rebalancing (0: full rebalance).
    borrow_bps_per_year : float or mapping symbol -> float
        Borrow cost on short notional (one rate, or one per symbol), accrued per day.
    delist_after : int, optional
        A name without a bar for more than this many trading days is gone: sold at its last price.
    pbo_blocks : int
        Blocks of the combinatorially symmetric cross-validation (PBO across candidates).
    events : list, optional
        Receives one dict per forced liquidation (simulator, candidate, date, symbol, weight).
    benchmark : Series, optional
        The benchmark's closes by date. Adds ``RELATIVE_METRICS`` (``core/metrics.py``), ``bench_equity``
        (growth of 1 since ``start``) and ``bench_day_return`` from its closes <= D on the simulated days (a
        day without a benchmark close carries the last one); NaN on dates after its last close.
    threshold : float
        Drift-triggered trading (``rebalance.rule: drift``; 0: every decision trades): a decision trades
        only when the drift ``sum_i |target_i - drifted_i|`` of the book at that close exceeds it, as the
        drift monitor orders. The ``vectorized`` simulation decides the trade days; every other simulator
        trades the same decisions on the same days. Close execution only.

    Returns
    -------
    dict of Timestamp to DataFrame
        Per requested date, one row per candidate and simulator with ``COLUMNS``, sorted by rank (1 = best
        Sharpe, ties by candidate then simulator name, NaN Sharpe last). ``day_return`` is the return of
        ``D`` itself (0.0 when ``D`` is not a trading day); ``equity`` is the growth of 1 since ``start``;
        ``turnover``, ``costs``, ``borrow`` and ``liquidations`` are sums so far; ``max_drawdown`` is <= 0;
        ``dsr`` and ``pbo`` compare the candidates of the same simulator. Dates before ``start`` give an
        empty frame with the schema.
    """
    names_sim = list(dict.fromkeys(simulators)) if simulators is not None else [simulator]
    sims = {name: get_simulator(name) for name in names_sim}
    if periods_per_year < 1:
        raise ValueError(f"periods_per_year {periods_per_year!r} must be >= 1")
    if execution not in EXECUTIONS:
        raise ValueError(f"execution {execution!r} must be one of {', '.join(EXECUTIONS)}")
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
    borrow = _borrow_rate(borrow_bps_per_year, past.columns, periods_per_year)
    market = _market(past, days, open_, execution, cost_rate, band, borrow,
                     delist_after)
    market = _gate(market, threshold)
    names = sorted(decisions)
    shift = 1 if execution == "next_open" else 0
    plans = {c: _plan(c, decisions[c], past.columns, days, horizon, shift) for c in names}

    asked = pd.DatetimeIndex([d for d in dates if d >= start])
    k = days.searchsorted(asked, side="right") - 1  # last simulated day <= each date (-1: none yet)
    kk = np.maximum(k, 0)
    on_day = (k >= 0) & (days[kk] == asked) if len(days) else np.zeros(len(asked), dtype=bool)

    rows = [(c, sim) for sim in names_sim for c in names]
    # (date, row) tables, pre-filled with the values of a book that has not traded yet
    table = {col: np.full((len(asked), len(rows)), value) for col, value in _UNTRADED.items()}
    for col in _CROSS + (_BENCH if benchmark is not None else ()):
        table[col] = np.full((len(asked), len(rows)), np.nan)
    bench, bench_until = _bench_returns(benchmark, days, horizon) if benchmark is not None else (None, None)
    for sim_name in names_sim if len(days) else []:
        simulate = sims[sim_name]
        cols = [j for j, (_, sim) in enumerate(rows) if sim == sim_name]
        used: dict[int, list[np.ndarray]] = {i: [] for i in range(len(asked)) if k[i] >= 0}
        for j in cols:
            c = rows[j][0]
            plan = plans[c]
            base = _run(simulate, market, plan, len(days), None, periods_per_year)
            _fill(table, j, np.flatnonzero(k >= 0), base, kk, on_day)
            # A decision dated after d (e.g. on the following holiday) may map to day k's close as well;
            # d must not see it, so such dates re-run this candidate on what was known at d.
            later = plan.dates.searchsorted(asked, side="right")
            hidden = (k >= 0) & (later < len(plan.pos))
            hidden[hidden] = plan.pos[later[hidden]] == k[hidden]
            for i in used:
                m = base
                if hidden[i]:
                    m = _run(simulate, market, plan, k[i] + 1, asked[i], periods_per_year)
                    _fill(table, j, np.array([i]), m, kk, on_day)
                used[i].append(m["returns"][: k[i] + 1])
            if events is not None:
                for day, col, weight in base["liquidated"]:
                    events.append({"simulator": sim_name, "candidate": c, "date": days[day],
                                   "symbol": str(past.columns[col]), "weight": weight})
        for i, series in used.items():
            _cross(table, cols, i, series, pbo_blocks)
            if bench is not None and days[k[i]] <= bench_until:
                _relative(table, cols, i, series, bench[: k[i] + 1], bool(on_day[i]), periods_per_year)
    frames = _frames(rows, table)

    empty = _frames([], {col: np.zeros((1, 0)) for col in [*_UNTRADED, *_CROSS,
                                                            *(_BENCH if benchmark is not None else ())]})[0]
    by_date = dict(zip(asked, frames))
    return {d: by_date[d] if d >= start else empty.copy() for d in dates}


# A candidate with no simulated day yet: flat equity, undefined ratios.
_UNTRADED: dict[str, float] = {
    "day_return": 0.0, "equity": 1.0, "total_return": 0.0, "ann_return": np.nan, "ann_vol": np.nan,
    "sharpe": np.nan, "sortino": np.nan, "calmar": np.nan, "max_drawdown": 0.0, "hit_rate": np.nan,
    "stability": np.nan, "turnover": 0.0, "costs": 0.0, "borrow": 0.0, "gross_exposure": 0.0, "net_exposure": 0.0,
    "long_exposure": 0.0, "short_exposure": 0.0, "long_contribution": 0.0, "short_contribution": 0.0,
    "liquidations": 0, "n_days": 0,
}
# Computed per date from the return series itself, or across the candidates of one simulator.
_CROSS = ("var_95", "cvar_95", "dsr", "pbo")
# Against the manifest's benchmark (only when it has one).
_BENCH = (*RELATIVE_METRICS, "bench_equity", "bench_day_return")


def _bench_returns(closes: pd.Series, days: pd.DatetimeIndex, horizon: pd.Timestamp):
    """Benchmark returns on the simulated days (closes <= horizon, the last one carried over days without
    one; 0 on the first day) and the date of its last close <= horizon."""
    past = pd.Series(closes, dtype="float64").dropna()
    if not past.empty:  # (an empty series may have no DatetimeIndex: before backtest.start)
        past = past[pd.DatetimeIndex(past.index) <= horizon]
    if past.empty or not len(days):
        return np.zeros(len(days)), pd.Timestamp.min
    on_days = past.reindex(past.index.union(days)).ffill().reindex(days).to_numpy(dtype=float)
    r = np.zeros(len(days))
    with np.errstate(invalid="ignore", divide="ignore"):
        r[1:] = on_days[1:] / on_days[:-1] - 1.0
    return np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0), pd.Timestamp(past.index[-1])


def _relative(table: dict[str, np.ndarray], cols: list[int], i: int, series: list[np.ndarray], bench: np.ndarray,
              on_day: bool, periods_per_year: int) -> None:
    """Each row's metrics against the benchmark on date ``i`` (returns up to that date only)."""
    bench_equity = float(np.prod(1.0 + bench))
    for j, r in zip(cols, series):
        for col, value in relative(r, bench, periods_per_year).items():
            table[col][i, j] = value
        table["bench_equity"][i, j] = bench_equity
        table["bench_day_return"][i, j] = bench[-1] if on_day else 0.0


def _borrow_rate(bps: float | Mapping[str, float], columns: pd.Index, periods_per_year: int) -> float | np.ndarray:
    """Borrow per period on short notional: one rate, or one per symbol from a ``symbol -> bps`` mapping."""
    if isinstance(bps, Mapping) or isinstance(bps, pd.Series):
        rates = pd.Series(bps, dtype=float).reindex(columns)
        if rates.isna().any():
            missing = ", ".join(map(str, rates.index[rates.isna()][:5]))
            raise ValueError(f"borrow_bps_per_year has no rate for {missing}")
        return rates.to_numpy() / 1e4 / periods_per_year
    return float(bps) / 1e4 / periods_per_year


def _market(past: pd.DataFrame, days: pd.DatetimeIndex, open_: pd.DataFrame | None, execution: str,
            cost_rate, band: float, borrow_rate, delist_after: int | None) -> _Market:
    n_hist = len(past) - len(days)
    filled = past.ffill()
    raw = past.to_numpy(dtype=float)[n_hist:]
    tradable = ~np.isnan(raw)
    liquidate = None
    if delist_after is not None:
        if delist_after < 1:
            raise ValueError(f"delist_after {delist_after!r} must be >= 1 trading day")
        seen = past.notna().to_numpy()
        idx = np.arange(len(past))[:, None]
        last = np.maximum.accumulate(np.where(seen, idx, -1), axis=0)
        stale = ((idx - last) > delist_after) & (last >= 0)
        liquidate = stale[n_hist:] if stale[n_hist:].any() else None
    if isinstance(cost_rate, pd.DataFrame):  # per day and symbol (execution feedback)
        grid = cost_rate.reindex(index=days, columns=past.columns)
        if grid.isna().any().any():
            raise ValueError("cost_rate per day must give a rate for every simulated day and symbol")
        rate = grid.to_numpy(dtype=float)
        if execution == "next_open":
            rate = np.repeat(rate, 2, axis=0)
    elif isinstance(cost_rate, Mapping) or isinstance(cost_rate, pd.Series):
        rates = pd.Series(cost_rate, dtype=float).reindex(past.columns)
        if rates.isna().any():
            missing = [str(s) for s in rates.index[rates.isna()]]
            raise ValueError(f"cost_rate has no rate for {', '.join(missing[:5])}; give one per symbol")
        rate: float | np.ndarray = rates.to_numpy()
    else:
        rate = float(cost_rate)
    if not np.all(np.isfinite(rate)) or np.any(np.asarray(rate) < 0):
        raise ValueError(f"cost_rate {cost_rate!r} must be finite numbers >= 0")
    if execution == "close":
        returns = filled.pct_change(fill_method=None).to_numpy(dtype=float)[n_hist:]
        return _Market(returns, 1, None if tradable.all() else tradable, liquidate, rate, borrow_rate, band)
    if open_ is None:
        raise ValueError("execution next_open needs open prices; the source has close only (use execution: close)")
    prev = filled.shift(1)
    o = open_.reindex(index=past.index, columns=past.columns).astype(float)
    opened = o.notna().to_numpy()[n_hist:]
    o = o.where(o.notna(), prev)  # no open: valued at the previous close (no overnight move)
    overnight = (o / prev - 1.0).to_numpy(dtype=float)[n_hist:]
    intraday = (filled / o - 1.0).to_numpy(dtype=float)[n_hist:]
    n, N = overnight.shape
    grid = np.empty((2 * n, N))
    grid[0::2], grid[1::2] = overnight, intraday
    can = np.empty((2 * n, N), dtype=bool)
    can[0::2], can[1::2] = opened, tradable
    liq = None
    if liquidate is not None:  # gone at the close of its first stale day, and stays gone
        liq = np.zeros((2 * n, N), dtype=bool)
        liq[1::2] = liquidate
        liq[2::2] = liquidate[:-1]
    return _Market(grid, 2, None if can.all() else can, liq, rate, borrow_rate, band)


def _fill(table: dict[str, np.ndarray], j: int, rows: np.ndarray, m: dict[str, np.ndarray],
          kk: np.ndarray, on_day: np.ndarray) -> None:
    for col in _UNTRADED:
        if col != "day_return":
            table[col][rows, j] = m[col][kk[rows]]
    table["day_return"][rows, j] = np.where(on_day[rows], m["returns"][kk[rows]], 0.0)


def _cross(table: dict[str, np.ndarray], cols: list[int], i: int, series: list[np.ndarray], blocks: int) -> None:
    """Tail risk of each row, and the deflated Sharpe ratio and PBO across one simulator's candidates."""
    with np.errstate(invalid="ignore", divide="ignore"):
        sharpes = np.array([r.mean() / r.std(ddof=1) if r.size > 1 else np.nan for r in series])
    for j, r in zip(cols, series):
        table["var_95"][i, j], table["cvar_95"][i, j] = tail_risk(r)
        table["dsr"][i, j] = deflated_sharpe(r, sharpes)
    pbo = pbo_cscv(np.column_stack(series), blocks) if len(series) > 1 else np.nan
    table["pbo"][i, cols] = pbo


def _plan(name: str, frame: pd.DataFrame, symbols: pd.Index, days: pd.DatetimeIndex, horizon: pd.Timestamp,
          shift: int) -> _Plan:
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
    if shift and len(days):  # next open; a decision before the first day opens the book at its close
        pos = np.where(days.searchsorted(index, side="right") - 1 < 0, 0, pos + shift)
    return _Plan(index, pos.astype(np.int64), np.nan_to_num(w, nan=0.0))


def _targets(market: _Market, plan: _Plan, n_days: int, upto: pd.Timestamp | None) -> np.ndarray:
    """The simulator's target rows of one candidate over the first ``n_days`` days, decisions known at ``upto``."""
    keep = len(plan.pos) if upto is None else plan.dates.searchsorted(upto, side="right")
    pos, weights = plan.pos[:keep], plan.weights[:keep]
    inside = pos < n_days
    pos, weights = pos[inside], weights[inside]
    per = market.per_day
    rows = n_days * per
    targets = np.full((rows, market.returns.shape[1]), np.nan)
    if len(pos):
        last = np.r_[pos[1:] != pos[:-1], True]  # the latest decision per trading day wins
        at = pos[last] * per
        if per == 2:  # at the open: row 2k; a decision folded into the first day trades at its close
            at = np.where(pos[last] == 0, 1, at)
        targets[at] = weights[last]
    return targets


def _gate(market: _Market, threshold: float) -> _Market:
    """The market with drift-triggered trading at ``threshold`` (checked: close execution only)."""
    if not threshold:
        return market
    if not (np.isfinite(threshold) and 0.0 < threshold):
        raise ValueError(f"drift threshold {threshold!r} must be a finite number > 0")
    if market.per_day != 1:
        raise ValueError("drift-triggered trading sizes orders at D's close: it needs execution close")
    return replace(market, threshold=float(threshold))


def _simulate(simulate: Callable, market: _Market, plan: _Plan, n_days: int, upto: pd.Timestamp | None):
    """One candidate over the first ``n_days`` days with its decisions known at ``upto`` (None: all)."""
    rows = n_days * market.per_day
    targets = _targets(market, plan, n_days, upto)
    rate = market.cost_rate
    args = dict(borrow_rate=market.borrow_rate, band=market.band,
                tradable=None if market.tradable is None else market.tradable[:rows],
                liquidate=None if market.liquidate is None else market.liquidate[:rows])
    rate = rate[:rows] if np.ndim(rate) == 2 else rate
    if market.threshold:
        from tvquant_assets.core.simulators.vectorized import simulate as vectorized  # numba: loaded on first use

        gated = vectorized(market.returns[:rows], targets, rate, threshold=market.threshold, **args)
        if simulate is vectorized:
            return gated
        targets = np.where(gated.triggered[:, None], targets, np.nan)  # the same trades on the same days
    return simulate(market.returns[:rows], targets, rate, **args)


def _row_sum(x: np.ndarray) -> np.ndarray:
    """Left-to-right sums of each row: adding a zero is exact, so a symbol that lists later (a zero column)
    never changes an earlier sum in the last bit (pairwise sums would)."""
    return np.cumsum(x, axis=1)[:, -1] if x.shape[1] else np.zeros(len(x))


def _exposures(weights: np.ndarray, returns: np.ndarray, per: int) -> dict[str, np.ndarray]:
    """Per day: the book held after the close (long, short <= 0, gross, net) and the cumulative sum of each
    book's daily contribution ``sum_i w_{t-1,i} r_{t,i}`` over the names held long / short (before costs
    and borrow; weights of the previous row's value)."""
    w = np.nan_to_num(np.asarray(weights, dtype="float64"))
    r = np.nan_to_num(np.asarray(returns, dtype="float64"))
    prev = np.vstack([np.zeros((1, w.shape[1])), w[:-1]]) if len(w) else w
    long_c = _row_sum(np.where(prev > 0, prev, 0.0) * r)
    short_c = _row_sum(np.where(prev < 0, prev, 0.0) * r)
    if per == 2:  # (overnight, intraday) rows: the book after the close, contributions of both rows
        w = w[1::2]
        long_c, short_c = long_c[0::2] + long_c[1::2], short_c[0::2] + short_c[1::2]
    long_e, short_e = _row_sum(np.where(w > 0, w, 0.0)), _row_sum(np.where(w < 0, w, 0.0))
    return {"long_exposure": long_e, "short_exposure": short_e, "gross_exposure": long_e - short_e,
            "net_exposure": long_e + short_e, "long_contribution": np.cumsum(long_c),
            "short_contribution": np.cumsum(short_c)}


def _run(simulate: Callable, market: _Market, plan: _Plan, n_days: int, upto: pd.Timestamp | None,
         periods_per_year: int) -> dict:
    """Metrics of one candidate over the first ``n_days`` days with its decisions known at ``upto``."""
    per = market.per_day
    rows = n_days * per
    res = _simulate(simulate, market, plan, n_days, upto)
    borrow = res.borrow if res.borrow is not None else np.zeros(rows)
    liquidated = [(day // per, col, weight) for day, col, weight in res.liquidations]
    ret, turnover, costs = res.returns, res.turnover, res.costs
    if per == 2:
        ret = (1.0 + ret[0::2]) * (1.0 + ret[1::2]) - 1.0
        turnover, costs, borrow = (x[0::2] + x[1::2] for x in (turnover, costs, borrow))
    m = expanding_metrics(ret, turnover, periods_per_year)
    m["costs"] = np.cumsum(costs)
    m["borrow"] = np.cumsum(borrow)
    counts = np.zeros(n_days)
    for day, _, _ in liquidated:
        counts[day] += 1
    m["liquidations"] = np.cumsum(counts)
    m.update(_exposures(res.weights, market.returns[:rows], per))
    m["returns"] = ret
    m["liquidated"] = liquidated
    return m


def books(
    close: pd.DataFrame,
    decisions: pd.DataFrame,
    start: pd.Timestamp,
    dates: Iterable[pd.Timestamp],
    cost_rate: float | Mapping[str, float],
    *,
    execution: str = "close",
    open_: pd.DataFrame | None = None,
    band: float = 0.0,
    borrow_bps_per_year: float | Mapping[str, float] = 0.0,
    periods_per_year: int = 252,
    delist_after: int | None = None,
    threshold: float = 0.0,
) -> dict[pd.Timestamp, tuple[pd.Series, pd.Series, float]]:
    """The book of one candidate after the close of each date (the simulation of :func:`walk_forward`, with
    ``vectorized``): drifted weights, the targets of its latest decision <= the date, and equity since
    ``start``. The book for ``D`` uses only closes and decisions dated <= ``D``; one call over a range equals
    one call per date (a prefix of the simulation is bit-identical).

    With a drift ``threshold`` (drift-triggered trading) the book of ``D`` is the one *before* D's trade: the
    weights drifted to D's close and the equity before D's costs, so the drift monitor's orders on ``D`` are
    the trade the backtest makes at that close."""
    start = pd.Timestamp(start)
    dates = sorted(pd.Timestamp(d) for d in dates)
    if not dates:
        return {}
    horizon = dates[-1]
    past = close.loc[close.index <= horizon]
    days = past.index[past.index >= start]
    index = pd.DatetimeIndex(decisions.index)
    decisions = decisions.loc[index <= horizon].astype(float)
    index = index[index <= horizon]
    out = {}
    zero = pd.Series(0.0, index=past.columns)
    if not len(days):
        for d in dates:
            known = decisions.loc[index <= d]
            out[d] = (zero, known.iloc[-1].fillna(0.0) if len(known) else zero, 1.0)
        return out
    shift = 1 if execution == "next_open" else 0
    borrow = _borrow_rate(borrow_bps_per_year, past.columns, periods_per_year)
    market = _market(past, days, open_, execution, cost_rate, band, borrow,
                     delist_after)
    market = _gate(market, threshold)
    plan = _plan("book", decisions, past.columns, days, horizon, shift)
    from tvquant_assets.core.simulators.vectorized import simulate  # numba: loaded on first use

    full = _simulate(simulate, market, plan, len(days), None)
    per = market.per_day
    for d in dates:
        k = int(days.searchsorted(d, side="right")) - 1
        known = decisions.loc[index <= d]
        target = known.iloc[-1].fillna(0.0) if len(known) else zero
        if k < 0:
            out[d] = (zero, target, 1.0)
            continue
        later = plan.dates.searchsorted(d, side="right")
        res = full
        if later < len(plan.pos) and plan.pos[later] <= k:  # a later decision trades by k: rerun without it
            res = _simulate(simulate, market, plan, k + 1, d)
        rows = (k + 1) * per
        equity = float(np.cumprod(1.0 + res.returns[:rows])[-1])
        if market.threshold:  # before D's trade: drifted weights, equity before D's costs
            out[d] = (pd.Series(res.pre_trade[rows - 1], index=past.columns), target,
                      equity / (1.0 - float(res.costs[rows - 1])))
            continue
        out[d] = (pd.Series(res.weights[rows - 1], index=past.columns), target, equity)
    return out


def _frames(rows: list[tuple[str, str]], table: dict[str, np.ndarray]) -> list[pd.DataFrame]:
    """One ranked frame per row of the (date, row) tables, cut from one frame built once."""
    n_dates, n = table["sharpe"].shape
    sharpe = table["sharpe"]
    # Rows arrive grouped by simulator then candidate; rank ties by candidate, then simulator.
    tie = np.argsort(np.array([f"{c}\x00{s}" for c, s in rows], dtype=object), kind="stable")
    tie_rank = np.empty(n, dtype=np.int64)
    tie_rank[tie] = np.arange(n)
    # lexsort: last key is primary -> NaN last, then higher Sharpe, then name.
    order = np.lexsort((np.broadcast_to(tie_rank, sharpe.shape), -np.nan_to_num(sharpe, nan=0.0),
                        np.isnan(sharpe)), axis=-1)
    labels = {
        "candidate": [c for c, _ in rows],
        "engine": [c.partition("/")[0] for c, _ in rows],
        "profile": [c.partition("/")[2] for c, _ in rows],
        "simulator": [s for _, s in rows],
    }
    data = {}
    for col, values in labels.items():
        data[col] = pd.array(np.asarray(values, dtype=object)[order].ravel() if n else [], dtype="str")
    for col, dtype in COLUMNS.items():
        if col in table:
            data[col] = np.take_along_axis(table[col], order, axis=1).ravel().astype(dtype)
    data["rank"] = np.tile(np.arange(1, n + 1, dtype=np.int64), n_dates)
    for col in _BENCH:
        if col in table:
            data[col] = np.take_along_axis(table[col], order, axis=1).ravel().astype("float64")
    big = pd.DataFrame({col: data[col] for col in [*COLUMNS, *(c for c in _BENCH if c in table)]})
    return [big.iloc[i * n : (i + 1) * n].reset_index(drop=True) for i in range(n_dates)]


def event_driven_fills(
    close: pd.DataFrame,
    decisions: Mapping[str, pd.DataFrame],
    start: pd.Timestamp,
    horizon: pd.Timestamp,
    commission: float | np.ndarray,
    *,
    tick: float,
    fill_model: dict,
    execution: str = "close",
    open_: pd.DataFrame | None = None,
) -> tuple[list[tuple], pd.DatetimeIndex, int, dict[str, str]]:
    """Every candidate's decisions traded by the event-driven ``nautilus`` simulator on the real prices, for
    the execution-shortfall feedback: ``(fills, days, rows per day, skipped candidates with the reason)``.

    Fills are ``(row, column, side, quantity, price, reference, commission)``; ``reference`` is the bar price
    the vectorized model assumes (the close, or the open with ``next_open``). The fee is the commission only:
    slippage shows in the fill prices. Causal: fills of day ``t`` depend on data and decisions <= ``t``.
    """
    from tvquant_assets.core.simulators.nautilus_sim import simulate  # nautilus_trader: loaded on first use
    past = close.loc[close.index <= horizon]
    days = past.index[past.index >= pd.Timestamp(start)]
    if not len(days):
        return [], days, 1, {}
    market = _market(past, days, open_, execution, 0.0, 0.0, 0.0, None)
    filled = past.ffill()
    grid = filled.loc[days]
    if market.per_day == 2:
        o = open_.reindex(index=past.index, columns=past.columns).astype(float)
        o = o.where(o.notna(), filled.shift(1)).loc[days]
        both = np.empty((2 * len(days), past.shape[1]))
        both[0::2], both[1::2] = o.to_numpy(dtype=float), grid.to_numpy(dtype=float)
        grid = pd.DataFrame(both)
    # before a name's first bar it cannot trade; any positive price keeps the engine's book valued
    prices = grid.bfill().fillna(1.0).to_numpy(dtype=float)
    shift = 1 if execution == "next_open" else 0
    fills: list[tuple] = []
    skipped: dict[str, str] = {}
    for name in sorted(decisions):
        plan = _plan(name, decisions[name], past.columns, days, horizon, shift)
        targets = _targets(market, plan, len(days), None)
        mine: list[tuple] = []
        try:
            simulate(market.returns, targets, commission, tradable=market.tradable, fills=mine, prices=prices,
                     tick=tick, fill_model=fill_model)
        except SimulatorError as exc:  # e.g. a long/short candidate: a cash account cannot short
            skipped[name] = str(exc)
            continue
        fills.extend(mine)
    return fills, days, market.per_day, skipped
