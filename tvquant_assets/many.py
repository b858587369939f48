"""``tvquant backfill|run`` over several manifests (``--manifest a,b`` or ``--all-manifests``).

With a queued run coordinator and a live ``dagster-daemon`` on the instance (``defs.queue``), every
manifest's range is submitted to the run queue as its own ``<manifest>_pipeline`` run and the daemon runs
them concurrently (up to the queue's ``max_concurrent_runs``); the command waits for them and prints each
run's outcome. Otherwise the manifests run one after another in this process, and the command says so.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

TERMINAL = {"SUCCESS": 0, "FAILURE": 2, "CANCELED": 2}


def manifest_refs(spec: str | None, all_manifests: bool) -> list[str]:
    """The manifests named by ``--manifest a,b`` or every file of the manifests directory."""
    from tvquant_assets.manifest import discover_manifests

    if all_manifests:
        if spec:
            raise SystemExit("tvquant: error: --manifest and --all-manifests: give one of them")
        refs = [str(p) for p in discover_manifests()]
        if not refs:
            raise SystemExit("tvquant: error: --all-manifests: no manifest in the manifests directory")
        return refs
    if not spec:
        raise SystemExit("tvquant: error: --manifest NAME[,NAME...] or --all-manifests is required")
    refs = [s.strip() for s in spec.split(",") if s.strip()]
    if len(set(refs)) != len(refs):
        raise SystemExit(f"tvquant: error: --manifest {spec}: a manifest is named twice")
    return refs


def run_many(refs: list[str], dates_of: Callable[[str], tuple[str, str]], *, lake_root: str | None,
             as_json: bool, run_in_process: Callable[[str, str, str], int], wait: bool = True) -> int:
    """Queue each manifest's range when the instance can, else run them in process one by one."""
    from dagster import DagsterInstance

    from tvquant_assets.defs.queue import queue_unavailable
    from tvquant_assets.manifest import resolve_manifest
    from tvquant_assets.runner import ensure_dagster_home

    resolved = [resolve_manifest(r) for r in refs]  # every bad manifest is one line before anything runs
    ensure_dagster_home()
    with DagsterInstance.get() as instance:
        reason = queue_unavailable(instance)
        if reason is None:
            return _queue(instance, resolved, dates_of, lake_root, as_json, wait)
    print(f"note: {reason}: running the {len(refs)} manifests one after another in this process "
          "(start `dagster-daemon run` on a queued instance to run them concurrently)", file=sys.stderr)
    code = 0
    for ref in refs:
        start, end = dates_of(ref)
        code = max(code, run_in_process(ref, start, end))
    return code


def _queue(instance, resolved, dates_of, lake_root, as_json, wait) -> int:
    import json

    from tvquant_assets.defs.factory import IO_MANAGER_KEY
    from tvquant_assets.defs.io_manager import LakeIOManagerFactory
    from tvquant_assets.defs.launch import manifest_job
    from tvquant_assets.defs.queue import submit_range
    from tvquant_assets.defs.resources import LakeResource
    from tvquant_assets.manifest import discover_manifests

    if lake_root is not None:
        raise SystemExit("tvquant: error: --lake: queued runs write the lake of the deployment's code location "
                         "(its TVQUANT_LAKE); leave --lake out")
    known = {p.resolve() for p in discover_manifests()}
    outside = [str(path) for path, _ in resolved if Path(path).resolve() not in known]
    if outside:
        raise SystemExit(f"tvquant: error: {', '.join(outside)}: not in the code location's manifests directory "
                         "(TVQUANT_MANIFESTS); the daemon's runs load the manifests from there")
    resources = {IO_MANAGER_KEY: LakeIOManagerFactory(), "lake": LakeResource()}
    submitted = []
    for path, manifest in resolved:
        start, end = dates_of(str(path))
        job = manifest_job(manifest, path, resources)
        run_id = submit_range(instance, job, start, end, {"tvquant/manifest": manifest.name,
                                                          "tvquant/submitted_by": "tvquant-cli"}, {})
        submitted.append({"manifest": manifest.name, "job": job.name, "start": start, "end": end, "run_id": run_id})
        if not as_json:
            print(f"queued: {manifest.name} {start}..{end} as {job.name}, run {run_id}")
    if not wait:
        if as_json:
            print(json.dumps({"queued": submitted}, indent=2))
        return 0
    status = {s["run_id"]: "QUEUED" for s in submitted}
    while any(v not in TERMINAL for v in status.values()):
        time.sleep(2)
        for s in submitted:
            run = instance.get_run_by_id(s["run_id"])
            new = run.status.value if run is not None else "FAILURE"
            if new != status[s["run_id"]] and not as_json and new in TERMINAL:
                print(f"{new.lower()}: {s['manifest']} run {s['run_id']}")
            status[s["run_id"]] = new
    for s in submitted:
        s["status"] = status[s["run_id"]]
    if as_json:
        print(json.dumps({"queued": submitted}, indent=2))
    return max(TERMINAL[v] for v in status.values())
