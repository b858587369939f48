"""What a stage is (``StageSpec``, declared once at the top of its module) and what it returns
(``StageResult``). No Dagster here: the Dagster layer derives its assets from these declarations."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class StageSpec:
    """A stage's identity.

    ``upstream`` are the same-date partitions it reads (its Dagster deps); the flags say which other
    partitions it reads for D, which the ledger records as its inputs (``lineage.input_partitions``).
    """

    name: str
    description: str  # the module docstring: the asset's description in the UI
    upstream: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()  # libraries doing the work, shown in the UI beside python and parquet
    price_window: bool = False  # reads prices over the trailing window [window_start(D), D]
    carries_decision: bool = False  # off a rebalance date, reads its own partition of the previous date
    book: bool = False  # reads every decision and close since backtest.start
    calls_source: bool = False  # reads the manifest's source (retried and pooled by the Dagster layer)
    sealed: bool = True  # the audit stage seals its output in the ledger (advisory stages: False)
    seals: bool = False  # the audit stage itself: its upstreams are every sealed stage
    # how a range may be split over worker processes (stages/parallel.py), when the output for D does not
    # depend on the range's other dates: "dates" (contiguous chunks), "interleaved" (every k-th date); "parts"
    # when the module splits it itself (parts/run_part/merge_parts); "" runs in one process
    parallel: str = ""
    local_parallel: str = ""  # the same, for a stage calling a source that reads local data (not the network)
    previous: tuple[str, ...] = ()  # partitions read on the previous partition date (its own name: carried state)
    enabled_by: str | None = None  # opt-in: the manifest's boolean field (dotted path) that adds the stage

    def enabled(self, manifest) -> bool:
        """Whether ``manifest`` has this stage (an opt-in stage only when its ``enabled_by`` field is true)."""
        if self.enabled_by is None:
            return True
        value = manifest
        for part in self.enabled_by.split("."):
            value = getattr(value, part)
        return bool(value)


@dataclass
class StageResult:
    """One frame per date, plus the df_hash of every same-date upstream partition (lineage), a note and
    extra plain metadata per date; ``finished``: what a worker's ``finish`` made of its dates' frames (the
    Dagster layer's hash and UI metadata, computed beside the caller's part)."""

    frames: dict[pd.Timestamp, pd.DataFrame]
    upstream: dict[pd.Timestamp, dict[str, str]] = field(default_factory=dict)
    notes: dict[pd.Timestamp, str] = field(default_factory=dict)
    metadata: dict[pd.Timestamp, dict] = field(default_factory=dict)
    finished: dict[pd.Timestamp, object] = field(default_factory=dict)
