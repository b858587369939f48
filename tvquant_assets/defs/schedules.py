"""Schedules per manifest: the newest partition after the market close, and a monthly tournament review.

Times are in the manifest's ``schedule.timezone`` (default America/New_York, so daylight saving is
Dagster's problem, not ours). The daily run materializes partition D = the local date of the tick
(skipped when D is not a partition, e.g. a weekend for a weekdays calendar, or is after the source's last
date with data, ``Source.partitions_end``); for a live TradingView manifest D is the newest partition whose
session has closed at the tick (``sources/tradingview/schedule.py``). Missed days are caught up: when
partitions after the newest sealed one (``audit``) and before D are missing, the run covers them all (at most
``CATCH_UP_DAYS``), so one failed or skipped day does not block later runs.
"""

import datetime as dt

import pandas as pd
from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from tvquant_assets.calendar import is_partition, manifest_dates
from tvquant_assets.defs.jobs import pipeline_job_name, review_job_name, review_stages
from tvquant_assets.defs.sensors import RANGE_END, RANGE_START
from tvquant_assets.manifest import Manifest
from tvquant_assets.sources import last_partition_date

DEFAULT_CRON = {"weekdays": "30 17 * * 1-5", "daily": "30 0 * * *"}
CATCH_UP_DAYS = 31
REVIEW_CRON = "0 19 1 * *"  # the 1st of each month, after the close: review the month before


def _local_date(context: ScheduleEvaluationContext, tz: str) -> pd.Timestamp:
    when = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    return pd.Timestamp(when).tz_convert(tz).tz_localize(None).normalize()


def _status(manifest: Manifest) -> DefaultScheduleStatus:
    return DefaultScheduleStatus.RUNNING if manifest.schedule.running else DefaultScheduleStatus.STOPPED


def build_daily_schedule(manifest: Manifest):
    tz = manifest.schedule.timezone

    @schedule(name=f"{manifest.name}_daily", job_name=pipeline_job_name(manifest),
              cron_schedule=manifest.schedule.cron or DEFAULT_CRON[manifest.calendar], execution_timezone=tz,
              default_status=_status(manifest),
              description=f"Materializes today's partition of {manifest.name} after the close ({tz}).")
    def _daily(context: ScheduleEvaluationContext):
        if manifest.source.kind == "files":  # the dates appended to the files since the last run
            return _appended_dates_request(manifest, _local_date(context, tz))
        if manifest.source.kind == "tradingview":
            from tvquant_assets.sources.tradingview.schedule import closed_partition

            when = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
            day = closed_partition(manifest, when)
            if day is None or day < pd.Timestamp(manifest.start):
                return SkipReason(f"no closed session of {manifest.name} at {when:%Y-%m-%d %H:%M %Z}")
        else:
            day = _local_date(context, tz)
        if not is_partition(manifest, day):
            return SkipReason(f"{day.date()} is not a partition of {manifest.name} ({manifest.calendar})")
        last = last_partition_date(manifest, context.scheduled_execution_time)
        if day > last:
            return SkipReason(f"{day.date()}: {manifest.name}'s source has data up to {last.date()} only")
        key = day.strftime("%Y-%m-%d")
        first = _first_missing(context, manifest, day)
        tags = {"tvquant/manifest": manifest.name}
        if first is None or first == key:
            return RunRequest(run_key=key, partition_key=key, tags=tags)
        return RunRequest(run_key=f"{first}..{key}", tags={**tags, RANGE_START: first, RANGE_END: key})

    return _daily


def _appended_dates_request(manifest: Manifest, day: pd.Timestamp):
    """One run over the partitions after the lake's last audited date up to the files' last bar (<= today)."""
    from tvquant_assets.lake import Lake, default_lake_root
    from tvquant_assets.stages.context import RunContext
    from tvquant_assets.stages.plan import pending_dates

    ctx = RunContext(manifest, Lake.open(default_lake_root()))
    end = ctx.source.partitions_end(day.to_pydatetime())
    last = manifest_dates(manifest, manifest.start, min(day, pd.Timestamp(end))) if end is not None else []
    dates = pending_dates(ctx, last[-1]) if last else []
    if not dates:
        return SkipReason(f"no new dates in the files of {manifest.name} (last bar {end})")
    start, stop = (d.strftime("%Y-%m-%d") for d in (dates[0], dates[-1]))
    tags = {"tvquant/manifest": manifest.name}
    if start == stop:
        return RunRequest(run_key=start, partition_key=start, tags=tags)
    return RunRequest(run_key=f"{start}..{stop}", tags={**tags, RANGE_START: start, RANGE_END: stop})


def _first_missing(context: ScheduleEvaluationContext, manifest: Manifest, day: pd.Timestamp) -> str | None:
    """The first partition after the newest sealed one (audit materialized) up to ``day``, within
    ``CATCH_UP_DAYS``; None when nothing was ever sealed (history is a backfill's job, not the schedule's)."""
    from dagster import AssetKey, DagsterInvariantViolationError

    try:
        instance = context.instance
    except DagsterInvariantViolationError:  # a tick built without an instance (tests): nothing to catch up
        return None
    done = instance.get_materialized_partitions(AssetKey([manifest.name, "audit"]))
    lo = max(day - pd.Timedelta(days=CATCH_UP_DAYS), pd.Timestamp(manifest.start))
    keys = [d.strftime("%Y-%m-%d") for d in manifest_dates(manifest, lo, day)]
    sealed = [k for k in keys if k in done]
    if not done or not sealed:
        return None
    after = [k for k in keys if k > sealed[-1] and k not in done]
    return after[0] if after else key_of(day)


def key_of(day: pd.Timestamp) -> str:
    return day.strftime("%Y-%m-%d")


def build_review_schedule(manifest: Manifest):
    tz = manifest.schedule.timezone

    @schedule(name=f"{manifest.name}_monthly_review", job_name=review_job_name(manifest),
              cron_schedule=REVIEW_CRON, execution_timezone=tz, default_status=_status(manifest),
              description=f"Re-runs {', '.join(review_stages(manifest))} of {manifest.name} over the previous month.")
    def _review(context: ScheduleEvaluationContext):
        day = _local_date(context, tz)
        first_of_month = day.replace(day=1)
        prev_first = (first_of_month - pd.Timedelta(days=1)).replace(day=1)
        dates = manifest_dates(manifest, prev_first, first_of_month - pd.Timedelta(days=1))
        if not dates:
            return SkipReason(f"no partition of {manifest.name} in the month before {first_of_month.date()}")
        start, end = (d.strftime("%Y-%m-%d") for d in (dates[0], dates[-1]))
        return RunRequest(run_key=f"review:{start[:7]}",
                          tags={RANGE_START: start, RANGE_END: end, "tvquant/manifest": manifest.name})

    return _review
