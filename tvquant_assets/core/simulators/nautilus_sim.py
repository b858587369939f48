"""nautilus_trader reference simulator: an event-driven ``BacktestEngine`` run.

Daily bars (``...-1-DAY-LAST-EXTERNAL``) are built from the prices; a rebalance strategy waits until every
name's bar of a day has arrived, values the book at those closes and, on trade rows, sends market orders
(sells first) for the whole-share quantities that reach the target weights of the pre-trade value. Market
orders fill at the bar's close; the venue charges the manifest's cost rate as each instrument's taker fee.

The simulated book is worth ``BOOK`` dollars; the venue account holds ``BUFFER`` more cash so that fees never
drive it negative (FACTS.md: a cash account stops with ``AccountBalanceNegative`` otherwise) - returns are
those of the book, accounted from nautilus's fills (quantity, price, commission). Differences to
``vectorized``: whole shares (a weight is off by up to ``price / (weight * BOOK)``) and prices rounded to
``PRICE_PRECISION`` decimals. Long-only (a cash account cannot short).

For the execution-shortfall feedback (``core/execution_feedback.py``) the run can take real ``prices``
(instead of a path rebuilt from the returns), an instrument ``tick`` and a nautilus ``FillModel``
(``prob_slippage``: a fill slips one tick against the order; ``prob_fill_on_limit``; ``random_seed``).
"""

from __future__ import annotations

import warnings
from decimal import Decimal

import numpy as np

from tvquant_assets.core.simulators._common import check_supported, filled_targets, synthetic_prices, trade_rows
from tvquant_assets.core.simulators.vectorized import SimResult
from tvquant_assets.errors import SimulatorError

BOOK = 1e8
BUFFER = 1e10
PRICE_PRECISION = 6
_DAY_NS = 86_400 * 10**9
_T0_NS = 946_857_600 * 10**9  # 2000-01-03 00:00 UTC


def simulate(returns: np.ndarray, targets: np.ndarray, cost_rate, *, borrow_rate: float = 0.0, band: float = 0.0,
             tradable: np.ndarray | None = None, liquidate: np.ndarray | None = None,
             fills: list | None = None, prices: np.ndarray | None = None, tick: float | None = None,
             fill_model: dict | None = None) -> SimResult:
    """Same contract as :func:`tvquant_assets.core.simulators.vectorized.simulate`.

    ``fills``, when given, receives one ``(row, column, side, quantity, price, reference_close, commission)``
    per fill (the execution-shortfall feedback reads them). ``prices`` (T, N): the bar prices to trade at
    (default: a path with these returns from 100); ``tick``: the instruments' price increment (default
    ``10**-PRICE_PRECISION``); ``fill_model``: keyword arguments of nautilus's ``FillModel``.
    """
    check_supported("nautilus", borrow_rate=borrow_rate, band=band, liquidate=liquidate, cost_rate=cost_rate)
    tg = filled_targets(targets, tradable)
    if (np.nan_to_num(tg) < 0).any():
        raise SimulatorError("simulator nautilus runs a cash account and cannot short; use vectorized or "
                             "cvxportfolio for long/short candidates")
    r = np.asarray(returns, dtype=float)
    T, N = r.shape
    out = SimResult(np.zeros(T), np.zeros((T, N)), np.zeros(T), np.zeros(T), np.zeros(T))
    rows = trade_rows(np.asarray(targets, dtype=float))
    if rows.size == 0:
        return out
    if prices is None:
        prices = synthetic_prices(r)
    elif np.shape(prices) != (T, N) or not np.isfinite(prices).all() or (np.asarray(prices) <= 0).any():
        raise SimulatorError(f"nautilus prices must be positive finite numbers of shape {(T, N)} (forward-filled)")
    prices = np.round(np.asarray(prices, dtype=float), PRICE_PRECISION)
    rates = np.broadcast_to(np.asarray(cost_rate, dtype=float), (N,))
    book = _run_engine(prices, tg, set(int(t) for t in rows), rates, tick, fill_model)
    pre, fees, traded = book["pre"], book["fees"], book["traded"]
    post = pre - fees
    start = int(rows[0])
    prev = np.r_[BOOK, post[:-1]]
    out.returns[start:] = (post / prev - 1.0)[start:]
    out.weights[:] = book["holdings"] * prices / post[:, None]
    out.turnover[:] = traded / pre
    out.costs[:] = fees / pre
    if fills is not None:
        fills.extend(book["fills"])
    return out


def _run_engine(prices: np.ndarray, targets: np.ndarray, trade_days: set[int], rates: np.ndarray,
                tick: float | None = None, fill_model: dict | None = None) -> dict:
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.backtest.models import FillModel
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.data import Bar, BarType
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, TraderId, Venue
    from nautilus_trader.model.instruments import Equity
    from nautilus_trader.model.objects import Money, Price, Quantity
    from nautilus_trader.trading.strategy import Strategy

    T, N = prices.shape
    venue = Venue("SIM")
    engine = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("TVQUANT-001"),
                                                 logging=LoggingConfig(bypass_logging=True)))
    try:
        engine.add_venue(venue=venue, oms_type=OmsType.NETTING, account_type=AccountType.CASH, base_currency=USD,
                         starting_balances=[Money(BOOK + BUFFER, USD)],
                         fill_model=FillModel(**fill_model) if fill_model else None)
        increment = Price(tick if tick else 10.0**-PRICE_PRECISION, PRICE_PRECISION)
        instruments, bar_types = [], []
        for i in range(N):
            iid = InstrumentId(Symbol(f"A{i}"), venue)
            instruments.append(Equity(
                instrument_id=iid, raw_symbol=Symbol(f"A{i}"), currency=USD, price_precision=PRICE_PRECISION,
                price_increment=increment, lot_size=Quantity.from_int(1),
                ts_event=0, ts_init=0, maker_fee=Decimal(repr(float(rates[i]))),
                taker_fee=Decimal(repr(float(rates[i]))),
            ))
            engine.add_instrument(instruments[-1])
            bar_types.append(BarType.from_str(f"{iid}-1-DAY-LAST-EXTERNAL"))
            bars = []
            for t in range(T):
                p = Price(float(prices[t, i]), PRICE_PRECISION)
                ts = _T0_NS + t * _DAY_NS
                bars.append(Bar(bar_types[-1], p, p, p, p, Quantity.from_int(10**12), ts, ts))
            engine.add_data(bars)

        book = {"pre": np.zeros(T), "fees": np.zeros(T), "traded": np.zeros(T), "holdings": np.zeros((T, N)),
                "fills": []}
        index = {inst.id: i for i, inst in enumerate(instruments)}

        class Rebalance(Strategy):
            """Target weights -> whole-share market orders at the close of the day's last bar."""

            def __init__(self):
                super().__init__()
                self.shares = np.zeros(N, dtype=np.int64)
                self.cash = BOOK
                self.day = -1
                self.seen = 0

            def on_start(self):
                for bt in bar_types:
                    self.subscribe_bars(bt)

            def on_bar(self, bar):
                t = int((bar.ts_event - _T0_NS) // _DAY_NS)
                if t != self.day:
                    self.day, self.seen = t, 0
                self.seen += 1
                if self.seen < N:
                    return
                close = prices[t]
                value = self.cash + float(self.shares @ close)
                book["pre"][t] = value
                book["holdings"][t] = self.shares
                if t not in trade_days:
                    return
                want = np.where(np.isnan(targets[t]), self.shares, np.round(np.nan_to_num(targets[t]) * value / close))
                delta = want.astype(np.int64) - self.shares
                for i in sorted(np.flatnonzero(delta), key=lambda i: delta[i] > 0):  # sells first
                    side = OrderSide.BUY if delta[i] > 0 else OrderSide.SELL
                    order = self.order_factory.market(instruments[i].id, side, Quantity.from_int(int(abs(delta[i]))))
                    self.submit_order(order)

            def on_order_filled(self, event):
                i = index[event.instrument_id]
                t = self.day
                qty, px = int(round(float(event.last_qty))), float(event.last_px)
                sign = 1 if event.order_side == OrderSide.BUY else -1
                fee = float(event.commission.as_double())
                self.shares[i] += sign * qty
                self.cash -= sign * qty * px + fee
                book["fees"][t] += fee
                book["traded"][t] += qty * px
                book["holdings"][t] = self.shares
                book["fills"].append((t, i, "buy" if sign > 0 else "sell", qty, px, float(prices[t, i]), fee))

        strategy = Rebalance()
        engine.add_strategy(strategy)
        with warnings.catch_warnings():  # nautilus calls pandas' deprecated Timestamp.utcnow
            warnings.filterwarnings("ignore", message=".*utcnow.*")
            engine.run()
    finally:
        engine.dispose()
    return book
