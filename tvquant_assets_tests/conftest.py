"""Shared fixtures: skfolio's bundled S&P 500 closes (offline, real data)."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from tvquant_assets.core.panel import PricePanel

# Stages run in one process unless a test asks for workers (test_parallel.py): tests patch sources and
# fakes in this process, which worker processes would not see. TVQUANT_WORKERS=2 runs the suite with them.
os.environ.setdefault("TVQUANT_WORKERS", "1")


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


SP500_IT_START, SP500_IT_END = "2020-02-03", "2020-03-31"


def write_demo_variant(directory, name: str, start: str):
    """The demo manifest renamed to ``name`` with its first partition at ``start`` (earlier bars: warm-up)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "manifests" / "sp500_demo.yaml").read_text()
    text = text.replace("name: sp500_demo", f"name: {name}").replace("start: 2019-01-02", f"start: {start}")
    path = Path(directory) / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def sp500_it_run(tmp_path_factory):
    """One real Dagster range run of a demo variant (2020-02-03..2020-03-31) on a temp lake and a temp
    SQLite instance, shared by the integration and audit tests. Tests that change its lake or ledger
    must restore them."""
    from tvquant_assets.manifest import load_manifest
    from tvquant_assets.runner import materialize_range

    tmp = tmp_path_factory.mktemp("it")
    manifest_path = write_demo_variant(tmp, "sp500_it", SP500_IT_START)
    home = tmp / "dagster"
    mp = pytest.MonkeyPatch()
    mp.setenv("DAGSTER_HOME", str(home))
    try:
        report = materialize_range(manifest_path, SP500_IT_START, SP500_IT_END, lake_root=str(tmp / "lake"))
    finally:
        mp.undo()
    return {"tmp": tmp, "manifest_path": manifest_path, "manifest": load_manifest(manifest_path),
            "lake_root": str(tmp / "lake"), "report": report, "home": home}


@pytest.fixture(scope="session")
def small_lake(sp500_it_run):
    """The lake of ``sp500_it_run`` (every stage for 2020-02-03..2020-03-31, the Covid crash, backtest from
    the first date) for tests that only read it; copy it before changing anything."""
    r = sp500_it_run
    return {"manifest": r["manifest"], "manifest_path": r["manifest_path"], "lake_root": r["lake_root"],
            "start": pd.Timestamp(SP500_IT_START), "end": pd.Timestamp(SP500_IT_END)}
