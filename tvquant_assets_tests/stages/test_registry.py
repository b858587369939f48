"""The stage registry: every asset of a manifest comes from one stage module, and every table the Dagster
layer needs is derived from those modules; adding a stage is one new file and one line."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey

from tvquant_assets.definitions import build_definitions
from tvquant_assets.defs.factory import build_manifest_assets, build_manifest_job
from tvquant_assets.defs.jobs import REVIEW_STAGES, build_repair_job
from tvquant_assets.manifest import discover_manifests, load_manifest
from tvquant_assets.stages import (
    ALL_ASSETS,
    ALL_STAGES,
    ASSETS,
    MODULES,
    SPECS,
    STAGE_MODULES,
    STAGES,
    Stage,
    assets_of,
    downstream_of,
    upstream_of,
)
from tvquant_assets.stages.code_versions import code_version

ROOT = Path(__file__).resolve().parents[2]
DEMO = load_manifest(ROOT / "manifests" / "sp500_demo.yaml")


def test_one_module_per_asset_in_execution_order():
    assert [str(s) for s in ALL_ASSETS] == list(STAGE_MODULES) == list(SPECS) == list(MODULES)
    assert [s for s in ALL_ASSETS if s not in ASSETS] == [Stage.PAPER]  # opt-in: paper.enabled
    seen: set[str] = set()
    for name, spec in SPECS.items():
        assert set(spec.upstream) <= seen, name  # upstreams run first
        assert spec.description == MODULES[name].__doc__ and spec.description.strip()
        seen.add(name)
    assert STAGES[-1] is Stage.AUDIT and Stage.REGIME_REGRET not in STAGES
    assert SPECS["audit"].upstream == tuple(str(s) for s in ALL_STAGES if s is not Stage.AUDIT)
    assert [s for s in ALL_STAGES if s not in STAGES] == [Stage.PAPER]
    assert {s for s, spec in SPECS.items() if spec.calls_source} == {"catalog", "prices"}


@pytest.mark.parametrize("path", discover_manifests(ROOT / "manifests"), ids=lambda p: p.stem)
def test_every_asset_is_derived_from_its_stage_module(path):
    m = load_manifest(path)
    assets = {a.key.path[-1]: a for a in build_manifest_assets(m, path)}
    assert list(assets) == [str(s) for s in assets_of(m)] == [str(s) for s in ALL_ASSETS if SPECS[s].enabled(m)]
    for name in assets:
        spec, a, key = SPECS[name], assets[name], AssetKey([m.name, name])
        assert {d.path[-1] for d in a.asset_deps[key]} == set(upstream_of(spec, m)) | set(spec.previous)
        assert a.descriptions_by_key[key] == f"{spec.description.strip()}\n\nManifest `{m.name}`: " \
                                              f"{m.description or m.source.kind}"
        assert set(spec.kinds) | {"python", "parquet"} == set(a.specs_by_key[key].kinds)
        assert a.code_versions_by_key[key] == code_version(name, m)
        assert (a.op.retry_policy is not None) == spec.calls_source
        assert a.specs_by_key[key].tags["stage"] == name
    job = build_manifest_job(m)
    assert {k.path[-1] for k in job.selection.resolve(list(assets.values()))} == set(assets)
    repair = build_repair_job(m)
    assert {k.path[-1] for k in repair.selection.resolve(list(assets.values()))} == set(assets)


def test_the_review_reruns_the_tournament_and_everything_after_it():
    assert [str(s) for s in REVIEW_STAGES] == ["tournament", "backtest", "drift", "paper", "audit",
                                                 "regime_regret", "verdict"]
    assert downstream_of(Stage.CATALOG) == ALL_ASSETS


def test_every_summary_reads_an_empty_and_a_real_partition(small_lake):
    from tvquant_assets.lake import Lake

    lake = Lake(small_lake["lake_root"])
    for name, module in MODULES.items():
        assert isinstance(module.summary(pd.DataFrame()), dict)
        if name not in assets_of(small_lake["manifest"]):  # opt-in: the paper scenario reads its summary
            continue
        out = module.summary(lake.read(small_lake["manifest"].name, name, "2020-03-16"))
        assert isinstance(out.get("summary", ""), str), name
        assert all(isinstance(v, (str, int, float)) for v in out.values()), name
    assert MODULES["drift"].summary(lake.read(small_lake["manifest"].name, "drift", "2020-03-16"))["summary"]


EXAMPLE = '''
"""Gross exposure and holdings of every tournament candidate on D.

The example stage of docs/architecture.md: one file, and one line in ``STAGE_MODULES``.
"""

import pandas as pd

from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="exposure", description=__doc__, upstream=("tournament",), kinds=("pandas",), sealed=False)


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    frames = {}
    for d, t in ctx.frames("tournament", dates).items():
        g = t[t["symbol"] != ""].groupby("candidate")["weight"]
        frames[d] = pd.DataFrame({"gross": g.apply(lambda w: float(w.abs().sum())),
                                  "holdings": g.apply(lambda w: int((w.abs() > 1e-9).sum()))}).reset_index()
    return StageResult(frames, ctx.same_date_hashes(SPEC.upstream, dates))


def summary(frame: pd.DataFrame) -> dict:
    return {"summary": f"**{len(frame)}** candidates"}
'''


def test_adding_a_stage_is_one_file_and_one_line(tmp_path, small_lake):
    """The docs' worked example, for real: a copy of the package gains stages/exposure.py and one line in
    STAGE_MODULES; its definitions then hold the asset with its deps, description and code version, and the
    stage computes from the lake. Nothing else of the graph changes."""
    pkg = tmp_path / "tvquant_assets"
    shutil.copytree(ROOT / "tvquant_assets", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "stages" / "exposure.py").write_text(textwrap.dedent(EXAMPLE).lstrip())
    registry = pkg / "stages" / "__init__.py"
    text = registry.read_text()
    assert text.count('    "regime_regret",\n') == 1
    registry.write_text(text.replace('    "regime_regret",\n', '    "regime_regret",\n    "exposure",\n'))
    script = textwrap.dedent(f"""
        import json, sys
        import pandas as pd
        from dagster import AssetKey
        from tvquant_assets.definitions import build_definitions
        from tvquant_assets.lake import Lake
        from tvquant_assets.manifest import load_manifest
        from tvquant_assets.stages.context import RunContext
        from tvquant_assets.stages.plan import run_stage
        defs = build_definitions([{str(small_lake["manifest_path"])!r}])
        graph = defs.resolve_asset_graph()
        node = graph.get(AssetKey(["sp500_it", "exposure"]))
        m = load_manifest({str(small_lake["manifest_path"])!r})
        frame = run_stage(RunContext(m, Lake({small_lake["lake_root"]!r})), "exposure", ["2020-03-16"]).frames
        frame = next(iter(frame.values()))
        print(json.dumps({{"deps": sorted(k.path[-1] for k in node.parent_keys), "code_version": node.code_version,
                          "description": node.description, "keys": len(graph.get_all_asset_keys()),
                          "gross": sorted(frame["gross"].round(6).tolist())}}))
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)  # the copy, not the checkout, is imported
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["deps"] == ["tournament"] and got["description"].startswith("Gross exposure")
    assert len(got["code_version"]) == 16
    assert got["gross"] == [1.0] * len(got["gross"]) and got["gross"]  # long-only books, fully invested
    ours = build_definitions([small_lake["manifest_path"]]).resolve_asset_graph()
    assert got["keys"] == len(ours.get_all_asset_keys()) + 1
