"""The Dagster code location: every manifest in the manifests directory becomes one asset group."""

from __future__ import annotations

import os

from dagster import Definitions, in_process_executor

from tvquant_assets.defs.checks import build_manifest_checks
from tvquant_assets.defs.factory import IO_MANAGER_KEY, build_manifest_assets, build_manifest_job
from tvquant_assets.defs.io_manager import LakeIOManagerFactory
from tvquant_assets.defs.jobs import build_repair_job, build_review_job
from tvquant_assets.defs.outputs import build_output_assets, build_output_job
from tvquant_assets.defs.recheck import build_checks_job
from tvquant_assets.defs.resources import LakeResource
from tvquant_assets.defs.schedules import build_daily_schedule, build_review_schedule
from tvquant_assets.defs.sensors import build_containment_sensor, build_repair_sensor, build_run_failure_sensor
from tvquant_assets.defs.tradingview_checks import build_tradingview_checks
from tvquant_assets.manifest import discover_manifests, load_manifest
from tvquant_assets.permissions import restrict_umask

restrict_umask()  # code server, webserver and daemon create the lake, ledger and instance owner-only


def build_definitions(manifest_paths=None) -> Definitions:
    paths = list(manifest_paths) if manifest_paths is not None else discover_manifests()
    assets, checks, jobs, schedules, manifests = [], [], [], [], []
    for path in paths:
        manifest = load_manifest(path)
        assets += build_manifest_assets(manifest, path)
        checks += build_manifest_checks(manifest)
        checks += build_tradingview_checks(manifest)
        assets += build_output_assets(manifest, path)  # tearsheet and DuckDB views
        manifests.append(manifest)
        jobs += [build_manifest_job(manifest), build_output_job(manifest), build_repair_job(manifest),
                 build_review_job(manifest)]
        schedules += [build_daily_schedule(manifest), build_review_schedule(manifest)]
    check_jobs = [build_checks_job(m) for m in manifests]  # op jobs: the sensors watch the asset jobs
    sensors = [build_repair_sensor(manifests, [j for j in jobs if j.name.endswith("_data_repair")]),
               build_run_failure_sensor(manifests, jobs),
               build_containment_sensor(manifests, jobs)] if manifests else []
    return Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs + check_jobs,
        schedules=schedules,
        sensors=sensors,
        executor=in_process_executor,  # UI backfills of a range run as one process, like the CLI
        resources={IO_MANAGER_KEY: LakeIOManagerFactory(), "lake": LakeResource()},
    )


# Runs launched from the UI store a step's materializations in batches (see defs/storage.py).
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "500")
defs = build_definitions()
