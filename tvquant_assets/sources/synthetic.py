"""Seeded synthetic market: regime-switching factor model with OHLCV, volume and sectors.

Clearly synthetic (symbols ``SYN0001``..., exchange ``SYNTH``). The whole market is generated from the
seed once and then sliced, so any symbol subset or date range is consistent with any other.
Regimes: a two-state Markov chain (calm / stress) switching market drift and volatility.
"""

from __future__ import annotations

import datetime as dt
import functools

import numpy as np
import pandas as pd

from tvquant_assets.sources.base import CATALOG_COLUMNS, Source

CALM, STRESS = 0, 1
_P_STAY = {CALM: 0.995, STRESS: 0.97}
_MARKET = {CALM: (0.0004, 0.008), STRESS: (-0.0015, 0.03)}  # daily drift, vol


@functools.lru_cache(maxsize=4)
def _market(n_symbols: int, start: str, end: str, seed: int, n_sectors: int):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, end, name="date").as_unit("ns")
    t = len(dates)
    states = np.empty(t, dtype=np.int8)
    state = CALM
    draws = rng.random(t)
    for i in range(t):
        states[i] = state
        if draws[i] > _P_STAY[state]:
            state = 1 - state
    drift = np.array([_MARKET[s][0] for s in states])
    mvol = np.array([_MARKET[s][1] for s in states])
    market = drift + mvol * rng.standard_normal(t)
    sector_of = rng.integers(0, n_sectors, n_symbols)
    sector_ret = 0.006 * rng.standard_normal((t, n_sectors)) * (1 + states[:, None])
    beta = rng.uniform(0.6, 1.4, n_symbols)
    idio_vol = rng.uniform(0.008, 0.025, n_symbols)
    rets = market[:, None] * beta + sector_ret[:, sector_of] + idio_vol * rng.standard_normal((t, n_symbols))
    rets = np.clip(rets, -0.5, 1.0)
    close = rng.uniform(10, 200, n_symbols) * np.cumprod(1 + rets, axis=0)
    gap = 0.002 * rng.standard_normal((t, n_symbols))
    prev = np.vstack([close[:1] / (1 + rets[:1]), close[:-1]])
    open_ = prev * (1 + gap)
    wick = np.abs(rng.standard_normal((t, n_symbols, 2))) * idio_vol[None, :, None] * 0.5
    high = np.maximum(open_, close) * (1 + wick[..., 0])
    low = np.minimum(open_, close) * (1 - wick[..., 1])
    base_volume = rng.lognormal(13, 1, n_symbols)
    volume = np.round(base_volume * (1 + 3 * np.abs(rets) / idio_vol.mean()) * rng.lognormal(0, 0.2, (t, n_symbols)))
    # about 10% of symbols list later, spread over the first half of the range
    listed = np.zeros(n_symbols, dtype=np.int64)
    late = rng.random(n_symbols) < 0.10
    listed[late] = rng.integers(1, max(2, t // 2), late.sum())
    symbols = [f"SYN{i + 1:04d}" for i in range(n_symbols)]
    return dates, symbols, sector_of, listed, {"open": open_, "high": high, "low": low, "close": close,
                                               "volume": volume}, states


class SyntheticSource(Source):
    name = "synthetic"
    fields = ("open", "high", "low", "close", "volume")
    synthetic = True

    def __init__(self, n_symbols: int = 50, start="2015-01-01", end="2020-12-31", seed: int = 7,
                 n_sectors: int = 6) -> None:
        self._args = (int(n_symbols), str(pd.Timestamp(start).date()), str(pd.Timestamp(end).date()), int(seed),
                      int(n_sectors))

    def _data(self):
        return _market(*self._args)

    def regimes(self) -> pd.Series:
        """The hidden calm(0)/stress(1) state per day: ground truth for regime-detector tests."""
        dates, *_, states = self._data()
        return pd.Series(states, index=dates, name="stress")

    def catalog(self) -> pd.DataFrame:
        _, symbols, sector_of, _, _, _ = self._data()
        rows = [(s, "SYNTH", "stock", f"Sector {k + 1}", f"Industry {k + 1}", "USD")
                for s, k in zip(symbols, sector_of, strict=True)]
        return pd.DataFrame(rows, columns=CATALOG_COLUMNS)

    def history(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        dates, all_symbols, _, listed, fields, _ = self._data()
        index = {s: i for i, s in enumerate(all_symbols)}
        unknown = sorted(set(symbols) - set(index))
        if unknown:
            from tvquant_assets.errors import SourceError

            raise SourceError(f"synthetic: unknown symbols {', '.join(unknown[:5])} (have SYN0001..)")
        cols = np.array(sorted(index[s] for s in symbols), dtype=np.int64)
        rows = np.flatnonzero((dates >= pd.Timestamp(start)) & (dates <= pd.Timestamp(end)))
        if len(rows) == 0 or len(cols) == 0:
            return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"), "symbol": pd.Series(dtype=str),
                                 **{f: pd.Series(dtype="float64") for f in self.fields}})
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        keep = (rr >= listed[cc]).ravel()
        out = {"date": np.repeat(dates.values[rows], len(cols))[keep],
               "symbol": np.tile(np.array(all_symbols, dtype=object)[cols], len(rows))[keep]}
        for f in self.fields:
            out[f] = fields[f][rr, cc].ravel()[keep]
        return pd.DataFrame(out)

    def partitions_end(self, now: dt.datetime) -> dt.date | None:
        """The configured ``end`` (its last business day): the generated market stops there."""
        return pd.bdate_range(self._args[1], self._args[2])[-1].date()

    def first_dates(self) -> pd.Series:
        dates, symbols, _, listed, _, _ = self._data()
        return pd.Series(dates[listed], index=pd.Index(symbols, name="symbol"))
