"""Learned regime thresholds and weights on the bundled S&P history, out of sample: the regime stage's own
walk-forward fits (``regime.regret.apply`` and ``regime.weights: auto`` on the demo's regime settings, every
bundled symbol in the proxy) on the first trading day of every month from 1993, and what switching on them
earned in the month after, against the manifest's fixed thresholds.

Each month's first day labels the market with the thresholds it learned (on outcomes before that day) and,
separately, with the manifest's; the label maps to a profile by the demo's adaptive map and to a proxy
(``core/regime_learning.py``: equal weight or inverse volatility), held to the next month's first day, a
switch costing two backtest cost rates. Both books see the same stress scores (the weights run is separate).

    uv run python -m benchmarks regime_learning [--manifest manifests/sp500_demo.yaml] [--start 1993-01-01]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tvquant_assets.core import regime_learning as rl
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.core.regime import adaptive_map, detect, label_of, quadrant_of, regime_profile
from tvquant_assets.enums import RegimeLabel
from tvquant_assets.manifest import load_manifest
from tvquant_assets.sources.bundled import _sp500_close

ROOT = Path(__file__).resolve().parents[1]


def monthly_fits(close: pd.DataFrame, cfg, dates, m) -> pd.DataFrame:
    scan = pd.DataFrame({"symbol": list(close.columns), "eligible": True})
    cost = cfg.regret.switch_cost if cfg.regret.switch_cost is not None else 2 * m.backtest.costs.rate
    frames = detect(PricePanel(close), {d: scan for d in dates}, dates, cfg, {}, m.tournament.adaptive, cost)
    return pd.concat(frames.values()).set_index("date")


def book(rows: pd.DataFrame, labels: pd.Series | None, proxies: pd.DataFrame, cfg, m, cost: float,
         always: int | None = None) -> dict[str, float]:
    """Monthly switching between the proxies by ``labels`` (index = decision days; ``always``: one proxy
    throughout); log return and annualized Sharpe of the monthly log returns."""
    presets = {str(getattr(k, "value", k)): v for k, v in m.regime_presets.items()}
    mapping, default = adaptive_map(m.tournament.adaptive)
    days = list(rows.index)
    logs, prev, switches = [], None, 0
    for a, b in zip(days[:-1], days[1:], strict=True):
        r = rows.loc[a]
        if always is None:
            quadrant = quadrant_of(float(r["growth"]), float(r["vol_short"]), RegimeLabel(labels[a]), cfg).value
            p = rl.proxy_of(regime_profile(labels[a], quadrant, presets, mapping, default))
        else:
            p = always
        held = proxies.iloc[:, p][(proxies.index > a) & (proxies.index <= b)]
        month = np.log1p(held.fillna(0.0).to_numpy()).sum()
        if prev is not None and p != prev:
            month += np.log1p(-cost)
            switches += 1
        logs.append(month)
        prev = p
    logs = np.asarray(logs)
    return {"log_return": float(logs.sum()), "sharpe_monthly_ann": float(logs.mean() / logs.std(ddof=1) * np.sqrt(12)),
            "switches": switches}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks regime_learning")
    ap.add_argument("--manifest", default=str(ROOT / "manifests" / "sp500_demo.yaml"))
    ap.add_argument("--start", default="1993-01-01")
    args = ap.parse_args(argv)
    m = load_manifest(args.manifest)
    close = _sp500_close()
    index = close.index[close.index >= args.start]
    firsts = index[np.r_[True, index.month[1:] != index.month[:-1]]]
    cost = 2 * m.backtest.costs.rate
    returns = close.pct_change(fill_method=None)
    proxies = pd.DataFrame({"risk_on": returns.mean(axis=1),
                            "defensive": rl.inverse_vol_returns(returns.to_numpy(), m.regime.short_window * 3)},
                           index=close.index)

    t0 = time.perf_counter()
    learn = m.regime.model_copy(update={"regret": m.regime.regret.model_copy(update={"apply": True})})
    rows = monthly_fits(close, learn, list(firsts), m)
    seconds = time.perf_counter() - t0
    fixed = pd.Series([label_of(s, m.regime).value for s in rows["stress_score"]], index=rows.index)
    table = pd.DataFrame({
        "learned thresholds": book(rows, rows["label"], proxies, m.regime, m, cost),
        "manifest thresholds": book(rows, fixed, proxies, m.regime, m, cost),
        "always risk_on": book(rows, None, proxies, m.regime, m, cost, always=0),
        "always defensive": book(rows, None, proxies, m.regime, m, cost, always=1),
    }).T
    print(f"{len(firsts)} monthly fits {firsts[0].date()}..{firsts[-1].date()} in {seconds:.1f} s "
          f"(learn_window {learn.regret.learn_window}, horizon {learn.regret.horizon})")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print("\nlearned turbulent threshold, share of months:")
    print(rows["turbulent_threshold"].value_counts(normalize=True).sort_index().to_string(float_format="{:.1%}".format))
    print(f"in-window regret, mean: learned {rows['learned_regret'].mean():.4f}, "
          f"manifest {rows['fixed_regret'].mean():.4f}")

    t0 = time.perf_counter()
    auto = m.regime.model_copy(update={"weights": "auto"})
    weights = monthly_fits(close, auto, list(firsts), m)
    seconds = time.perf_counter() - t0
    cols = ["weight_hmm", "weight_clustering", "weight_spectral"]
    summary = pd.DataFrame({"mean": weights[cols].mean(), "share_nonzero": (weights[cols] > 0).mean(),
                            "max": weights[cols].max()})
    print(f"\nauto weights, {len(firsts)} monthly fits in {seconds:.1f} s")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    auto_book = pd.DataFrame({"auto weights": book(weights, weights["label"], proxies, m.regime, m, cost),
                              "manifest weights": table.loc["manifest thresholds"].to_dict()}).T
    print(auto_book.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0
