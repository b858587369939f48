"""Chain heads of the audit ledger as recorded in the Dagster event log (the ``audit`` asset's metadata).

A ledger file rewritten consistently (every hash recomputed) still verifies on its own; the heads the
audit runs recorded in Dagster's event log do not change with it, so ``tvquant audit verify`` checks them.
"""

from __future__ import annotations

import os
from pathlib import Path

from tvquant_assets.core.ledger import Head

DAGSTER_HOME_DEFAULT = "./.tvquant/dagster"


def open_instance(home: str | os.PathLike | None = None):
    """The Dagster instance at ``home`` (default: $DAGSTER_HOME or ./.tvquant/dagster), None if absent or
    empty (a folder without run storage, unless its dagster.yaml names PostgreSQL): nothing is created."""
    path = Path(home or os.environ.get("DAGSTER_HOME") or DAGSTER_HOME_DEFAULT).resolve()
    if not path.is_dir():
        return None
    cfg = path / "dagster.yaml"
    config = cfg.read_text(encoding="utf-8", errors="replace") if cfg.is_file() else ""
    if not (path / "history" / "runs.db").exists() and "postgres" not in config:
        return None  # no local instance data: opening it would only create empty databases there
    from dagster import DagsterInstance

    return DagsterInstance.from_config(str(path))


def recorded_heads(instance, manifest: str, ledger_path: str, limit: int = 1000) -> list[Head]:
    """Distinct chain heads recorded by the latest ``limit`` materializations of ``<manifest>/audit``
    that wrote to ``ledger_path`` (older records without a head are skipped)."""
    from dagster import AssetKey

    records = instance.fetch_materializations(AssetKey([manifest, "audit"]), limit=limit).records
    heads: dict[tuple[int, str], Head] = {}
    for r in records:
        md = r.asset_materialization.metadata
        if "ledger_head_hash" not in md or "ledger_head_seq" not in md:
            continue
        if "ledger" in md and md["ledger"].value != str(ledger_path):
            continue  # the same manifest run against another lake
        seq, digest = int(md["ledger_head_seq"].value), str(md["ledger_head_hash"].value)
        if seq >= 0 and (seq, digest) not in heads:
            heads[(seq, digest)] = Head(seq, digest, f"Dagster run {r.run_id[:8]}")
    return list(heads.values())
