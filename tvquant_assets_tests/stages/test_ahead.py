"""The advisory stages computed ahead of their Dagster steps (``stages/ahead.py``), through real Dagster runs
of a synthetic manifest with two forked workers: a step takes over a stage the worker has not begun, and
computes again a stage the worker failed on; every partition still hashes as the one-process one-shot run.
(That the lane runs at all, and records the metadata one process records: ``test_parallel.py``.)"""

import time

from tvquant_assets import workers
from tvquant_assets.calendar import manifest_dates
from tvquant_assets.defs import factory
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import load_manifest
from tvquant_assets.stages import ahead, parallel
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.plan import run_one_shot
from tvquant_assets_tests.stages.test_golden_hashes import partition_hashes
from tvquant_assets_tests.stages.test_parallel import SYNTHETIC, two_workers  # noqa: F401 - the fixture

START, END = "2016-09-01", "2016-10-07"


def _range(tmp_path, monkeypatch, compute_in_worker):
    """A Dagster range run whose lane computes with ``compute_in_worker`` (in the forked worker only); the
    stages the run's own process computed, and the hashes of both lakes."""
    from dagster import DagsterInstance

    from tvquant_assets.runner import materialize_range

    path = tmp_path / "synth_workers.yaml"
    path.write_text(SYNTHETIC)
    m = load_manifest(path)
    real_compute, real_contained = ahead._compute, factory.run_contained
    monkeypatch.setattr(ahead, "_compute", lambda ctx, stage, *a: (
        compute_in_worker(stage) if workers._IN_WORKER else None, real_compute(ctx, stage, *a))[1])
    in_run = []
    monkeypatch.setattr(factory, "run_contained", lambda ctx, stage, *a, **k: (
        in_run.append(stage), real_contained(ctx, stage, *a, **k))[1])
    with DagsterInstance.ephemeral() as instance:
        report = materialize_range(path, START, END, lake_root=str(tmp_path / "dagster"), instance=instance)
    assert not report.failures
    monkeypatch.setenv(parallel.ENV, "1")
    sequential = Lake(str(tmp_path / "sequential"))
    run_one_shot(RunContext(m, sequential), manifest_dates(m, START, END))
    ours, reference = partition_hashes(Lake(str(tmp_path / "dagster")), m.name), partition_hashes(sequential, m.name)
    assert ours.keys() == reference.keys()
    for stage in reference:
        assert ours[stage] == reference[stage], stage
    return in_run


def test_a_step_takes_the_lane_stage_its_worker_has_not_begun(tmp_path, monkeypatch, two_workers):  # noqa: F811
    """The worker computes the verdict (the last step) first and holds it until the threshold auditor's step
    has claimed its stage: that step computes it in the run's process, the verdict's step takes the worker's."""
    def hold_the_verdict(stage):
        if stage == "verdict":
            regret = ahead._ORDER.index("regime_regret")
            deadline = time.monotonic() + 60
            while ahead._SLOTS[regret] != ahead.CALLER and time.monotonic() < deadline:
                time.sleep(0.02)

    in_run = _range(tmp_path, monkeypatch, hold_the_verdict)
    assert {"ahead:verdict", "ahead:regime_regret"} <= two_workers
    assert "regime_regret" in in_run and "verdict" not in in_run


def test_a_step_computes_again_what_its_worker_failed_on(tmp_path, monkeypatch, two_workers):  # noqa: F811
    def fail_the_verdict(stage):
        if stage == "verdict":
            raise RuntimeError("lost in the worker")

    in_run = _range(tmp_path, monkeypatch, fail_the_verdict)
    assert "ahead:verdict" in two_workers
    assert "verdict" in in_run
