"""Failures contained to their dates, with Dagster's own records (logic in ``stages/failures.py``).

A range is one run (``BackfillPolicy.single_run``). Inside it, a stage step that raises re-computes
sub-ranges to find the failing dates (``failures.locate``) and fails with ``dagster.Failure`` whose
metadata ``failed_partitions`` / ``reasons`` name them (shown on the step in the UI); a blocking check
names its bad partitions in its own ``failed_partitions`` metadata. Dagster then skips the downstream
steps for the whole range. ``contain`` reads those two records from the run's events, derives every
``(stage, date)`` that depends on a failure (``failures.blocked``) and launches, per contiguous segment
of dates with the same work left, one more run of the skipped stages and their checks (``selection``),
until nothing is left that does not depend on a failure (the segments: ``plan_segments``, which the
``contain_failed_ranges`` sensor of ``defs/sensors.py`` also uses for range runs the UI launches). Each
failed root partition gets an ``AssetObservation`` (``failed``, ``blocks``) on its partition, so the UI's
partition view says why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
from dagster import AssetKey, AssetObservation, Failure

from tvquant_assets.errors import BadDataError, ConfigurationError
from tvquant_assets.stages import ALL_ASSETS, assets_of
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.failures import PartitionFailure, blocked, locate
from tvquant_assets.stages.plan import run_stage


def run_contained(ctx: RunContext, stage: str, dates: list[pd.Timestamp], finish=None):
    """``plan.run_stage``, or a ``dagster.Failure`` naming each date the stage fails on and why."""
    try:
        return run_stage(ctx, stage, dates, finish=finish)
    except BadDataError as exc:  # a wrong input file: no date can succeed and retrying cannot fix it
        raise Failure(str(exc), allow_retries=False) from exc
    except ConfigurationError:  # the manifest's own error, the same on every date: failed at once, not retried
        raise
    except Exception as exc:  # noqa: BLE001 - located per date, then raised as one Failure
        found = locate(stage, dates, lambda ds: run_stage(ctx, stage, ds), exc)
        first_date, first_reason = next(iter(sorted(found.items())))
        more = f" (+{len(found) - 1} more dates)" if len(found) > 1 else ""
        raise Failure(
            description=f"{ctx.name}/{stage} failed on {len(found)} date(s): {first_date.date()}: "
                        f"{first_reason}{more}",
            metadata={"failed_partitions": [d.strftime("%Y-%m-%d") for d in sorted(found)],
                      "reasons": {d.strftime("%Y-%m-%d"): r for d, r in sorted(found.items())}},
        ) from exc


@dataclass
class RunRecord:
    """What one run did: its materialized ``(stage, date)``s, the failures it reported, an error nobody
    located (a failed step without a ``Failure``)."""

    run_id: str
    materialized: set[tuple[str, pd.Timestamp]] = field(default_factory=set)
    failures: list[PartitionFailure] = field(default_factory=list)
    unlocated: dict[str, str] = field(default_factory=dict)  # stage -> error line


def _stage_of_step(step_key: str) -> tuple[str, bool]:
    """The stage a step computes or checks (``<manifest>__<stage>`` / ``<manifest>__<stage>_<check>``), and
    whether it is a check step."""
    op = step_key.rsplit("__", 1)[-1]
    if op in ALL_ASSETS:
        return op, False
    return max((s for s in ALL_ASSETS if op.startswith(f"{s}_")), key=len, default=op), True


def _value(md: dict, key: str, default):
    v = md.get(key)
    return default if v is None else getattr(v, "value", v)


def read_run(result) -> RunRecord:
    """Materializations, located step failures and failed blocking checks of one finished run."""
    return read_events(result.run_id, result.all_events)


def read_run_of(instance, run_id: str) -> RunRecord:
    """``read_run`` for a run known only by its id (a sensor's view of a run the daemon launched)."""
    return read_events(run_id, [e.dagster_event for e in instance.all_logs(run_id) if e.is_dagster_event])


def read_events(run_id: str, events) -> RunRecord:
    rec = RunRecord(run_id)
    for event in events:
        if event.is_step_failure:
            stage, is_check = _stage_of_step(event.step_key)
            data = event.step_failure_data
            if is_check and data.error is not None and data.error.cls_name == "DagsterAssetCheckFailedError":
                continue  # a blocking check that failed: its evaluation below names the dates
            md = dict(data.user_failure_data.metadata) if data.user_failure_data else {}
            reasons = _value(md, "reasons", None)
            if reasons:
                rec.failures += [PartitionFailure(stage, pd.Timestamp(d), r) for d, r in
                                 (reasons.items() if isinstance(reasons, dict) else json.loads(reasons).items())]
            else:
                err = data.error
                while err is not None and err.cause is not None:
                    err = err.cause
                rec.unlocated[stage] = (err.message if err else "unknown error").strip().splitlines()[0]
        elif event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            if mat.partition:
                rec.materialized.add((mat.asset_key.path[-1], pd.Timestamp(mat.partition)))
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            if ev.passed or not ev.blocking:
                continue
            md = dict(ev.metadata)
            findings = [str(f) for f in _value(md, "findings", [])]
            for d in _value(md, "failed_partitions", []):
                line = next((f.split(" ", 1)[1] for f in findings if f.startswith(d)), "see the check's findings")
                rec.failures.append(PartitionFailure(ev.asset_key.path[-1], pd.Timestamp(d),
                                                     f"check {ev.check_name} failed: {line}"))
    return rec


def _segments(pending: dict[pd.Timestamp, frozenset]) -> list[tuple[pd.Timestamp, pd.Timestamp, frozenset]]:
    """Maximal runs of consecutive dates (in partition order) with the same non-empty set of stages."""
    out: list[list] = []
    for d, stages in pending.items():
        if out and out[-1][2] == stages and out[-1][3]:
            out[-1][1] = d
        else:
            out.append([d, d, stages, bool(stages)])
    return [(a, b, s) for a, b, s, nonempty in out if nonempty]


Segment = tuple[pd.Timestamp, pd.Timestamp, tuple[str, ...]]


def plan_segments(ctx: RunContext, dates: list[pd.Timestamp], failures: list[PartitionFailure],
                  done: set[tuple[str, pd.Timestamp]]) -> tuple[list[Segment], dict]:
    """What is left to run after ``failures`` with ``done`` materialized: per contiguous segment of dates
    with the same stages left (in execution order), ``(first, last, stages)``; none depends on a failure.
    Also every blocked ``(stage, date)`` with why. Shared by ``contain`` and the containment sensor."""
    bad = blocked(ctx, failures, dates)
    assets = assets_of(ctx.manifest)
    pending = {d: frozenset(s for s in assets if (s, d) not in done and (s, d) not in bad) for d in dates}
    return [(lo, hi, tuple(sorted(st, key=ALL_ASSETS.index))) for lo, hi, st in _segments(pending)], bad


def unlocated_failures(rec: RunRecord, span: list[pd.Timestamp]) -> list[PartitionFailure]:
    """An error nobody located fails its stage on every date of the run."""
    return [PartitionFailure(s, d, msg) for s, msg in rec.unlocated.items() for d in span]


def ordered_failures(ctx: RunContext, failures: list[PartitionFailure], dates: list[pd.Timestamp]):
    """Roots first (by date, stage order), then what they block."""
    bad = blocked(ctx, failures, dates)
    return sorted(bad.values(), key=lambda f: (f.blocked_by is not None, f.date, ALL_ASSETS.index(f.stage)))


@dataclass
class Containment:
    failures: list[PartitionFailure]  # roots first (their own failure), then what they block
    run_ids: list[str]

    @property
    def roots(self) -> list[PartitionFailure]:
        return [f for f in self.failures if f.blocked_by is None]

    @property
    def failed_dates(self) -> list[pd.Timestamp]:
        return sorted({f.date for f in self.failures})


def contain(ctx: RunContext, dates: list[pd.Timestamp], first, rerun: Callable[[list[str], str, str], object],
            instance=None, done: set | None = None) -> Containment:
    """After the failed run ``first`` over ``dates`` (or none, with ``done`` the partitions to skip): run what
    is left and does not depend on a failure (``rerun(stages, first_key, last_key)`` -> a run result), until
    nothing such is left; record the failed roots on the instance."""
    record = read_run(first) if first is not None else RunRecord("")
    done = set(record.materialized) | set(done or ())
    failures = list(record.failures)
    run_ids = [record.run_id] if first is not None else []
    failures += unlocated_failures(record, dates)
    for _ in range(len(assets_of(ctx.manifest)) + 2):  # each round settles at least one more stage
        segments, _ = plan_segments(ctx, dates, failures, done)
        if not segments:
            break
        progressed = False
        for lo, hi, stages in segments:
            res = rerun(list(stages), lo.strftime("%Y-%m-%d"), hi.strftime("%Y-%m-%d"))
            rec = read_run(res)
            run_ids.append(rec.run_id)
            progressed |= bool(rec.materialized - done) or bool(rec.failures) or bool(rec.unlocated)
            done |= rec.materialized
            span = [d for d in dates if lo <= d <= hi]
            failures += rec.failures + unlocated_failures(rec, span)
        if not progressed:
            break
    result = Containment(ordered_failures(ctx, failures, dates), run_ids)
    if instance is not None:
        report(ctx.name, result, instance)
    return result


def blocks_summary(result: Containment, root: PartitionFailure) -> str:
    """``stage first..last (n)`` for every stage a root blocks."""
    key = (root.stage, root.date)
    per: dict[str, list[pd.Timestamp]] = {}
    for f in result.failures:
        if f.blocked_by == key:
            per.setdefault(f.stage, []).append(f.date)
    return "; ".join(f"{s} {min(ds).date()}..{max(ds).date()} ({len(ds)})" for s, ds in per.items()) or "nothing"


def report(manifest_name: str, result: Containment, instance) -> None:
    """One ``AssetObservation`` per failed root partition: why it failed and what it blocks."""
    for root in result.roots:
        instance.report_runless_asset_event(AssetObservation(
            asset_key=AssetKey([manifest_name, root.stage]), partition=root.date.strftime("%Y-%m-%d"),
            description=f"failed: {root.reason}",
            metadata={"failed": root.reason, "blocks": blocks_summary(result, root)}))


def fresh_partitions(ctx: RunContext, dates: list[pd.Timestamp], instance) -> set[tuple[str, pd.Timestamp]]:
    """The ``(stage, date)``s a re-run can skip: in the lake, its latest materialization in ``instance`` has
    the stage's current code version, and nothing it reads is redone (``failures.blocked``: same-date
    upstreams, trailing windows, previous decisions). A stage whose version moved (a manifest field it reads,
    its code) is redone with everything downstream of it; its upstreams stay. A date with any stage missing
    (a failed or blocked date) is redone whole, so its checks, blocking ones included, run again."""
    from dagster._core.event_api import AssetRecordsFilter

    from tvquant_assets.stages.code_versions import code_version

    keys = [d.strftime("%Y-%m-%d") for d in dates]
    current: dict[str, dict[pd.Timestamp, str | None]] = {}
    assets = assets_of(ctx.manifest)
    for stage in assets:
        latest: dict[pd.Timestamp, str | None] = {}
        for i in range(0, len(keys), 2000):
            cursor = None
            while True:
                page = instance.fetch_materializations(
                    AssetRecordsFilter(asset_key=AssetKey([ctx.name, stage]), asset_partitions=keys[i:i + 2000]),
                    limit=5000, cursor=cursor)
                for r in page.records:  # newest first
                    latest.setdefault(pd.Timestamp(r.partition_key), r.asset_materialization.tags.get(
                        "dagster/code_version"))
                if not page.has_more:
                    break
                cursor = page.cursor
        current[stage] = latest
    versions = {s: code_version(s, ctx.manifest) for s in assets}
    missing = {d for d in dates for s in assets if d not in current[s] or not ctx.lake.exists(ctx.name, s, d)}
    redo = [PartitionFailure(s, d, "missing or stale") for d in dates for s in assets
            if d in missing or current[s][d] != versions[s]]
    stale = blocked(ctx, redo, dates)
    return {(s, d) for s in assets for d in dates if (s, d) not in stale}
