"""Tournament with every engine: adaptive pick per regime, previous decision feeding the turnover
penalty and the fallback, regime-scaled L2 gamma, cluster caps from the estimation frame, and a forced
solver failure that still yields a decision for every candidate."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd

from tvquant_assets.core.estimation import estimate, unpack
from tvquant_assets.core.tournament import fit_spec, run_tournament
from tvquant_assets.manifest.schema import EstimationConfig, TournamentConfig

EST = EstimationConfig()
SYMS = ["AAPL", "BAC", "CVX", "JNJ", "KO", "MSFT", "PFE", "WMT", "XOM", "UNH"]
REBAL = [pd.Timestamp("2019-06-03"), pd.Timestamp("2019-07-01")]
CFG = TournamentConfig(
    candidates=[{"engine": e, "profile": p} for e, p in [
        ("custom", "min_variance"), ("custom", "herc"), ("custom", "barbell"), ("adaptive", "adaptive"),
        ("riskfolio", "hrp"), ("cvxportfolio", "min_variance"), ("skfolio", "risk_parity")]],
    constraints={"max_weight": 0.3, "cluster_cap": 0.5, "turnover_penalty": 0.01},
    l2_gamma={"default": 0.05, "by_regime": {"CRISIS": 0.15}},
)


def regime(label: str, quadrant: str) -> pd.DataFrame:
    return pd.DataFrame({"label": [label], "quadrant": [quadrant], "preset_max_weight": [np.nan],
                         "stress_score": [1.0]})


def scores() -> pd.DataFrame:
    return pd.DataFrame({"symbol": SYMS, "cluster": [1, 2, 3, 4, 4, 1, 4, 4, 3, 4], "momentum_pct": 0.5})


def run(panel, regimes, cfg=CFG, previous=None):
    ests = estimate(panel, {d: SYMS for d in REBAL}, REBAL, EST, {d: scores() for d in REBAL})
    return run_tournament(panel, ests, regimes, REBAL, lambda d: True, cfg, {}, EST, previous)


def test_every_engine_decides_with_caps_and_adaptive_pick(sp500_panel):
    out = run(sp500_panel, {REBAL[0]: regime("NORMAL", "EXPANSION"), REBAL[1]: regime("CRISIS", "CRISIS")})
    for frame in out.values():
        assert sorted(frame["candidate"].unique()) == sorted(c.name for c in CFG.candidates)
        for cand, g in frame.groupby("candidate"):
            w = g.set_index("symbol")["weight"]
            assert abs(w.sum() - 1) < 1e-6 and w.min() >= -1e-9, cand
            by_cluster = w.groupby(scores().set_index("symbol")["cluster"]).sum()
            assert by_cluster.max() <= 0.5 + 1e-6, (cand, g["fallback"].iloc[0])
    picks = {d: f.loc[f["candidate"] == "adaptive/adaptive", "picked"].iloc[0] for d, f in out.items()}
    assert picks == {REBAL[0]: "max_sharpe", REBAL[1]: "hrp"}
    assert set(out[REBAL[0]].loc[out[REBAL[0]]["engine"] != "adaptive", "picked"]) == {""}


def test_regime_scaled_gamma_and_previous_weights(sp500_panel):
    est = unpack(estimate(sp500_panel, {REBAL[0]: SYMS}, [REBAL[0]], EST, {REBAL[0]: scores()})[REBAL[0]])
    assert fit_spec(CFG, est, regime("CRISIS", "CRISIS"), None).l2_gamma == 0.15
    assert fit_spec(CFG, est, regime("QUIET", "EXPANSION"), None).l2_gamma == 0.05
    assert fit_spec(CFG, est, regime("QUIET", "EXPANSION"), None).turnover_penalty == 0.0  # nothing to turn over
    assert fit_spec(CFG, est, None, np.full(10, 0.1)).turnover_penalty == 0.01
    # The active regime preset (published by the regime stage) wins over the tournament config.
    preset = regime("CRISIS", "CRISIS").assign(preset_l2_gamma=0.3, preset_profile="risk_parity")
    spec = fit_spec(CFG, est, preset, None)
    assert spec.l2_gamma == 0.3 and spec.preset_profile == "risk_parity"
    blank = regime("CRISIS", "CRISIS").assign(preset_l2_gamma=np.nan, preset_profile="")
    assert fit_spec(CFG, est, blank, None).l2_gamma == 0.15 and fit_spec(CFG, est, blank, None).preset_profile == ""
    # The second decision is penalized against the first: a big penalty freezes min_variance.
    frozen = CFG.model_copy(update={"constraints": CFG.constraints.model_copy(update={"turnover_penalty": 100.0})})
    out = run(sp500_panel, {d: regime("NORMAL", "NORMAL") for d in REBAL}, frozen)
    w = [f[f["candidate"] == "custom/min_variance"].set_index("symbol")["weight"] for f in out.values()]
    np.testing.assert_allclose(w[1].to_numpy(), w[0].to_numpy(), atol=1e-6)


def test_forced_solver_failure_never_fails_the_partition(sp500_panel, monkeypatch):
    regimes = {d: regime("NORMAL", "STAGNATION") for d in REBAL}
    first = run(sp500_panel, regimes)

    import tvquant_assets.core.engines.custom as custom

    def solve(self, *args, **kwargs):
        raise cp.error.SolverError("forced")
    monkeypatch.setattr(cp.Problem, "solve", solve)
    monkeypatch.setattr(custom, "_solve_direct", lambda *a, **k: solve(None))
    out = run(sp500_panel, regimes, previous=first[REBAL[1]])
    frame = out[REBAL[0]]
    mv = frame[frame["candidate"] == "custom/min_variance"]
    assert (mv["status"] == "fallback:previous").all() and mv["fallback"].iloc[0].endswith("previous weights")
    prev = first[REBAL[1]]
    np.testing.assert_allclose(mv["weight"].to_numpy(),
                               prev[prev["candidate"] == "custom/min_variance"]["weight"].to_numpy())
    closed = frame[frame["candidate"] == "custom/herc"]
    assert (closed["status"] == "optimal").all()  # closed forms need no solver
