"""Wide price panels and the point-in-time window every stage core reads through."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class PricePanel:
    """Daily bars as wide frames: index = trading days (ascending DatetimeIndex, days with at least one
    bar), columns = symbols (sorted). NaN where a symbol has no bar. ``volume``/``high``/``low``/``open`` are None
    when the source does not provide them (never invented)."""

    close: pd.DataFrame
    volume: pd.DataFrame | None = None
    high: pd.DataFrame | None = None
    low: pd.DataFrame | None = None
    open: pd.DataFrame | None = None

    @property
    def symbols(self) -> list[str]:
        return list(self.close.columns)

    def upto(self, date: pd.Timestamp) -> PricePanel:
        """Only rows stamped <= date: the one place stage cores cut history."""
        date = pd.Timestamp(date)

        def cut(f: pd.DataFrame | None) -> pd.DataFrame | None:
            return None if f is None else f.loc[f.index <= date]

        return PricePanel(cut(self.close), cut(self.volume), cut(self.high), cut(self.low), cut(self.open))

    def returns(self) -> pd.DataFrame:
        """Simple daily returns of close; NaN where either bar is missing (no filling across gaps)."""
        return self.close.pct_change(fill_method=None)


def window(frame: pd.DataFrame, date: pd.Timestamp, rows: int) -> pd.DataFrame:
    """The last ``rows`` rows stamped <= date."""
    sub = frame.loc[frame.index <= pd.Timestamp(date)]
    return sub.iloc[-rows:] if rows > 0 else sub.iloc[0:0]
