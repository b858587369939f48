"""skfolio's S&P 500 set: real daily adjusted closes of 20 US large caps, 1990-01-02..2022-12-28.

Close-only: open/high/low/volume are not in the data and are reported unavailable, never invented.
Closes are adjusted by the data vendor as of the dataset's date (a known, documented limitation:
split/dividend adjustment uses later corporate actions; prices themselves are not revised).
"""

from __future__ import annotations

import datetime as dt
import functools

import pandas as pd

from tvquant_assets.errors import SourceError
from tvquant_assets.sources.base import CATALOG_COLUMNS, Source

# GICS sector / sub-industry; exchange as listed today.
SP500_METADATA: dict[str, tuple[str, str, str]] = {
    "AAPL": ("NASDAQ", "Information Technology", "Technology Hardware, Storage & Peripherals"),
    "AMD": ("NASDAQ", "Information Technology", "Semiconductors"),
    "BAC": ("NYSE", "Financials", "Diversified Banks"),
    "BBY": ("NYSE", "Consumer Discretionary", "Computer & Electronics Retail"),
    "CVX": ("NYSE", "Energy", "Integrated Oil & Gas"),
    "GE": ("NYSE", "Industrials", "Industrial Conglomerates"),
    "HD": ("NYSE", "Consumer Discretionary", "Home Improvement Retail"),
    "JNJ": ("NYSE", "Health Care", "Pharmaceuticals"),
    "JPM": ("NYSE", "Financials", "Diversified Banks"),
    "KO": ("NYSE", "Consumer Staples", "Soft Drinks & Non-alcoholic Beverages"),
    "LLY": ("NYSE", "Health Care", "Pharmaceuticals"),
    "MRK": ("NYSE", "Health Care", "Pharmaceuticals"),
    "MSFT": ("NASDAQ", "Information Technology", "Systems Software"),
    "PEP": ("NASDAQ", "Consumer Staples", "Soft Drinks & Non-alcoholic Beverages"),
    "PFE": ("NYSE", "Health Care", "Pharmaceuticals"),
    "PG": ("NYSE", "Consumer Staples", "Household Products"),
    "RRC": ("NYSE", "Energy", "Oil & Gas Exploration & Production"),
    "UNH": ("NYSE", "Health Care", "Managed Health Care"),
    "WMT": ("NYSE", "Consumer Staples", "Consumer Staples Merchandise Retail"),
    "XOM": ("NYSE", "Energy", "Integrated Oil & Gas"),
}


@functools.lru_cache(maxsize=1)
def _sp500_close() -> pd.DataFrame:
    close = _read_sp500_csv()
    close.index = pd.DatetimeIndex(close.index).as_unit("ns")
    close.index.name = "date"
    return close.sort_index()[sorted(close.columns)].astype("float64")


def _read_sp500_csv() -> pd.DataFrame:
    """skfolio's ``load_sp500_dataset`` without importing skfolio (its package import costs ~1.5 s, every
    run): the same file read the same way."""
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("skfolio")
    if spec is None or spec.origin is None:
        raise SourceError("source bundled: the skfolio package (which ships the S&P 500 data) is not installed; "
                          "run `uv sync`")
    path = Path(spec.origin).parent / "datasets" / "data" / "sp500_dataset.csv.gz"
    with gzip.open(path, mode="rt", encoding="utf-8") as fh:
        close = pd.read_csv(fh, sep=",", index_col=0)
    close.index = pd.to_datetime(close.index, format="%Y-%m-%d")
    return close


class BundledSource(Source):
    name = "bundled"
    fields = ("close",)

    def __init__(self, dataset: str = "sp500") -> None:
        if dataset != "sp500":
            raise SourceError(f"source.dataset: unknown bundled dataset {dataset!r} (allowed: sp500)")

    def catalog(self) -> pd.DataFrame:
        close = _sp500_close()
        missing = sorted(set(close.columns) - set(SP500_METADATA))
        if missing:
            raise SourceError(f"bundled sp500: no sector metadata for {', '.join(missing)}")
        rows = [
            (s, ex, "stock", sector, industry, "USD")
            for s, (ex, sector, industry) in sorted(SP500_METADATA.items())
            if s in close.columns
        ]
        return pd.DataFrame(rows, columns=CATALOG_COLUMNS)

    def history(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        close = _sp500_close()
        unknown = sorted(set(symbols) - set(close.columns))
        if unknown:
            raise SourceError(
                f"bundled sp500: unknown symbols {', '.join(unknown)}; available: {', '.join(close.columns)}"
            )
        sub = close.loc[(close.index >= start) & (close.index <= end), sorted(symbols)]
        long = sub.stack().rename("close").reset_index()
        long.columns = ["date", "symbol", "close"]
        return long.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)

    def partitions_end(self, now: dt.datetime) -> dt.date | None:
        """The dataset's last bar (2022-12-28 for sp500): no partition after it has data."""
        return _sp500_close().index.max().date()

    def first_dates(self) -> pd.Series:
        close = _sp500_close()
        return close.apply(lambda c: c.first_valid_index())
