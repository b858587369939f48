"""Paper account: orders filled by nautilus_trader's simulated exchange at a session's open, and the book
they leave (positions, cash, marks, P&L).

One session is one ``BacktestEngine`` run: an instrument per ordered symbol (``Equity``, whole units, the
manifest's commission as taker fee, the paper tick as price increment), one daily bar per instrument at the
session's open (O = H = L = C = open, ``...-1-DAY-LAST-EXTERNAL``), and a strategy that sends every order as a
market order once all opening bars have arrived, sells first. A market order fills at the bar's price (one
tick worse with the fill model's ``prob_slippage``); nautilus rounds the commission to cents. The venue is a
``MARGIN`` account in USD with a large balance: the engine starts flat each session, so a sell is a short to
it (a cash account refuses shorts); the account's own positions and cash are kept here, from the fills.
Each session's engine is seeded with the same fill-model seed, so a date's fills do not depend on the range
it is computed in.

Point in time: the orders of D are filled on the first later session with an open (the next partition; a
symbol without an open that day keeps its order pending); marks are each symbol's last close <= the session.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from decimal import Decimal

import numpy as np
import pandas as pd

PRICE_PRECISION = 6
BALANCE = 1e12
_OPEN_NS = 14 * 3600 * 10**9 + 30 * 60 * 10**9  # 14:30 UTC on the session date


@dataclass(frozen=True)
class Order:
    """A whole-unit order: ``quantity`` > 0, ``side`` buy or sell, priced against ``reference`` (the close of
    ``order_date``, when the decision was taken)."""

    symbol: str
    side: str
    quantity: int
    reference: float
    order_date: pd.Timestamp

    @property
    def signed(self) -> int:
        return self.quantity if self.side == "buy" else -self.quantity


@dataclass(frozen=True)
class Fill:
    symbol: str
    side: str
    quantity: int
    price: float
    commission: float
    reference: float
    order_date: pd.Timestamp

    @property
    def shortfall_bps(self) -> float:
        """Implementation shortfall vs the decision-time close, worse fills positive."""
        sign = 1.0 if self.side == "buy" else -1.0
        return 1e4 * sign * (self.price - self.reference) / self.reference


@dataclass
class Account:
    """The account after a session: whole-unit positions, cash, each held symbol's last mark, orders not
    filled yet."""

    cash: float
    positions: dict[str, int] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    pending: list[Order] = field(default_factory=list)
    candidate: str = ""

    @property
    def equity(self) -> float:
        return float(self.cash + sum(q * self.marks[s] for s, q in self.positions.items()))


def to_orders(sides: pd.Series, quantities: pd.Series, references: pd.Series, order_date: pd.Timestamp) -> list[Order]:
    """Whole-unit orders from drift-monitor rows (sides buy / buy_to_cover / sell / sell_short / none,
    fractional quantities rounded to the nearest unit; a quantity that rounds to 0 is no order)."""
    out = []
    for sym in sides.index:
        side = str(sides[sym])
        qty = int(round(float(quantities[sym]))) if np.isfinite(quantities[sym]) else 0
        if side == "none" or qty <= 0:
            continue
        out.append(Order(str(sym), "buy" if side in ("buy", "buy_to_cover") else "sell", qty,
                         float(references[sym]), pd.Timestamp(order_date)))
    return out


def net_orders(orders: list[Order]) -> list[Order]:
    """One order per symbol: signed quantities summed (a pending order and a new one of the same symbol);
    the latest order's reference and date stand for the net."""
    by: dict[str, list[Order]] = {}
    for o in orders:
        by.setdefault(o.symbol, []).append(o)
    out = []
    for sym in sorted(by):
        net = sum(o.signed for o in by[sym])
        if net:
            last = by[sym][-1]
            out.append(replace(last, side="buy" if net > 0 else "sell", quantity=abs(net)))
    return out


def fill_at_open(orders: list[Order], opens: pd.Series, commission: pd.Series, session: pd.Timestamp, *,
                 tick: float = 0.01, fill_model: dict | None = None) -> tuple[list[Fill], list[Order]]:
    """Fill ``orders`` at ``session``'s open through nautilus's simulated exchange.

    Parameters
    ----------
    orders : list of Order
    opens : Series
        The session's open by symbol (absent or NaN: the symbol did not trade, its order stays pending).
    commission : Series
        Commission per unit of notional by symbol (nautilus's taker fee).
    session : Timestamp
    tick : float
        Price increment of the instruments.
    fill_model : dict, optional
        Keyword arguments of nautilus's ``FillModel``.

    Returns
    -------
    (fills, unfilled)
    """
    tradable = [o for o in orders if np.isfinite(opens.get(o.symbol, np.nan)) and opens.get(o.symbol) > 0]
    unfilled = [o for o in orders if o not in tradable]
    if not tradable:
        return [], unfilled
    return _run_session(tradable, opens, commission, session, tick, fill_model or {}), unfilled


def _run_session(orders: list[Order], opens: pd.Series, commission: pd.Series, session: pd.Timestamp,
                 tick: float, fill_model: dict) -> list[Fill]:
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

    venue = Venue("SIM")
    ts = int(pd.Timestamp(session).normalize().value) + _OPEN_NS
    engine = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("TVQUANT-PAPER"),
                                                 logging=LoggingConfig(bypass_logging=True)))
    fills: list[Fill] = []
    try:
        engine.add_venue(venue=venue, oms_type=OmsType.NETTING, account_type=AccountType.MARGIN, base_currency=USD,
                         starting_balances=[Money(BALANCE, USD)], default_leverage=Decimal(1),
                         fill_model=FillModel(**fill_model))
        increment = Price(tick, PRICE_PRECISION)
        ids, bar_types = {}, []
        for i, o in enumerate(orders):
            iid = InstrumentId(Symbol(f"A{i}"), venue)  # our symbols may hold characters nautilus refuses
            fee = Decimal(repr(float(commission.get(o.symbol, 0.0))))
            engine.add_instrument(Equity(instrument_id=iid, raw_symbol=Symbol(f"A{i}"), currency=USD,
                                         price_precision=PRICE_PRECISION, price_increment=increment,
                                         lot_size=Quantity.from_int(1), ts_event=0, ts_init=0,
                                         maker_fee=fee, taker_fee=fee))
            ids[iid] = o
            bar_types.append(BarType.from_str(f"{iid}-1-DAY-LAST-EXTERNAL"))
            p = Price(round(float(opens[o.symbol]), PRICE_PRECISION), PRICE_PRECISION)
            engine.add_data([Bar(bar_types[-1], p, p, p, p, Quantity.from_int(10**12), ts, ts)])

        class AtTheOpen(Strategy):
            """Every order as a market order once the session's opening bars have arrived, sells first."""

            def __init__(self):
                super().__init__()
                self.seen = 0

            def on_start(self):
                for bt in bar_types:
                    self.subscribe_bars(bt)

            def on_bar(self, bar):
                self.seen += 1
                if self.seen < len(bar_types):
                    return
                for iid, o in sorted(ids.items(), key=lambda kv: (kv[1].side == "buy", kv[1].symbol)):
                    side = OrderSide.BUY if o.side == "buy" else OrderSide.SELL
                    self.submit_order(self.order_factory.market(iid, side, Quantity.from_int(o.quantity)))

            def on_order_filled(self, event):
                o = ids[event.instrument_id]
                fills.append(Fill(o.symbol, o.side, int(round(float(event.last_qty))), float(event.last_px),
                                  float(event.commission.as_double()), o.reference, o.order_date))

        engine.add_strategy(AtTheOpen())
        with warnings.catch_warnings():  # nautilus calls pandas' deprecated Timestamp.utcnow
            warnings.filterwarnings("ignore", message=".*utcnow.*")
            engine.run()
    finally:
        engine.dispose()
    return _merge(fills)


def _merge(fills: list[Fill]) -> list[Fill]:
    """One fill per order (partial fills of one order: quantity summed, price volume-weighted)."""
    by: dict[str, list[Fill]] = {}
    for f in fills:
        by.setdefault(f.symbol, []).append(f)
    out = []
    for sym in sorted(by):
        parts = by[sym]
        qty = sum(f.quantity for f in parts)
        px = sum(f.quantity * f.price for f in parts) / qty
        out.append(replace(parts[0], quantity=qty, price=px, commission=sum(f.commission for f in parts)))
    return out


def session(account: Account, orders: list[Order], opens: pd.Series, closes: pd.Series, commission: pd.Series,
            day: pd.Timestamp, *, tick: float = 0.01, fill_model: dict | None = None
            ) -> tuple[Account, list[Fill]]:
    """The account after session ``day``: pending and new ``orders`` filled at the open, marked at the close.

    ``closes``: the session's close by symbol (a symbol without one keeps its last mark; a symbol bought
    without a close is marked at its fill)."""
    fills, unfilled = fill_at_open(net_orders([*account.pending, *orders]), opens, commission, day, tick=tick,
                                   fill_model=fill_model)
    positions, marks, cash = dict(account.positions), dict(account.marks), float(account.cash)
    for f in fills:
        sign = 1 if f.side == "buy" else -1
        positions[f.symbol] = positions.get(f.symbol, 0) + sign * f.quantity
        cash -= sign * f.quantity * f.price + f.commission
        marks.setdefault(f.symbol, f.price)
    for sym in list(positions):
        close = closes.get(sym, np.nan)
        if np.isfinite(close) and close > 0:
            marks[sym] = float(close)
        if positions[sym] == 0:
            del positions[sym]
    marks = {s: marks[s] for s in positions}
    return Account(cash, positions, marks, unfilled, account.candidate), fills


COLUMNS: dict[str, str] = {
    "kind": "str",  # account | position | fill | pending | slippage
    "symbol": "str",
    "side": "str",
    "quantity": "float64",
    "price": "float64",  # fill price; a position's mark
    "reference": "float64",  # the decision-time close of the order
    "commission": "float64",
    "shortfall_bps": "float64",
    "value": "float64",  # a position's market value; a fill's notional
    "order_date": "str",
    "asset_class": "str",
    "candidate": "str",
    "cash": "float64",
    "equity": "float64",
    "pnl": "float64",
    "day_return": "float64",
    "backtest_return": "float64",
    "return_shortfall": "float64",  # backtest day return - paper day return (positive: paper did worse)
    "estimate_bps": "float64",  # slippage learned from the fills <= D (per asset class)
    "pool_weighted": "float64",
    "pool_notional": "float64",
    "pool_fills": "float64",
}


@dataclass(frozen=True)
class Estimate:
    """The slippage learned from paper fills of one asset class: the estimate and the pool of fills that
    have not moved it yet (``core/execution_feedback.estimate_step``)."""

    bps: float
    weighted: float = 0.0
    notional: float = 0.0
    seen: float = 0.0
    fills: int = 0


def frame(account: Account, fills: list[Fill], classes: dict[str, str], estimates: dict[str, Estimate], *,
          pnl: float, day_return: float, backtest_return: float) -> pd.DataFrame:
    """One partition of the paper account: its account row, positions, fills, pending orders and estimates."""
    rows: list[dict] = [{"kind": "account", "candidate": account.candidate, "cash": account.cash,
                         "equity": account.equity, "pnl": pnl, "day_return": day_return,
                         "backtest_return": backtest_return, "return_shortfall": backtest_return - day_return}]
    rows += [{"kind": "position", "symbol": s, "quantity": float(q), "price": account.marks[s],
              "value": q * account.marks[s], "asset_class": classes.get(s, "default")}
             for s, q in sorted(account.positions.items())]
    rows += [{"kind": "fill", "symbol": f.symbol, "side": f.side, "quantity": float(f.quantity), "price": f.price,
              "reference": f.reference, "commission": f.commission, "shortfall_bps": f.shortfall_bps,
              "value": f.quantity * f.price, "order_date": f"{f.order_date:%Y-%m-%d}",
              "asset_class": classes.get(f.symbol, "default")} for f in fills]
    rows += [{"kind": "pending", "symbol": o.symbol, "side": o.side, "quantity": float(o.quantity),
              "reference": o.reference, "order_date": f"{o.order_date:%Y-%m-%d}",
              "asset_class": classes.get(o.symbol, "default")} for o in account.pending]
    rows += [{"kind": "slippage", "asset_class": c, "estimate_bps": e.bps, "pool_weighted": e.weighted,
              "pool_notional": e.notional, "pool_fills": e.seen, "quantity": float(e.fills)}
             for c, e in sorted(estimates.items())]
    out = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
    for c, t in COLUMNS.items():
        out[c] = out[c].astype(object).where(out[c].notna(), "").astype(str) if t == "str" else out[c].astype(t)
    return out


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLUMNS.items()})


def from_frame(f: pd.DataFrame) -> tuple[Account, dict[str, Estimate]]:
    """The account and estimates a partition holds (the state the next session starts from)."""
    acc = f[f["kind"] == "account"].iloc[0]
    pos = f[f["kind"] == "position"]
    pend = f[f["kind"] == "pending"]
    account = Account(float(acc["cash"]), {str(s): int(q) for s, q in zip(pos["symbol"], pos["quantity"])},
                      {str(s): float(p) for s, p in zip(pos["symbol"], pos["price"])},
                      [Order(str(r.symbol), str(r.side), int(r.quantity), float(r.reference),
                             pd.Timestamp(r.order_date)) for r in pend.itertuples()], str(acc["candidate"]))
    est = {str(r.asset_class): Estimate(float(r.estimate_bps), float(r.pool_weighted), float(r.pool_notional),
                                        float(r.pool_fills), int(r.quantity))
           for r in f[f["kind"] == "slippage"].itertuples()}
    return account, est
