"""Backfills split into chunks that the daemon runs as concurrent runs (a deployment setting).

With ``TVQUANT_MAX_PARTITIONS_PER_RUN`` unset (the default) every asset has ``BackfillPolicy.single_run()``:
a UI backfill is one run, the fast path on one machine. Set to N, every asset gets
``BackfillPolicy.multi_run(N)``: Dagster's asset backfill launches a range as runs of at most N partitions,
queued by the run coordinator (``max_concurrent_runs``) and run by the run launcher (processes, containers,
pods).

Path-dependent stages read earlier partitions of themselves or of each other through the lake: the
tournament its previous decision (carried off a rebalance date, turnover penalty and fallback on one), the
backtest every decision since ``backtest.start`` (and regime_regret and verdict read earlier backtest
partitions). In chunked mode the tournament and the backtest (``ORDERED_STAGES``) declare a
dependency on their own previous partition, so Dagster's asset backfill launches a chunk of them only when
the chunk before it is materialized (a self-dependent asset runs in its own runs, at most N partitions each,
in partition order); the stages whose dates are independent run their chunks concurrently. Every
partition then reads exactly what it reads in one single run, so their hashes are equal
(``tvquant_assets_tests/defs/test_multirun_backfill.py``). Without chunks no self-dependency is declared:
Dagster runs a self-dependent asset apart from its parents, which would split the single run.
"""

from __future__ import annotations

import os

from dagster import AssetDep, AssetKey, BackfillPolicy, TimeWindowPartitionMapping

MAX_PARTITIONS_ENV = "TVQUANT_MAX_PARTITIONS_PER_RUN"
ORDERED_STAGES = ("tournament", "backtest")
"""Stages whose partition D is computed after D-1 when a backfill is chunked: the tournament (previous
decision) and the backtest (the book held since backtest.start; regime_regret and verdict read its earlier
partitions, drift every decision). Everything downstream of the backtest of D runs after every backtest
<= D. The audit appends to the ledger under its lock in the order its chunks finish: the chain verifies
and each date has its entry, though two chunks may seal out of date order."""


def max_partitions_per_run() -> int | None:
    """The chunk size from the environment (None: one run per backfill)."""
    raw = os.environ.get(MAX_PARTITIONS_ENV, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{MAX_PARTITIONS_ENV}={raw!r}: expected a whole number of partitions >= 1 (or unset)")
    return n


def backfill_policy() -> BackfillPolicy:
    n = max_partitions_per_run()
    return BackfillPolicy.single_run() if n is None else BackfillPolicy.multi_run(max_partitions_per_run=n)


def ordering_deps(manifest_name: str, stage: str) -> list[AssetDep]:
    """The dependency of ``stage`` on its own previous partition, in chunked mode only."""
    if max_partitions_per_run() is None or stage not in ORDERED_STAGES:
        return []
    mapping = TimeWindowPartitionMapping(start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True)
    return [AssetDep(AssetKey([manifest_name, stage]), partition_mapping=mapping)]
