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


def _perturbed_after(close: pd.DataFrame, date: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Every price after ``date`` scaled by a random factor, and 5% of them blanked."""
    import numpy as np

    out = close.copy()
    later = out.index > date
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0.3, 3.0, size=(int(later.sum()), out.shape[1]))
    noise[rng.random(noise.shape) < 0.05] = np.nan
    out.loc[later] = out.loc[later].to_numpy() * noise
    return out


@pytest.fixture(scope="session")
def perturbed_after():
    """The future-perturbation used by the point-in-time tests: ``perturbed_after(close, date, seed)``."""
    return _perturbed_after
