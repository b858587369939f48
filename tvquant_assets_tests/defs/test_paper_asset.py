"""The paper account is an opt-in asset: a manifest with ``paper.enabled`` gets ``<manifest>/paper`` after drift,
reading drift and its own partition of the previous date (offset -1 mappings) and sealed by the audit; a
manifest without it (the demo) has neither the asset nor a dependency on it."""

from pathlib import Path

from dagster import AssetKey, Definitions, TimeWindowPartitionMapping

from tvquant_assets.definitions import build_definitions
from tvquant_assets.defs.factory import build_manifest_assets
from tvquant_assets.defs.jobs import build_review_job
from tvquant_assets.manifest import load_manifest
from tvquant_assets.stages import assets_of, sealed_specs

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "tvquant_assets_tests" / "scenarios" / "sc_paper_account.yaml"
DEMO = ROOT / "manifests" / "sp500_demo.yaml"


def test_the_paper_asset_reads_the_previous_drift_and_its_own_previous_partition():
    m = load_manifest(PAPER)
    assets = {a.key.path[-1]: a for a in build_manifest_assets(m, PAPER)}
    key = AssetKey([m.name, "paper"])
    deps = {d.asset_key.path[-1]: d for d in assets["paper"].specs_by_key[key].deps}
    assert set(deps) == {"prices", "backtest", "drift", "paper"}
    for name in ("drift", "paper"):
        mapping = deps[name].partition_mapping
        assert isinstance(mapping, TimeWindowPartitionMapping)
        assert (mapping.start_offset, mapping.end_offset) == (-1, -1)
    assert deps["prices"].partition_mapping is None
    audit = assets["audit"].specs_by_key[AssetKey([m.name, "audit"])]
    assert AssetKey([m.name, "paper"]) in {d.asset_key for d in audit.deps}
    assert "paper" in {s.name for s in sealed_specs(m)}
    defs = build_definitions([PAPER])
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert graph.get(key).parent_keys == {AssetKey([m.name, s]) for s in ("prices", "backtest", "drift", "paper")}
    assert key in build_review_job(m).selection.resolve(list(assets.values()))


def test_a_manifest_without_paper_has_no_paper_asset_and_seals_what_it_had():
    m = load_manifest(DEMO)
    assert "paper" not in assets_of(m) and "paper" not in {s.name for s in sealed_specs(m)}
    assets = {a.key.path[-1]: a for a in build_manifest_assets(m, DEMO)}
    assert "paper" not in assets
    audit = assets["audit"].specs_by_key[AssetKey([m.name, "audit"])]
    assert all(d.asset_key.path[-1] != "paper" for d in audit.deps)
