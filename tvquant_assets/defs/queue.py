"""Runs submitted to the instance's run queue as the manifest's job of the ``tvquant`` code location.

``tvquant backfill|run`` over several manifests hands each manifest's range to the queue when the instance
has a queued run coordinator and a ``dagster-daemon`` is running against it (``queue_unavailable`` says
why not otherwise): the daemon launches the runs through the deployment's run launcher (processes,
containers or pods), at most ``max_concurrent_runs`` at a time. Each run is ``<manifest>_pipeline`` with
the range tags, so it has its own run log in the UI, the partitions and checks of its manifest, and the
run-failure sensors cover it like a UI run (it has no ``tvquant/pid`` tag: nothing contains it in process).
The run executes in the deployment's code location, on the code location's lake (``TVQUANT_LAKE``).
"""

from __future__ import annotations

import os
import sys

from dagster import DagsterInstance

from tvquant_assets.defs.launch import DEFINITIONS_MODULE, PROJECT_ROOT, remote_job_origin

QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
HEARTBEAT_TOLERANCE_SECONDS = 90
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def queue_unavailable(instance: DagsterInstance) -> str | None:
    """None when runs submitted to ``instance`` are dequeued by a live daemon, else why not (one line)."""
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._daemon.controller import get_daemon_statuses

    if not isinstance(instance.run_coordinator, QueuedRunCoordinator):
        return f"the instance's run coordinator is {type(instance.run_coordinator).__name__}, not queued"
    status = get_daemon_statuses(instance, [QUEUE_DAEMON], heartbeat_tolerance_seconds=HEARTBEAT_TOLERANCE_SECONDS)
    if not status[QUEUE_DAEMON].healthy:
        return f"no dagster-daemon is running against the instance in {instance.root_directory}"
    return None


def job_code_origin(job_name: str):
    """Where a run worker (process, container, pod) loads ``job_name``: the definitions module."""
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin

    pointer = ModuleCodePointer(DEFINITIONS_MODULE, "defs", str(PROJECT_ROOT))
    return JobPythonOrigin(job_name, RepositoryPythonOrigin(
        executable_path=sys.executable, code_pointer=pointer,
        container_image=os.environ.get("DAGSTER_CURRENT_IMAGE"), entry_point=None, container_context=None))


def submit_range(instance: DagsterInstance, job_def, first: str, last: str, tags: dict, run_config: dict) -> str:
    """Queue one run of ``job_def`` over partitions [first, last]; returns its run id."""
    from dagster._core.storage.dagster_run import DagsterRunStatus

    run_tags = {**tags, RANGE_START: first, RANGE_END: last} if first != last else \
        {**tags, "dagster/partition": first}
    run = instance.create_run_for_job(job_def, run_config=run_config, tags=run_tags,
                                      status=DagsterRunStatus.NOT_STARTED,
                                      remote_job_origin=remote_job_origin(job_def.name),
                                      job_code_origin=job_code_origin(job_def.name))
    instance.submit_run(run.run_id, workspace=None)  # the queued coordinator only records it as QUEUED
    return run.run_id
