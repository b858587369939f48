"""The Dagster code location: every manifest in the manifests directory becomes one asset group."""

from __future__ import annotations

from dagster import Definitions

from tvquant_assets.defs.factory import IO_MANAGER_KEY, build_manifest_assets, build_manifest_job
from tvquant_assets.defs.io_manager import LakeIOManagerFactory
from tvquant_assets.defs.resources import LakeResource
from tvquant_assets.manifest import discover_manifests, load_manifest


def build_definitions(manifest_paths=None) -> Definitions:
    paths = list(manifest_paths) if manifest_paths is not None else discover_manifests()
    assets, jobs = [], []
    for path in paths:
        manifest = load_manifest(path)
        assets += build_manifest_assets(manifest, path)
        jobs.append(build_manifest_job(manifest))
    return Definitions(
        assets=assets,
        jobs=jobs,
        resources={IO_MANAGER_KEY: LakeIOManagerFactory(), "lake": LakeResource()},
    )


defs = build_definitions()
