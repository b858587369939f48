"""Schedules per manifest: the newest partition after the market close, and a monthly tournament review.

Times are in the manifest's ``schedule.timezone`` (default America/New_York, so daylight saving is
Dagster's problem, not ours). The daily run materializes partition D = the local date of the tick
(skipped when D is not a partition, e.g. a weekend for a weekdays calendar, or is after the source's last
date with data, ``Source.partitions_end``).
"""

import datetime as dt

import pandas as pd
from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from tvquant_assets.calendar import is_partition, manifest_dates
from tvquant_assets.defs.jobs import REVIEW_STAGES, pipeline_job_name, review_job_name
from tvquant_assets.defs.sensors import RANGE_END, RANGE_START
from tvquant_assets.manifest import Manifest
from tvquant_assets.sources import last_partition_date

DEFAULT_CRON = {"weekdays": "30 17 * * 1-5", "daily": "30 0 * * *"}
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
        day = _local_date(context, tz)
        if not is_partition(manifest, day):
            return SkipReason(f"{day.date()} is not a partition of {manifest.name} ({manifest.calendar})")
        last = last_partition_date(manifest, context.scheduled_execution_time)
        if day > last:
            return SkipReason(f"{day.date()}: {manifest.name}'s source has data up to {last.date()} only")
        key = day.strftime("%Y-%m-%d")
        return RunRequest(run_key=key, partition_key=key, tags={"tvquant/manifest": manifest.name})

    return _daily


def build_review_schedule(manifest: Manifest):
    tz = manifest.schedule.timezone

    @schedule(name=f"{manifest.name}_monthly_review", job_name=review_job_name(manifest),
              cron_schedule=REVIEW_CRON, execution_timezone=tz, default_status=_status(manifest),
              description=f"Re-runs {', '.join(REVIEW_STAGES)} of {manifest.name} over the previous month.")
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
