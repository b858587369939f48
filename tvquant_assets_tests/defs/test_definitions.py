"""The Dagster graph: loads, and matches the reviewed snapshot (keys, deps, partitions, policies)."""

import json
import os
from pathlib import Path

import pytest
from dagster import Definitions
from dagster._core.definitions.backfill_policy import BackfillPolicyType

from tvquant_assets.definitions import build_definitions
from tvquant_assets.defs.factory import build_manifest_assets, partitions_for
from tvquant_assets.manifest import discover_manifests, load_manifest
from tvquant_assets.stages import STAGES

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).with_name("snapshots") / "asset_graph.json"


def graph_snapshot(defs: Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        pdef = node.partitions_def
        out[key.to_user_string()] = {
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "group": node.group_name,
            "partitions": None if pdef is None else {"start": pdef.start.strftime("%Y-%m-%d"),
                                                     "cron": pdef.cron_schedule, "fmt": pdef.fmt},
            "backfill_policy": node.backfill_policy.policy_type.value if node.backfill_policy else None,
        }
    return out


def test_definitions_load_and_validate():
    Definitions.validate_loadable(build_definitions(discover_manifests(ROOT / "manifests")))


def test_the_code_location_serializes_and_partitions_end_with_the_data():
    """What ``dagster dev``'s code server sends the UI serializes (a ``Stage`` enum in an asset key once
    made every asset show as "external"); fixed histories end their partitions at their last date."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster_shared.serdes import serialize_value

    defs = build_definitions(discover_manifests(ROOT / "manifests"))
    assert serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    ends = {m: partitions_for(load_manifest(ROOT / "manifests" / f"{m}.yaml")).get_last_partition_key()
            for m in ("sp500_demo", "synthetic_demo")}
    assert ends == {"sp500_demo": "2022-12-28", "synthetic_demo": "2020-12-31"}


def test_a_live_end_keeps_partitions_moving(monkeypatch):
    """A source whose data reaches today (or its last closed session) keeps a moving end, so a code server
    started yesterday still offers today's partition; a fixed end stays where the data stops."""
    import datetime as dt

    from dagster._core.definitions.partitions.context import partition_loading_context

    from tvquant_assets.defs import factory
    from tvquant_assets.sources.synthetic import SyntheticSource

    m = load_manifest(ROOT / "manifests" / "synthetic_demo.yaml")
    now = dt.datetime(2026, 12, 2, 23, 0, tzinfo=dt.UTC)  # a Wednesday evening
    for end, moving, last, tomorrow in [(dt.date(2026, 12, 2), True, "2026-12-02", "2026-12-03"),
                                        (dt.date(2026, 12, 1), True, "2026-12-02", "2026-12-03"),  # offset 1
                                        (None, True, "2026-12-02", "2026-12-03"),
                                        (dt.date(2026, 11, 27), False, "2026-11-27", "2026-11-27")]:
        monkeypatch.setattr(SyntheticSource, "partitions_end", lambda self, now, e=end: e)
        factory._LAST.clear()
        pdef = partitions_for(m, now)
        assert (pdef.end is None) == moving, end
        with partition_loading_context(now):
            assert pdef.get_last_partition_key() == last, end
        with partition_loading_context(now + dt.timedelta(days=1)):
            assert pdef.get_last_partition_key() == tomorrow, end
    factory._LAST.clear()


def test_graph_matches_snapshot():
    defs = build_definitions(discover_manifests(ROOT / "manifests"))
    snap = graph_snapshot(defs)
    if os.environ.get("TVQUANT_UPDATE_SNAPSHOTS") == "1":  # regenerate, then review the diff
        SNAPSHOT.write_text(json.dumps(snap, indent=1, sort_keys=True) + "\n")
    assert snap == json.loads(SNAPSHOT.read_text()), "asset graph changed: review and update the snapshot"


def test_nine_stages_per_manifest_single_run_backfills():
    m = load_manifest(ROOT / "manifests" / "sp500_demo.yaml")
    assets = build_manifest_assets(m)
    # the stages of the decision chain, then the advisory threshold auditor and the engines' verdict
    assert [a.key.path for a in assets] == [["sp500_demo", s.value] for s in STAGES] + [
        ["sp500_demo", "regime_regret"], ["sp500_demo", "verdict"]]
    for a in assets:
        assert a.backfill_policy.policy_type == BackfillPolicyType.SINGLE_RUN
        assert a.group_names_by_key[a.key] == "sp500_demo"
    keys = partitions_for(m).get_partition_keys_in_range  # weekday keys, none on weekends
    from dagster import PartitionKeyRange

    week = keys(PartitionKeyRange("2019-01-04", "2019-01-11"))
    assert week == ["2019-01-04", "2019-01-07", "2019-01-08", "2019-01-09", "2019-01-10", "2019-01-11"]
    assert partitions_for(m).get_first_partition_key() == "1991-01-02"


def test_invalid_manifest_fails_loading_with_its_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstart: 2019-01-02\nsource: {kind: nosuch}\n")
    from tvquant_assets.errors import ManifestError

    with pytest.raises(ManifestError, match="source"):
        build_definitions([bad])
