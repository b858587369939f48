"""In-process runs recorded as the manifest's own job in the ``tvquant`` code location.

``dagster.materialize`` records a run of ``__ephemeral_asset_job__`` with no code location, so the UI's overview
timeline (which groups runs by location and job) leaves CLI runs out, and run-status sensors such as
``retry_or_alert_failed_runs`` never see them. Here a run executes ``<manifest>_pipeline`` (checks
included) in this process, and its run record names the same location and repository as ``tvquant ui``,
docker-compose and Kubernetes load (``LOCATION_NAME``), so the UI shows it under that job, can re-execute
it, and the sensors cover it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from dagster import DagsterInstance, Definitions, in_process_executor

LOCATION_NAME = "tvquant"
"""The code location every deployment loads (``workspace.yaml``, the Helm values, ``tvquant ui``)."""
REPOSITORY_NAME = "__repository__"  # what Dagster names the repository of a ``Definitions`` object
DEFINITIONS_MODULE = "tvquant_assets.definitions"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def remote_job_origin(job_name: str):
    """The origin a run of ``job_name`` launched from the ``tvquant`` location would carry."""
    from dagster._core.remote_origin import (
        ManagedGrpcPythonEnvCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    target = LoadableTargetOrigin(executable_path=sys.executable, module_name=DEFINITIONS_MODULE,
                                  working_directory=str(PROJECT_ROOT))
    location = ManagedGrpcPythonEnvCodeLocationOrigin(loadable_target_origin=target, location_name=LOCATION_NAME)
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, REPOSITORY_NAME), job_name)


def workspace_yaml() -> str:
    """A workspace file that loads the definitions as the ``tvquant`` location (for ``dagster dev``)."""
    return ("load_from:\n  - python_module:\n"
            f"      module_name: {DEFINITIONS_MODULE}\n"
            f"      location_name: {LOCATION_NAME}\n"
            f"      working_directory: {PROJECT_ROOT}\n")


def manifest_job(manifest, manifest_path, resources: dict):
    """The manifest's pipeline job (its assets, data-quality checks and, for TradingView, the live parity and
    source-failure checks), bound to ``resources``."""
    from tvquant_assets.defs.checks import build_manifest_checks
    from tvquant_assets.defs.factory import build_manifest_assets, build_manifest_job
    from tvquant_assets.defs.tradingview_checks import build_tradingview_checks

    job = build_manifest_job(manifest)
    defs = Definitions(assets=build_manifest_assets(manifest, manifest_path),
                       asset_checks=build_manifest_checks(manifest) + build_tradingview_checks(manifest),
                       jobs=[job], resources=resources, executor=in_process_executor)
    return defs.resolve_job_def(job.name)


@contextlib.contextmanager
def _recorded_as(instance: DagsterInstance, job_name: str) -> Iterator[None]:
    """Runs this instance creates meanwhile carry the ``tvquant`` location's origin for ``job_name``."""
    create = instance.create_run_for_job
    origin = remote_job_origin(job_name)

    def create_with_origin(*args, **kwargs):
        kwargs.setdefault("remote_job_origin", origin)
        return create(*args, **kwargs)

    instance.create_run_for_job = create_with_origin  # this object only, for this block
    try:
        yield
    finally:
        del instance.create_run_for_job


def execute_job(job_def, instance: DagsterInstance, *, tags: dict, run_config: dict, first: str, last: str,
                asset_selection=None, with_checks: bool = False):
    """One in-process run of ``job_def`` over partitions [first, last] (one partition when equal),
    recorded as that job of the ``tvquant`` location; with ``asset_selection``, only those assets, and their
    checks when ``with_checks``. Returns Dagster's ``ExecuteInProcessResult``."""
    if asset_selection is not None:  # those assets only (without their checks: a history run)
        job_def = job_def.get_subset(asset_selection=frozenset(asset_selection),
                                     asset_check_selection=None if with_checks else frozenset())
    with _recorded_as(instance, job_def.name):
        if first == last:
            return job_def.execute_in_process(instance=instance, tags=tags, run_config=run_config,
                                              partition_key=first, raise_on_error=False)
        range_tags = {**tags, "dagster/asset_partition_range_start": first,
                      "dagster/asset_partition_range_end": last}
        return job_def.execute_in_process(instance=instance, tags=range_tags, run_config=run_config,
                                          raise_on_error=False)
