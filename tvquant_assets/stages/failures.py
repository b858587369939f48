"""Failed partitions and what depends on them (no Dagster here).

A partition ``(stage, D)`` *fails* when the stage raises for D (an engine error past its fallbacks,
missing data), or a blocking check names D. ``(stage', D')`` *depends on* ``(stage, D)`` when computing
D' reads that partition, directly or through another dependent:

- its same-date upstreams (``StageSpec.upstream``; the audit reads every sealed stage of D');
- the trailing price window ``[window_start(D'), D']`` (``price_window``);
- the tournament's previous partition: carried off a rebalance date, the turnover penalty and fallback on
  one (``carries_decision``), so a failed decision blocks every later tournament date of the range;
- every decision and close since ``backtest.start`` (``book``: backtest, drift), so a failed tournament
  on R blocks every backtest date >= R: the book held after R is built from R's decision.

Those are the reads of ``lineage.input_partitions`` (what the ledger records) plus the optional previous
decision a tournament reads on a rebalance date. Nothing else is blocked: upstream stages of every date,
and every stage of the dates before the failure, are materialized, checked and sealed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

from tvquant_assets.calendar import previous_dates
from tvquant_assets.stages import SPECS, assets_of
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.lineage import input_partitions


@dataclass(frozen=True)
class PartitionFailure:
    """Why ``stage`` on ``date`` is not materialized (or not usable): its own failure, or ``blocked_by``."""

    stage: str
    date: pd.Timestamp
    reason: str
    blocked_by: tuple[str, pd.Timestamp] | None = None

    def line(self) -> str:
        if self.blocked_by is None:
            return f"{self.stage} {self.date.date()}: {self.reason}"
        return f"{self.stage} {self.date.date()}: blocked by {self.blocked_by[0]} {self.blocked_by[1].date()}"


class PartitionsFailed(Exception):
    """A stage failed for some dates of a range; ``failures`` maps each date to its one-line reason."""

    def __init__(self, stage: str, failures: dict[pd.Timestamp, str]):
        self.stage, self.failures = stage, dict(sorted(failures.items()))
        first = next(iter(self.failures.items()))
        more = f" (+{len(self.failures) - 1} more dates)" if len(self.failures) > 1 else ""
        super().__init__(f"{stage} failed on {len(self.failures)} date(s): {first[0].date()}: {first[1]}{more}")


def path_dependent(stage: str) -> bool:
    """A stage whose output for D depends on its own or a book's earlier dates: a range cannot be split."""
    spec = SPECS[stage]
    return spec.carries_decision or spec.book or spec.seals or stage in spec.previous or stage == "regime_regret"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def locate(stage: str, dates: list[pd.Timestamp], compute: Callable[[list[pd.Timestamp]], object],
           first_error: BaseException) -> dict[pd.Timestamp, str]:
    """The dates on which ``compute`` fails, after it failed over all of ``dates`` with ``first_error``.

    A path-dependent stage fails from its first failing date on (found by bisecting prefixes, which start
    where the range starts and so compute what the range computes): the dates before it are computed, the
    ones after it cannot be in a range that holds it; the others are split in halves, since
    a sub-range computes what the range computes for its dates. The audit stage appends to the ledger, so
    it is not re-run: every date fails with the error."""
    if len(dates) == 1 or SPECS[stage].seals:
        return dict.fromkeys(dates, _reason(first_error))
    if path_dependent(stage):
        lo, hi, error = 0, len(dates) - 1, first_error  # the prefix ending at dates[hi] fails
        while lo < hi:
            mid = (lo + hi) // 2
            try:
                compute(dates[: mid + 1])
                lo = mid + 1
            except Exception as exc:  # noqa: BLE001 - any failure of the stage is the date's failure
                hi, error = mid, exc
        # a range that holds dates[lo] cannot be computed: the later dates fail with it (one reason)
        return dict.fromkeys(dates[lo:], f"{_reason(error)} (fails from {dates[lo].date()} on)")
    out: dict[pd.Timestamp, str] = {}

    def split(ds: list[pd.Timestamp], error: BaseException | None) -> None:
        if error is None:
            try:
                compute(ds)
                return
            except Exception as exc:  # noqa: BLE001
                error = exc
        if len(ds) == 1:
            out[ds[0]] = _reason(error)
            return
        half = len(ds) // 2
        split(ds[:half], None)
        split(ds[half:], None)

    split(dates, first_error)
    return out


def reads(ctx: RunContext, stage: str, d: pd.Timestamp) -> dict[str, list[pd.Timestamp]]:
    """The partitions ``stage`` reads for ``d`` (see the module docstring)."""
    spec = SPECS[stage]
    if spec.seals:
        return {s: [d] for s in assets_of(ctx.manifest) if SPECS[s].sealed}
    parts = input_partitions(ctx, spec, d)
    if spec.carries_decision:
        prev = previous_dates(ctx.manifest, d, 1)[0]
        if prev >= pd.Timestamp(ctx.manifest.start):
            parts[stage] = [prev]
    return parts


def blocked(ctx: RunContext, failures: Iterable[PartitionFailure], dates: list[pd.Timestamp],
            stages: Iterable[str] | None = None) -> dict[tuple[str, pd.Timestamp], PartitionFailure]:
    """Every ``(stage, date)`` of ``dates`` that failed or depends on a failure, with why. Dependents name
    the failed partition at the root of their chain."""
    bad: dict[tuple[str, pd.Timestamp], PartitionFailure] = {(f.stage, f.date): f for f in failures}
    if not bad:
        return bad
    first_bad = min(d for _, d in bad)
    stages = assets_of(ctx.manifest) if stages is None else stages
    for stage in stages:  # execution order: upstreams first; dates in order: previous decisions first
        for d in dates:
            if d < first_bad or (stage, d) in bad:
                continue
            for asset, ds in reads(ctx, stage, d).items():
                hit = next((bad[(asset, x)] for x in ds if (asset, x) in bad), None)
                if hit is not None:
                    root = hit.blocked_by or (hit.stage, hit.date)
                    bad[(stage, d)] = PartitionFailure(stage, d, hit.reason, root)
                    break
    return bad
