"""cvxportfolio reference simulator: ``MarketSimulator`` on ``UserProvidedMarketData``, offline.

Configured as FACTS.md measured to agree with ours: ``cash_key="cash"`` (a zero-return cash column, no FRED
download), ``min_history=0``, returns indexed at ``t`` meaning ``p[t+1] / p[t] - 1``, huge volumes, a linear
``TransactionCost(a=cost_rate, b=None)`` built from the manifest's costs, no share rounding. The policy
returns the target weights on trade rows and the current weights otherwise (cheaper than
``FixedWeights``, same result). Borrow cost is cvxportfolio's ``HoldingCost(short_fees=...)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tvquant_assets.core.simulators._common import check_supported, filled_targets, synthetic_prices, trade_rows
from tvquant_assets.core.simulators.vectorized import SimResult


def simulate(returns: np.ndarray, targets: np.ndarray, cost_rate, *, borrow_rate=0.0, band: float = 0.0,
             tradable: np.ndarray | None = None, liquidate: np.ndarray | None = None) -> SimResult:
    """Same contract as :func:`tvquant_assets.core.simulators.vectorized.simulate`."""
    import cvxportfolio as cvx

    check_supported("cvxportfolio", borrow_rate=borrow_rate, band=band, liquidate=liquidate, allow_borrow=True,
                    cost_rate=cost_rate)
    r = np.nan_to_num(np.asarray(returns, dtype=float), nan=0.0)
    T, N = r.shape
    out = SimResult(np.zeros(T), np.zeros((T, N)), np.zeros(T), np.zeros(T), np.zeros(T))
    rows = trade_rows(np.asarray(targets, dtype=float))
    if rows.size == 0:
        return out
    s0 = int(rows[0])
    tg = filled_targets(targets, tradable)
    names = [f"a{i}" for i in range(N)]
    # one padded day: the last trade's holding period. Evenly spaced days: in simulation HoldingCost uses the
    # real length of each period (365.24 d / (t_next - t)), so a weekend gap would charge three days' borrow
    index = pd.date_range("2000-01-03", periods=T + 1, freq="D")
    fwd = np.zeros((T + 1, N))
    fwd[: T - 1] = r[1:]
    frame_r = pd.DataFrame(fwd, index=index, columns=names).assign(cash=0.0)
    prices = pd.DataFrame(synthetic_prices(np.vstack([r, np.zeros((1, N))])), index=index, columns=names)
    volumes = pd.DataFrame(1e18, index=index, columns=names)
    market = cvx.UserProvidedMarketData(returns=frame_r, volumes=volumes, prices=prices, cash_key="cash",
                                        min_history=pd.Timedelta(0))
    rates = np.broadcast_to(np.asarray(cost_rate, dtype=float), (N,))
    costs = [cvx.TransactionCost(a=pd.Series(rates, index=names), b=None)]
    borrow = np.asarray(borrow_rate, dtype=float)
    if borrow.any():  # HoldingCost takes an annual percentage and de-compounds it to the (one-day) period
        annual = ((1.0 + borrow) ** 365.24 - 1.0) * 100
        costs.append(cvx.HoldingCost(short_fees=pd.Series(annual, index=names) if borrow.ndim else float(annual)))
    sim = cvx.MarketSimulator(market_data=market, costs=costs, round_trades=False)
    policy = _target_weights({index[t]: tg[t] for t in rows}, names)
    result = sim.backtest(policy, start_time=index[s0], end_time=index[T], initial_value=1e6)
    h, u = result.h, result.u.iloc[: T - s0]  # the padded day's trade is outside the simulation
    # cvxportfolio takes the period's costs out of cash on the way to the next holdings: subtract the trading
    # costs here; the holding (borrow) cost is for the shorts held over the next period, which h already shows
    charged = sum(c.reindex(u.index).fillna(0.0).to_numpy() for k, c in result.costs.items()
                  if "Holding" not in str(k))
    pre = h.loc[u.index].sum(axis=1).to_numpy()
    post = (h.loc[u.index] + u).sum(axis=1).to_numpy() - charged  # after that close's trades and costs
    values = np.r_[1e6, post]
    days = slice(s0, s0 + len(u))
    out.returns[days] = values[1:] / values[:-1] - 1.0
    held = (h.loc[u.index] + u)[names].to_numpy()
    out.weights[days] = held / post[:, None]
    trades = np.abs(u[names].to_numpy())
    out.turnover[days] = trades.sum(axis=1) / pre
    out.costs[days] = (rates * trades).sum(axis=1) / pre
    if borrow.any():
        short = (np.maximum(-held, 0.0) * np.broadcast_to(borrow, (N,))).sum(axis=1)
        out.borrow[s0 + 1 : s0 + len(u)] = short[:-1] / post[:-1]
    return out


def _target_weights(table: dict, names: list[str]):
    """A cvxportfolio policy: the target on trade rows, the current weights otherwise (built here so that
    cvxportfolio is imported only when this simulator runs)."""
    import cvxportfolio as cvx

    class TargetWeights(cvx.policies.Policy):
        def __init__(self, table, names):
            self._table = table
            self._names = names

        def values_in_time(self, t, current_weights, **kwargs):  # noqa: ARG002 - cvxportfolio's signature
            if t not in self._table:
                return current_weights
            w = pd.Series(self._table[t], index=self._names)
            w = w.fillna(current_weights[self._names])  # no order: keep the current weight
            return pd.concat([w, pd.Series({"cash": 1.0 - w.sum()})])

    return TargetWeights(table, names)
