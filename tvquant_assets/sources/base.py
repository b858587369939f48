"""The source interface: a static catalog and daily bars for symbols over a date range."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod

import pandas as pd

CATALOG_COLUMNS = ["symbol", "exchange", "type", "sector", "industry", "currency"]
BAR_FIELDS = ("open", "high", "low", "close", "volume")


class Source(ABC):
    """A market-data source. ``fields`` lists the bar fields it really has; others are unavailable."""

    name: str = ""
    fields: tuple[str, ...] = ()
    synthetic: bool = False

    def attach_lake(self, root) -> None:
        """Sources that keep fetched raw data (the live ones) store it under the lake root."""

    def catalog_as_of(self, frames: dict[pd.Timestamp, pd.DataFrame]) -> dict[pd.Timestamp, pd.DataFrame]:
        """Sources with a point-in-time catalog replace each date's attributes by the versions valid then."""
        return frames

    def scan_fields(self, frames: dict[pd.Timestamp, pd.DataFrame]) -> dict[pd.Timestamp, pd.DataFrame]:
        """Sources with scanner fields of their own add them (point in time) to the scan frames."""
        return frames

    def partitions_end(self, now: dt.datetime) -> dt.date | None:
        """The last partition date that has data as of ``now``: a fixed history ends at its last bar, a live
        source at ``now``'s last closed session. None (the default): partitions run to today."""
        return None

    @abstractmethod
    def catalog(self) -> pd.DataFrame:
        """Static symbol metadata, columns CATALOG_COLUMNS, sorted by symbol."""

    @abstractmethod
    def history(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Daily bars stamped in [start, end]: long frame with columns date, symbol and ``fields``,
        sorted by date then symbol; only rows where the symbol really has a bar."""

    def first_dates(self) -> pd.Series:
        """First bar date per symbol (for point-in-time listing)."""
        bars = self.history(list(self.catalog()["symbol"]), pd.Timestamp.min, pd.Timestamp.max)
        return bars.groupby("symbol")["date"].min()
