"""The Dagster code location: every manifest in the manifests directory becomes one asset group."""

from __future__ import annotations

import os

from dagster import Definitions, in_process_executor

from tvquant_assets.defs.checks import build_manifest_checks
from tvquant_assets.defs.factory import IO_MANAGER_KEY, build_manifest_assets, build_manifest_job
from tvquant_assets.defs.io_manager import LakeIOManagerFactory
from tvquant_assets.defs.outputs import build_output_assets, build_output_job
from tvquant_assets.defs.resources import LakeResource
from tvquant_assets.defs.tradingview_checks import build_tradingview_checks
from tvquant_assets.manifest import discover_manifests, load_manifest


def build_definitions(manifest_paths=None) -> Definitions:
    paths = list(manifest_paths) if manifest_paths is not None else discover_manifests()
    assets, checks, jobs = [], [], []
    for path in paths:
        manifest = load_manifest(path)
        assets += build_manifest_assets(manifest, path)
        checks += build_manifest_checks(manifest)
        jobs.append(build_manifest_job(manifest))
        checks += build_tradingview_checks(manifest)
        assets += build_output_assets(manifest, path)  # tearsheet and DuckDB views
        jobs.append(build_output_job(manifest))
    return Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        executor=in_process_executor,  # UI backfills of a range run as one process, like the CLI
        resources={IO_MANAGER_KEY: LakeIOManagerFactory(), "lake": LakeResource()},
    )


# Runs launched from the UI store a step's materializations in batches (see defs/storage.py).
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "500")
defs = build_definitions()
