"""The run context: everything a stage needs for one manifest — its config, the lake, the source — and the
reads every stage shares (same-date upstreams, the trailing price panel, rebalance dates).

History before the manifest's first partition ("warm-up", read by the trailing windows of the first
partitions) comes from the source itself; from the first partition on, trailing windows read the lake (and
the source for partitions the lake does not hold yet, with data_repair's decisions applied).
"""

from __future__ import annotations

import functools
import math

import pandas as pd

from tvquant_assets.calendar import first_previous_weekday, manifest_dates, rebalance_set
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.errors import SourceConfigError
from tvquant_assets.lake.store import Lake
from tvquant_assets.manifest import Manifest, manifest_hash
from tvquant_assets.repair import records as repair
from tvquant_assets.sources import Source, build_source
from tvquant_assets.stages.history import HistoryVerifier


class RunContext:
    """One manifest's config, lake and source, for the stages of one run. ``run_id`` goes into the ledger, and
    so does ``environment`` when given (default: this process's provenance)."""

    def __init__(self, manifest: Manifest, lake: Lake, run_id: str = "one-shot",
                 environment: dict | None = None) -> None:
        self.manifest = manifest
        self.lake = lake
        self.manifest_hash = manifest_hash(manifest)
        self.run_id = run_id
        self.environment = environment
        self.first_computed: pd.Timestamp | None = None  # set by plan.run_stage: earlier partitions are history

    @functools.cached_property
    def history(self) -> HistoryVerifier:
        return HistoryVerifier(self.lake, self.manifest.name)

    @functools.cached_property
    def source(self) -> Source:
        source = build_source(self.manifest.source)
        source.attach_lake(self.lake.root)
        return source

    @property
    def name(self) -> str:
        return self.manifest.name

    # reading the lake ------------------------------------------------------------------------------
    def read(self, stage: str, dates) -> dict[pd.Timestamp, tuple[pd.DataFrame, str]]:
        """``{date: (frame, df_hash)}`` of ``stage``'s partitions (every one must exist)."""
        return self.lake.read_many(self.name, str(stage), dates)

    def frames(self, stage: str, dates) -> dict[pd.Timestamp, pd.DataFrame]:
        """``{date: frame}`` of ``stage``'s partitions (every one must exist)."""
        return {d: f for d, (f, _) in self.read(stage, dates).items()}

    def same_date_hashes(self, stages, dates) -> dict[pd.Timestamp, dict[str, str]]:
        """``{date: {stage: df_hash}}`` of the same-date partitions of ``stages`` (the lineage metadata)."""
        out: dict[pd.Timestamp, dict[str, str]] = {pd.Timestamp(d): {} for d in dates}
        for s in stages:
            for d, h in self.lake.hashes(self.name, str(s), dates).items():
                out[d][str(s)] = h
        return out

    # trailing windows ------------------------------------------------------------------------------
    def lookback_rows(self) -> int:
        m = self.manifest
        return max(
            m.selection.history_rows,
            m.regime.history_rows,
            m.estimation.lookback + 1,
            m.universe.min_history_days + 1,
            64,
        )

    def window_start(self, first_date: pd.Timestamp) -> pd.Timestamp:
        """First calendar date whose bars the trailing windows of ``first_date`` may read.

        The windows are measured in bars, so the span is counted in weekdays (+12% for holidays) on every
        calendar: counted in partitions, a ``daily`` calendar over a weekday market would hold only ~5/7 of
        the bars, cut the windows short and make a date's outputs depend on where its range starts (a
        market that trades every day gets more bars than it needs, which the windows ignore)."""
        n = int(math.ceil(self.lookback_rows() * 1.12)) + 10
        return first_previous_weekday(first_date, n)

    def window_panel(self, dates) -> PricePanel:
        """The price panel the trailing windows of every date in ``dates`` read."""
        return self.panel(max(dates), first=self.window_start(min(dates)))

    @functools.cached_property
    def universe_symbols(self) -> list[str]:
        """The source's catalog, or the manifest's ``universe.symbols`` (each must be in the source)."""
        cat = self.source.catalog()
        syms = list(cat["symbol"])
        if self.manifest.universe.symbols:
            unknown = sorted(set(self.manifest.universe.symbols) - set(syms))
            if unknown:
                raise SourceConfigError(f"universe.symbols: {', '.join(unknown)} not in source {self.source.name}; "
                                  "fix the manifest")
            syms = sorted(self.manifest.universe.symbols)
        return syms

    def _warmup_bars(self, first: pd.Timestamp) -> pd.DataFrame:
        """Source bars stamped in [first, manifest.start): history before the first partition."""
        start = pd.Timestamp(self.manifest.start)
        if first >= start:
            return pd.DataFrame()
        return self._source_history(first, start - pd.Timedelta(days=1))

    @functools.lru_cache(maxsize=4)  # noqa: B019 - one context per manifest per process
    def _source_history(self, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
        return self.source.history(self.universe_symbols, first, last)

    def _source_bars(self, dates: list[pd.Timestamp]) -> pd.DataFrame:
        """Bars of partition ``dates`` straight from the source, with data_repair's decisions applied,
        i.e. what the prices stage would write for them."""
        bars = self._source_history(dates[0], dates[-1])
        bars = bars[bars["date"].isin(dates)]
        records = repair.load_records(self.lake, self.name)
        if not (records.fills or records.exclusions):
            return bars
        fields = tuple(self.source.fields)
        return pd.concat([repair.apply_to_prices(g, records, d, fields) for d, g in bars.groupby("date")],
                         ignore_index=True)

    def panel(self, last: pd.Timestamp, first: pd.Timestamp) -> PricePanel:
        """Wide price panel of bars stamped in [first, last] (warm-up from the source, then the lake; partitions
        the lake does not hold yet come from the source too)."""
        last, first = pd.Timestamp(last), pd.Timestamp(first)
        lake_dates = manifest_dates(self.manifest, first, last)
        prices = self.lake.read_many(self.name, "prices", lake_dates, missing_ok=True)
        self.history.verify(prices, self.first_computed)  # bad or changed history: one line, nothing computed
        parts = [self._warmup_bars(pd.Timestamp(first))]
        missing = [d for d in lake_dates if d not in prices]
        if missing:  # history not materialized yet (e.g. a UI backfill of a late range): read it from the source
            parts.append(self._source_bars(missing))
        parts += [df for df, _ in prices.values() if len(df)]
        parts = [p for p in parts if len(p)]
        fields = list(self.source.fields)
        if not parts:
            empty = pd.DataFrame(index=pd.DatetimeIndex([], name="date"), dtype="float64")
            return PricePanel(close=empty)
        long = pd.concat(parts, ignore_index=True)
        wide = {f: long.pivot(index="date", columns="symbol", values=f).sort_index() for f in fields}
        for f in wide:
            wide[f] = wide[f][sorted(wide[f].columns)].astype("float64")
            wide[f].columns.name = None
        return PricePanel(close=wide["close"], volume=wide.get("volume"), high=wide.get("high"),
                          low=wide.get("low"), open=wide.get("open"))

    def rebalance_set(self, last: pd.Timestamp) -> frozenset[pd.Timestamp]:
        """The manifest's rebalance dates up to ``last``."""
        return rebalance_set(self.manifest, last)
