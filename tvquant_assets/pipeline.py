"""Stage runners: read a stage's inputs from the lake, call its core, return one frame per date.

No Dagster here. The Dagster assets (``defs/``) are thin wrappers around ``run_stage``; the CLI's
one-shot commands and the tests call it directly. Every runner takes the dates of a range and returns
``StageResult`` (frames per date, plus the df_hash of every same-date upstream partition for lineage).
History before the manifest's first partition ("warm-up", needed by trailing windows of the first
partitions) is read from the source itself; everything from the first partition on is read from the lake.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tvquant_assets.calendar import calendar_index, manifest_dates, previous_dates
from tvquant_assets.enums import STAGES, Stage
from tvquant_assets.errors import LakeError, SourceError
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import Manifest, manifest_hash
from tvquant_assets.sources import Source, build_source

REGIME_REGRET = "regime_regret"
"""The threshold auditor's asset: advisory, outside the decision chain (so not in the ledger)."""

UPSTREAM: dict[Stage | str, tuple[Stage, ...]] = {
    Stage.CATALOG: (),
    Stage.PRICES: (Stage.CATALOG,),
    Stage.SCAN: (Stage.PRICES, Stage.CATALOG),
    Stage.REGIME: (Stage.SCAN,),
    Stage.SELECTION: (Stage.SCAN, Stage.CATALOG, Stage.REGIME),
    Stage.ESTIMATION: (Stage.SELECTION, Stage.REGIME),
    Stage.TOURNAMENT: (Stage.ESTIMATION, Stage.REGIME),
    Stage.BACKTEST: (Stage.TOURNAMENT, Stage.PRICES),
    Stage.DRIFT: (Stage.BACKTEST, Stage.TOURNAMENT, Stage.PRICES, Stage.SELECTION),
    Stage.AUDIT: tuple(s for s in STAGES if s is not Stage.AUDIT),
    REGIME_REGRET: (Stage.REGIME, Stage.BACKTEST),
}

CATALOG_OUTPUT = ["symbol", "exchange", "type", "sector", "industry", "currency", "first_date", "last_bar",
                  "active"]


@dataclass
class StageResult:
    frames: dict[pd.Timestamp, pd.DataFrame]
    upstream: dict[pd.Timestamp, dict[str, str]] = field(default_factory=dict)
    notes: dict[pd.Timestamp, str] = field(default_factory=dict)
    metadata: dict[pd.Timestamp, dict] = field(default_factory=dict)  # extra plain metadata per date


class Pipeline:
    """Everything a stage needs for one manifest: its config, the lake, the source."""

    def __init__(self, manifest: Manifest, lake: Lake, environment: dict | None = None) -> None:
        self.manifest = manifest
        self.lake = lake
        self.manifest_hash = manifest_hash(manifest)
        self._environment = environment

    @functools.cached_property
    def source(self) -> Source:
        source = build_source(self.manifest.source)
        source.attach_lake(self.lake.root)
        return source

    @property
    def name(self) -> str:
        return self.manifest.name

    # reading ---------------------------------------------------------------------------------------
    def read(self, stage: Stage, dates) -> dict[pd.Timestamp, tuple[pd.DataFrame, str]]:
        return self.lake.read_many(self.name, stage.value, dates)

    def lookback_rows(self) -> int:
        m = self.manifest
        return max(
            m.selection.history_rows,
            m.regime.history_rows,
            m.estimation.lookback + 1,
            m.universe.min_history_days + 1,
            64,
        )

    @functools.cached_property
    def _universe_symbols(self) -> list[str]:
        cat = self.source.catalog()
        syms = list(cat["symbol"])
        if self.manifest.universe.symbols:
            unknown = sorted(set(self.manifest.universe.symbols) - set(syms))
            if unknown:
                raise SourceError(f"universe.symbols: {', '.join(unknown)} not in source {self.source.name}; "
                                  "fix the manifest")
            syms = sorted(self.manifest.universe.symbols)
        return syms

    def _warmup_bars(self, first: pd.Timestamp) -> pd.DataFrame:
        """Source bars stamped in [first, manifest.start): history before the first partition."""
        start = pd.Timestamp(self.manifest.start)
        if first >= start:
            return pd.DataFrame()
        return self._warmup_cache(first, start - pd.Timedelta(days=1))

    @functools.lru_cache(maxsize=4)  # noqa: B019 - one Pipeline per manifest per process
    def _warmup_cache(self, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
        return self.source.history(self._universe_symbols, first, last)

    def _source_bars(self, dates: list[pd.Timestamp]) -> pd.DataFrame:
        """Bars of partition ``dates`` straight from the source, with data_repair's decisions applied,
        i.e. what the prices stage would write for them."""
        from tvquant_assets import repair

        bars = self._warmup_cache(dates[0], dates[-1])
        bars = bars[bars["date"].isin(dates)]
        records = repair.load_records(self.lake, self.name)
        if not (records.fills or records.exclusions):
            return bars
        fields = tuple(self.source.fields)
        return pd.concat([repair.apply_to_prices(g, records, d, fields) for d, g in bars.groupby("date")],
                         ignore_index=True)

    def panel(self, last: pd.Timestamp, first: pd.Timestamp):
        """Wide price panel of bars stamped in [first, last] (warm-up from the source, then the lake; partitions
        the lake does not hold yet come from the source too)."""
        from tvquant_assets.core.panel import PricePanel

        last, first = pd.Timestamp(last), pd.Timestamp(first)
        lake_dates = manifest_dates(self.manifest, first, last)
        parts = [self._warmup_bars(pd.Timestamp(first))]
        prices = self.lake.read_many(self.name, Stage.PRICES.value, lake_dates, missing_ok=True)
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
        return _rebalance_set(self.manifest.calendar, pd.Timestamp(self.manifest.start), self.manifest.rebalance,
                              pd.Timestamp(last))

    def environment(self) -> dict:
        if self._environment is None:
            from tvquant_assets.provenance import environment

            self._environment = environment()
        return self._environment


@functools.lru_cache(maxsize=4096)
def _rebalance_set(calendar: str, start: pd.Timestamp, rule, last: pd.Timestamp) -> frozenset[pd.Timestamp]:
    """Rebalance dates up to ``last``, counted on the partition calendar from the manifest's start."""
    dates = _rebalance_dates_to(calendar, start, rule, pd.Timestamp(year=last.year + 1, month=1, day=1))
    return frozenset(dates[: bisect.bisect_right(dates, last)])


@functools.lru_cache(maxsize=64)
def _rebalance_dates_to(calendar: str, start: pd.Timestamp, rule, horizon: pd.Timestamp) -> list[pd.Timestamp]:
    """Every rule (first date of a month or week, every k-th date from the start) only looks back, so the
    dates up to ``last`` are those up to a later horizon cut at ``last``: one calendar per year, not one per
    date (a backfill asks for every date)."""
    from tvquant_assets.core.tournament import rebalance_dates

    return rebalance_dates(calendar_index(calendar, start, horizon), rule)


def _same_date_hashes(pipe: Pipeline, stages: tuple[Stage, ...], dates) -> dict[pd.Timestamp, dict[str, str]]:
    out: dict[pd.Timestamp, dict[str, str]] = {pd.Timestamp(d): {} for d in dates}
    for s in stages:
        for d, (_, h) in pipe.read(s, dates).items():
            out[d][s.value] = h
    return out


# stage runners -------------------------------------------------------------------------------------

def _calendar_gap(calendar: str, since: np.ndarray, until: np.datetime64) -> np.ndarray:
    """Calendar partition dates after ``since`` up to ``until`` (weekdays or days)."""
    since_d = since.astype("datetime64[D]")
    until_d = np.datetime64(until, "D")
    if calendar == "weekdays":
        return np.busday_count(since_d, until_d)  # [since, until) == (since, until] for weekday dates
    return (until_d - since_d).astype(np.int64)


def run_catalog(pipe: Pipeline, dates: list[pd.Timestamp]) -> StageResult:
    cat = pipe.source.catalog()
    cat = cat[cat["symbol"].isin(pipe._universe_symbols)].sort_values("symbol").reset_index(drop=True)
    first = pd.to_datetime(cat["symbol"].map(pipe.source.first_dates())).dt.as_unit("ns").to_numpy()
    bars = pipe.source.history(list(cat["symbol"]), pd.Timestamp.min, max(dates))
    by_symbol = {s: g["date"].to_numpy(dtype="datetime64[ns]") for s, g in bars.groupby("symbol")}
    day = np.array(dates, dtype="datetime64[ns]")
    last_bar = np.full((len(day), len(cat)), np.datetime64("NaT", "ns"))
    for j, s in enumerate(cat["symbol"]):  # last bar <= D for every D at once
        arr = by_symbol.get(s)
        if arr is not None and len(arr):
            i = np.searchsorted(arr, day, side="right")
            last_bar[i > 0, j] = arr[i[i > 0] - 1]
    stale = pipe.manifest.universe.max_stale_days
    frames = {}
    for k, d in enumerate(dates):
        listed = first <= day[k]
        rows = cat.loc[listed].reset_index(drop=True)
        lb = last_bar[k, listed]
        gap = np.full(len(rows), 10**6, dtype=np.int64)
        has = ~np.isnat(lb)
        if has.any():
            gap[has] = _calendar_gap(pipe.manifest.calendar, lb[has], day[k])
        rows["first_date"] = first[listed]
        rows["last_bar"] = lb
        rows["active"] = gap <= stale
        frames[d] = rows[CATALOG_OUTPUT]
    return StageResult(pipe.source.catalog_as_of(frames))


def run_prices(pipe: Pipeline, dates: list[pd.Timestamp]) -> StageResult:
    catalogs = pipe.read(Stage.CATALOG, dates)
    symbols = sorted(set().union(*[set(c["symbol"]) for c, _ in catalogs.values()])) if catalogs else []
    fields = list(pipe.source.fields)
    columns = ["date", "symbol", *fields]
    bars = pipe.source.history(symbols, min(dates), max(dates)) if symbols else pd.DataFrame(
        {"date": pd.Series(dtype="datetime64[ns]"), "symbol": pd.Series(dtype=str),
         **{f: pd.Series(dtype="float64") for f in fields}})
    bars = bars[columns].sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
    bar_days = bars["date"].to_numpy(dtype="datetime64[ns]")
    bar_symbols = bars["symbol"].to_numpy(dtype=object)
    frames, upstream = {}, {}
    for d in dates:
        cat, cat_hash = catalogs[d]
        lo, hi = np.searchsorted(bar_days, np.datetime64(d, "ns"), side="left"), \
            np.searchsorted(bar_days, np.datetime64(d, "ns"), side="right")
        keep = lo + np.flatnonzero(np.isin(bar_symbols[lo:hi], cat["symbol"].to_numpy(dtype=object)))
        frames[d] = bars.iloc[keep].reset_index(drop=True)
        upstream[d] = {Stage.CATALOG.value: cat_hash}
    return StageResult(frames, upstream)


def run_scan(pipe: Pipeline, dates: list[pd.Timestamp]) -> StageResult:
    from tvquant_assets.core.scan import compute_scan

    catalogs = pipe.read(Stage.CATALOG, dates)
    panel = pipe.panel(max(dates), first=window_start(pipe, min(dates)))
    listed = {d: list(c["symbol"]) for d, (c, _) in catalogs.items()}
    frames = compute_scan(panel, dates, pipe.manifest.universe, listed, history_rows=pipe.lookback_rows())
    frames = pipe.source.scan_fields(frames)
    return StageResult(frames, _same_date_hashes(pipe, UPSTREAM[Stage.SCAN], dates))


def window_start(pipe: Pipeline, first_date: pd.Timestamp) -> pd.Timestamp:
    """First calendar date whose bars the trailing windows of ``first_date`` may read."""
    n = int(math.ceil(pipe.lookback_rows() * 1.12)) + 10
    return previous_dates(pipe.manifest, first_date, n)[0]


def _sectors(catalogs) -> dict[str, str]:
    sectors: dict[str, str] = {}
    for d in sorted(catalogs):
        cat = catalogs[d][0]
        for s, sec in zip(cat["symbol"], cat["sector"], strict=True):
            sectors.setdefault(s, sec)
    return sectors


def run_selection(pipe: Pipeline, dates: list[pd.Timestamp]) -> StageResult:
    from tvquant_assets.core.selection import preset_overrides, select

    scans = {d: f for d, (f, _) in pipe.read(Stage.SCAN, dates).items()}
    regimes = {d: f for d, (f, _) in pipe.read(Stage.REGIME, dates).items()}
    panel = pipe.panel(max(dates), first=window_start(pipe, min(dates)))
    frames = select(panel, scans, dates, pipe.manifest.selection, _sectors(pipe.read(Stage.CATALOG, dates)),
                    preset_overrides(regimes))
    return StageResult(frames, _same_date_hashes(pipe, UPSTREAM[Stage.SELECTION], dates))


def run_regime(pipe: Pipeline, dates: list[pd.Timestamp]) -> StageResult:
    from tvquant_assets.core.regime import detect

    scans = {d: f for d, (f, _) in pipe.read(Stage.SCAN, dates).items()}
    panel = pipe.panel(max(dates), first=window_start(pipe, min(dates)))
    presets = {k.value if hasattr(k, "value") else str(k): v for k, v in pipe.manifest.regime_presets.items()}
    frames = detect(panel, scans, dates, pipe.manifest.regime, presets)
    return StageResult(frames, _same_date_hashes(pipe, UPSTREAM[Stage.REGIME], dates))


def run_estimation(pipe: Pipeline, dates: list[pd.Timestamp]) -> StageResult:
    from tvquant_assets.core.estimation import estimate

    selections = pipe.read(Stage.SELECTION, dates)
    # the tournament is long-only: the short book ("direction" short) is published, not optimized here
    selected = {d: sorted(f.loc[f["selected"] & (f["direction"] != "short"), "symbol"])
                for d, (f, _) in selections.items()}
    regimes = {d: f for d, (f, _) in pipe.read(Stage.REGIME, dates).items()}
    panel = pipe.panel(max(dates), first=window_start(pipe, min(dates)))
    frames = estimate(panel, selected, dates, pipe.manifest.estimation,
                      {d: f for d, (f, _) in selections.items()}, regimes)
    return StageResult(frames, _same_date_hashes(pipe, UPSTREAM[Stage.ESTIMATION], dates))


def run_tournament(pipe: Pipeline, dates: list[pd.Timestamp]) -> StageResult:
    from tvquant_assets.core.tournament import run_tournament as core_run

    m = pipe.manifest
    rebalance = pipe.rebalance_set(max(dates))
    previous = None
    prev_date = previous_dates(m, dates[0], 1)[0]
    if dates[0] in rebalance:
        # Not required, but when present the last decision feeds the turnover penalty and the fallback.
        if prev_date >= pd.Timestamp(m.start) and pipe.lake.exists(pipe.name, Stage.TOURNAMENT.value, prev_date):
            previous = pipe.lake.read(pipe.name, Stage.TOURNAMENT.value, prev_date)
    else:
        if prev_date >= pd.Timestamp(m.start):
            try:
                previous = pipe.lake.read(pipe.name, Stage.TOURNAMENT.value, prev_date)
            except LakeError:
                last_rb = max((r for r in rebalance if r <= dates[0]), default=None)
                raise LakeError(
                    f"{pipe.name}/tournament {dates[0].date()}: carries the decision of rebalance date "
                    f"{last_rb.date() if last_rb is not None else '?'}, whose partitions are not in the lake; "
                    f"materialize from {last_rb.date() if last_rb is not None else m.start} on"
                ) from None
    estimates = {d: f for d, (f, _) in pipe.read(Stage.ESTIMATION, dates).items()}
    regimes = {d: f for d, (f, _) in pipe.read(Stage.REGIME, dates).items()}
    panel = pipe.panel(max(dates), first=window_start(pipe, min(dates)))
    presets = {k.value if hasattr(k, "value") else str(k): v for k, v in m.regime_presets.items()}
    frames = core_run(panel, estimates, regimes, dates, lambda d: d in rebalance, m.tournament, presets,
                      m.estimation, previous, m.selection.linkage)
    notes = {}
    for d, f in frames.items():
        decided = pd.Timestamp(f["decision_date"].iloc[0]).date() if len(f) else None
        notes[d] = f"rebalanced ({m.rebalance.rule})" if d in rebalance else \
            f"not a rebalance date: carries the decision of {decided}"
    return StageResult(frames, _same_date_hashes(pipe, UPSTREAM[Stage.TOURNAMENT], dates), notes)


def collect_decisions(pipe: Pipeline, start: pd.Timestamp, last: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Stitch the decisions of every tournament partition in [start, last]: only the partitions that can
    change the weights are read (the one at ``start`` and each rebalance date after it)."""
    rebalance = pipe.rebalance_set(last)
    wanted = sorted({pd.Timestamp(start), *(r for r in rebalance if start < r <= last)})
    frames = pipe.read(Stage.TOURNAMENT, wanted)
    rows = []
    for d in wanted:
        f = frames[d][0]
        f = f[f["symbol"] != ""]
        rows.append(f.assign(effective=d)[["candidate", "effective", "symbol", "weight"]])
    long = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["candidate", "effective",
                                                                                   "symbol", "weight"])
    out = {}
    for cand, g in long.groupby("candidate"):
        w = g.pivot_table(index="effective", columns="symbol", values="weight", aggfunc="sum").fillna(0.0)
        w = w.reindex(wanted).fillna(0.0)
        w.columns.name = None
        w.index.name = None
        out[str(cand)] = w
    return out


def backtest_cost_rates(pipe: Pipeline) -> float | dict[str, float]:
    """Commission + slippage per unit of notional: one rate, or one per symbol when the manifest sets costs per
    asset class (the catalog's ``type``)."""
    bt = pipe.manifest.backtest
    if not bt.costs_by_class:
        return bt.costs.rate
    cat = pipe.source.catalog()
    kinds = dict(zip(cat["symbol"].astype(str), cat["type"].astype(str)))
    return {s: bt.costs_by_class.get(kinds.get(s, ""), bt.costs).rate for s in pipe._universe_symbols}


def _cost_classes(pipe: Pipeline) -> dict[str, str]:
    """Asset class of every universe symbol for costs: the catalog's type when ``costs_by_class`` names it,
    else ``default`` (the manifest's ``backtest.costs``)."""
    bt = pipe.manifest.backtest
    if not bt.costs_by_class:
        return {s: "default" for s in pipe._universe_symbols}
    cat = pipe.source.catalog()
    kinds = dict(zip(cat["symbol"].astype(str), cat["type"].astype(str)))
    return {s: kinds.get(s, "") if kinds.get(s, "") in bt.costs_by_class else "default" for s in pipe._universe_symbols}


@dataclass
class ExecutionFeedback:
    """Cost rates per day and symbol calibrated by the execution-shortfall feedback, and what moved them."""

    rates: pd.DataFrame
    path: object  # core.execution_feedback.SlippagePath
    skipped: dict[str, str]

    def record(self, d: pd.Timestamp) -> tuple[dict, str]:
        """(metadata, note) of date ``d``: per class the estimate in force on d, after d's fills, and counts."""
        d = pd.Timestamp(d)
        p = self.path
        if d not in p.estimate.index:  # not a trading day: the last one before it
            k = p.estimate.index.searchsorted(d, side="right") - 1
            if k < 0:
                return {}, ""
            d = p.estimate.index[k]
        rec = {c: {"slippage_bps_before": round(float(p.before.at[d, c]), 6),
                   "slippage_bps_after": round(float(p.estimate.at[d, c]), 6),
                   "fills": int(p.fills.at[d, c]), "fills_total": int(p.total.at[d, c])} for c in p.estimate.columns}
        note = "; ".join(f"execution feedback {c}: slippage {v['slippage_bps_before']:.2f} -> "
                         f"{v['slippage_bps_after']:.2f} bps ({v['fills']} fills, {v['fills_total']} so far)"
                         for c, v in rec.items())
        return {"execution_feedback": rec, "execution_feedback_skipped": sorted(self.skipped)}, note


def execution_feedback(pipe: Pipeline, close: pd.DataFrame, open_: pd.DataFrame | None,
                       decisions: Mapping[str, pd.DataFrame], start: pd.Timestamp, last: pd.Timestamp
                       ) -> ExecutionFeedback:
    """Trade every candidate's decisions through nautilus with the manifest's fill model, measure each fill's
    shortfall, and turn it into per-day cost rates (commission + the class's slippage estimate)."""
    from tvquant_assets.core.backtest import event_driven_fills
    from tvquant_assets.core.execution_feedback import calibrated_rates, shortfall_table, slippage_path

    bt = pipe.manifest.backtest
    cfg = bt.execution_feedback
    classes = _cost_classes(pipe)
    costs = {c: bt.costs_by_class.get(c, bt.costs) for c in set(classes.values())}
    symbols = [str(s) for s in close.columns]
    commission = pd.Series([costs[classes.get(s, "default")].commission_bps / 1e4 if s in classes
                            else bt.costs.commission_bps / 1e4 for s in symbols], index=close.columns, dtype=float)
    classes = {s: classes.get(s, "default") for s in symbols}
    fills, days, per_day, skipped = event_driven_fills(
        close, decisions, start, last, commission.to_numpy(), tick=cfg.tick, fill_model=cfg.fill_model.model_dump(),
        execution=bt.execution, open_=open_)
    table = shortfall_table(fills, days, symbols, classes, per_day)
    prior = {c: costs.get(c, bt.costs).slippage_bps for c in sorted(set(classes.values()))}
    path = slippage_path(table, prior, days, halflife=cfg.halflife, min_fills=cfg.min_fills, min_bps=cfg.min_bps,
                         max_bps=cfg.max_bps)
    return ExecutionFeedback(calibrated_rates(path, commission, classes), path, skipped)


def backtest_frames(pipe: Pipeline, dates: list[pd.Timestamp], events: list[dict] | None = None,
                    feedback: list | None = None) -> dict[pd.Timestamp, pd.DataFrame]:
    """The leaderboard frames of ``dates``: every decision since ``backtest.start`` from the lake, prices from
    the lake, simulated with the manifest's settings by each configured simulator."""
    from tvquant_assets.core.backtest import walk_forward

    m = pipe.manifest
    bt = m.backtest
    start = pd.Timestamp(m.backtest_start)
    last = max(dates)
    settings = dict(simulators=bt.simulators, execution=bt.execution, band=bt.drift_band,
                    borrow_bps_per_year=bt.borrow_bps_per_year, delist_after=bt.delist_after_days,
                    pbo_blocks=bt.pbo_blocks, events=events)
    if last < start:
        return walk_forward(pd.DataFrame(dtype="float64"), {}, start, dates, bt.costs.rate, bt.periods_per_year,
                            **{**settings, "execution": "close"})
    decisions = collect_decisions(pipe, start, last)
    panel = pipe.panel(last, first=start)
    if bt.execution == "next_open" and panel.open is None:
        raise SourceError(f"{m.name}: backtest.execution next_open needs open prices and source "
                          f"{m.source.kind} has close only; use execution: close")
    rates = backtest_cost_rates(pipe)
    if bt.execution_feedback.enabled:
        calibrated = execution_feedback(pipe, panel.close, panel.open, decisions, start, last)
        rates = calibrated.rates
        if feedback is not None:
            feedback.append(calibrated)
    return walk_forward(panel.close, decisions, start, dates, rates, bt.periods_per_year,
                        open_=panel.open, **settings)


def run_backtest(pipe: Pipeline, dates: list[pd.Timestamp]) -> StageResult:
    events: list[dict] = []
    feedback: list = []
    frames = backtest_frames(pipe, dates, events, feedback)
    notes: dict[pd.Timestamp, str] = {}
    metadata: dict[pd.Timestamp, dict] = {}
    for d in frames if feedback else []:
        metadata[d], line = feedback[0].record(d)
        if line:
            notes[d] = line
    for e in events:  # forced sales, recorded on the report date of the day they happened
        d = pd.Timestamp(e["date"])
        if d in frames:
            line = (f"{e['simulator']} {e['candidate']}: {e['symbol']} had no bar for more than "
                    f"{pipe.manifest.backtest.delist_after_days} days; sold {e['weight']:.4f} at its last price")
            notes[d] = f"{notes[d]}; {line}" if d in notes else line
    return StageResult(frames, _same_date_hashes(pipe, UPSTREAM[Stage.BACKTEST], dates), notes, metadata)


# Stages whose core reads the trailing price window [window_start(D), D] through ``Pipeline.panel``.
WINDOW_STAGES = frozenset({Stage.SCAN, Stage.SELECTION, Stage.REGIME, Stage.ESTIMATION, Stage.TOURNAMENT})


def input_partitions(pipe: Pipeline, stage: Stage, d: pd.Timestamp) -> dict[str, list[pd.Timestamp]]:
    """The lake partitions ``stage`` reads to compute date ``d``, per asset: its same-date upstreams,
    the trailing price window, the decision a tournament carries, the decisions and closes a backtest
    stitches. Bars before the manifest's first partition come from the source (pinned by the manifest)."""
    m, d = pipe.manifest, pd.Timestamp(d)
    parts = {u.value: [d] for u in UPSTREAM[stage]}
    if stage in WINDOW_STAGES:
        parts[Stage.PRICES.value] = manifest_dates(m, window_start(pipe, d), d)
    if stage is Stage.TOURNAMENT and d not in pipe.rebalance_set(d):
        prev = previous_dates(m, d, 1)[0]
        if prev >= pd.Timestamp(m.start):
            parts[Stage.TOURNAMENT.value] = [prev]
    if stage in (Stage.BACKTEST, Stage.DRIFT) and d >= pd.Timestamp(m.backtest_start):
        start = pd.Timestamp(m.backtest_start)
        decided = {start, d, *(r for r in pipe.rebalance_set(d) if start < r <= d)}
        parts[Stage.TOURNAMENT.value] = sorted(decided)
        parts[Stage.PRICES.value] = manifest_dates(m, start, d)
    return parts


def partitions_digest(labelled: list[str]) -> str:
    """One hash over ``YYYY-MM-DD:df_hash`` labels (a single partition: its df_hash itself)."""
    if len(labelled) == 1:
        return labelled[0].split(":", 1)[1]
    import hashlib

    return hashlib.sha256("\n".join(labelled).encode("ascii")).hexdigest()


def input_hashes(pipe: Pipeline, dates, stages=tuple(s for s in STAGES if s is not Stage.AUDIT),
                 verify: bool = False) -> dict[pd.Timestamp, dict[str, dict[str, dict]]]:
    """For every date and stage, per input asset: ``{"dates": "first..last", "n", "hash"}`` over the
    df_hashes of the partitions ``input_partitions`` names (missing partitions are left out; ``verify``:
    hashed from the files' content rather than the hash stored at write)."""
    dates = [pd.Timestamp(d) for d in dates]
    wanted = {d: {s: input_partitions(pipe, s, d) for s in stages} for d in dates}
    union: dict[str, set[pd.Timestamp]] = {}
    for per_stage in wanted.values():
        for parts in per_stage.values():
            for asset, ds in parts.items():
                union.setdefault(asset, set()).update(ds)
    labels = {asset: {d: f"{d:%Y-%m-%d}:{h}" for d, (_, h) in
                      pipe.lake.read_many(pipe.name, asset, sorted(ds), missing_ok=True, verify=verify).items()}
              for asset, ds in union.items()}
    memo: dict[tuple, dict] = {}
    out: dict[pd.Timestamp, dict[str, dict[str, dict]]] = {}
    for d, per_stage in wanted.items():
        out[d] = {}
        for stage, parts in per_stage.items():
            rec = {}
            for asset, ds in parts.items():
                key = (asset, ds[0], ds[-1], len(ds)) if ds else (asset,)
                if key not in memo:
                    found = [labels[asset][x] for x in ds if x in labels[asset]]
                    span = f"{ds[0]:%Y-%m-%d}" if len(ds) == 1 else f"{ds[0]:%Y-%m-%d}..{ds[-1]:%Y-%m-%d}"
                    memo[key] = {"dates": span, "n": len(found),
                                 "hash": partitions_digest(found) if found else None}
                rec[asset] = memo[key]
            out[d][stage.value] = rec
    return out


# Fields of a ledger payload that say when and by whom, not what: an identical re-run ignores them.
_CIRCUMSTANCE = ("run_id", "timestamp", "supersedes")


def audit_payload(pipe: Pipeline, d: pd.Timestamp, outputs: dict[str, str], inputs: dict[str, dict],
                  run_id: str) -> dict:
    """The ledger payload for date ``d``: every stage's output df_hash and input hashes, the manifest
    hash, the environment and code version, run id and timestamp."""
    env = pipe.environment()
    return {
        "manifest": pipe.name,
        "date": d.strftime("%Y-%m-%d"),
        "stages": {s: {"output": outputs.get(s), "inputs": inputs.get(s, {})} for s in sorted(outputs)},
        "manifest_hash": pipe.manifest_hash,
        "environment": {"uv_lock_hash": env.get("uv_lock_hash"), "python": env.get("python"),
                        "packages": env.get("packages"), "blas_threads": env.get("blas_threads")},
        "git": {"sha": env.get("git_sha"), "dirty": env.get("git_dirty")},
        "run_id": run_id,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "supersedes": None,
    }


def output_hashes(payload: dict) -> dict[str, str]:
    """``{stage: output df_hash}`` of a ledger payload (also reads the first format, ``{stage: hash}``)."""
    return {s: (v.get("output") if isinstance(v, dict) else v) for s, v in (payload.get("stages") or {}).items()}


def _same_record(prior: dict, payload: dict) -> bool:
    return set(prior) == set(payload) and all(prior[k] == v for k, v in payload.items() if k not in _CIRCUMSTANCE)


def book_settings(pipe: Pipeline, panel) -> dict:
    """The manifest's simulation settings for :func:`tvquant_assets.core.backtest.books`."""
    bt = pipe.manifest.backtest
    return dict(execution=bt.execution, open_=panel.open, band=bt.drift_band,
                borrow_bps_per_year=bt.borrow_bps_per_year, periods_per_year=bt.periods_per_year,
                delist_after=bt.delist_after_days)


def held_weights(pipe: Pipeline, candidate: str, dates: list[pd.Timestamp]) -> pd.DataFrame:
    """The drifted book of ``candidate`` after the close of each of ``dates`` (rows), from the decisions and
    closes in the lake: what the backtest holds between decisions, not the targets."""
    from tvquant_assets.core.backtest import books

    start, last = pd.Timestamp(pipe.manifest.backtest_start), max(dates)
    decisions = collect_decisions(pipe, start, last)
    if candidate not in decisions:
        return pd.DataFrame(dtype="float64")
    panel = pipe.panel(last, first=start)
    held = books(panel.close, decisions[candidate], start, [d for d in dates if d >= start],
                 backtest_cost_rates(pipe), **book_settings(pipe, panel))
    frame = pd.DataFrame({d: w for d, (w, _, _) in held.items()}).T.sort_index()
    return frame.loc[:, frame.abs().gt(0).any()] if len(frame) else frame


def run_drift(pipe: Pipeline, dates: list[pd.Timestamp]) -> StageResult:
    """Drift monitor: the monitored candidate's drifted book after D's close vs its latest targets, and the
    orders (partial or full) when the drift exceeds ``backtest.drift.threshold``."""
    from tvquant_assets.core.backtest import books
    from tvquant_assets.core.drift import COLUMNS, drift_orders

    m = pipe.manifest
    bt, cfg = m.backtest, m.backtest.drift
    start, last = pd.Timestamp(m.backtest_start), max(dates)
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLUMNS.items()})
    frames = {d: empty.copy() for d in dates}
    notes = {d: "before backtest.start: nothing held" for d in dates if d < start}
    live = [d for d in dates if d >= start]
    if not live:
        return StageResult(frames, _same_date_hashes(pipe, UPSTREAM[Stage.DRIFT], dates), notes)
    decisions = collect_decisions(pipe, start, last)
    panel = pipe.panel(last, first=start)
    if cfg.candidate is not None:
        chosen = {d: cfg.candidate for d in live}
    else:  # the leaderboard's leader of D (first configured simulator)
        boards = pipe.read(Stage.BACKTEST, live)
        chosen = {}
        for d in live:
            board = boards[d][0]
            board = board[board["simulator"] == bt.simulators[0]] if "simulator" in board.columns else board
            chosen[d] = str(board.sort_values("rank")["candidate"].iloc[0]) if len(board) else None
    closes = panel.close.ffill()
    settings = book_settings(pipe, panel)
    rates = backtest_cost_rates(pipe)
    next_rate: Callable[[pd.Timestamp], float | pd.Series]
    if bt.execution_feedback.enabled:  # the books pay the calibrated costs; orders are priced after D's fills
        calibrated = execution_feedback(pipe, panel.close, panel.open, decisions, start, last)
        rates = calibrated.rates
        classes = _cost_classes(pipe)
        commission = {c: bt.costs_by_class.get(c, bt.costs).commission_bps / 1e4 for c in set(classes.values())}

        def next_rate(d: pd.Timestamp) -> pd.Series:
            est = calibrated.path.estimate.loc[:d]
            row = est.iloc[-1] if len(est) else pd.Series(dtype=float)
            return pd.Series({s: commission[c] + row.get(c, bt.costs.slippage_bps) / 1e4 for s, c in classes.items()})
    else:
        def next_rate(d: pd.Timestamp) -> float | pd.Series:
            return pd.Series(rates) if isinstance(rates, dict) else rates
    selections = {d: f for d, (f, _) in pipe.lake.read_many(pipe.name, Stage.SELECTION.value, live,
                                                              missing_ok=True).items()}
    for cand in sorted({c for c in chosen.values() if c is not None}):
        ds = [d for d in live if chosen[d] == cand]
        if cand not in decisions:
            notes.update({d: f"{cand}: no decisions in the lake" for d in ds})
            continue
        for d, (held, target, equity) in books(panel.close, decisions[cand], start, ds, rates, **settings).items():
            prices = closes.loc[closes.index <= d].iloc[-1] if (closes.index <= d).any() else pd.Series(dtype=float)
            sel = selections.get(d)
            ranked = sel is not None and "execution_score" in sel.columns
            frame = drift_orders(cand, held, target, prices, cfg.notional * equity, cfg.threshold, bt.drift_band,
                                 cfg.mode, cost_rate=next_rate(d),
                                 clusters=sel.set_index("symbol")["cluster"] if ranked else None,
                                 execution_score=sel.set_index("symbol")["execution_score"] if ranked else None,
                                 max_orders=cfg.max_orders, max_traded=cfg.max_traded)
            frames[d] = frame
            n = int((frame["side"] != "none").sum())
            drift = float(frame["drift"].iloc[0]) if len(frame) else 0.0
            notes[d] = f"{cand}: drift {drift:.4f} vs threshold {cfg.threshold:.4f}; {n} orders ({cfg.mode})"
    return StageResult(frames, _same_date_hashes(pipe, UPSTREAM[Stage.DRIFT], dates), notes)


def run_audit(pipe: Pipeline, dates: list[pd.Timestamp], run_id: str = "") -> StageResult:
    """Seal every stage's output for each date in the ledger. A date whose record (hashes, inputs,
    manifest, environment, code) is unchanged appends nothing; anything else appends an entry that
    supersedes the last one for that date. The chain head after the append goes into the metadata."""
    from tvquant_assets.lake.ledger import Ledger

    ledger = Ledger(str(pipe.lake.ledger_path(pipe.name)))
    hashes = _same_date_hashes(pipe, UPSTREAM[Stage.AUDIT], dates)
    inputs = input_hashes(pipe, dates)
    payloads = {d: audit_payload(pipe, d, hashes[d], inputs[d], run_id) for d in dates}
    kept: dict[pd.Timestamp, dict] = {}  # dates whose last entry already says all of it
    seen = {"head": None}

    def plan(entries: list[dict]) -> list[dict]:  # runs under the ledger's lock
        seen["head"] = entries[-1] if entries else None
        latest = {e["payload"].get("date"): e for e in entries}  # later entries supersede earlier
        new = []
        for d, payload in payloads.items():
            prior = latest.get(payload["date"])
            if prior is not None and _same_record(prior["payload"], payload):
                kept[d] = prior
            else:
                payload["supersedes"] = prior["entry_hash"] if prior else None
                new.append(payload)
        return new

    new_entries = ledger.append_planned(plan)
    head = new_entries[-1] if new_entries else seen["head"]
    appended = iter(new_entries)
    frames, metadata, entries_by_date = {}, {}, {}
    for d in dates:
        entries_by_date[d] = (kept[d], False) if d in kept else (next(appended), True)
    for d in dates:
        entry, was_appended = entries_by_date[d]
        stages = hashes[d]
        row = {"date": d, "seq": int(entry["seq"]), "entry_hash": entry["entry_hash"],
               "prev_hash": entry["prev_hash"], "manifest_hash": pipe.manifest_hash, "appended": was_appended}
        row.update({f"hash_{s}": h for s, h in sorted(stages.items())})
        frames[d] = pd.DataFrame([row])
        frames[d]["appended"] = frames[d]["appended"].astype(bool)
        metadata[d] = {"ledger_seq": int(entry["seq"]), "ledger_entry_hash": entry["entry_hash"],
                       "ledger_head_seq": int(head["seq"]) if head else -1,
                       "ledger_head_hash": head["entry_hash"] if head else "", "ledger": str(ledger.path)}
    return StageResult(frames, hashes, metadata=metadata)


def run_regime_regret(pipe: Pipeline, dates: list[pd.Timestamp]) -> StageResult:
    """The threshold auditor: regret of adaptive profile switches per turbulent threshold, from the
    backtest's daily candidate returns and the regime's scores in [backtest.start, D]."""
    from tvquant_assets.core.regime_regret import regime_regret

    m = pipe.manifest
    start, last = pd.Timestamp(m.backtest_start), max(dates)
    days = manifest_dates(m, start, last) if last >= start else []
    backtests = pipe.read(Stage.BACKTEST, days) if days else {}
    returns = pd.DataFrame({d: f.set_index("candidate")["day_return"] for d, (f, _) in backtests.items()}).T
    returns = returns.sort_index().astype("float64") if len(returns) else pd.DataFrame(
        index=pd.DatetimeIndex([]), dtype="float64")
    regimes = pipe.read(Stage.REGIME, days) if days else {}
    scores = pd.Series({d: float(f["stress_score"].iloc[0]) if len(f) else np.nan
                        for d, (f, _) in regimes.items()}, dtype="float64")
    presets = {str(getattr(k, "value", k)): v for k, v in m.regime_presets.items()}
    profile_of = {label.value: (presets[label.value].profile if label.value in presets
                                and presets[label.value].profile is not None else p).value
                  for label, p in m.regime.regret.profiles.items()}
    candidate_of: dict[str, str] = {}
    for c in m.tournament.candidates:
        candidate_of.setdefault(c.profile.value, c.name)
    cost = m.regime.regret.switch_cost if m.regime.regret.switch_cost is not None else 2 * m.backtest.costs.rate
    frames = regime_regret(scores, returns, pipe.rebalance_set(last), dates, m.regime, profile_of, candidate_of,
                           cost)
    notes = {}
    for d, f in frames.items():
        pick = f.loc[f["suggested"], "turbulent_threshold"]
        notes[d] = (f"advisory, not applied: regret is smallest at turbulent {pick.iloc[0]:g} "
                    f"(manifest: {m.regime.thresholds.turbulent:g})") if len(pick) else "advisory: no returns yet"
    return StageResult(frames, _same_date_hashes(pipe, UPSTREAM[REGIME_REGRET], dates), notes)


RUNNERS: dict[Stage | str, Callable[..., StageResult]] = {
    Stage.CATALOG: run_catalog,
    Stage.PRICES: run_prices,
    Stage.SCAN: run_scan,
    Stage.SELECTION: run_selection,
    Stage.REGIME: run_regime,
    Stage.ESTIMATION: run_estimation,
    Stage.TOURNAMENT: run_tournament,
    Stage.BACKTEST: run_backtest,
    Stage.DRIFT: run_drift,
    Stage.AUDIT: run_audit,
    REGIME_REGRET: run_regime_regret,
}


def run_stage(pipe: Pipeline, stage: Stage, dates, **kwargs) -> StageResult:
    from tvquant_assets.determinism import pin_threads

    pin_threads()  # libraries loaded since the last stage get one thread too
    dates = sorted(pd.Timestamp(d) for d in dates)
    result = RUNNERS[stage](pipe, dates, **kwargs)
    if stage in (Stage.CATALOG, Stage.PRICES):  # decisions of the data_repair job (tvquant_assets/repair.py)
        from tvquant_assets import repair

        records = repair.load_records(pipe.lake, pipe.name)
        for d, frame in result.frames.items():
            result.frames[d] = repair.apply_to_catalog(frame, records, d) if stage is Stage.CATALOG \
                else repair.apply_to_prices(frame, records, d, tuple(pipe.source.fields))
    return result


def missing_history(pipe: Pipeline, first_date: pd.Timestamp) -> list[pd.Timestamp]:
    """Partition dates before ``first_date`` that its trailing windows read and the lake lacks."""
    lo = max(window_start(pipe, first_date), pd.Timestamp(pipe.manifest.start))
    dates = [d for d in manifest_dates(pipe.manifest, lo, first_date) if d < first_date]
    return [d for d in dates if not (pipe.lake.exists(pipe.name, Stage.PRICES.value, d)
                                     and pipe.lake.exists(pipe.name, Stage.CATALOG.value, d))]


def plan_start(manifest: Manifest, lake: Lake, start: pd.Timestamp) -> tuple[pd.Timestamp, list[str]]:
    """Move the start back when the range depends on decisions that are not in the lake yet: the
    tournament carries the last rebalance decision, the backtest stitches decisions since its start."""
    pipe = Pipeline(manifest, lake)
    notes, new_start = [], start
    rebalance = pipe.rebalance_set(start)
    if start not in rebalance and start > pd.Timestamp(manifest.start):
        prev = previous_dates(manifest, start, 1)[0]
        if not lake.exists(manifest.name, Stage.TOURNAMENT.value, prev):
            new_start = max((r for r in rebalance if r <= start), default=pd.Timestamp(manifest.start))
            notes.append(f"also ran {new_start.date()}..{prev.date()}: {start.date()} carries the decision of "
                         f"rebalance date {new_start.date()}, which was not in the lake")
    bt_start = pd.Timestamp(manifest.backtest_start)
    if bt_start < new_start:
        needed = [bt_start, *(r for r in rebalance if bt_start < r < new_start)]
        if any(not lake.exists(manifest.name, Stage.TOURNAMENT.value, d) for d in needed):
            notes.append(f"also ran {bt_start.date()}..{new_start.date()}: the backtest starts on "
                         f"{bt_start.date()} (backtest.start) and needs every decision since")
            new_start, carried = plan_start(manifest, lake, bt_start)  # which may carry an earlier decision
            notes += carried
    return new_start, notes


def run_one_shot(pipe: Pipeline, dates, stages=STAGES, run_id: str = "one-shot") -> dict[Stage, StageResult]:
    """Compute and write every stage for ``dates`` in order, without Dagster (history the trailing
    windows need is materialized first for catalog and prices)."""
    dates = sorted(pd.Timestamp(d) for d in dates)
    first, _ = plan_start(pipe.manifest, pipe.lake, dates[0])
    dates = manifest_dates(pipe.manifest, first, dates[-1]) if first < dates[0] else dates
    missing = missing_history(pipe, dates[0])
    if missing and Stage.PRICES in stages:
        history = manifest_dates(pipe.manifest, missing[0], missing[-1])
        for stage in (Stage.CATALOG, Stage.PRICES):
            frames = run_stage(pipe, stage, history).frames
            pipe.lake.write_many([(pipe.lake.path(pipe.name, stage.value, d), f) for d, f in frames.items()])
    from tvquant_assets import progress

    results = {}
    for stage in stages:
        with progress.stage(f"{pipe.name}/{stage}", len(dates)):
            res = run_stage(pipe, stage, dates, **({"run_id": run_id} if stage is Stage.AUDIT else {}))
            pipe.lake.write_many([(pipe.lake.path(pipe.name, stage.value, d), f) for d, f in res.frames.items()])
        results[stage] = res
    return results



def latest_partition(pipe: Pipeline, today=None) -> pd.Timestamp:
    """The last partition date <= ``today`` on which the source has a bar for the manifest's universe
    (what ``tvquant run`` materializes by default)."""
    today = pd.Timestamp(today if today is not None else dt.date.today()).normalize()
    for days in (14, 400, None):  # recent data first; a historical dataset ends long ago
        lo = pd.Timestamp(pipe.manifest.start) if days is None else today - pd.Timedelta(days=days)
        bars = pipe.source.history(pipe._universe_symbols, lo, today)
        if len(bars):
            last = pd.Timestamp(bars["date"].max())
            dates = manifest_dates(pipe.manifest, max(last - pd.Timedelta(days=10), pd.Timestamp(pipe.manifest.start)),
                                   last)
            if dates:
                return dates[-1]
            break
    raise SourceError(f"{pipe.name}: source {pipe.source.name} has no bars between {pipe.manifest.start} and "
                      f"{today.date()}; pass --date")


def run_backtest_range(pipe: Pipeline, dates, write: bool = True) -> tuple[StageResult, list[str]]:
    """One-shot backtest of ``dates`` without Dagster: the stage is one call over the range, reading every
    decision since ``backtest.start`` from the lake. When the lake lacks prices or tournament partitions it
    needs, the upstream stages are computed one-shot first (and written). Returns the result and notes."""
    dates = sorted(pd.Timestamp(d) for d in dates)
    m = pipe.manifest
    start, last = pd.Timestamp(m.backtest_start), dates[-1]
    notes: list[str] = []
    if last >= start:
        decision_dates = {start, *(r for r in pipe.rebalance_set(last) if start < r <= last)}
        wanted = [(Stage.TOURNAMENT, d) for d in sorted(decision_dates)]
        wanted += [(Stage.PRICES, d) for d in manifest_dates(m, start, last)]
        missing = [(s, d) for s, d in wanted if not pipe.lake.exists(pipe.name, s.value, d)]
        if missing:
            upstream = STAGES[: STAGES.index(Stage.TOURNAMENT) + 1]
            first = min(start, dates[0])
            run_one_shot(pipe, manifest_dates(m, first, last), stages=upstream)
            notes.append(f"computed {', '.join(s.value for s in upstream)} {first.date()}..{last.date()} first: "
                         f"{len(missing)} partitions the backtest reads were not in the lake")
    result = run_stage(pipe, Stage.BACKTEST, dates)
    if write:
        pipe.lake.write_many([(pipe.lake.path(pipe.name, Stage.BACKTEST.value, d), f) for d, f in result.frames.items()])
    return result, notes
