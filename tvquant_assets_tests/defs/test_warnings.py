"""No library notices in a Dagster process's output; warnings raised inside a step land in the run log."""

import importlib
import warnings
from pathlib import Path

from dagster import AssetExecutionContext, DagsterInstance, asset, materialize

import tvquant_assets.defs
from tvquant_assets.defs.run_warnings import warnings_to_run_log

ROOT = Path(__file__).resolve().parents[2]


def test_loading_the_definitions_emits_no_preview_or_beta_notice():
    from tvquant_assets.definitions import build_definitions

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.reload(tvquant_assets.defs)  # what every process does once when it loads the definitions
        build_definitions([ROOT / "manifests" / "sp500_demo.yaml"])
    names = {type(w.message).__name__ for w in caught}
    assert not names & {"PreviewWarning", "BetaWarning", "SupersessionWarning"}, names


def test_a_warning_inside_a_step_goes_to_the_run_log_once():
    @asset
    def noisy(context: AssetExecutionContext) -> None:
        with warnings_to_run_log(context.log):
            for _ in range(3):
                warnings.warn("solver took the slow path", RuntimeWarning, stacklevel=1)

    instance = DagsterInstance.ephemeral()
    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        result = materialize([noisy], instance=instance)
    assert result.success
    assert not [w for w in outside if "slow path" in str(w.message)]  # nothing reached the terminal
    lines = [e.user_message for e in instance.all_logs(result.run_id) if "slow path" in (e.user_message or "")]
    assert len(lines) == 1 and lines[0].startswith("RuntimeWarning: solver took the slow path")
