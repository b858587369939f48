"""Data-quality checks as plain functions over stage partitions (no Dagster here; defs/checks.py wires them).

Every check takes ``{date: frame}`` for the partitions under test (plus the history it needs) and returns a
``CheckReport``: the findings (date, symbol, problem), so a failure names exactly the partitions and symbols
to repair. The data_repair job (``tvquant_assets.repair``) reuses ``bad_price_symbols``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tvquant_assets.manifest.schema import QualityConfig

PRICE_FIELDS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class Finding:
    date: pd.Timestamp
    symbol: str
    problem: str

    def line(self) -> str:
        return f"{self.date.date()} {self.symbol or '-'}: {self.problem}"


@dataclass
class CheckReport:
    """Outcome of one check over some partitions; ``passed`` when there is no finding."""

    name: str
    checked: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def failed_dates(self) -> list[pd.Timestamp]:
        return sorted({f.date for f in self.findings})

    def summary(self, limit: int = 5) -> str:
        if self.passed:
            return f"{self.name}: {self.checked} partition(s) clean"
        lines = [f.line() for f in self.findings[:limit]]
        more = len(self.findings) - limit
        tail = f" (+{more} more)" if more > 0 else ""
        return (f"{self.name}: {len(self.findings)} finding(s) in {len(self.failed_dates)} partition(s): "
                + "; ".join(lines) + tail)

    def only(self, date: pd.Timestamp) -> CheckReport:
        """This report restricted to one partition (each partition's check result is its own)."""
        return CheckReport(self.name, 1, [f for f in self.findings if f.date == date])

    def metadata(self, limit: int = 20) -> dict:
        """Plain values for the check's metadata: the failed partitions drive the repair sensor."""
        return {
            "failed_partitions": [d.strftime("%Y-%m-%d") for d in self.failed_dates],
            "n_findings": len(self.findings),
            "partitions_checked": self.checked,
            "findings": [f.line() for f in self.findings[:limit]],
        }


def _fields(frame: pd.DataFrame) -> list[str]:
    return [c for c in (*PRICE_FIELDS, "volume") if c in frame.columns]


# per-partition problems of prices ---------------------------------------------------------------

def bad_price_symbols(frame: pd.DataFrame) -> dict[str, str]:
    """Symbols whose bar on this partition cannot be used as it is: NaN field or non-positive price."""
    bad: dict[str, str] = {}
    symbols = frame["symbol"].to_numpy(dtype=object)
    for f in _fields(frame):
        values = frame[f].to_numpy(dtype="float64")
        for i in np.flatnonzero(np.isnan(values)):
            bad.setdefault(str(symbols[i]), f"NaN {f}")
        if f in PRICE_FIELDS:
            for i in np.flatnonzero(values <= 0):
                bad.setdefault(str(symbols[i]), f"non-positive {f} {values[i]:g}")
        elif f == "volume":
            for i in np.flatnonzero(values < 0):
                bad.setdefault(str(symbols[i]), f"negative volume {values[i]:g}")
    return bad


def check_price_values(prices: Mapping[pd.Timestamp, pd.DataFrame]) -> CheckReport:
    """No NaN in any bar field, no price <= 0, no negative volume."""
    report = CheckReport("price_values", len(prices))
    for d, frame in sorted(prices.items()):
        report.findings += [Finding(d, s, p) for s, p in sorted(bad_price_symbols(frame).items())]
    return report


def check_unique_bars(prices: Mapping[pd.Timestamp, pd.DataFrame]) -> CheckReport:
    """One bar per symbol, stamped with the partition's own date."""
    report = CheckReport("unique_bars", len(prices))
    for d, frame in sorted(prices.items()):
        symbols = frame["symbol"].to_numpy(dtype=object)
        other = _stamps(frame["date"]) != np.datetime64(pd.Timestamp(d).to_datetime64(), "ns")  # NaT: another
        for s in sorted(set(symbols[other])):
            report.findings.append(Finding(d, str(s), "bar stamped with another date"))
        if len(set(symbols)) < len(symbols):
            dup = frame["symbol"].duplicated(keep=False).to_numpy()
            for s in sorted(set(symbols[dup])):
                report.findings.append(Finding(d, str(s), "duplicate bars"))
    return report


def _stamps(column: pd.Series) -> np.ndarray:
    """A bar-date column as naive datetime64[ns] values (``pd.to_datetime`` for any other type)."""
    if column.dtype != "datetime64[ns]":
        column = pd.to_datetime(column)
        if getattr(column.dtype, "tz", None) is not None:  # compared as pandas compares them: never equal
            return np.full(len(column), np.datetime64("NaT"), dtype="datetime64[ns]")
    return column.to_numpy(dtype="datetime64[ns]")


def check_complete(prices: Mapping[pd.Timestamp, pd.DataFrame],
                   catalogs: Mapping[pd.Timestamp, pd.DataFrame], sessions=None) -> CheckReport:
    """On a trading day (some symbol has a bar, or ``sessions`` - the source's closed exchange sessions -
    holds the date), every active catalog symbol has one too.

    Without ``sessions`` a weekday without any bar is a market holiday, not a gap. Symbols the catalog
    marks inactive or excluded are not expected."""
    report = CheckReport("complete_bars", len(prices))
    sessions = set(sessions or ())
    for d, frame in sorted(prices.items()):
        if (not len(frame) and d not in sessions) or d not in catalogs:
            continue
        missing = sorted(set(_expected_symbols(catalogs[d])) - set(frame["symbol"].to_numpy(dtype=object)))
        report.findings += [Finding(d, str(s), "no bar on a trading day") for s in missing]
    return report


def _expected_symbols(cat: pd.DataFrame) -> np.ndarray:
    """The catalog's active symbols that data_repair has not excluded."""
    keep = cat["active"].to_numpy(dtype=bool)
    if "exclusion" in cat.columns:
        keep = keep & (cat["exclusion"] == "").to_numpy(dtype=bool)
    return cat["symbol"].to_numpy(dtype=object)[keep]


def _close_panel(prices: Mapping[pd.Timestamp, pd.DataFrame]) -> pd.DataFrame:
    parts = [f[["date", "symbol", "close"]] for f in prices.values() if len(f)]
    if not parts:
        return pd.DataFrame(dtype="float64")
    long = pd.concat(parts, ignore_index=True).drop_duplicates(["date", "symbol"], keep="last")
    return long.pivot(index="date", columns="symbol", values="close").sort_index()


def check_returns(prices: Mapping[pd.Timestamp, pd.DataFrame], history: Mapping[pd.Timestamp, pd.DataFrame],
                  cfg: QualityConfig) -> CheckReport:
    """|ln(close_D / last earlier close)| <= cfg.max_abs_log_return (``history`` holds earlier partitions)."""
    report = CheckReport("plausible_returns", len(prices))
    close = _close_panel({**history, **prices})
    if close.empty:
        return report
    logret = np.log(close.ffill()).diff()
    values = logret.where(close.notna()).to_numpy(dtype="float64")
    beyond = np.abs(values) > cfg.max_abs_log_return  # NaN: not beyond
    rows, symbols = _row_of(close.index), close.columns
    for d in sorted(prices):
        i = rows.get(d)
        if i is None:
            continue
        for j in np.flatnonzero(beyond[i]):
            report.findings.append(Finding(d, str(symbols[j]),
                                           f"log return {values[i, j]:+.3f} beyond +/-{cfg.max_abs_log_return}"))
    return report


def _row_of(index: pd.Index) -> dict:
    """Row position of each date of a close panel's (unique, sorted) index."""
    return {pd.Timestamp(d): i for i, d in enumerate(index)}


def check_fresh(prices: Mapping[pd.Timestamp, pd.DataFrame], history: Mapping[pd.Timestamp, pd.DataFrame],
                catalogs: Mapping[pd.Timestamp, pd.DataFrame], cfg: QualityConfig) -> CheckReport:
    """Stale closes (unchanged over ``cfg.stale_bars`` consecutive bars) and symbols that stopped
    reporting (listed, had bars, but none for longer than the manifest's max_stale_days)."""
    report = CheckReport("fresh_prices", len(prices))
    close = _close_panel({**history, **prices})
    if not close.empty:
        unchanged = close.diff().eq(0.0).to_numpy()
        counts = np.zeros(unchanged.shape, dtype=np.int64)  # consecutive unchanged closes ending at each row
        for i in range(1, len(counts)):
            counts[i] = np.where(unchanged[i], counts[i - 1] + 1, 0)
        rows, symbols = _row_of(close.index), close.columns
        for d in sorted(prices):
            i = rows.get(d)
            if i is None:
                continue
            for j in np.flatnonzero(counts[i] >= cfg.stale_bars - 1):
                report.findings.append(Finding(d, str(symbols[j]), f"close unchanged for {int(counts[i, j]) + 1} bars"))
    for d in sorted(prices):
        cat = catalogs.get(d)
        if cat is None or not len(cat):
            continue
        last_bar = cat["last_bar"]
        quiet = ~cat["active"].to_numpy(dtype=bool) & last_bar.notna().to_numpy()
        if "exclusion" in cat.columns:  # excluded by data_repair: already handled, with its reason
            quiet &= (cat["exclusion"] == "").to_numpy(dtype=bool)
        if not quiet.any():
            continue
        for s, last in zip(cat["symbol"].to_numpy(dtype=object)[quiet], last_bar.to_numpy(dtype=object)[quiet],
                           strict=True):
            report.findings.append(Finding(d, str(s), f"stopped reporting: last bar {pd.Timestamp(last).date()}"))
    return report


# downstream stages -------------------------------------------------------------------------------

def selection_caps(manifest) -> tuple[int, int]:
    """Largest long and short books selection may publish: the manifest's caps, or a regime preset's larger
    ``max_symbols`` (applied on the dates it is active); no short book unless it is enabled or a scan
    screens for the short side."""
    sel = manifest.selection
    long_cap = max([sel.max_symbols, *(p.max_symbols for p in manifest.regime_presets.values() if p.max_symbols)])
    short_scan = any(s.direction == "short" for s in getattr(manifest.source, "scans", None) or [])
    return long_cap, (sel.short.max_symbols if sel.short.enabled or short_scan else 0)


def check_selection_size(selections: Mapping[pd.Timestamp, pd.DataFrame], max_symbols: int,
                         cfg: QualityConfig, max_short: int = 0) -> CheckReport:
    """Per book: at most ``max_symbols`` long and ``max_short`` short names selected; at least
    ``cfg.min_selected`` long names when that many were ranked."""
    report = CheckReport("selection_size", len(selections))
    for d, frame in sorted(selections.items()):
        short = (frame["direction"] == "short").to_numpy(dtype=bool) if "direction" in frame.columns else \
            np.zeros(len(frame), dtype=bool)
        chosen = frame["selected"].to_numpy(dtype=bool)
        n, n_short = int((chosen & ~short).sum()), int((chosen & short).sum())
        ranked = int((~short & frame["momentum_pct"].notna().to_numpy()).sum()) if "momentum_pct" in frame.columns \
            else n
        if n > max_symbols:
            report.findings.append(Finding(d, "", f"{n} long symbols selected, more than selection.max_symbols "
                                                  f"{max_symbols}"))
        elif n < min(cfg.min_selected, ranked):
            report.findings.append(Finding(d, "", f"{n} long symbols selected out of {ranked} ranked, fewer "
                                                  f"than quality.min_selected {cfg.min_selected}"))
        if n_short > max_short:
            report.findings.append(Finding(d, "", f"{n_short} short symbols selected, more than "
                                                  f"selection.short.max_symbols {max_short}"))
    return report


def check_weights(tournaments: Mapping[pd.Timestamp, pd.DataFrame], cfg: QualityConfig,
                  limits: Mapping[str, object] | None = None) -> CheckReport:
    """Per candidate: no NaN weight, each against its own book (``limits``: candidate ->
    :class:`~tvquant_assets.core.book_fit.BookLimits`; absent: long only): long only (none negative, sum
    1), short only (none positive, sum -1) or long/short (sum = net, gross at most its limit); |w| within
    its cap; an empty universe holds nothing."""
    report = CheckReport("tournament_weights", len(tournaments))
    tol = cfg.weight_tolerance
    limits = limits or {}
    for d, frame in sorted(tournaments.items()):
        if frame.empty:
            continue
        cand = frame["candidate"].to_numpy(dtype=object)
        sym = frame["symbol"].to_numpy(dtype=object)
        weight = frame["weight"].to_numpy(dtype="float64")
        caps = frame["max_weight"].to_numpy(dtype="float64")
        status = frame["status"].to_numpy(dtype=object) if "status" in frame.columns else None
        for name in sorted({c for c in cand if not pd.isna(c)}):  # as groupby(sort=True): NaN keys dropped
            at = np.flatnonzero(cand == name)
            live = at[sym[at] != ""]
            w, cap = weight[live], caps[live]
            if np.isnan(w).any():
                report.findings.append(Finding(d, str(name), "NaN weight"))
                continue
            lim = limits.get(str(name))
            if lim is not None and lim.book != "long":
                report.findings.extend(Finding(d, str(name), f) for f in _book_findings(
                    sym[live], w, cap, lim, tol, str(status[at[0]]) if status is not None else ""))
                continue
            if (w < -tol).any():
                report.findings.append(Finding(d, str(name), f"negative weight {w.min():.6g}"))
            over = w > cap + tol
            if over.any():
                i = int(np.argmax(w - cap))
                report.findings.append(Finding(d, str(name), f"{sym[live][i]} weight {w[i]:.6g} above "
                                                             f"cap {cap[i]:.6g}"))
            if len(live) and abs(w.sum() - 1.0) > tol:
                report.findings.append(Finding(d, str(name), f"weights sum to {w.sum():.9g}, not 1"))
    return report


def _book_findings(symbols: np.ndarray, w: np.ndarray, cap: np.ndarray, lim, tol: float, status: str) -> list[str]:
    """What breaks a short-only or long/short book's limits (``one_book_empty``: the net is not required)."""
    out = []
    over = np.abs(w) > cap + tol
    if over.any():
        i = int(np.argmax(np.abs(w) - cap))
        out.append(f"{symbols[i]} |weight| {abs(w[i]):.6g} above cap {cap[i]:.6g}")
    if not len(symbols):
        return out
    if lim.book == "short":
        if (w > tol).any():
            out.append(f"positive weight {w.max():.6g} in a short-only book")
        if abs(w.sum() + 1.0) > tol:
            out.append(f"weights sum to {w.sum():.9g}, not -1")
        return out
    gross = float(np.abs(w).sum())
    if gross > lim.gross + max(tol, 1e-5):
        out.append(f"gross {gross:.9g} above the limit {lim.gross:g}")
    if status != "one_book_empty" and abs(w.sum() - lim.net) > max(tol, 1e-5):
        out.append(f"weights sum to {w.sum():.9g}, not the net {lim.net:g}")
    return out


def check_equity(backtests: Mapping[pd.Timestamp, pd.DataFrame]) -> CheckReport:
    """Every candidate's equity is a finite positive number."""
    report = CheckReport("backtest_equity", len(backtests))
    for d, frame in sorted(backtests.items()):
        eq = frame["equity"].to_numpy(dtype="float64")
        for i in np.flatnonzero(~np.isfinite(eq) | (eq <= 0)):
            report.findings.append(Finding(d, str(frame["candidate"].iloc[i]), f"equity {eq[i]}"))
    return report
