"""Planted faults: a source wrapper that corrupts chosen bars, and helpers to corrupt lake partitions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tvquant_assets.sources.base import Source

DROP = "drop"


class FaultySource(Source):
    """Serves ``inner``'s data with ``faults[(symbol, 'YYYY-MM-DD')]`` applied: a number replaces every
    price field of that bar (NaN, 0, ...), ``DROP`` removes the bar."""

    def __init__(self, inner: Source, faults: dict[tuple[str, str], float | str]) -> None:
        self.inner, self.faults = inner, dict(faults)
        self.name, self.fields, self.synthetic = inner.name, inner.fields, inner.synthetic

    def catalog(self) -> pd.DataFrame:
        return self.inner.catalog()

    def first_dates(self) -> pd.Series:
        return self.inner.first_dates()

    def history(self, symbols, start, end) -> pd.DataFrame:
        bars = self.inner.history(symbols, start, end).copy()
        keys = list(zip(bars["symbol"], bars["date"].dt.strftime("%Y-%m-%d"), strict=True))
        drop = np.zeros(len(bars), dtype=bool)
        for i, key in enumerate(keys):
            fault = self.faults.get(key)
            if fault is None:
                continue
            if fault == DROP:
                drop[i] = True
            else:
                for f in self.fields:
                    if f != "volume":
                        bars.loc[bars.index[i], f] = float(fault)
        return bars[~drop].reset_index(drop=True)


def install(monkeypatch, faults: dict[tuple[str, str], float | str]) -> None:
    """Every RunContext built from now on reads its source through FaultySource(faults)."""
    import tvquant_assets.stages.context as context

    real = context.build_source
    monkeypatch.setattr(context, "build_source", lambda cfg: FaultySource(real(cfg), faults))
