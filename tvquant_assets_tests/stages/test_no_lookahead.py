"""Property (hypothesis): for a random date D and a random disturbance of everything stamped after D,
every stage's output for D (and every engine x profile's weights) is hash-identical.

The stage cores are chained as the pipeline chains them, on the bundled S&P 500 closes; examples are
few on purpose (each one runs the whole chain twice)."""

import functools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tvquant_assets.core.backtest import walk_forward
from tvquant_assets.core.engines import ENGINE_PROFILES
from tvquant_assets.core.estimation import estimate
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.core.regime import detect
from tvquant_assets.core.scan import compute_scan
from tvquant_assets.core.selection import preset_overrides, select
from tvquant_assets.core.tournament import run_tournament
from tvquant_assets.hashing import df_hash
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import load_manifest
from tvquant_assets.manifest.schema import Candidate
from tvquant_assets.stages.context import RunContext

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
EXAMPLE = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
DAYS = dict(pick=st.integers(0, 10**6), kind=st.sampled_from(["scale", "blank", "cut", "crash"]),
            seed=st.integers(0, 2**31 - 1))


@functools.lru_cache(maxsize=1)
def _manifest():
    return load_manifest(ROOT / "manifests" / "sp500_demo.yaml")


def _presets(m) -> dict:
    return {k.value if hasattr(k, "value") else str(k): v for k, v in m.regime_presets.items()}


def _inputs(close: pd.DataFrame, d: pd.Timestamp) -> dict:
    """Scan, selection, regime and estimation for D from the closes, as the pipeline's runners call them."""
    m = _manifest()
    panel = PricePanel(close=close)
    listed = {d: [s for s in close.columns if close.loc[:d, s].notna().any()]}
    rows = RunContext(m, Lake("/nonexistent-lake")).lookback_rows()
    scan = compute_scan(panel, [d], m.universe, listed, history_rows=rows)
    regime = detect(panel, scan, [d], m.regime, _presets(m))
    selection = select(panel, scan, [d], m.selection, None, preset_overrides(regime))
    chosen = {d: sorted(selection[d].loc[selection[d]["selected"], "symbol"])}
    estimation = estimate(panel, chosen, [d], m.estimation, selection, regime)
    return {"panel": panel, "scan": scan, "selection": selection, "regime": regime, "estimation": estimation}


def _weights(panel, up: dict, d: pd.Timestamp, candidates) -> dict[str, pd.DataFrame]:
    m = _manifest()
    cfg = m.tournament.model_copy(update={"candidates": list(candidates)})
    frame = run_tournament(panel, up["estimation"], up["regime"], [d], lambda _: True, cfg, _presets(m),
                           m.estimation)[d]
    return {str(c): g.drop(columns=["solve_ms"]).reset_index(drop=True) for c, g in frame.groupby("candidate")}


def _chain(close: pd.DataFrame, d: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Every stage's output for D (the manifest's candidates), and a backtest stitched from them."""
    m = _manifest()
    up = _inputs(close, d)
    weights = _weights(up["panel"], up, d, m.tournament.candidates)
    past = [close.index[close.index <= d][-k] for k in (43, 22)] + [d]  # decisions two months back and on D
    decisions = {}
    for cand, g in weights.items():
        w = g[g["symbol"] != ""].set_index("symbol")["weight"]
        decisions[cand] = pd.DataFrame([w.to_dict()] * len(past), index=pd.DatetimeIndex(past)).fillna(0.0)
    backtest = walk_forward(close, decisions, past[0], [d], m.backtest.costs.rate, m.backtest.periods_per_year)[d]
    out = {s: up[s][d] for s in ("scan", "selection", "regime", "estimation")}
    out["backtest"] = backtest
    out.update({f"tournament {c}": w for c, w in weights.items()})
    return out


def _disturb(close: pd.DataFrame, d: pd.Timestamp, kind: str, seed: int) -> pd.DataFrame:
    out = close.copy()
    later = out.index > d
    rng = np.random.default_rng(seed)
    if kind == "cut":  # the future does not exist yet
        return out.loc[~later]
    values = out.loc[later].to_numpy(copy=True)
    if kind == "scale":
        values = values * rng.uniform(0.2, 5.0, size=values.shape)
    elif kind == "blank":
        values = np.where(rng.random(values.shape) < 0.3, np.nan, values)
    elif kind == "crash":  # one symbol collapses the next day
        values[:, rng.integers(values.shape[1])] *= 1e-3
    out.loc[later] = values
    return out


@pytest.fixture(scope="module")
def clean_hashes() -> dict:
    """Hashes of the undisturbed chain per date (shared by the examples)."""
    return {}


def _day(close: pd.DataFrame, pick: int) -> pd.Timestamp:
    days = close.loc["2005-01-03":"2022-06-30"].index
    return days[pick % len(days)]


@settings(max_examples=5, **EXAMPLE)
@given(**DAYS)
def test_future_data_never_changes_any_stage_for_d(sp500_close, clean_hashes, pick, kind, seed):
    d = _day(sp500_close, pick)
    if d not in clean_hashes:
        clean_hashes[d] = {k: df_hash(v) for k, v in _chain(sp500_close, d).items()}
    clean = clean_hashes[d]
    shocked = {k: df_hash(v) for k, v in _chain(_disturb(sp500_close, d, kind, seed), d).items()}
    assert set(shocked) == set(clean)
    changed = [k for k in clean if clean[k] != shocked[k]]
    assert not changed, f"{', '.join(changed)} for {d.date()} changed when data after it moved ({kind})"


@pytest.mark.parametrize("engine", sorted(ENGINE_PROFILES))
@settings(max_examples=1, **EXAMPLE)
@given(**DAYS)
def test_future_data_never_changes_any_engine_profile_for_d(sp500_close, engine, pick, kind, seed):
    d = _day(sp500_close, pick)
    candidates = [Candidate(engine=engine, profile=p) for p in ENGINE_PROFILES[engine]]
    up = _inputs(sp500_close, d)  # D's estimates and regime; only the panel the engines see is disturbed
    clean = _weights(up["panel"], up, d, candidates)
    shocked = _weights(PricePanel(close=_disturb(sp500_close, d, kind, seed)), up, d, candidates)
    assert set(clean) == {c.name for c in candidates} == set(shocked)
    changed = [c for c in clean if df_hash(clean[c]) != df_hash(shocked[c])]
    assert not changed, f"{', '.join(changed)} weights for {d.date()} changed when data after it moved ({kind})"
def test_the_disturbance_is_real(sp500_close):
    d = pd.Timestamp("2020-03-02")
    later = sp500_close.index[sp500_close.index > d][25]
    clean, shocked = _chain(sp500_close, later), _chain(_disturb(sp500_close, d, "scale", 1), later)
    assert all(df_hash(clean[k]) != df_hash(shocked[k]) for k in ("scan", "regime", "backtest"))
