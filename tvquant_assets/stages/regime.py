"""Market regime for D: realized-vol ratio, growth/stress quadrant, label, active preset.

Metrics (``core/regime_metrics.py``: vol ratio, DWT wavelet entropy, vol clustering, permutation entropy,
Hurst, ADF p, the HMM stress probability) are computed on the equal-weight proxy of the eligible symbols,
returns <= D; the label reads a composite stress score (``core/regime.py``). With ``regime.regret.apply`` the
turbulent/crisis thresholds, and with ``regime.weights: auto`` the composite weights, are learned walk-forward
on the same proxy before the first proxy day of D's month (``core/regime_learning.py``) and published. The
active preset of D (``regime_presets``, label first, then quadrant) is published as ``preset`` and
``preset_<field>``; selection and the tournament apply it.
"""

from __future__ import annotations

import pandas as pd

from tvquant_assets.core.regime import detect
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.markdown import cell, to_float
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="regime", description=__doc__, upstream=("scan",), kinds=("numpy",), price_window=True,
                 parallel="dates")


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    scans = ctx.frames("scan", dates)
    panel = ctx.window_panel(dates)
    presets = {k.value if hasattr(k, "value") else str(k): v for k, v in ctx.manifest.regime_presets.items()}
    m = ctx.manifest
    frames = detect(panel, scans, dates, m.regime, presets, m.tournament.adaptive, switch_cost(m))
    return StageResult(frames, ctx.same_date_hashes(SPEC.upstream, dates))


def switch_cost(m) -> float:
    """Fraction of value a change of profile costs (``regime.regret.switch_cost``, else two backtest cost
    rates: sell one book, buy the other)."""
    return m.regime.regret.switch_cost if m.regime.regret.switch_cost is not None else 2 * m.backtest.costs.rate


def summary(frame: pd.DataFrame) -> dict:
    if frame.empty:
        return {}
    row = frame.iloc[0]
    label, quadrant = str(row.get("label", "")), str(row.get("quadrant", ""))
    md = f"**{label}** · quadrant **{quadrant}**"
    preset = row.get("preset")
    if isinstance(preset, str) and preset:
        md += f" · preset `{preset}` active"
    metrics = [c for c in frame.columns
               if c not in ("date", "label", "quadrant", "preset") and frame[c].dtype.kind in "fiu"]
    md += "\n\n" + "\n".join(f"- {c}: {cell(row[c])}" for c in metrics)
    out: dict = {"summary": md, "label": label, "quadrant": quadrant}
    for c in metrics:
        f = to_float(row[c])
        if f is not None:
            out[c] = f
    return out
