"""Outputs do not move by accident: every partition the shared Dagster range run (``sp500_it_run``,
2020-02-03..2020-03-31 plus its catalog and prices history) writes has the ``df_hash`` recorded in
``golden/sp500_it.json``, which the code before the ``stages/`` restructuring produced (commit 9290a34).

A change that means to move outputs regenerates the file (``TVQUANT_UPDATE_GOLDEN=1``) and says why in
its commit. The audit stage is left out: its entry hashes carry run ids and timestamps, and its stage
hashes are the other stages' own.
"""

import json
import os
from pathlib import Path

from tvquant_assets.lake import Lake
from tvquant_assets.stages import ASSETS, Stage

GOLDEN = Path(__file__).with_name("golden") / "sp500_it.json"


def partition_hashes(lake: Lake, manifest: str) -> dict[str, dict[str, str]]:
    """``{stage: {date: df_hash[:16]}}`` of every partition in the lake, hashed from the files' content."""
    out = {}
    for stage in ASSETS:
        if stage is Stage.AUDIT:
            continue
        dates = lake.partitions(manifest, stage)
        read = lake.read_many(manifest, stage, dates, verify=True)
        out[str(stage)] = {f"{d:%Y-%m-%d}": h[:16] for d, (_, h) in read.items()}
    return out


def test_every_partition_hashes_as_before_the_restructuring(sp500_it_run):
    now = partition_hashes(Lake(sp500_it_run["lake_root"]), sp500_it_run["manifest"].name)
    if os.environ.get("TVQUANT_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(now, indent=0, sort_keys=True))
    golden = json.loads(GOLDEN.read_text())
    assert sorted(now) == sorted(golden)
    for stage, hashes in golden.items():
        assert sorted(now[stage]) == sorted(hashes), f"{stage}: other partitions"
        moved = [d for d, h in hashes.items() if now[stage][d] != h]
        assert not moved, f"{stage}: {len(moved)} partitions changed, first {moved[0]}"
