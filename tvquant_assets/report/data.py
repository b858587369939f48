"""What a tearsheet shows, read from the lake for one manifest and one date D.

Everything here is point in time: the report for D reads partitions stamped <= D (and prices <= D for
the dendrogram), so it shows what was known at the close of D. Sections read what exists and say what
is missing instead of failing, so stages added later (extra leaderboard columns, an order list) show
up without changes here: known optional columns are listed in :data:`LEADERBOARD_EXTRAS`, any other
stage directory in the lake is shown as a table under "other outputs".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.core import linkage
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.errors import LakeError
from tvquant_assets.lake.duckdb_views import read_range
from tvquant_assets.stages import ALL_STAGES, SPECS, Stage
from tvquant_assets.stages.books import held_weights
from tvquant_assets.stages.context import RunContext

ROLLING_SHARPE_DAYS = 63
"""Window of the rolling Sharpe ratio (about a quarter of trading days)."""

ORDER_STAGES = ("drift", "orders", "drift_orders")
"""Lake asset names that hold a drift monitor's order list, in order of preference."""

PICK_COLUMNS = ("adaptive_pick", "picked", "pick", "is_pick", "chosen")
"""Boolean tournament columns that mark the candidate the strategy actually follows."""

EXPOSURE_COLUMNS = ("long_exposure", "short_exposure", "gross_exposure", "net_exposure", "long_contribution",
                    "short_contribution")
"""Leaderboard columns of the book held after each close and each book's contribution so far."""

REPORT_ASSET = "report"
PRIMARY_SIMULATOR = "vectorized"


@dataclass
class ReportData:
    ctx: RunContext
    date: pd.Timestamp
    equity: pd.DataFrame = field(default_factory=pd.DataFrame)  # index dates, columns candidates
    day_returns: pd.DataFrame = field(default_factory=pd.DataFrame)
    benchmark: pd.Series | None = None  # the benchmark's growth of 1 since the backtest start, by date
    exposure: pd.DataFrame = field(default_factory=pd.DataFrame)  # date, candidate, EXPOSURE_COLUMNS
    leaderboard: pd.DataFrame = field(default_factory=pd.DataFrame)  # backtest frame of D
    decisions: dict[str, pd.DataFrame] = field(default_factory=dict)  # candidate -> weights by decision date
    held: pd.DataFrame = field(default_factory=pd.DataFrame)  # featured candidate's drifted book, weekly rows
    tournament: pd.DataFrame = field(default_factory=pd.DataFrame)  # tournament frame of D
    regimes: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per date, index dates
    selection: pd.DataFrame = field(default_factory=pd.DataFrame)  # selection frame of D
    clustered: list[str] = field(default_factory=list)
    linkage: np.ndarray | None = None
    correlation: np.ndarray | None = None
    audit: pd.DataFrame = field(default_factory=pd.DataFrame)
    verdict: pd.DataFrame = field(default_factory=pd.DataFrame)  # engines vs custom on D
    orders: tuple[str, pd.DataFrame] | None = None
    paper: pd.DataFrame = field(default_factory=pd.DataFrame)  # paper account rows <= D, index dates
    paper_day: pd.DataFrame = field(default_factory=pd.DataFrame)  # the paper partition of D
    extras: dict[str, pd.DataFrame] = field(default_factory=dict)  # other stages found for D
    hashes: dict[str, str] = field(default_factory=dict)  # df_hash of every stage frame of D read
    missing: list[str] = field(default_factory=list)  # what could not be shown, one line each

    @property
    def manifest(self):
        return self.ctx.manifest

    @property
    def featured(self) -> str | None:
        """The candidate to emphasize: the adaptive pick when the tournament names one, else the leader."""
        t = self.tournament
        if not t.empty and "candidate" in t.columns:
            for col in PICK_COLUMNS:
                if col in t.columns and t[col].dtype == bool and t[col].any():
                    return str(t.loc[t[col], "candidate"].iloc[0])
            if "engine" in t.columns:
                adaptive = t.loc[t["engine"].astype(str) == "adaptive", "candidate"]
                if len(adaptive):
                    return str(adaptive.iloc[0])
        if not self.leaderboard.empty and "candidate" in self.leaderboard.columns:
            board = self.leaderboard.sort_values("rank") if "rank" in self.leaderboard.columns else self.leaderboard
            return str(board["candidate"].iloc[0])
        return None


def latest_date(ctx: RunContext) -> pd.Timestamp:
    """The last date with a backtest partition in the lake (what "latest" means for a report)."""
    dates = ctx.lake.partitions(ctx.name, Stage.BACKTEST.value)
    if not dates:
        raise LakeError(f"{ctx.name}: no backtest partitions in the lake at {ctx.lake.root}; "
                        f"run 'tvquant backfill --manifest {ctx.name} --start ... --end ...' first")
    return dates[-1]


def _range(ctx: RunContext, stage: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Every partition of ``stage`` in [start, end] as one long frame with ``partition_date``."""
    return read_range(ctx.lake, ctx.name, stage, start, end)


def _one(data: ReportData, stage: str) -> pd.DataFrame | None:
    try:
        frame, digest = data.ctx.lake.read_with_hash(data.ctx.name, stage, data.date)
    except LakeError:
        data.missing.append(f"{stage}: no partition for {data.date.date()}")
        return None
    data.hashes[stage] = digest
    return frame


def collect(ctx: RunContext, date=None) -> ReportData:
    """Read everything the tearsheet of ``date`` (default: the latest backtest partition) shows."""
    date = latest_date(ctx) if date is None else pd.Timestamp(date)
    data = ReportData(ctx, date)
    start = pd.Timestamp(ctx.manifest.backtest_start)
    _performance(data, start)
    for stage, attr in ((Stage.TOURNAMENT, "tournament"), (Stage.SELECTION, "selection"), (Stage.AUDIT, "audit"),
                        (Stage.VERDICT, "verdict"), (Stage.REGIME, None), (Stage.ESTIMATION, None)):
        frame = _one(data, stage.value)
        if frame is not None and attr is not None:
            setattr(data, attr, frame)
    _decisions(data, start)
    _held(data, start)
    _regimes(data, start)
    _clusters(data)
    _paper(data, start)
    _other_stages(data)
    return data


def _paper(data: ReportData, start: pd.Timestamp) -> None:
    """The paper account's rows from the backtest start to D, and D's partition (when the manifest has one)."""
    if not SPECS[Stage.PAPER].enabled(data.manifest):
        return
    frame = _one(data, Stage.PAPER.value)
    if frame is None:
        return
    data.paper_day = frame
    long = _range(data.ctx, Stage.PAPER.value, start, data.date)
    if not long.empty:
        acc = long[long["kind"] == "account"].set_index("partition_date").sort_index()
        acc.index.name = None
        fills = long[long["kind"] == "fill"]
        acc["fills"] = fills.groupby("partition_date").size().reindex(acc.index).fillna(0).astype(int)
        w = fills["value"] * fills["shortfall_bps"]
        acc["fill_shortfall_bps"] = (w.groupby(fills["partition_date"]).sum()
                                     / fills["value"].groupby(fills["partition_date"]).sum()).reindex(acc.index)
        data.paper = acc


def _performance(data: ReportData, start: pd.Timestamp) -> None:
    board = _one(data, Stage.BACKTEST.value)
    if board is None:
        return
    data.leaderboard = board.sort_values("rank").reset_index(drop=True) if "rank" in board.columns else board
    long = _range(data.ctx, Stage.BACKTEST.value, start, data.date)
    if long.empty or "candidate" not in long.columns:
        data.missing.append("backtest: no candidate rows between the backtest start and D")
        return
    long = long.rename(columns={"partition_date": "_date"})
    if "simulator" in long.columns and long["simulator"].nunique() > 1:  # curves of one simulator
        sims = sorted(long["simulator"].dropna().astype(str).unique())
        sim = PRIMARY_SIMULATOR if PRIMARY_SIMULATOR in sims else sims[0]
        long = long[(long["simulator"] == sim) | long["simulator"].isna()]
        data.missing.append(f"curves: simulator {sim} only (the leaderboard lists every simulator)")
    if "equity" in long.columns:
        data.equity = long.pivot_table(index="_date", columns="candidate", values="equity", aggfunc="last")
    if "day_return" in long.columns:
        data.day_returns = long.pivot_table(index="_date", columns="candidate", values="day_return",
                                            aggfunc="last").fillna(0.0)
        if data.equity.empty:
            data.equity = (1.0 + data.day_returns).cumprod()
    for f in (data.equity, data.day_returns):
        f.index.name, f.columns.name = None, None
    if "bench_equity" in long.columns and data.manifest.benchmark is not None:
        bench = long.groupby("_date")["bench_equity"].first()
        bench.index.name = None
        data.benchmark = bench.rename(data.manifest.benchmark.label)
    if set(EXPOSURE_COLUMNS) <= set(long.columns):
        data.exposure = long[["_date", "candidate", *EXPOSURE_COLUMNS]].rename(columns={"_date": "date"})


def drawdowns(equity: pd.DataFrame) -> pd.DataFrame:
    """``equity / running peak - 1``; the peak includes the starting equity of 1."""
    peak = np.maximum(equity.cummax(), 1.0)
    return equity / peak - 1.0


def rolling_sharpe(day_returns: pd.DataFrame, window: int, periods_per_year: int) -> pd.DataFrame:
    """Annualized Sharpe ratio of the last ``window`` daily returns (NaN until the window is full)."""
    mean = day_returns.rolling(window, min_periods=window).mean()
    std = day_returns.rolling(window, min_periods=window).std(ddof=1)
    return (mean / std.where(std > 0)) * np.sqrt(periods_per_year)


def _decisions(data: ReportData, start: pd.Timestamp) -> None:
    """Target weights of every candidate at each decision date in [start, D]: the first date's (maybe
    carried) decision, then each date that decided anew (what the backtest trades)."""
    long = _range(data.ctx, Stage.TOURNAMENT.value, start, data.date)
    if long.empty or not {"candidate", "symbol", "weight"} <= set(long.columns):
        data.missing.append("weights over time: no tournament partitions between the backtest start and D")
        return
    first = long["partition_date"] == long["partition_date"].min()
    decided = first
    if "decision_date" in long.columns:
        decided = first | (pd.to_datetime(long["decision_date"]) == long["partition_date"])
    long = long[decided & (long["symbol"].astype(str) != "")]
    for cand, g in long.groupby("candidate"):
        w = g.pivot_table(index="partition_date", columns="symbol", values="weight", aggfunc="sum").fillna(0.0)
        w.index.name, w.columns.name = None, None
        data.decisions[str(cand)] = w


def _held(data: ReportData, start: pd.Timestamp) -> None:
    """The featured candidate's drifted book at the last close of each week in [start, D], and on D."""
    cand = data.featured
    if cand is None or cand not in data.decisions or data.date < start:
        return
    days = pd.DatetimeIndex(manifest_dates(data.manifest, start, data.date))
    week = days.year.to_numpy() * 100 + days.isocalendar()["week"].to_numpy().astype("int64")
    last_of_week = np.r_[week[1:] != week[:-1], True]
    try:
        data.held = held_weights(data.ctx, cand, list(days[last_of_week]))
    except LakeError as exc:
        data.missing.append(f"holdings over time: {exc}")


def _regimes(data: ReportData, start: pd.Timestamp) -> None:
    long = _range(data.ctx, Stage.REGIME.value, start, data.date)
    if long.empty:
        data.missing.append("regime: no partitions between the backtest start and D")
        return
    data.regimes = long.drop_duplicates("partition_date", keep="first").set_index("partition_date")
    data.regimes.index.name = None


def _clusters(data: ReportData) -> None:
    """The dendrogram and correlation of the symbols selection clustered on D, from prices <= D."""
    sel = data.selection
    if sel.empty or "cluster" not in sel.columns:
        return
    symbols = sorted(sel.loc[sel["cluster"] > 0, "symbol"].astype(str))
    if len(symbols) < 2:
        data.missing.append("dendrogram: fewer than two symbols were clustered on D")
        return
    windows = data.manifest.selection.correlation_windows
    first = data.ctx.window_start(data.date)
    try:
        if first >= pd.Timestamp(data.manifest.start):  # all in the lake: one fast read
            bars = _range(data.ctx, Stage.PRICES.value, first, data.date)
            close = bars.pivot_table(index="date", columns="symbol", values="close", aggfunc="last").sort_index()
            panel = PricePanel(close=close[close.index <= data.date])
        else:  # warm-up history comes from the source
            panel = data.ctx.panel(data.date, first=first).upto(data.date)
    except LakeError as exc:
        data.missing.append(f"dendrogram: {exc}")
        return
    returns = panel.returns()[[s for s in symbols if s in panel.close.columns]]
    if returns.shape[1] < 2:
        return
    # the tree selection cut on D: correlation distance averaged over its lookback windows
    values = returns.to_numpy(dtype="float64")
    dist = linkage.average_distance([values[-w:] for w in windows])
    data.clustered = list(returns.columns)
    data.linkage = linkage.linkage_of_distance(dist, data.manifest.selection.linkage)
    data.correlation = 1.0 - 2.0 * dist ** 2  # the correlation the averaged distance implies


def _other_stages(data: ReportData) -> None:
    """Order lists and any stage this module does not know, for D."""
    root = data.ctx.lake.manifest_dir(data.ctx.name)
    if not root.exists():
        return
    known = ({s.value for s in ALL_STAGES} | {REPORT_ASSET, Stage.VERDICT.value}) - set(ORDER_STAGES)
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in known and not p.name.startswith("."))
    names.sort(key=lambda n: (n not in ORDER_STAGES, ORDER_STAGES.index(n) if n in ORDER_STAGES else 0, n))
    for name in names:
        if not data.ctx.lake.exists(data.ctx.name, name, data.date):
            continue
        frame = _one(data, name)
        if frame is None:
            continue
        if name in ORDER_STAGES and data.orders is None:
            data.orders = (name, frame)
        else:
            data.extras[name] = frame
