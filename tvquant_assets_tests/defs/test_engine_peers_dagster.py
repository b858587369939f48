"""End to end through a real Dagster run of a manifest that is not the demo's: risk measures, the
selection's tree with average linkage on Spearman distances, cluster caps with a regime preset's
cluster cap, custom and skfolio side by side in the lake."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tvquant_assets.lake import Lake
from tvquant_assets.manifest import load_manifest
from tvquant_assets.runner import materialize_range

MANIFEST = """
name: sp500_peers
start: 2008-09-01
source: {kind: bundled, dataset: sp500}
selection:
  max_symbols: 10
  min_symbols: 8
  top_n_per_cluster: 3
  relax_top_n_max: 3
  linkage: {method: average, distance: spearman, allocation_tree: selection, max_clusters: 4}
tournament:
  candidates:
    - {engine: custom, profile: hrp, risk_measure: cdar}
    - {engine: skfolio, profile: hrp, risk_measure: cdar}
    - {engine: custom, profile: herc, risk_measure: semi_deviation}
    - {engine: skfolio, profile: herc, risk_measure: semi_deviation}
    - {engine: custom, profile: benchmark}
  constraints: {max_weight: 0.25, cluster_cap: 0.6}
regime_presets: {CRISIS: {cluster_cap: 0.4}, TURBULENT: {cluster_cap: 0.4}}
rebalance: {rule: monthly}
backtest: {start: 2008-10-01}
"""


def test_peers_manifest_runs_through_dagster(tmp_path):
    path = tmp_path / "sp500_peers.yaml"
    path.write_text(MANIFEST)
    report = materialize_range(path, "2008-10-01", "2008-10-01", lake_root=str(tmp_path / "lake"))
    assert report is not None
    m, lake = load_manifest(path), Lake(tmp_path / "lake")
    t = lake.read(m.name, "tournament", pd.Timestamp("2008-10-01"))
    est = lake.read(m.name, "estimation", pd.Timestamp("2008-10-01"))
    regime = lake.read(m.name, "regime", pd.Timestamp("2008-10-01"))
    cap = 0.4 if regime["label"].iloc[0] in ("CRISIS", "TURBULENT") else 0.6
    clusters = est.set_index("symbol")["cluster"]
    w = t.pivot(index="symbol", columns="candidate", values="weight")
    assert list(w.columns) == sorted(c.name for c in m.tournament.candidates)
    for name in w.columns:
        assert abs(w[name].sum() - 1) < 1e-9 and w[name].max() <= 0.25 + 1e-9, name
        assert w[name].groupby(clusters).sum().max() <= cap + 1e-9, (name, cap)
    for profile in ("hrp/cdar", "herc/semi_deviation"):
        np.testing.assert_allclose(w[f"custom/{profile}"], w[f"skfolio/{profile}"], atol=1e-6)
