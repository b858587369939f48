"""``tvquant demo`` re-runs skip what is fresh: a second run over the same range materializes nothing, writes
no file, seals nothing, and prints the same leaderboard and tearsheet; after one manifest field changes,
only the stages that read it (and their dependents) run again."""

import os
import shutil

import pytest
from dagster import AssetKey, DagsterInstance

from tvquant_assets import cli
from tvquant_assets.cli import main
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.stages import assets_of


def _leaderboard(out: str) -> list[str]:
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if "leaderboard as of" in line)
    last = next(i for i, line in enumerate(lines) if line.startswith("vs benchmark:"))
    return lines[first:last + 1]


def _files(root) -> dict[str, int]:
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, fs in os.walk(root) for f in fs if f.endswith(".parquet")}


def test_demo_rerun_skips_fresh_partitions_and_prints_the_same_outputs(sp500_it_run, tmp_path, monkeypatch, capsys):
    """Copies of the shared run's lake and instance (2020-02-03..2020-03-31); ``demo`` (pointed at that
    manifest) extends them by two dates (computing only those), then runs again: everything skipped."""
    run = sp500_it_run
    lake, home = tmp_path / "lake", tmp_path / "dagster"
    shutil.copytree(run["lake_root"], lake)
    shutil.copytree(run["home"], home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setattr(cli, "DEMO_MANIFEST", str(run["manifest_path"]))
    name, assets = run["manifest"].name, assets_of(run["manifest"])
    args = ["demo", "--start", "2020-03-30", "--end", "2020-04-02", "--lake", str(lake)]

    assert main(args) == 0
    first = capsys.readouterr().out
    # 2 dates already in the lake are skipped, the 2 new ones computed
    assert f"note: skipped {2 * len(assets)} of {4 * len(assets)} asset-partitions: in the lake" in first, first
    lk = Lake(str(lake))
    assert all(lk.exists(name, s, "2020-04-02") for s in assets)
    files, entries = _files(lake), len(Ledger(lk.ledger_path(name)).entries())
    instance = DagsterInstance.get()
    mats = len(instance.fetch_materializations(AssetKey([name, "audit"]), limit=1000).records)
    counts = {s: len(instance.fetch_materializations(AssetKey([name, s]), limit=1000).records) for s in assets}

    assert main(args) == 0
    second = capsys.readouterr().out
    assert f"note: skipped {4 * len(assets)} of {4 * len(assets)} asset-partitions: in the lake" in second, second
    assert _leaderboard(second) == _leaderboard(first) and "as of 2020-04-02" in _leaderboard(first)[0]
    tearsheet = [line for line in second.splitlines() if line.startswith("tearsheet: ")]
    assert tearsheet and tearsheet == [line for line in first.splitlines() if line.startswith("tearsheet: ")]
    assert _files(lake) == files  # not one partition file rewritten
    assert len(Ledger(lk.ledger_path(name)).entries()) == entries
    assert len(instance.fetch_materializations(AssetKey([name, "audit"]), limit=1000).records) == mats

    # one tournament field changed: its partitions and what reads them are redone, its upstreams skipped
    changed = tmp_path / f"{name}.yaml"
    text = run["manifest_path"].read_text()
    assert "    max_weight: 0.30\n" in text
    changed.write_text(text.replace("    max_weight: 0.30\n", "    max_weight: 0.28\n"))
    monkeypatch.setattr(cli, "DEMO_MANIFEST", str(changed))
    upstream = ["catalog", "prices", "scan", "regime", "selection", "estimation"]
    assert main(args) == 0
    third = capsys.readouterr().out
    assert f"note: skipped {4 * len(upstream)} of {4 * len(assets)} asset-partitions" in third, third
    for stage in assets:
        n = len(instance.fetch_materializations(AssetKey([name, stage]), limit=1000).records)
        before = counts[stage]
        assert n == before + (0 if stage in upstream else 4), stage
    t = lk.read(name, "tournament", "2020-04-01")
    assert (t["max_weight"] <= 0.28 + 1e-12).all() and (t["weight"] <= 0.28 + 1e-9).all()


def test_demo_has_the_recompute_flag_of_backfill(capsys):
    for command in ("demo", "backfill"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--all" in capsys.readouterr().out
