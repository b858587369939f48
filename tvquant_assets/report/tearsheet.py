"""The tearsheet: one self-contained HTML file per manifest and date (CSS, JS and charts inline).

``build_report`` reads the lake (:mod:`tvquant_assets.report.data`), renders every section and writes
``<lake>/<manifest>/report/<YYYY-MM-DD>.html`` atomically. Adding a section = one function returning
HTML plus one line in :data:`SECTIONS`.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from tvquant_assets.lake import Lake, atomic_write_bytes, default_lake_root
from tvquant_assets.manifest import Manifest, resolve_manifest
from tvquant_assets.report import svg
from tvquant_assets.report.data import (
    REPORT_ASSET,
    ROLLING_SHARPE_DAYS,
    ReportData,
    collect,
    drawdowns,
    rolling_sharpe,
)
from tvquant_assets.stages import SPECS, Stage
from tvquant_assets.stages.context import RunContext

REGIME_COLORS = {"QUIET": "#cfe8cf", "NORMAL": "#ffffff", "TURBULENT": "#fbd9a8", "CRISIS": "#f4a7a3"}
QUADRANT_COLORS = {"EXPANSION": "#8cc084", "INFLATIONARY_TREND": "#edc948", "STAGNATION": "#9fb3c8",
                   "CRISIS": "#e15759", "NORMAL": "#d9dde5"}

# Leaderboard: known columns first in this order, then whatever else the backtest stage publishes.
LEADERBOARD_ORDER = ("rank", "candidate", "engine", "profile", "simulator", "total_return", "ann_return",
                     "ann_vol", "sharpe", "deflated_sharpe", "dsr", "pbo", "sortino", "calmar",
                     "max_drawdown", "var_95", "cvar_95", "hit_rate", "stability", "turnover", "costs", "n_days",
                     "bench_total_return", "excess_return", "alpha", "beta", "tracking_error", "information_ratio",
                     "up_capture", "down_capture")
PERCENT_HINTS = ("return", "vol", "drawdown", "var", "hit_rate", "costs", "weight", "pbo", "prob", "growth",
                 "notional_pct", "alpha", "tracking_error")
BOARD_HIDDEN = ("day_return", "bench_day_return", "bench_equity")  # per-day values, drawn in the charts


@dataclass(frozen=True)
class ReportResult:
    path: str
    manifest: str
    date: pd.Timestamp
    featured: str | None
    leader: str | None
    regime: str | None
    sections: tuple[str, ...]
    missing: tuple[str, ...]
    bytes: int


def report_path(lake: Lake, manifest: str, date) -> str:
    return str(lake.path(manifest, REPORT_ASSET, date)).removesuffix(".parquet") + ".html"


def build_report(manifest: str | Path | Manifest, date=None, *, lake: Lake | None = None,
                 lake_root: str | None = None, out: str | Path | None = None) -> ReportResult:
    """Build the tearsheet of ``manifest`` as of ``date`` (default: the latest backtest partition)."""
    m = manifest if isinstance(manifest, Manifest) else resolve_manifest(manifest)[1]
    lake = lake or Lake.open(lake_root or default_lake_root())
    data = collect(RunContext(m, lake), date)
    page = render(data)
    path = str(out) if out is not None else report_path(lake, m.name, data.date)
    payload = page.encode("utf-8")
    atomic_write_bytes(path, payload)
    board = data.leaderboard
    regime = None
    if not data.regimes.empty and data.date in data.regimes.index and "label" in data.regimes.columns:
        regime = str(data.regimes.loc[data.date, "label"])
    return ReportResult(
        path=path, manifest=m.name, date=data.date, featured=data.featured,
        leader=str(board["candidate"].iloc[0]) if not board.empty and "candidate" in board.columns else None,
        regime=regime, sections=tuple(name for name, _ in SECTIONS if name not in OPT_IN or
                                      SPECS[OPT_IN[name]].enabled(m)), missing=tuple(data.missing),
        bytes=len(payload),
    )


# ----------------------------------------------------------------------------------------------------
# formatting


def esc(v) -> str:
    return html.escape(str(v), quote=True)


def _is_percent(col: str) -> bool:
    c = col.lower()
    return any(h in c for h in PERCENT_HINTS) and "ratio" not in c


def fmt_value(col: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (pd.Timestamp, dt.date)):
        return pd.Timestamp(v).strftime("%Y-%m-%d")
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if _is_percent(col):
            return f"{v:.2%}"
        if abs(v) >= 1e5:
            return f"{v:,.0f}"
        return f"{v:.3f}" if abs(v) < 10 else f"{v:,.2f}"
    return str(v)


def table(df: pd.DataFrame, *, columns: list[str] | None = None, emphasis: str | None = None,
          key: str = "candidate", max_rows: int = 500, scroll: bool = False) -> str:
    """An HTML table (sortable by the page script); numbers right-aligned, signs coloured."""
    if df is None or df.empty:
        return '<p class="note">nothing to show</p>'
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    head = "".join(f'<th class="{"t" if not _numeric(df[c]) else ""}">{esc(c)}</th>' for c in cols)
    rows = []
    values = {c: df[c].to_numpy(dtype=object) for c in cols}
    for i in range(min(len(df), max_rows)):
        emph = emphasis is not None and key in df.columns and str(df[key].iloc[i]) == emphasis
        cells = []
        for c in cols:
            v = values[c][i]
            numeric = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            cls = "" if numeric else "t"
            if numeric and _signed(c) and np.isfinite(float(v)) and float(v) != 0:
                cls = "neg" if float(v) < 0 else "pos"
            sort_v = float(v) if numeric and np.isfinite(float(v)) else str(v)
            cells.append(f'<td class="{cls}" data-v="{esc(sort_v)}">{esc(fmt_value(c, v))}</td>')
        rows.append(f'<tr{" class=\"emph\"" if emph else ""}>{"".join(cells)}</tr>')
    more = f'<p class="note">{len(df) - max_rows} more rows not shown</p>' if len(df) > max_rows else ""
    body = f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return (f'<div class="scroll">{body}</div>' if scroll else body) + more


def _signed(col: str) -> bool:
    """Columns whose sign is good or bad news (coloured green or red)."""
    c = col.lower()
    return not c.startswith("weight") and any(h in c for h in ("return", "drawdown", "sharpe", "pnl"))


def _numeric(s: pd.Series) -> bool:
    return s.dtype.kind in "fiu"


def _kpi(label: str, value: str, small: bool = False) -> str:
    size = " small" if small else ""
    return f'<div class="kpi"><div class="k">{esc(label)}</div><div class="v{size}">{value}</div></div>'


def _regime_badge(label: str) -> str:
    return f'<span class="badge" style="background:{REGIME_COLORS.get(label, "#eee")}">{esc(label)}</span>'


# ----------------------------------------------------------------------------------------------------
# sections


def _header(data: ReportData) -> str:
    m = data.manifest
    return (f'<header class="top"><h1>{esc(m.name)} — tearsheet as of {data.date.date()}</h1>'
            f'<div class="sub">{esc(m.description or "")}</div>'
            f'<div class="sub">source <code>{esc(m.source.kind)}</code> · calendar <code>{esc(m.calendar)}</code>'
            f' · backtest from <code>{m.backtest_start}</code> · rebalance <code>{esc(m.rebalance.rule)}</code>'
            f' · manifest hash <code>{esc(data.ctx.manifest_hash[:16])}</code></div></header>')


def section_summary(data: ReportData) -> str:
    board, featured = data.leaderboard, data.featured
    kpis = []
    row = None
    if not board.empty and featured is not None and "candidate" in board.columns:
        hit = board[board["candidate"].astype(str) == featured]
        row = hit.iloc[0] if len(hit) else None
    kpis.append(_kpi("featured candidate", esc(featured or "–")))
    if row is not None:
        for col, label in (("total_return", "total return"), ("ann_return", "annual return"),
                           ("sharpe", "Sharpe"), ("max_drawdown", "max drawdown")):
            if col in row.index:
                kpis.append(_kpi(label, esc(fmt_value(col, row[col]))))
        for col, label in (("deflated_sharpe", "deflated Sharpe"), ("dsr", "deflated Sharpe"), ("pbo", "PBO"),
                           ("excess_return", "excess return"), ("beta", "beta"),
                           ("information_ratio", "information ratio")):
            if col in row.index:
                kpis.append(_kpi(label, esc(fmt_value(col, row[col]))))
    if not data.regimes.empty and data.date in data.regimes.index:
        r = data.regimes.loc[data.date]
        if "label" in r.index:
            kpis.append(_kpi("regime on D", _regime_badge(str(r["label"]))))
        if "quadrant" in r.index:
            kpis.append(_kpi("quadrant", esc(r["quadrant"])))
    sel = data.selection
    if not sel.empty and "selected" in sel.columns:
        n_clusters = sel.loc[sel["selected"], "cluster"].nunique() if "cluster" in sel.columns else 0
        kpis.append(_kpi("selected on D", f"{int(sel['selected'].sum())} of {len(sel)} · {n_clusters} clusters"))
    if not data.audit.empty and "entry_hash" in data.audit.columns:
        a = data.audit.iloc[0]
        entry = f'<code class="hash">{esc(str(a["entry_hash"])[:16])}…</code>'
        kpis.append(_kpi(f"ledger entry #{int(a['seq'])}", entry, small=True))
    why = ("the adaptive pick" if featured and data.tournament is not None and not data.tournament.empty
           and featured not in _leader(board) else "the leaderboard's rank 1")
    note = f'<p class="note">Featured: {esc(why)}. Figures are as of the close of {data.date.date()}, ' \
           f'walk-forward since {data.manifest.backtest_start} with costs.</p>'
    return f'<section id="summary"><h2>Summary</h2><div class="kpis">{"".join(kpis)}</div>{note}</section>'


def _leader(board: pd.DataFrame) -> list[str]:
    return [str(board["candidate"].iloc[0])] if not board.empty and "candidate" in board.columns else []


def _regime_bands(data: ReportData) -> list[svg.Band]:
    r = data.regimes
    if r.empty or "label" not in r.columns:
        return []
    colors = {k: v for k, v in REGIME_COLORS.items() if k != "NORMAL"}
    return svg.runs(pd.DatetimeIndex(r.index), [str(x) for x in r["label"]], colors, end=data.date)


def _with_benchmark(data: ReportData, eq: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """The equity curves plus the benchmark's (dashed), on the same dates."""
    if data.benchmark is None or eq.empty:
        return eq, None
    name = f"{data.benchmark.name} (benchmark)"
    return eq.assign(**{name: data.benchmark.reindex(eq.index).ffill().to_numpy()}), name


def section_equity(data: ReportData) -> str:
    eq, bench = _with_benchmark(data, data.equity)
    bands = _regime_bands(data)
    chart = svg.line_chart(
        "equity", eq.index, {c: eq[c].to_numpy() for c in eq.columns}, y_fmt=svg.number, bands=bands,
        emphasis=data.featured, reference=1.0, height=320, dashed=bench,
        caption="Growth of 1 since the backtest start, after costs" + (", and the benchmark's (dashed)" if bench
                                                                      else "") +
                ". Shading: regime label on each date "
                "(QUIET green, TURBULENT orange, CRISIS red). Click a legend entry to hide a line.")
    quad = ""
    r = data.regimes
    if not r.empty and "quadrant" in r.columns and len(eq):
        qb = svg.runs(pd.DatetimeIndex(r.index), [str(x) for x in r["quadrant"]], QUADRANT_COLORS, end=data.date)
        quad = svg.strip("quadrant", qb, eq.index[0], max(eq.index[-1], data.date),
                         caption="Growth/stress quadrant on each date.")
    return f'<section id="equity"><h2>Equity curves and regimes</h2>{chart}{quad}</section>'


def section_drawdown(data: ReportData) -> str:
    eq, bench = _with_benchmark(data, data.equity)
    dd = drawdowns(eq) if not eq.empty else eq
    chart = svg.line_chart("drawdown", dd.index, {c: dd[c].to_numpy() for c in dd.columns}, y_fmt=svg.percent,
                           emphasis=data.featured, include_zero=True, height=220, fill_below_zero=True, dashed=bench,
                           caption="Drawdown from the running peak (the starting equity counts as a peak)"
                                   + ("; the benchmark's dashed." if bench else "."))
    return f'<section id="drawdown"><h2>Drawdowns</h2>{chart}</section>'


def section_relative(data: ReportData) -> str:
    """Each candidate's growth relative to the benchmark's: equity / benchmark equity - 1."""
    if data.benchmark is None or data.equity.empty:
        return ""
    bench = data.benchmark.reindex(data.equity.index).ffill()
    rel = data.equity.div(bench, axis=0) - 1.0
    chart = svg.line_chart("relative", rel.index, {c: rel[c].to_numpy() for c in rel.columns}, y_fmt=svg.percent,
                           emphasis=data.featured, reference=0.0, height=220,
                           caption=f"Growth relative to {data.benchmark.name}: equity / benchmark equity - 1 "
                                   "(above 0: ahead of the benchmark since the backtest start).")
    return f'<section id="relative"><h2>Relative to {esc(data.benchmark.name)}</h2>{chart}</section>'


def section_rolling_sharpe(data: ReportData) -> str:
    ppy = data.manifest.backtest.periods_per_year
    rs = rolling_sharpe(data.day_returns, ROLLING_SHARPE_DAYS, ppy) if not data.day_returns.empty \
        else data.day_returns
    chart = svg.line_chart("rolling_sharpe", rs.index, {c: rs[c].to_numpy() for c in rs.columns},
                           y_fmt=svg.number, emphasis=data.featured, reference=0.0, height=220,
                           caption=f"Annualized Sharpe ratio of the last {ROLLING_SHARPE_DAYS} daily returns.")
    return f'<section id="rolling"><h2>Rolling Sharpe ({ROLLING_SHARPE_DAYS} days)</h2>{chart}</section>'


def section_leaderboard(data: ReportData) -> str:
    board = data.leaderboard
    if board.empty:
        return '<section id="leaderboard"><h2>Leaderboard</h2><p class="note">no backtest for this date</p></section>'
    cols = [c for c in LEADERBOARD_ORDER if c in board.columns]
    cols += [c for c in board.columns if c not in cols and c not in BOARD_HIDDEN]
    extra = [c for c in ("deflated_sharpe", "dsr", "pbo") if c in board.columns]
    note = ("Includes " + ", ".join(extra) + " (overfitting-aware scores)." if extra else
            "Deflated Sharpe and PBO appear here when the backtest stage publishes them.")
    return (f'<section id="leaderboard"><h2>Leaderboard as of {data.date.date()}</h2>'
            f'{table(board, columns=cols, emphasis=data.featured)}<p class="note">Ranked by Sharpe. {esc(note)} '
            f'Turnover is two-sided; costs are fractions of equity paid so far. Click a header to sort.</p></section>')


def section_exposure(data: ReportData) -> str:
    """Long, short, gross and net exposure of the featured candidate over time, and each candidate's
    per-book contribution so far."""
    x = data.exposure
    if x.empty:
        return ('<section id="exposure"><h2>Exposure and per-book contribution</h2><p class="note">no '
                'exposure columns in the backtest partitions</p></section>')
    name = data.featured if data.featured in set(x["candidate"]) else str(x["candidate"].iloc[0])
    mine = x[x["candidate"] == name].groupby("date").last().sort_index()
    series = {c.replace("_exposure", ""): mine[c].to_numpy() for c in
              ("long_exposure", "short_exposure", "gross_exposure", "net_exposure")}
    chart = svg.line_chart("exposure", pd.DatetimeIndex(mine.index), series, y_fmt=svg.percent, include_zero=True,
                           reference=0.0, height=240,
                           caption=f"{name}: the book held after each close, as fractions of equity (short <= 0; "
                                   f"gross = long - short, net = long + short).")
    last = x[x["date"] == x["date"].max()].drop_duplicates("candidate", keep="last")
    board = last[["candidate", "long_exposure", "short_exposure", "gross_exposure", "net_exposure",
                  "long_contribution", "short_contribution"]].sort_values("candidate")
    long_only = "" if (x["short_exposure"] < 0).any() else " No candidate held a short."
    return (f'<section id="exposure"><h2>Exposure and per-book contribution</h2>{chart}'
            f'{table(board, emphasis=data.featured)}<p class="note">Contribution: the sum of each book\'s daily '
            f'return contribution (weights of the previous close times the day\'s returns) since the backtest '
            f'start, before costs and borrow.{long_only}</p></section>')


def section_weights(data: ReportData) -> str:
    if not data.decisions:
        return ('<section id="weights"><h2>Weights over time</h2><p class="note">no decisions between the '
                'backtest start and this date</p></section>')
    symbols = sorted(set().union(*[set(w.columns) for w in data.decisions.values()]))
    colors = {s: svg.color(i) for i, s in enumerate(symbols)}
    names = sorted(data.decisions, key=lambda c: (c != data.featured, c))
    charts = []
    for c in names:
        charts.append(f"<div><h3>{esc(c)}{' (featured)' if c == data.featured else ''}</h3>"
                      + svg.stacked_steps(f"weights:{c}", data.decisions[c], data.date, symbol_colors=colors,
                                          show_legend=False, height=260 if c == names[0] else 300)
                      + "</div>")
    first, rest = charts[0], charts[1:]
    grid = f'<div class="grid2">{"".join(rest)}</div>' if rest else ""
    held = [s for s in symbols if any(s in w.columns and w[s].gt(0).any() for w in data.decisions.values())]
    key = svg.legend(held, [colors[s] for s in held], toggle=False)
    drifted = ""
    if not data.held.empty and data.featured is not None:
        drifted = (f"<div><h3>{esc(data.featured)}: held after drift (weekly)</h3>"
                   + svg.stacked_steps("weights:held", data.held, data.date, symbol_colors=colors,
                                       show_legend=False, height=260)
                   + "</div>")
    return (f'<section id="weights"><h2>Weights over time (stacked)</h2>{key}{first}{drifted}{grid}'
            f'<p class="note">Target weights from each decision date until the next (hover a block for the '
            f'symbol, weight and date). "Held after drift" is the featured book the backtest carries: targets '
            f'drifting with prices between decisions, after costs, at each week\'s last close.</p></section>')


def section_holdings(data: ReportData) -> str:
    t = data.tournament
    if t.empty or not {"candidate", "symbol", "weight"} <= set(t.columns):
        return ('<section id="holdings"><h2>Target weights on D</h2>'
                '<p class="note">no tournament for this date</p></section>')
    live = t[t["symbol"].astype(str) != ""]
    wide = live.pivot_table(index="symbol", columns="candidate", values="weight", aggfunc="sum").fillna(0.0)
    wide = wide.reset_index()
    wide.columns = [str(c) for c in wide.columns]
    status_cols = [c for c in ("candidate", "engine", "profile", "status", "fallback", "max_weight",
                               "decision_date", "rebalanced", "solve_ms") if c in t.columns]
    extra = [c for c in t.columns if c not in status_cols and c not in ("symbol", "weight")]
    status = t.drop_duplicates("candidate")[status_cols + extra]
    wide = wide.rename(columns={c: f"weight {c}" for c in wide.columns if c != "symbol"})
    return (f'<section id="holdings"><h2>Target weights on {data.date.date()}</h2>'
            f'{table(wide)}<h3>Candidates</h3>{table(status, emphasis=data.featured)}</section>')


def section_clusters(data: ReportData) -> str:
    sel = data.selection
    if sel.empty:
        return '<section id="clusters"><h2>Clusters</h2><p class="note">no selection for this date</p></section>'
    parts = []
    if data.linkage is not None:
        clusters = dict(zip(sel["symbol"].astype(str), sel["cluster"].astype(int), strict=True))
        leaf_colors = {s: svg.color(clusters.get(s, 0) - 1) for s in data.clustered}
        cfg = data.manifest.selection.linkage
        cut = _cut_height(data.linkage, cfg)
        parts.append(svg.dendrogram("dendrogram", data.linkage, data.clustered, leaf_colors=leaf_colors,
                                    cut_height=cut,
                                    caption=f"{cfg.method} linkage on correlation distance sqrt(0.5(1-rho)) "
                                            "averaged over the last "
                                            f"{'/'.join(map(str, data.manifest.selection.correlation_windows))} "
                                            "daily returns <= D (the tree selection cut); leaves coloured by "
                                            "selection cluster; dashed: the cut."))
        order = leaf_order(data.linkage)
        labels = [data.clustered[i] for i in order]
        corr = data.correlation[np.ix_(order, order)]
        parts.append(svg.heatmap("correlation", corr, labels,
                                 caption="Correlation implied by the averaged distance (1 - 2d^2), "
                                         "in dendrogram leaf order."))
    cols = [c for c in ("symbol", "sector", "direction", "cluster", "rank_in_cluster", "momentum",
                        "momentum_pct", "selected", "reason") if c in sel.columns]
    cols += [c for c in sel.columns if c not in cols]
    sortable = {"selected", "cluster"} <= set(sel.columns)
    shown = sel.sort_values(["selected", "cluster"], ascending=[False, True]) if sortable else sel
    return (f'<section id="clusters"><h2>Selection and clusters on {data.date.date()}</h2>'
            f'<div class="grid2">{"".join(parts)}</div>'
            f'{table(shown, columns=cols, key="symbol", scroll=True)}</section>')


def leaf_order(z: np.ndarray) -> list[int]:
    from scipy.cluster.hierarchy import leaves_list

    return [int(i) for i in leaves_list(z)]


def _cut_height(z: np.ndarray, cfg) -> float | None:
    if cfg.distance_threshold is not None:
        return float(cfg.distance_threshold)
    n = z.shape[0] + 1
    k = min(cfg.max_clusters, n)
    if k <= 1:
        return None
    heights = np.sort(z[:, 2])
    merges = n - k  # merges below the cut
    lo = heights[merges - 1] if merges > 0 else 0.0
    hi = heights[merges] if merges < len(heights) else lo
    return float((lo + hi) / 2)


def section_regime(data: ReportData) -> str:
    r = data.regimes
    if r.empty or data.date not in r.index:
        return '<section id="regime"><h2>Regime</h2><p class="note">no regime for this date</p></section>'
    row = r.loc[[data.date]].reset_index(drop=True)
    chart = ""
    if "vol_ratio" in r.columns:
        series = {c: r[c].to_numpy(dtype=float) for c in ("vol_ratio", "stress_score") if c in r.columns}
        chart = svg.line_chart("regime_metrics", r.index, series, y_fmt=svg.number, bands=_regime_bands(data),
                               height=200, caption="Regime metrics over the backtest period, label shaded.")
    return f'<section id="regime"><h2>Regime on {data.date.date()}</h2>{table(row)}{chart}{_learned(data)}</section>'


def _learned(data: ReportData) -> str:
    """Learned thresholds and weights over time, and learned vs the manifest's fixed thresholds: the regime's
    own proxy regret at each fit, and the threshold auditor's backtest regret on D."""
    r = data.regimes
    if "turbulent_threshold" not in r.columns:
        return ""
    parts = ["<h3>Learned regime</h3>"]
    th = data.manifest.regime.thresholds
    parts.append(svg.line_chart(
        "regime_thresholds", r.index, {c: r[c].to_numpy(dtype=float) for c in ("turbulent_threshold",
                                                                                "crisis_threshold")},
        y_fmt=svg.number, bands=_regime_bands(data), height=180,
        caption=f"Thresholds applied on each date (manifest: turbulent {th.turbulent:g}, crisis {th.crisis:g}); "
                "refit monthly on outcomes before the fit day."))
    weights = [c for c in ("weight_hmm", "weight_clustering", "weight_spectral") if c in r.columns]
    if data.manifest.regime.weights == "auto" and weights:
        parts.append(svg.line_chart("regime_weights", r.index, {c: r[c].to_numpy(dtype=float) for c in weights},
                                    y_fmt=svg.number, height=160, include_zero=True,
                                    caption="Composite weights fitted walk-forward (the vol score stays at 1)."))
    if data.manifest.regime.regret.apply:
        parts.append(svg.line_chart(
            "regime_learned_vs_fixed", r.index, {"learned thresholds": r["learned_regret"].to_numpy(dtype=float),
                                                 "manifest thresholds": r["fixed_regret"].to_numpy(dtype=float)},
            y_fmt=svg.number, height=160, include_zero=True,
            caption="Regret (log return points) of the regime's own profile proxies over each fit's window: the "
                    "learned pair vs the manifest's."))
        audit = data.extras.get("regime_regret")
        if audit is not None and "applied" in audit.columns:
            fixed = audit["applied"].astype(bool) | np.isclose(audit["turbulent_threshold"].astype(float),
                                                               th.turbulent)
            rows = audit[fixed].assign(setting=np.where(audit.loc[fixed, "applied"].astype(bool), "learned",
                                                        "manifest"))
            parts.append(table(rows, columns=[c for c in ("setting", "turbulent_threshold", "n_switches",
                                                          "adaptive_return", "best_fixed", "regret")
                                              if c in rows.columns]))
            parts.append('<p class="note">The threshold auditor on the backtest\'s candidates to D: switching '
                         'on the learned labels vs on the manifest\'s thresholds.</p>')
    return "".join(parts)


def section_verdict(data: ReportData) -> str:
    frame = data.verdict
    if frame.empty or "verdict" not in frame.columns:
        return ""
    cols = ["window", "candidate", "counterpart", "window_start", "n_days", "sharpe", "counterpart_sharpe",
            "sharpe_diff", "p_value", "stability", "deflated_sharpe", "verdict"]
    return (f'<section id="verdict"><h2>Engines vs custom on {data.date.date()}</h2>'
            f'{table(frame, columns=[c for c in cols if c in frame.columns])}<p class="note">Each third-party '
            'candidate against the custom candidate of its profile (else custom equal weight) over the month to '
            'D and the twelve months to D: a paired Ledoit–Wolf test of the Sharpe difference (HAC), better / '
            'worse at the 5% level, otherwise no difference.</p></section>')


def section_paper(data: ReportData) -> str:
    acc, day = data.paper, data.paper_day
    if acc.empty or day.empty:
        return ""
    paper_growth = acc["equity"] / acc["equity"].iloc[0]
    bt = (1.0 + acc["backtest_return"].fillna(0.0)).cumprod()
    chart = svg.line_chart("paper", acc.index, {"paper account": paper_growth.to_numpy(),
                                                "backtest (same candidate)": bt.to_numpy()},
                           y_fmt=svg.number, reference=1.0, height=240,
                           caption="Growth of the paper account (drift orders of D-1 filled at D's open by "
                                   "nautilus, whole units, commission) and of the backtest's same candidate.")
    cum = float(paper_growth.iloc[-1] / bt.iloc[-1] - 1.0)
    fills = acc["fill_shortfall_bps"].dropna()
    mean_bps = float((fills * acc.loc[fills.index, "fills"]).sum() / acc.loc[fills.index, "fills"].sum()) \
        if len(fills) else float("nan")
    slip = day[day["kind"] == "slippage"]
    kpis = "".join([_kpi("equity", f"{acc['equity'].iloc[-1]:,.2f}"),
                    _kpi("vs backtest since start", svg.percent(cum)),
                    _kpi("fill vs decision close (mean, bps)", f"{mean_bps:.2f}"),
                    *(_kpi(f"suggested slippage {c} (bps)", f"{b:.2f}", small=True)
                      for c, b in zip(slip["asset_class"], slip["estimate_bps"]))])
    cols = ["symbol", "side", "quantity", "price", "reference", "commission", "shortfall_bps", "order_date"]
    fill_rows = day[day["kind"] == "fill"]
    positions = day[day["kind"] == "position"]
    return (f'<section id="paper"><h2>Paper account on {data.date.date()}</h2><div class="kpis">{kpis}</div>'
            f'{chart}<h3>Fills at the open of {data.date.date()}</h3>'
            f'{table(fill_rows, columns=cols, key="symbol") if len(fill_rows) else "<p class=note>no fills</p>"}'
            f'<h3>Positions after the close</h3>'
            f'{table(positions, columns=["symbol", "quantity", "price", "value"], key="symbol")}'
            '<p class="note">Implementation shortfall: each fill against the close its order was decided at '
            '(positive: worse); the account\'s day return against the backtest\'s. The suggested slippage is '
            'learned from these fills (<code>paper_slippage.json</code> in the lake); the manifest is not '
            'changed.</p></section>')


def section_orders(data: ReportData) -> str:
    if data.orders is None:
        return ('<section id="orders"><h2>Drift orders</h2><p class="note">No order list in the lake for this '
                'date (the drift monitor publishes one when holdings drift past the manifest threshold).</p>'
                '</section>')
    name, frame = data.orders
    return (f'<section id="orders"><h2>Drift orders on {data.date.date()}</h2><p class="note">From the '
            f'<code>{esc(name)}</code> stage.</p>{table(frame, key="symbol", scroll=True)}</section>')


def section_other(data: ReportData) -> str:
    if not data.extras:
        return ""
    parts = [f"<h3>{esc(name)}</h3>{table(f, scroll=True, max_rows=200)}" for name, f in data.extras.items()]
    return f'<section id="other"><h2>Other outputs on {data.date.date()}</h2>{"".join(parts)}</section>'


def section_provenance(data: ReportData) -> str:
    rows = [{"stage": k, "df_hash": v} for k, v in sorted(data.hashes.items())]
    audit = ""
    if not data.audit.empty:
        a = data.audit.iloc[0]
        bits = [f"<li>{esc(c)}: <code class=\"hash\">{esc(a[c])}</code></li>" for c in
                ("seq", "entry_hash", "prev_hash", "manifest_hash") if c in a.index]
        audit = f"<h3>Ledger entry for {data.date.date()}</h3><ul>{''.join(bits)}</ul>" \
                f'<p class="note">Check the chain: ' \
                f'<code>tvquant audit verify --manifest {esc(data.ctx.name)}</code></p>'
    missing = ""
    if data.missing:
        missing = "<h3>Not shown</h3><ul>" + "".join(f"<li>{esc(x)}</li>" for x in data.missing) + "</ul>"
    return (f'<section id="provenance"><h2>Provenance</h2>{audit}'
            '<h3>Content hashes (df_hash) of the partitions of D shown here</h3>'
            f'{table(pd.DataFrame(rows), key="stage")}{missing}</section>')


SECTIONS: tuple[tuple[str, Callable[[ReportData], str]], ...] = (
    ("summary", section_summary),
    ("equity", section_equity),
    ("drawdown", section_drawdown),
    ("relative", section_relative),
    ("rolling", section_rolling_sharpe),
    ("leaderboard", section_leaderboard),
    ("verdict", section_verdict),
    ("exposure", section_exposure),
    ("weights", section_weights),
    ("holdings", section_holdings),
    ("clusters", section_clusters),
    ("regime", section_regime),
    ("paper", section_paper),
    ("orders", section_orders),
    ("other", section_other),
    ("provenance", section_provenance),
)
OPT_IN = {"paper": Stage.PAPER}
"""Sections of opt-in stages: a page has them when the manifest enables the stage."""
TITLES = {"summary": "Summary", "equity": "Equity", "drawdown": "Drawdowns", "relative": "Vs benchmark",
          "rolling": "Rolling Sharpe", "leaderboard": "Leaderboard", "verdict": "Verdict", "exposure": "Exposure",
          "weights": "Weights", "holdings": "Holdings", "clusters": "Clusters",
          "regime": "Regime", "paper": "Paper", "orders": "Orders", "other": "Other", "provenance": "Provenance"}


def _static(name: str) -> str:
    return resources.files("tvquant_assets.report").joinpath("static", name).read_text(encoding="utf-8")


def render(data: ReportData) -> str:
    body = [fn(data) for _, fn in SECTIONS]
    present = [name for (name, _), part in zip(SECTIONS, body, strict=True) if part]
    toc = "".join(f'<a href="#{n}">{esc(TITLES.get(n, n))}</a>' for n in present)
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        # Nothing on this page may come from the network.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{esc(data.ctx.name)} tearsheet {data.date.date()}</title>"
        f"<style>{_static('tearsheet.css')}</style></head><body>"
        f"{_header(data)}<nav class=\"toc\">{toc}</nav><main>{''.join(body)}</main>"
        f"<footer>tvquant tearsheet · {esc(data.ctx.name)} as of {data.date.date()} · generated {generated} · "
        "self-contained: no network needed</footer>"
        f"<script>{_static('tearsheet.js')}</script></body></html>\n"
    )
