"""The report and lake_views assets through real Dagster, and what the UI shows for every asset."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance

from tvquant_assets.definitions import build_definitions
from tvquant_assets.defs.metadata import stage_summary
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import discover_manifests
from tvquant_assets.runner import materialize_outputs
from tvquant_assets.stages import (
    ASSETS,  # every stage plus the advisory ones (the demo has no opt-in stage)
    STAGES,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def outputs(small_lake, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("outputs")
    root = tmp / "lake"
    shutil.copytree(small_lake["lake_root"], root)
    instance = DagsterInstance.ephemeral()
    report = materialize_outputs(small_lake["manifest_path"], "2020-03-20", lake_root=str(root), instance=instance)
    return {"report": report, "instance": instance, "root": root, "m": small_lake["manifest"]}


def test_report_and_views_are_materialized_with_links(outputs):
    r, m, instance = outputs["report"], outputs["m"], outputs["instance"]
    assert r.as_of == "2020-03-20"
    assert r.tearsheet == f"{outputs['root']}/{m.name}/report/2020-03-20.html" and Path(r.tearsheet).is_file()
    # every stage, the ledger and vs_benchmark (the demo has a benchmark)
    assert r.database == str(outputs["root"] / "tvquant.duckdb") and r.views == len(ASSETS) + 2
    event = instance.get_latest_materialization_event(AssetKey([m.name, "report"]))
    md = event.asset_materialization.metadata
    assert md["tearsheet"].value == r.tearsheet and md["tearsheet_url"].value == \
        f"http://127.0.0.1:3001/{m.name}/report/2020-03-20.html"
    assert "2020-03-20" in md["summary"].value
    views = instance.get_latest_materialization_event(AssetKey([m.name, "lake_views"])).asset_materialization
    assert views.metadata["views"].value == len(ASSETS) + 2 and f"{m.name}.backtest" in views.metadata["summary"].value


def test_a_date_that_is_not_a_partition_is_one_line(small_lake):
    from tvquant_assets.errors import ManifestError

    with pytest.raises(ManifestError, match="--date 2020-03-21 is not a partition of sp500_it"):
        materialize_outputs(small_lake["manifest_path"], "2020-03-21", lake_root=small_lake["lake_root"],
                            instance=DagsterInstance.ephemeral())


def test_every_asset_has_description_group_kinds_owners_tags():
    defs = build_definitions(discover_manifests(ROOT / "manifests"))
    graph = defs.resolve_asset_graph()
    keys = list(graph.get_all_asset_keys())
    assert len(keys) >= 2 * (len(ASSETS) + 2)
    for key in keys:
        node = graph.get(key)
        spec = node.to_asset_spec() if hasattr(node, "to_asset_spec") else None
        assert node.description and len(node.description) > 30, key
        assert node.group_name == key.path[0], key
        assert node.owners == ["team:quant-research"], key
        kinds = set(spec.kinds) if spec is not None else set()
        assert "python" in kinds and len(kinds) >= 2, key
        tags = spec.tags if spec is not None else {}
        assert tags.get("manifest") == key.path[0], key


def test_stage_summaries_say_what_matters(small_lake):
    lake = Lake.open(small_lake["lake_root"])
    m, d = small_lake["manifest"].name, pd.Timestamp("2020-03-16")
    frame = {s.value: lake.read(m, s.value, d) for s in STAGES}
    regime = stage_summary("regime", frame["regime"])
    assert regime["label"] == frame["regime"]["label"].iloc[0] and regime["label"] in regime["summary"].value
    assert regime["vol_ratio"] == pytest.approx(frame["regime"]["vol_ratio"].iloc[0])
    board = stage_summary("backtest", frame["backtest"])
    leader = frame["backtest"].sort_values("rank").iloc[0]
    assert board["leader"] == leader["candidate"] and board["leader_sharpe"] == pytest.approx(leader["sharpe"])
    assert board["summary"].value.count("\n| ") == 1 + len(frame["backtest"])  # header + one row per candidate
    tour = stage_summary("tournament", frame["tournament"])
    for cand in frame["tournament"]["candidate"].unique():
        assert f"| {cand} |" in tour["summary"].value
    audit = stage_summary("audit", frame["audit"])
    assert frame["audit"]["entry_hash"].iloc[0] in audit["summary"].value
    sel = stage_summary("selection", frame["selection"])
    assert sel["selected"] == int(frame["selection"]["selected"].sum())
    assert stage_summary("something_new", frame["audit"]) == {}
