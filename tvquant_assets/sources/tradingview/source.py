"""The live TradingView source: screener scans pick the universe, the chart websocket fills daily bars.

Everything fetched is kept under ``<lake>/_sources/tradingview/``: one parquet per symbol of daily bars
(plus a coverage note: the dates the received bars really cover), one universe snapshot per day and
preset set, the SCD-2 catalog built from those snapshots, and beside them ``failed_symbols.json`` (the
symbols whose last fetch failed, with the cause). A symbol's bars are written only after its whole fetch succeeded,
atomically. Bars are dated by their session's trading date in ``source.exchange_calendar``, and a bar whose
session has not closed yet (at ``now()``: the clock, ``TVQUANT_NOW`` or midnight UTC of ``TVQUANT_TODAY``)
is never stored.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re

import pandas as pd
from upath import UPath

from tvquant_assets.errors import SourceError
from tvquant_assets.hashing import obj_hash
from tvquant_assets.lake.store import atomic_write_bytes, default_lake_root, to_parquet_bytes
from tvquant_assets.sources.base import CATALOG_COLUMNS, Source
from tvquant_assets.sources.tradingview import auth, calendars, catalog, fields, quality, universe
from tvquant_assets.sources.tradingview.presets import resolve_preset, scan_filters
from tvquant_assets.sources.tradingview.screener import RetryPolicy, ScreenerClient
from tvquant_assets.sources.tradingview.websocket import ChartClient

TODAY_ENV = "TVQUANT_TODAY"
NOW_ENV = "TVQUANT_NOW"
FIELDS = ("open", "high", "low", "close", "volume")


def now() -> pd.Timestamp:
    """The current instant, UTC (tz-aware): ``TVQUANT_NOW``, else midnight UTC of ``TVQUANT_TODAY``, else the clock."""
    env = os.environ.get(NOW_ENV) or os.environ.get(TODAY_ENV)
    t = pd.Timestamp(env) if env else pd.Timestamp.now("UTC")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def today() -> pd.Timestamp:
    """The UTC date of ``now()`` (tz-naive): the date a screener snapshot taken now is filed under."""
    return now().tz_localize(None).normalize()


def file_key(ticker: str) -> str:
    """``BINANCE:BTCUSDT.P`` -> ``BINANCE-3aBTCUSDT.P``: a safe file name that maps back one to one."""
    return re.sub(r"[^A-Za-z0-9_.]", lambda m: f"-{ord(m.group()):02x}", ticker)


class TradingViewSource(Source):
    name = "tradingview"
    fields = FIELDS

    def __init__(self, **params) -> None:
        from tvquant_assets.manifest.schema import TradingViewSourceConfig

        self.cfg = TradingViewSourceConfig(kind="tradingview", **params)
        calendars.check_calendar(self.cfg.exchange_calendar)
        self.attach_lake(default_lake_root())
        policy = RetryPolicy(self.cfg.max_attempts, self.cfg.backoff_s)
        self.screener = ScreenerClient(self.cfg.scanner_url, policy, self.cfg.timeout_s)
        self.chart = ChartClient(self.cfg.websocket_url, policy, self.cfg.timeout_s, self.cfg.bars_per_request,
                                 self.cfg.time_budget_s, auth_token=auth.TokenProvider(self.cfg.auth_url, policy,
                                                                                       self.cfg.timeout_s))
        self.failures: dict[str, str] = {}

    def attach_lake(self, root) -> None:
        self.root = UPath(str(root)) / "_sources" / "tradingview"
        scan_keys = self.cfg.model_dump(mode="json", include={"scans", "presets", "quote_priority",
                                                              "alternatives", "max_symbols"})
        self.scan_dir = self.root / "screener" / obj_hash(scan_keys)[:16]

    # screener -----------------------------------------------------------------------------------------
    def _preset(self, name: str) -> dict:
        return resolve_preset(name, self.cfg.presets)

    @functools.cached_property
    def _market(self) -> str:
        return self._preset(self.cfg.scans[0].preset)["market"]

    def _read(self, path) -> pd.DataFrame | None:
        return pd.read_parquet(str(path)) if path.exists() else None

    def _write(self, path, frame: pd.DataFrame) -> None:
        atomic_write_bytes(path, to_parquet_bytes(frame))

    def run_scans(self) -> pd.DataFrame:
        """Run every scan now: the merged, one-venue-per-base universe with its alternatives."""
        results = []
        for scan in self.cfg.scans:
            preset = self._preset(scan.preset)
            results.append((scan.preset, scan.direction, self.screener.scan(preset, scan.direction)))
        first = self._preset(self.cfg.scans[0].preset)
        pool = universe.merge_pool(results)
        uni = universe.one_venue_per_base(pool, first.get("base_field", "name"), self.cfg.quote_priority)
        if len(uni):
            vt = pd.to_numeric(uni["Value.Traded"], errors="coerce").fillna(0.0)
            uni = uni.assign(_vt=-vt).sort_values(["direction", "_vt", "ticker"], kind="stable")
            uni = uni.groupby("direction", sort=True).head(self.cfg.max_symbols).drop(columns="_vt")
            uni = uni.sort_values(["direction", "ticker"], kind="stable").reset_index(drop=True)
        if self.cfg.alternatives:
            alt_preset = self._preset(self.cfg.alternatives)
            alt = self.screener.scan(alt_preset, "neutral")
            alts = universe.alternatives(uni, alt, alt_preset.get("base_field", "name"), self.cfg.quote_priority)
            uni = uni.merge(alts, on="ticker", how="left")
        for c in uni.columns:  # screener values may mix types (lists, None): keep them as text
            if uni[c].dtype == object:
                uni[c] = uni[c].map(lambda v: "" if v is None else v if isinstance(v, str) else json.dumps(v))
        return uni

    def snapshot(self, date=None) -> pd.DataFrame:
        """The universe snapshot of ``date`` (default today): read if stored, else scanned now and stored
        (only today can be scanned: the screener has no history)."""
        d = pd.Timestamp(date).normalize() if date is not None else today()
        path = self.scan_dir / f"{d:%Y-%m-%d}.parquet"
        stored = self._read(path)
        if stored is not None:
            return stored
        if d != today():
            raise SourceError(f"tradingview: no screener snapshot for {d.date()} (only today's can be taken)")
        uni = self.run_scans()
        if uni.empty:
            raise SourceError("tradingview: the scans returned no symbols; loosen the presets' filters")
        self._write(path, uni)
        self._update_catalog(d, uni)
        return uni

    def snapshot_dates(self) -> list[pd.Timestamp]:
        if not self.scan_dir.exists():
            return []
        return sorted(pd.Timestamp(p.stem) for p in self.scan_dir.glob("????-??-??.parquet"))

    def _update_catalog(self, d: pd.Timestamp, uni: pd.DataFrame) -> None:
        path = self.scan_dir / "catalog_scd2.parquet"
        hist = self._read(path)
        if hist is not None and len(hist) and hist["valid_from"].max() >= d:
            return  # this date is applied already
        self._write(path, catalog.scd2_update(hist, catalog.catalog_rows(uni), d))

    def catalog_history(self) -> pd.DataFrame:
        self.snapshot()
        return pd.read_parquet(str(self.scan_dir / "catalog_scd2.parquet"))

    def as_of(self, date) -> pd.DataFrame:
        """The point-in-time catalog on ``date`` (SCD-2 versions valid then)."""
        return catalog.as_of(self.catalog_history(), date)

    def universe_snapshot_date(self, date, dates: list[pd.Timestamp] | None = None) -> tuple[pd.Timestamp, bool]:
        """The screener snapshot that is D's universe: the latest one <= D, else the first (``True``: D is
        before the first snapshot, so its universe comes from a later scan: survivorship)."""
        if dates is None:
            self.snapshot()
            dates = self.snapshot_dates()
        d = pd.Timestamp(date).normalize()
        before = [s for s in dates if s <= d]
        return (before[-1], False) if before else (dates[0], True)

    def catalog_as_of(self, frames: dict[pd.Timestamp, pd.DataFrame]) -> dict[pd.Timestamp, pd.DataFrame]:
        """Each date's members and attributes point in time: the symbols of D's universe snapshot
        (``universe_as_of``: its date; after D when D precedes the first snapshot), exchange, type, sector,
        industry and currency from the SCD-2 version valid then (``attributes_as_of``: the version's first
        day, the earliest version before the first snapshot), and the implementation alternative of D
        (``alt_ticker``: e.g. the perpetual to trade for a spot pair; empty when none)."""
        hist = self.catalog_history()
        earliest = hist.sort_values("valid_from", kind="stable").drop_duplicates("symbol").set_index("symbol")
        cols = ["exchange", "type", "sector", "industry", "currency"]
        self.snapshot()
        snap_dates, snaps, out = self.snapshot_dates(), {}, {}
        for d, f in frames.items():
            snap_day, _ = self.universe_snapshot_date(d, snap_dates)
            if snap_day not in snaps:
                snaps[snap_day] = self.snapshot(snap_day).drop_duplicates("ticker").set_index("ticker")
            snap = snaps[snap_day]
            f = f[f["symbol"].isin(snap.index)].reset_index(drop=True)
            valid = catalog.as_of(hist, d).set_index("symbol")
            syms = f["symbol"]
            for c in cols:
                now_, first = valid[c].to_dict(), earliest[c].to_dict()
                f[c] = [str(now_.get(s, first.get(s, old))) for s, old in zip(syms, f[c], strict=True)]
            now_, first = valid["valid_from"].to_dict(), earliest["valid_from"].to_dict()
            f["attributes_as_of"] = pd.to_datetime([now_.get(s, first.get(s)) for s in syms]).astype("datetime64[ns]")
            f["universe_as_of"] = pd.Series(snap_day, index=f.index, dtype="datetime64[ns]")
            alt = snap["alt_ticker"].to_dict() if "alt_ticker" in snap else {}
            f["alt_ticker"] = ["" if pd.isna(a := alt.get(s, "")) else str(a) for s in syms]  # NaN: none
            out[d] = f
        return out

    def catalog(self) -> pd.DataFrame:
        """Every symbol of every stored snapshot (newest attributes first): the catalog stage narrows each
        date to its own snapshot in ``catalog_as_of``."""
        self.snapshot()
        parts = [catalog.catalog_rows(self.snapshot(d)) for d in reversed(self.snapshot_dates())]
        rows = pd.concat(parts, ignore_index=True).drop_duplicates("symbol", keep="first")
        return rows[CATALOG_COLUMNS].sort_values("symbol").reset_index(drop=True)

    def directions(self) -> pd.DataFrame:
        return self.snapshot()[["ticker", "direction"]].rename(columns={"ticker": "symbol"})

    def alternatives(self) -> pd.DataFrame:
        cols = ["ticker", "alt_ticker", "alt_exchange", "alt_type"]
        snap = self.snapshot()
        if "alt_ticker" not in snap:
            return pd.DataFrame(columns=cols)
        return snap.loc[snap["alt_ticker"].notna() & (snap["alt_ticker"] != ""), cols].drop_duplicates("ticker")

    def live_parity(self) -> pd.DataFrame:
        """Stored catalog (latest SCD-2 versions before today) against a fresh screener snapshot."""
        hist = self.catalog_history()
        stored = catalog.as_of(hist, today() - pd.Timedelta(days=1))
        if stored.empty:
            stored = catalog.as_of(hist, today())
        live = catalog.catalog_rows(self.run_scans())
        return catalog.parity(stored, live[live["symbol"].isin(stored["symbol"])], list(self.cfg.parity.fields))

    # bars ---------------------------------------------------------------------------------------------
    def _bars_path(self, ticker: str):
        return self.root / "ohlcv" / f"{file_key(ticker)}.parquet"

    def _coverage_path(self, ticker: str):
        return self.root / "ohlcv" / f"{file_key(ticker)}.json"

    def coverage(self, ticker: str) -> dict | None:
        p = self._coverage_path(ticker)
        return json.loads(p.read_text()) if p.exists() and self._bars_path(ticker).exists() else None

    def stored_bars(self, ticker: str) -> pd.DataFrame:
        return self._read(self._bars_path(ticker)) if self.coverage(ticker) else None

    def last_closed(self) -> pd.Timestamp | None:
        """The newest trading date whose session has closed now (in the exchange calendar)."""
        return calendars.last_closed_session(self.cfg.exchange_calendar, now())

    def partitions_end(self, when: dt.datetime) -> dt.date | None:
        """The last partition date with data at ``when``: the newest closed session of the exchange calendar."""
        t = pd.Timestamp(when)
        d = calendars.last_closed_session(self.cfg.exchange_calendar, t)
        return None if d is None else d.date()

    def _write_bars(self, ticker: str, bars: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp) -> None:
        self._write(self._bars_path(ticker), bars.reset_index(drop=True))
        atomic_write_bytes(self._coverage_path(ticker),
                           json.dumps({"from": f"{lo:%Y-%m-%d}", "to": f"{hi:%Y-%m-%d}"}).encode())

    def ensure(self, ticker: str, start: pd.Timestamp, end: pd.Timestamp) -> None:
        """Fetch what the store lacks of [start, end] for one symbol (older history, then newer bars).
        Coverage records only what was received: back to ``start`` when the bars reach it or the server
        said its history ends, else back to the earliest bar received."""
        closed = self.last_closed()
        if closed is None:
            return
        end = min(pd.Timestamp(end).normalize(), closed)
        cov = self.coverage(ticker)
        need_old = cov is None or start < pd.Timestamp(cov["from"])
        last = calendars.last_session(self.cfg.exchange_calendar, end)
        need_new = cov is not None and last is not None and last > pd.Timestamp(cov["to"])
        if not (need_old or need_new):
            return
        cal = self.cfg.exchange_calendar
        if need_old:
            bars, info = self.chart.history(ticker, start, calendar=cal)
            reached = info.get("_history_ended") or (len(bars) and bars["date"].min() <= start)
            lo = start if reached else (bars["date"].min() if len(bars) else closed)
            if cov is not None:
                lo = min(lo, pd.Timestamp(cov["from"]))
        else:
            n = calendars.missing_sessions(cal, cov["to"], today()) + 2  # the open session and an overlap
            bars, _ = self.chart.history(ticker, pd.Timestamp(cov["to"]), first_request=n, calendar=cal)
            lo = pd.Timestamp(cov["from"])
        old = self.stored_bars(ticker)
        merged = pd.concat([old, bars], ignore_index=True) if old is not None else bars
        merged = merged.drop_duplicates("date", keep="last").sort_values("date")
        merged = merged[merged["date"] <= closed]  # a session still open is never stored
        hi = end if cov is None else max(end, pd.Timestamp(cov["to"]))
        self._write_bars(ticker, merged, lo, hi)

    def refetch(self, symbols: list[str], start, end) -> None:
        """Download [start, end] of ``symbols`` again and replace the stored bars of those dates (the
        data_repair job's re-fetch: the coverage record does not stop it). Failures are recorded."""
        start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        closed = self.last_closed()
        if closed is None:
            return
        for sym in sorted(set(symbols)):
            cov = self.coverage(sym)
            if cov is None:
                continue  # never fetched: history() downloads it whole
            try:
                bars, _ = self.chart.history(sym, start, calendar=self.cfg.exchange_calendar)
            except SourceError as exc:
                self.failures[sym] = str(exc)
                continue
            bars = bars[(bars["date"] >= start) & (bars["date"] <= min(end, closed))]
            old = self.stored_bars(sym)
            keep = old[(old["date"] < start) | (old["date"] > end)]
            merged = pd.concat([keep, bars], ignore_index=True).drop_duplicates("date", keep="last")
            merged = merged.sort_values("date")
            self._write_bars(sym, merged, pd.Timestamp(cov["from"]), max(pd.Timestamp(cov["to"]), min(end, closed)))

    def failures_path(self):
        return self.scan_dir / "failed_symbols.json"  # per universe: manifests sharing bars keep their own

    def failed_symbols(self) -> dict[str, dict]:
        """Symbols whose last fetch failed: ``{symbol: {"error": cause, "at": when}}``."""
        p = self.failures_path()
        return json.loads(p.read_text()) if p.exists() else {}

    def _record_failures(self, tried: set[str]) -> None:
        known = self.failed_symbols()
        at = f"{now():%Y-%m-%dT%H:%M:%SZ}"
        updated = {s: v for s, v in known.items() if s not in tried or s in self.failures}
        updated.update({s: {"error": e, "at": at} for s, e in self.failures.items() if s in tried})
        if updated != known:
            atomic_write_bytes(self.failures_path(), json.dumps(updated, indent=1, sort_keys=True).encode())

    def history(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        lo = max(pd.Timestamp(start), pd.Timestamp(self.cfg.history_start))
        closed = self.last_closed()
        hi = min(pd.Timestamp(end), closed) if closed is not None else lo - pd.Timedelta(days=1)
        parts = []
        tried = set(symbols) if lo <= hi else set()
        for sym in sorted(set(symbols)):
            if lo <= hi:
                try:
                    self.ensure(sym, lo, hi)
                    self.failures.pop(sym, None)
                except SourceError as exc:  # one symbol's failure is recorded, the others go on
                    self.failures[sym] = str(exc)
                    continue
            bars = self.stored_bars(sym)
            if bars is not None and len(bars):
                parts.append(bars.assign(symbol=sym))
        self._record_failures(tried)
        failed = sorted(s for s in tried if s in self.failures)
        if symbols and tried and len(failed) >= len(set(symbols)):
            first = self.failures[failed[0]]
            raise SourceError(f"tradingview: no history for any symbol; first error: {first}")
        if failed and self.cfg.failed_symbols == "fail":
            raise SourceError(f"tradingview: {len(failed)} symbol(s) failed (source.failed_symbols: fail): "
                              + "; ".join(f"{s}: {self.failures[s]}" for s in failed[:5]))
        if not parts:
            return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"), "symbol": pd.Series(dtype=str),
                                 **{f: pd.Series(dtype="float64") for f in FIELDS}})
        long = pd.concat(parts, ignore_index=True)
        long = long[(long["date"] >= pd.Timestamp(start)) & (long["date"] <= pd.Timestamp(end))]
        return long[["date", "symbol", *FIELDS]].sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)

    def first_dates(self) -> pd.Series:
        bars = self.history(list(self.catalog()["symbol"]), pd.Timestamp(self.cfg.history_start), today())
        return bars.groupby("symbol")["date"].min()

    def toxic_flags(self, symbols: list[str]) -> pd.DataFrame:
        """Toxic-data flags of the stored bars of ``symbols`` (see ``quality.toxic_flags``)."""
        t = self.cfg.toxic
        parts = [quality.toxic_flags(s, b, t.max_daily_return, t.frozen_bars, t.volume_spike, t.volume_window)
                 for s in sorted(set(symbols)) if (b := self.stored_bars(s)) is not None]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=quality.FLAG_COLUMNS)

    # scanner fields -----------------------------------------------------------------------------------
    def _pit_rules(self) -> list[tuple[str, dict]]:
        """(direction, rule) of every scan rule on a field we reconstruct, with a numeric threshold."""
        out = []
        for scan in self.cfg.scans:
            for rule in scan_filters(self._preset(scan.preset), scan.direction):
                if rule["left"] in fields.FIELD_COLUMNS and isinstance(rule.get("right"), (int, float)) \
                        and rule["operation"] in _COMPARE:
                    out.append((scan.direction, rule))
        return out

    def scan_fields(self, frames: dict[pd.Timestamp, pd.DataFrame]) -> dict[pd.Timestamp, pd.DataFrame]:
        """Add TradingView's scanner fields reconstructed from stored bars <= D (``tv_<field>``), the live
        screener value and its difference on dates with a snapshot (``live_<field>``, ``diff_<field>``),
        the toxic-data reason, and apply the scans' rules on those fields point in time."""
        if not frames:
            return frames
        dates = sorted(frames)
        symbols = sorted(set().union(*[set(f["symbol"]) for f in frames.values()]))
        values: dict[str, pd.DataFrame] = {}
        for s in symbols:
            bars = self.stored_bars(s)
            if bars is not None and len(bars):
                bars = bars[bars["date"] <= dates[-1]]
                values[s] = fields.scanner_fields(bars).reindex(pd.DatetimeIndex(dates), method="ffill")
        flags = self.toxic_flags(symbols)
        rules = self._pit_rules()
        snap = self.snapshot()
        directions = snap.groupby("ticker")["direction"].agg(lambda d: sorted(set(d))).to_dict()
        live_dates = set(self.snapshot_dates())
        out = {}
        for d in dates:
            f = frames[d].copy()
            syms = list(f["symbol"])
            table = pd.DataFrame([values[s].loc[d] if s in values else pd.Series(dtype="float64") for s in syms],
                                 columns=fields.FIELD_COLUMNS).reset_index(drop=True)
            for c in fields.FIELD_COLUMNS:
                f[f"tv_{c}"] = table[c].to_numpy(dtype="float64")
            if d in live_dates:
                live = self.snapshot(d).drop_duplicates("ticker").set_index("ticker")
                for c in fields.FIELD_COLUMNS:
                    lv = pd.to_numeric(live[c], errors="coerce").reindex(syms).to_numpy(dtype="float64") \
                        if c in live else pd.Series(float("nan"), index=syms).to_numpy()
                    f[f"live_{c}"] = lv
                    f[f"diff_{c}"] = lv - f[f"tv_{c}"].to_numpy()
            f["toxic"] = quality.reason_as_of(flags, syms, d).to_numpy() if len(flags) else ""
            f["direction"] = ""
            reason = f["reason"].to_numpy(dtype=object).copy()
            eligible = f["eligible"].to_numpy(dtype=bool).copy()
            for i, s in enumerate(syms):
                passed, why = [], ""
                for direction in directions.get(s, ["long"]):
                    fail = next((r for dd, r in rules if dd == direction and not _holds(r, f.at[i, f"tv_{r['left']}"])),
                                None)
                    if fail is None:
                        passed.append(direction)
                    elif not why:
                        why = (f"{direction} rule {fail['left']} {fail['operation']} {fail['right']} fails "
                               f"({f.at[i, 'tv_' + fail['left']]:.4g})")
                f.at[i, "direction"] = ",".join(passed)
                if eligible[i] and f.at[i, "toxic"]:
                    eligible[i], reason[i] = False, f"toxic: {f.at[i, 'toxic']}"
                elif eligible[i] and not passed:
                    eligible[i], reason[i] = False, why
            f["eligible"], f["reason"] = eligible, reason.astype(str)
            out[d] = f
        return out


_COMPARE = {"greater": lambda a, b: a > b, "egreater": lambda a, b: a >= b, "less": lambda a, b: a < b,
            "eless": lambda a, b: a <= b}


def _holds(rule: dict, value: float) -> bool:
    """A rule on a reconstructed value; unknown (NaN) fails."""
    return bool(value == value and _COMPARE[rule["operation"]](value, rule["right"]))
