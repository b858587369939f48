"""Shared fixtures: skfolio's bundled S&P 500 closes (offline, real data)."""

from __future__ import annotations

import pandas as pd
import pytest

from tvquant_assets.core.panel import PricePanel


@pytest.fixture(scope="session")
def sp500_close() -> pd.DataFrame:
    """Adjusted closes of 20 US large caps, 1990-2022: ns DatetimeIndex ascending, sorted float64 columns."""
    from skfolio.datasets import load_sp500_dataset

    close = load_sp500_dataset()
    close.index = pd.DatetimeIndex(close.index).as_unit("ns")
    close.index.name = "date"
    return close.sort_index()[sorted(close.columns)].astype("float64")


@pytest.fixture(scope="session")
def sp500_panel(sp500_close: pd.DataFrame) -> PricePanel:
    return PricePanel(close=sp500_close)
