"""Source registry: one line per source, imported on first use (the live TradingView source pulls in
its network clients, which validating a manifest never needs)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from tvquant_assets.manifest.schema import SourceConfig
from tvquant_assets.registry import Registry
from tvquant_assets.sources.base import Source

SOURCES = Registry("source", {
    "bundled": "tvquant_assets.sources.bundled:BundledSource",
    "synthetic": "tvquant_assets.sources.synthetic:SyntheticSource",
    "tradingview": "tvquant_assets.sources.tradingview.source:TradingViewSource",
    "files": "tvquant_assets.sources.files:FilesSource",
})

NETWORK_SOURCES = frozenset({"tradingview"})
"""Sources that need the network: ``tvquant ui`` leaves their manifests out unless asked."""


def build_source(cfg: SourceConfig) -> Source:
    """The source ``cfg.kind`` built with the rest of ``cfg`` as its parameters."""
    return SOURCES.create(cfg.kind, **cfg.model_dump(exclude={"kind"}))


def partitions_end(cfg: SourceConfig, now: dt.datetime | None = None) -> dt.date | None:
    """The last partition date with data of the source ``cfg`` as of ``now`` (None: today)."""
    return build_source(cfg).partitions_end(now or dt.datetime.now(dt.UTC))


def last_partition_date(manifest, now: dt.datetime | None = None) -> pd.Timestamp:
    """The manifest's last partition date with data: the source's ``partitions_end`` (today when None), never
    after today, moved back to a date of the manifest's calendar."""
    from tvquant_assets.calendar import calendar_dates

    now = now or dt.datetime.now(dt.UTC)
    today = pd.Timestamp(now.date())
    end = partitions_end(manifest.source, now)
    last = min(today, pd.Timestamp(end)) if end is not None else today
    dates = calendar_dates(manifest.calendar, last - pd.Timedelta(days=7), last)
    return dates[-1]


__all__ = ["NETWORK_SOURCES", "SOURCES", "Source", "build_source", "last_partition_date", "partitions_end"]
