"""Regime evidence: does each regime signal lead or lag the realized-volatility spikes of the bundled S&P
history (1998, 2001-02, 2008, 2011, 2020, 2022)? ``core/regime_evidence.py`` defines spikes, alarms and leads.

The signals are the regime stage's own (``core.regime.detect`` with the demo manifest's regime settings, every
bundled symbol in the proxy), computed point in time for every trading day from 1991.

    uv run python -m benchmarks regime_evidence [--manifest manifests/sp500_demo.yaml] [--step 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from tvquant_assets.core.panel import PricePanel
from tvquant_assets.core.regime import detect
from tvquant_assets.core.regime_evidence import SIGNALS, base_rates, episode_events, leads
from tvquant_assets.manifest import load_manifest
from tvquant_assets.sources.bundled import _sp500_close

ROOT = Path(__file__).resolve().parents[1]


def signals_of(close: pd.DataFrame, cfg, dates: pd.DatetimeIndex) -> pd.DataFrame:
    """The regime stage's signals on ``dates`` with every symbol of ``close`` eligible."""
    scan = pd.DataFrame({"symbol": list(close.columns), "eligible": True})
    frames = detect(PricePanel(close), {d: scan for d in dates}, dates, cfg)
    return pd.concat(frames.values()).set_index("date")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks regime_evidence")
    ap.add_argument("--manifest", default=str(ROOT / "manifests" / "sp500_demo.yaml"))
    ap.add_argument("--step", type=int, default=1, help="every step-th trading day (1: all; leads in those steps)")
    args = ap.parse_args(argv)
    cfg = load_manifest(args.manifest).regime
    close = _sp500_close()
    proxy = close.pct_change(fill_method=None).mean(axis=1).dropna()
    dates = proxy.index[proxy.index >= "1991-01-02"][:: args.step]
    t0 = time.perf_counter()
    signals = signals_of(close, cfg, dates)
    seconds = time.perf_counter() - t0
    events = episode_events(proxy)
    table = leads(signals, {k: v for k, v in events.items()}, before=63 // args.step, after=21 // args.step)
    table *= args.step
    table.insert(0, "spike", [events[e].date() for e in table.index])
    print(f"signals on {len(dates)} days in {seconds:.1f} s; leads in trading days (+ leads, - lags, nan: no alarm "
          "within 63 days before to 21 after)")
    print(table.to_string(float_format=lambda v: f"{v:+.0f}"))
    summary = pd.DataFrame({"median_lead": table[list(SIGNALS)].median(),
                            "alarmed": table[list(SIGNALS)].notna().sum(),
                            "led": (table[list(SIGNALS)] > 0).sum(),
                            "days_in_alarm": base_rates(signals)})
    print("\nper signal over the episodes")
    print(summary.to_string(formatters={"median_lead": "{:+.1f}".format, "days_in_alarm": "{:.1%}".format}))
    return 0
