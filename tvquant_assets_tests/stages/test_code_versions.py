"""Code versions follow the code: editing a module changes the code version of exactly the stages that
run it (their import closure, read from the source), and Dagster then marks exactly those partitions
stale by its own rules."""

import shutil
from pathlib import Path

import pytest

from tvquant_assets.manifest import load_manifest
from tvquant_assets.stages import ASSETS
from tvquant_assets.stages.code_versions import code_version, stage_modules

ROOT = Path(__file__).resolve().parents[2]
DEMO = load_manifest(ROOT / "manifests" / "sp500_demo.yaml")
LIVE = load_manifest(ROOT / "manifests" / "binance_spot.yaml")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A copy of the package to edit."""
    root = tmp_path_factory.mktemp("tree")
    shutil.copytree(ROOT / "tvquant_assets", root / "tvquant_assets",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def versions(root: Path, manifest) -> dict[str, str]:
    return {str(s): code_version(s, manifest, root) for s in ASSETS}


def edited(tree: Path, relative: str, manifest=DEMO) -> set[str]:
    """The stages whose code version changes when ``relative`` (a path in the package) changes."""
    path = tree / "tvquant_assets" / relative
    before = versions(tree, manifest)
    original = path.read_text()
    try:
        path.write_text(original + "\n# an edit\n")
        from tvquant_assets.stages.code_versions import _graph

        _graph.cache_clear()  # the edited text must be read again
        after = versions(tree, manifest)
    finally:
        path.write_text(original)
        _graph.cache_clear()
    return {s for s in before if before[s] != after[s]}


def test_versions_are_stable_and_distinct():
    a, b = versions(ROOT, DEMO), versions(ROOT, DEMO)
    assert a == b and len(set(a.values())) == len(ASSETS)
    assert all(len(v) == 16 for v in a.values())


@pytest.mark.parametrize("module,stages", [
    ("core/selection.py", {"selection"}),
    ("core/scan.py", {"scan", "regime", "selection", "regime_regret"}),  # frames_by_date and the scan fields
    ("core/regime_regret.py", {"regime_regret"}),
    ("core/drift.py", {"drift"}),
    ("core/tournament.py", {"tournament"}),
    ("core/estimation.py", {"estimation", "tournament"}),  # the tournament reads the return window with it
    ("core/engines/skfolio_engine.py", {"tournament"}),  # the demo has a skfolio candidate
    ("core/engines/riskfolio_engine.py", set()),  # ... and no riskfolio one
    ("core/simulators/vectorized.py", {"backtest", "drift"}),
    ("core/ledger.py", {"audit"}),
    ("stages/selection.py", {"selection"}),
    ("stages/books.py", {"backtest", "drift"}),
    ("stages/context.py", {str(s) for s in ASSETS}),
    ("determinism.py", {str(s) for s in ASSETS}),
    ("report/tearsheet.py", set()),
    ("defs/factory.py", set()),
    ("cli.py", set()),
    ("sources/tradingview/websocket.py", set()),  # not the demo's source
])
def test_an_edit_changes_exactly_the_stages_that_run_it(tree, module, stages):
    assert edited(tree, module) == stages
    dotted = "tvquant_assets." + module.removesuffix(".py").replace("/", ".")
    assert {str(s) for s in ASSETS if dotted in stage_modules(s, DEMO, tree)} == stages


def test_a_live_manifest_runs_its_source_in_every_stage(tree):
    assert edited(tree, "sources/tradingview/websocket.py", LIVE) == {str(s) for s in ASSETS}
    assert edited(tree, "sources/bundled.py", LIVE) == set()


def moved(other) -> set[str]:
    return {s for s, v in versions(ROOT, DEMO).items() if code_version(s, other) != v}


def test_a_manifest_field_moves_the_stages_that_read_it_and_their_dependents():
    """Versions hash the sections each stage reads (``SECTIONS``, pinned by test_manifest_reads.py) and those
    of its upstreams; the audit seals the manifest hash, so any change moves it."""
    t = DEMO.tournament
    penalty = t.model_copy(update={"constraints": t.constraints.model_copy(
        update={"turnover_penalty": t.constraints.turnover_penalty + 0.01})})
    assert moved(DEMO.model_copy(update={"tournament": penalty})) == {
        "tournament", "backtest", "drift", "audit", "regime_regret", "verdict"}
    assert moved(DEMO.model_copy(update={"description": "another"})) == {"audit"}
    regime = DEMO.regime.model_copy(update={"hmm_seed": DEMO.regime.hmm_seed + 1})
    assert moved(DEMO.model_copy(update={"regime": regime})) == {str(s) for s in ASSETS} - {
        "catalog", "prices", "scan"}
    later = DEMO.model_copy(update={"start": DEMO.start.replace(year=DEMO.start.year + 1)})
    assert moved(later) == {str(s) for s in ASSETS}


def test_dagster_marks_exactly_the_edited_stage_stale(sp500_it_run, tmp_path, monkeypatch):
    """With selection's code version changed, Dagster reports selection stale ("has a new code version") and
    nothing else; its dependents become stale by Dagster's own rule once selection is re-materialized
    (a new dependency data version), its upstreams never."""
    from dagster import AssetKey, DagsterInstance, materialize
    from dagster._core.definitions.data_version import StaleCauseCategory, StaleStatus
    from dagster._utils.test.data_versions import get_stale_status_resolver

    from tvquant_assets.defs import factory
    from tvquant_assets.defs.io_manager import LakeIOManagerFactory
    from tvquant_assets.defs.resources import LakeResource

    home, lake_root = tmp_path / "home", tmp_path / "lake"
    shutil.copytree(sp500_it_run["home"], home)
    shutil.copytree(sp500_it_run["lake_root"], lake_root)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    m, path, day = sp500_it_run["manifest"], sp500_it_run["manifest_path"], "2020-03-16"
    real = factory.code_version
    monkeypatch.setattr(factory, "code_version",
                        lambda stage, manifest: real(stage, manifest) + ("-edited" if stage == "selection" else ""))
    assets = factory.build_manifest_assets(m, path)
    with DagsterInstance.from_config(str(home)) as instance:
        def resolver():
            return get_stale_status_resolver(instance, assets)

        def status():
            r = resolver()
            return {s: r.get_status(AssetKey([m.name, s]), day) for s in ASSETS}

        before = status()
        assert {s for s, v in before.items() if v != StaleStatus.FRESH} == {"selection"}
        causes = resolver().get_stale_causes(AssetKey([m.name, "selection"]), day)
        assert [(c.category, c.reason) for c in causes] == [(StaleCauseCategory.CODE, "has a new code version")]
        selection = next(a for a in assets if a.key.path[-1] == "selection")
        result = materialize([selection], instance=instance, partition_key=day, raise_on_error=False,
                             resources={factory.IO_MANAGER_KEY: LakeIOManagerFactory(root=str(lake_root)),
                                        "lake": LakeResource(root=str(lake_root))})
        assert result.success
        after = status()
        assert after["selection"] == StaleStatus.FRESH
        assert all(after[s] == StaleStatus.FRESH for s in ("catalog", "prices", "scan", "regime"))
        assert after["estimation"] == StaleStatus.STALE
        dep = resolver().get_stale_causes(AssetKey([m.name, "estimation"]), day)
        assert {(c.category, c.dependency.asset_key.path[-1]) for c in dep} == {(StaleCauseCategory.DATA, "selection")}


def test_import_statements_cached_on_disk_are_those_of_the_text(tmp_path, monkeypatch):
    """The parsed import statements are kept on disk by the text's hash: a later process reads them back
    equal to a fresh parse; an edited text is parsed again."""
    from tvquant_assets.stages import code_versions as cv

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cv, "_pending", {})
    cv._disk_cache.cache_clear()
    text = (ROOT / "tvquant_assets" / "stages" / "tournament.py").read_text()
    first = cv.statements(text)
    assert first == cv._parse(text) and any(st.kind == "from" and st.level == 0 for st in first)
    cv.save_statement_cache()
    assert cv._cache_path().is_file() and str(tmp_path) in str(cv._cache_path())
    cv._disk_cache.cache_clear()  # as in a new process
    monkeypatch.setattr(cv, "_parse", lambda t: (_ for _ in ()).throw(AssertionError("parsed again")))
    assert cv.statements(text) == first
    edited = text + "\nfrom tvquant_assets.core import regime\n"
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    added = cv.Statement("from", "tvquant_assets.core", 0, (("regime", None),), True)
    assert added in cv.statements(edited) and added not in first
    cv._disk_cache.cache_clear()
