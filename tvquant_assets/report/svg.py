"""Charts as inline SVG strings: no plotting library, no network, deterministic output.

Every chart is a ``<figure class="chart" data-chart="<id>">`` holding one ``<svg>`` (with a ``viewBox``,
so it scales with the page) and, for line charts, a JSON blob the tearsheet's script reads to show
values under the mouse. Text is escaped; NaN breaks a line instead of drawing to zero.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Distinct, print-friendly colours (Tableau 10, then lighter and darker variants).
PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
    "#bab0ac", "#1f77b4", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a",
    "#c5b0d5", "#c49c94",
)
WIDTH = 960


BENCHMARK_COLOR = "#3a3f4b"


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def esc(text) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class Box:
    """Plot area inside an SVG of ``width`` x ``height``."""

    width: int = WIDTH
    height: int = 280
    left: int = 64
    right: int = 16
    top: int = 14
    bottom: int = 28

    @property
    def x0(self) -> float:
        return float(self.left)

    @property
    def x1(self) -> float:
        return float(self.width - self.right)

    @property
    def y0(self) -> float:
        return float(self.top)

    @property
    def y1(self) -> float:
        return float(self.height - self.bottom)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def time_ticks(start: pd.Timestamp, end: pd.Timestamp, n: int = 8) -> list[tuple[pd.Timestamp, str]]:
    """Round dates (years, quarters, months or days) between start and end, with labels."""
    days = max((end - start).days, 1)
    if days > 365 * 3:
        years = max(1, round(days / 365 / n))
        out = [pd.Timestamp(y, 1, 1) for y in range(start.year + 1, end.year + 1) if (y - start.year) % years == 0]
        return [(t, str(t.year)) for t in out if start <= t <= end]
    if days > 120:
        step = 3 if days > 365 else 1
        months = pd.date_range(start.to_period("M").to_timestamp() + pd.offsets.MonthBegin(1), end, freq="MS")
        months = [m for m in months if (m.month - 1) % step == 0]
        return [(m, m.strftime("%b %Y" if m.month == 1 or m == months[0] else "%b")) for m in months]
    step = max(1, days // n)
    return [(d, d.strftime("%d %b")) for d in pd.date_range(start, end, freq=f"{step}D")]


def _path(xs: np.ndarray, ys: np.ndarray) -> str:
    """SVG path through the points; a NaN starts a new segment."""
    parts, pen = [], False
    for x, y in zip(xs, ys, strict=True):
        if not np.isfinite(y):
            pen = False
            continue
        parts.append(f"{'L' if pen else 'M'}{x:.1f},{y:.1f}")
        pen = True
    return "".join(parts)


def _round(values: np.ndarray, digits: int = 6) -> list:
    return [None if not np.isfinite(v) else float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=float)]


class _Scale:
    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v):
        span = (self.hi - self.lo) or 1.0
        return self.a + (np.asarray(v, dtype=float) - self.lo) / span * (self.b - self.a)


def _time_scale(x: pd.DatetimeIndex, box: Box) -> tuple[_Scale, np.ndarray]:
    ns = x.asi8.astype(float)
    scale = _Scale(float(ns[0]), float(ns[-1]) if len(ns) > 1 else float(ns[0]) + 1.0, box.x0, box.x1)
    return scale, ns


def _y_range(values: Sequence[np.ndarray], include_zero: bool) -> tuple[float, float]:
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return 0.0, 1.0
    lo = float(min(v.min() for v in finite))
    hi = float(max(v.max() for v in finite))
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
    pad = (hi - lo) * 0.04
    return lo - pad, hi + pad


def _axes(box: Box, sx: _Scale, sy: _Scale, x: pd.DatetimeIndex, y_ticks: list[float],
          y_fmt: Callable[[float], str]) -> list[str]:
    out = ['<g class="axis">']
    for v in y_ticks:
        y = float(sy(v))
        if box.y0 - 0.5 <= y <= box.y1 + 0.5:
            out.append(f'<line class="grid" x1="{box.x0:.1f}" x2="{box.x1:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>')
            out.append(f'<text class="ylab" x="{box.x0 - 6:.1f}" y="{y + 4:.1f}" '
                       f'text-anchor="end">{esc(y_fmt(v))}</text>')
    if len(x):
        for t, label in time_ticks(x[0], x[-1]):
            xx = float(sx(t.value))
            out.append(f'<line class="tick" x1="{xx:.1f}" x2="{xx:.1f}" y1="{box.y1:.1f}" y2="{box.y1 + 4:.1f}"/>')
            out.append(f'<text class="xlab" x="{xx:.1f}" y="{box.y1 + 17:.1f}" '
                       f'text-anchor="middle">{esc(label)}</text>')
    out.append(f'<rect class="frame" x="{box.x0:.1f}" y="{box.y0:.1f}" width="{box.x1 - box.x0:.1f}" '
               f'height="{box.y1 - box.y0:.1f}"/>')
    out.append("</g>")
    return out


def _figure(chart_id: str, svg_body: list[str], box: Box, *, caption: str = "", legend: str = "",
            data: dict | None = None, label: str = "") -> str:
    blob = ""
    if data is not None:
        blob = f'<script type="application/json" class="chart-data">{_json_for_html(data)}</script>'
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {box.width} {box.height}" '
           f'role="img" aria-label="{esc(label or chart_id)}" preserveAspectRatio="xMidYMid meet">'
           + "".join(svg_body) + "</svg>")
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (f'<figure class="chart" data-chart="{esc(chart_id)}" data-plot="{box.x0:.1f},{box.x1:.1f},'
            f'{box.y0:.1f},{box.y1:.1f},{box.width}">{legend}{svg}{blob}{cap}</figure>')


def _json_for_html(data) -> str:
    # "</" inside a script element would end it; escape it the JSON way.
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def legend(names: Sequence[str], colors: Sequence[str], *, toggle: bool = True, emphasis: str | None = None) -> str:
    items = []
    for i, (n, c) in enumerate(zip(names, colors, strict=True)):
        strong = ' class="emph"' if n == emphasis else ""
        attr = f' data-series="{i}"' if toggle else ""
        items.append(f'<li{attr}{strong}><span class="swatch" style="background:{c}"></span>{esc(n)}</li>')
    return f'<ul class="legend">{"".join(items)}</ul>'


@dataclass(frozen=True)
class Band:
    """A shaded interval behind a time chart (e.g. a regime)."""

    start: pd.Timestamp
    end: pd.Timestamp
    label: str
    color: str


def line_chart(
    chart_id: str,
    x: pd.DatetimeIndex,
    series: Mapping[str, np.ndarray],
    *,
    y_fmt: Callable[[float], str] = lambda v: f"{v:g}",
    bands: Sequence[Band] = (),
    emphasis: str | None = None,
    include_zero: bool = False,
    reference: float | None = None,
    height: int = 280,
    caption: str = "",
    fill_below_zero: bool = False,
    dashed: str | None = None,
) -> str:
    """Several series over one time axis, optional shaded bands behind them, a legend that toggles;
    the series named ``dashed`` (a benchmark) is drawn dark grey and dashed."""
    box = Box(height=height)
    x = pd.DatetimeIndex(x)
    names = list(series)
    values = [np.asarray(series[n], dtype=float) for n in names]
    body: list[str] = []
    if not len(x) or not names:
        return empty_chart(chart_id, "no data for this chart yet", caption=caption)
    sx, ns = _time_scale(x, box)
    lo, hi = _y_range(values + ([np.array([reference])] if reference is not None else []), include_zero)
    sy = _Scale(lo, hi, box.y1, box.y0)
    for b in bands:
        xa, xb = float(sx(pd.Timestamp(b.start).value)), float(sx(pd.Timestamp(b.end).value))
        xa, xb = max(xa, box.x0), min(xb, box.x1)
        if xb > xa:
            body.append(f'<rect class="band" x="{xa:.1f}" y="{box.y0:.1f}" width="{max(xb - xa, 0.8):.1f}" '
                        f'height="{box.y1 - box.y0:.1f}" fill="{b.color}"><title>{esc(b.label)}: '
                        f'{pd.Timestamp(b.start).date()} to {pd.Timestamp(b.end).date()}</title></rect>')
    body += _axes(box, sx, sy, x, nice_ticks(lo, hi), y_fmt)
    if reference is not None:
        y = float(sy(reference))
        body.append(f'<line class="ref" x1="{box.x0:.1f}" x2="{box.x1:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>')
    xs = sx(ns)
    colors = [BENCHMARK_COLOR if n == dashed else color(i) for i, n in enumerate(names)]
    order = sorted(range(len(names)), key=lambda i: names[i] == emphasis)  # emphasis drawn last, on top
    for i in order:
        ys = sy(values[i])
        width = 2.6 if names[i] == emphasis else 1.5
        if fill_below_zero and (emphasis is None or names[i] == emphasis):
            zero = float(sy(0.0))
            pts = [(a, b) for a, b in zip(xs, ys, strict=True) if np.isfinite(b)]
            if pts:
                poly = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
                body.append(f'<polygon class="series-fill" data-series="{i}" fill="{colors[i]}" '
                            f'points="{pts[0][0]:.1f},{zero:.1f} {poly} {pts[-1][0]:.1f},{zero:.1f}"/>')
        dash = ' stroke-dasharray="6,3"' if names[i] == dashed else ""
        body.append(f'<path class="series" data-series="{i}" d="{_path(xs, ys)}" stroke="{colors[i]}" '
                    f'stroke-width="{width}"{dash} fill="none"><title>{esc(names[i])}</title></path>')
    body.append(f'<line class="cursor" x1="0" x2="0" y1="{box.y0:.1f}" y2="{box.y1:.1f}" visibility="hidden"/>')
    data = {"x": [d.strftime("%Y-%m-%d") for d in x], "px": _round(xs, 6),
            "series": [{"name": n, "color": c, "y": _round(v)} for n, c, v in zip(names, colors, values,
                                                                                  strict=True)],
            "fmt": getattr(y_fmt, "js", "num")}
    band_legend = ""
    if bands:
        seen = {}
        for b in bands:
            seen.setdefault(b.label, b.color)
        band_legend = "".join(f'<li class="band-key"><span class="swatch" style="background:{c}"></span>'
                              f'{esc(lbl)}</li>' for lbl, c in seen.items())
    leg = legend(names, colors, emphasis=emphasis)
    if band_legend:
        leg = leg.replace("</ul>", band_legend + "</ul>")
    return _figure(chart_id, body, box, caption=caption, legend=leg, data=data, label=chart_id)


def stacked_steps(
    chart_id: str,
    decisions: pd.DataFrame,
    end: pd.Timestamp,
    *,
    symbol_colors: Mapping[str, str],
    height: int = 220,
    caption: str = "",
    show_legend: bool = True,
) -> str:
    """Weights held over time, stacked: row ``i`` of ``decisions`` (index = decision dates, columns =
    symbols) holds from its date until the next row (the last one until ``end``)."""
    box = Box(height=height, left=48)
    if decisions.empty:
        return empty_chart(chart_id, "no decisions in this period", caption=caption)
    dates = pd.DatetimeIndex(decisions.index)
    edges = dates.append(pd.DatetimeIndex([max(pd.Timestamp(end), dates[-1] + pd.Timedelta(days=1))]))
    sx, _ = _time_scale(edges, box)
    w = decisions.fillna(0.0).clip(lower=0.0)
    top = float(max(1.0, w.sum(axis=1).max()))
    sy = _Scale(0.0, top, box.y1, box.y0)
    body = _axes(box, sx, sy, edges, nice_ticks(0.0, top, 4), lambda v: f"{v:.0%}")
    base = np.zeros(len(w))
    symbols = [s for s in w.columns if w[s].gt(0).any()]
    xa, xb = sx(edges[:-1].asi8.astype(float)), sx(edges[1:].asi8.astype(float))
    for s in symbols:
        v = w[s].to_numpy(dtype=float)
        lo_y, hi_y = sy(base), sy(base + v)
        rects = []
        for i in np.flatnonzero(v > 0):
            rects.append(f'<rect x="{xa[i]:.1f}" y="{hi_y[i]:.1f}" width="{max(xb[i] - xa[i], 0.5):.1f}" '
                         f'height="{max(lo_y[i] - hi_y[i], 0.0):.1f}"><title>{esc(s)} {v[i]:.1%} from '
                         f'{dates[i].date()}</title></rect>')
        body.append(f'<g class="layer" fill="{symbol_colors.get(s, "#999")}">{"".join(rects)}</g>')
        base = base + v
    leg = legend(symbols, [symbol_colors.get(s, "#999") for s in symbols], toggle=False) if show_legend else ""
    return _figure(chart_id, body, box, caption=caption, legend=leg, label=chart_id)


def heatmap(chart_id: str, matrix: np.ndarray, labels: Sequence[str], *, caption: str = "",
            lo: float = -1.0, hi: float = 1.0) -> str:
    """A square matrix as coloured cells (blue = low, white = middle, red = high)."""
    n = len(labels)
    if n == 0:
        return empty_chart(chart_id, "nothing to correlate", caption=caption)
    cell = max(12, min(40, 520 // n))
    left, top = 80, 12
    box = Box(width=left + cell * n + 90, height=top + cell * n + 80, left=left, top=top, right=90, bottom=80)
    body = []
    for i in range(n):
        for j in range(n):
            v = float(matrix[i, j])
            body.append(f'<rect class="cell" x="{left + j * cell}" y="{top + i * cell}" width="{cell}" '
                        f'height="{cell}" fill="{_diverging(v, lo, hi)}"><title>{esc(labels[i])} / '
                        f'{esc(labels[j])}: {v:.2f}</title></rect>')
    for i, lab in enumerate(labels):
        y = top + i * cell + cell / 2 + 4
        body.append(f'<text class="ylab" x="{left - 6}" y="{y:.1f}" text-anchor="end">{esc(lab)}</text>')
        x = left + i * cell + cell / 2
        body.append(f'<text class="xlab" transform="translate({x:.1f},{top + n * cell + 8}) rotate(60)">'
                    f'{esc(lab)}</text>')
    # colour key
    kx = left + n * cell + 24
    for k in range(21):
        v = hi - (hi - lo) * k / 20
        body.append(f'<rect x="{kx}" y="{top + k * (n * cell / 21):.1f}" width="14" '
                    f'height="{n * cell / 21 + 0.5:.1f}" fill="{_diverging(v, lo, hi)}"/>')
    body.append(f'<text class="ylab" x="{kx + 18}" y="{top + 10}">{hi:g}</text>')
    body.append(f'<text class="ylab" x="{kx + 18}" y="{top + n * cell:.1f}">{lo:g}</text>')
    return _figure(chart_id, body, box, caption=caption, label=chart_id)


def _diverging(v: float, lo: float, hi: float) -> str:
    if not np.isfinite(v):
        return "#dddddd"
    t = (min(max(v, lo), hi) - lo) / ((hi - lo) or 1.0) * 2 - 1  # -1 .. 1
    blue, red, white = (49, 104, 170), (196, 58, 49), (247, 247, 247)
    end = red if t > 0 else blue
    a = abs(t)
    rgb = [round(w + (e - w) * a) for w, e in zip(white, end, strict=True)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def dendrogram(chart_id: str, z: np.ndarray, labels: Sequence[str], *, leaf_colors: Mapping[str, str],
               cut_height: float | None = None, caption: str = "") -> str:
    """A linkage tree (scipy format) drawn top-down, leaves coloured by their cluster."""
    from scipy.cluster.hierarchy import dendrogram as scipy_dendrogram

    if len(labels) < 2:
        return empty_chart(chart_id, "fewer than two clustered symbols", caption=caption)
    tree = scipy_dendrogram(z, labels=list(labels), no_plot=True)
    icoord, dcoord, leaves = np.asarray(tree["icoord"]), np.asarray(tree["dcoord"]), tree["ivl"]
    box = Box(width=560, height=380, bottom=70, left=48)
    hmax = float(max(dcoord.max(), cut_height or 0.0)) or 1.0
    sx = _Scale(5.0, 10.0 * len(leaves) - 5.0, box.x0 + 10, box.x1 - 10)
    sy = _Scale(0.0, hmax * 1.05, box.y1, box.y0)
    body = []
    for v in nice_ticks(0.0, hmax * 1.05, 4):
        y = float(sy(v))
        body.append(f'<line class="grid" x1="{box.x0:.1f}" x2="{box.x1:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>')
        body.append(f'<text class="ylab" x="{box.x0 - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for xs, ys in zip(icoord, dcoord, strict=True):
        pts = " ".join(f"{float(sx(a)):.1f},{float(sy(b)):.1f}" for a, b in zip(xs, ys, strict=True))
        body.append(f'<polyline class="link" points="{pts}"><title>merge at {ys[1]:.3f}</title></polyline>')
    if cut_height is not None:
        y = float(sy(cut_height))
        body.append(f'<line class="ref" x1="{box.x0:.1f}" x2="{box.x1:.1f}" y1="{y:.1f}" y2="{y:.1f}">'
                    f'<title>cut at {cut_height:.3f}</title></line>')
    for k, lab in enumerate(leaves):
        x = float(sx(10.0 * k + 5.0))
        c = leaf_colors.get(lab, "#555")
        body.append(f'<circle cx="{x:.1f}" cy="{box.y1:.1f}" r="4" fill="{c}"/>')
        body.append(f'<text class="xlab" fill="{c}" transform="translate({x - 3:.1f},{box.y1 + 10:.1f}) '
                    f'rotate(60)">{esc(lab)}</text>')
    return _figure(chart_id, body, box, caption=caption, label=chart_id)


def strip(chart_id: str, bands: Sequence[Band], start: pd.Timestamp, end: pd.Timestamp, *,
          caption: str = "") -> str:
    """A one-row timeline of labelled intervals (e.g. the regime quadrant)."""
    if not bands:
        return empty_chart(chart_id, "no data for this timeline", caption=caption)
    box = Box(height=64, top=6, bottom=24)
    x = pd.DatetimeIndex([start, end])
    sx, _ = _time_scale(x, box)
    body = []
    for b in bands:
        xa, xb = float(sx(pd.Timestamp(b.start).value)), float(sx(pd.Timestamp(b.end).value))
        body.append(f'<rect class="band solid" x="{xa:.1f}" y="{box.y0:.1f}" width="{max(xb - xa, 0.8):.1f}" '
                    f'height="{box.y1 - box.y0:.1f}" fill="{b.color}"><title>{esc(b.label)}: '
                    f'{pd.Timestamp(b.start).date()} to {pd.Timestamp(b.end).date()}</title></rect>')
    for t, label in time_ticks(x[0], x[-1]):
        xx = float(sx(t.value))
        body.append(f'<text class="xlab" x="{xx:.1f}" y="{box.y1 + 16:.1f}" text-anchor="middle">{esc(label)}</text>')
    seen: dict[str, str] = {}
    for b in bands:
        seen.setdefault(b.label, b.color)
    leg = legend(list(seen), list(seen.values()), toggle=False)
    return _figure(chart_id, body, box, caption=caption, legend=leg, label=chart_id)


def empty_chart(chart_id: str, message: str, *, caption: str = "") -> str:
    """The empty-state figure: says why a chart has no data on D (still a visible, non-empty SVG)."""
    box = Box(height=60)
    body = [f'<text class="empty" x="{box.width / 2:.0f}" y="34" text-anchor="middle">{esc(message)}</text>']
    return _figure(chart_id, body, box, caption=caption, label=chart_id).replace(
        'class="chart"', 'class="chart empty"', 1)


def runs(dates: pd.DatetimeIndex, labels: Sequence[str], colors: Mapping[str, str],
         end: pd.Timestamp | None = None) -> list[Band]:
    """Contiguous runs of equal labels as bands; a run lasts until the next run starts."""
    dates = pd.DatetimeIndex(dates)
    out: list[Band] = []
    if not len(dates):
        return out
    start, current = dates[0], labels[0]
    for d, lab in zip(dates[1:], labels[1:], strict=True):
        if lab != current:
            if current in colors:
                out.append(Band(start, d, str(current), colors[current]))
            start, current = d, lab
    last = pd.Timestamp(end) if end is not None else dates[-1]
    if current in colors:
        out.append(Band(start, max(last, start), str(current), colors[current]))
    return out


def percent(v: float) -> str:
    v = 0.0 if abs(v) < 5e-13 else v  # no "-0%"
    return f"{v:.0%}" if abs(v) >= 0.1 or v == 0 else f"{v:.1%}"


percent.js = "pct"  # type: ignore[attr-defined]


def number(v: float) -> str:
    return f"{v:.2f}"


number.js = "num"  # type: ignore[attr-defined]
