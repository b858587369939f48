"""What a run of a live manifest says about its source: the symbols whose fetch failed, with the cause.

``failed_symbols(manifest, lake_root)`` reads the source's ``failed_symbols.json`` (written after every
history fetch, beside the manifest's screener snapshots); the runner adds one
note per failed symbol (the CLI prints them) and tags the run with their names, and the asset check
``<manifest>/prices:source_failures`` fails while any is listed.
"""

from __future__ import annotations

import json

from tvquant_assets.manifest import Manifest

RUN_TAG = "tvquant/failed_symbols"


def failed_symbols(manifest: Manifest, lake_root) -> dict[str, dict]:
    if manifest.source.kind != "tradingview":
        return {}
    from tvquant_assets.sources.tradingview.source import TradingViewSource

    src = TradingViewSource(**manifest.source.model_dump(exclude={"kind"}))
    src.attach_lake(lake_root)
    path = src.failures_path()
    if not path.exists():
        return {}
    return dict(sorted(json.loads(path.read_text()).items()))


def notes(manifest: Manifest, lake_root) -> list[str]:
    failed = failed_symbols(manifest, lake_root)
    policy = "they fail the run" if manifest.source.kind == "tradingview" and \
        manifest.source.failed_symbols == "fail" else "the run went on without them"
    out = [f"failed symbol {s}: {v['error']}" for s, v in failed.items()]
    if out:
        out.append(f"{len(failed)} symbol(s) failed at the source ({policy}; source.failed_symbols)")
    return out


def tag_run(instance, run_id: str, manifest: Manifest, lake_root) -> None:
    failed = failed_symbols(manifest, lake_root)
    if failed:
        instance.add_run_tags(run_id, {RUN_TAG: ", ".join(failed)[:4000]})
