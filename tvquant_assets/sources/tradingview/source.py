"""The live TradingView source: screener scans pick the universe, the chart websocket fills daily bars.

Everything fetched is kept under ``<lake>/_sources/tradingview/``: one parquet per symbol of daily bars
(plus a coverage note), one universe snapshot per day and preset set, and the SCD-2 catalog built from
those snapshots. A symbol's bars are written only after its whole fetch succeeded, atomically.
Only completed bars are kept: a bar stamped today (UTC, or ``TVQUANT_TODAY``) is still forming.
"""

from __future__ import annotations

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
from tvquant_assets.sources.tradingview import calendars, catalog, fields, quality, universe
from tvquant_assets.sources.tradingview.presets import resolve_preset, scan_filters
from tvquant_assets.sources.tradingview.screener import RetryPolicy, ScreenerClient
from tvquant_assets.sources.tradingview.websocket import ChartClient

TODAY_ENV = "TVQUANT_TODAY"
FIELDS = ("open", "high", "low", "close", "volume")


def today() -> pd.Timestamp:
    env = os.environ.get(TODAY_ENV)
    return pd.Timestamp(env).normalize() if env else pd.Timestamp.now("UTC").tz_localize(None).normalize()


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
                                 self.cfg.time_budget_s)
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

    def catalog_as_of(self, frames: dict[pd.Timestamp, pd.DataFrame]) -> dict[pd.Timestamp, pd.DataFrame]:
        """Each date's exchange, type, sector, industry and currency from the SCD-2 version valid then;
        ``attributes_as_of`` names the version's first day (dates before the first snapshot use the
        earliest version: the screener has no older history)."""
        hist = self.catalog_history()
        earliest = hist.sort_values("valid_from", kind="stable").drop_duplicates("symbol").set_index("symbol")
        cols = ["exchange", "type", "sector", "industry", "currency"]
        out = {}
        for d, f in frames.items():
            valid = catalog.as_of(hist, d).set_index("symbol")
            f = f.copy()
            syms = f["symbol"]
            for c in cols:
                now, first = valid[c].to_dict(), earliest[c].to_dict()
                f[c] = [str(now.get(s, first.get(s, old))) for s, old in zip(syms, f[c], strict=True)]
            now, first = valid["valid_from"].to_dict(), earliest["valid_from"].to_dict()
            f["attributes_as_of"] = pd.to_datetime([now.get(s, first.get(s)) for s in syms]).astype("datetime64[ns]")
            out[d] = f
        return out

    def catalog(self) -> pd.DataFrame:
        rows = catalog.catalog_rows(self.snapshot())
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

    def ensure(self, ticker: str, start: pd.Timestamp, end: pd.Timestamp) -> None:
        """Fetch what the store lacks of [start, end] for one symbol (older history, then newer bars)."""
        now = today()
        end = min(pd.Timestamp(end).normalize(), now - pd.Timedelta(days=1))
        cov = self.coverage(ticker)
        need_old = cov is None or start < pd.Timestamp(cov["from"])
        last = calendars.last_session(self.cfg.exchange_calendar, end)
        need_new = cov is not None and last is not None and last > pd.Timestamp(cov["to"])
        if not (need_old or need_new):
            return
        if need_old:
            bars, _ = self.chart.history(ticker, start)
            lo = start if cov is None else min(start, pd.Timestamp(cov["from"]))
        else:
            n = calendars.missing_sessions(self.cfg.exchange_calendar, cov["to"], now) + 2
            bars, _ = self.chart.history(ticker, pd.Timestamp(cov["to"]), first_request=n)
            lo = pd.Timestamp(cov["from"])
        old = self.stored_bars(ticker)
        merged = pd.concat([old, bars], ignore_index=True) if old is not None else bars
        merged = merged.drop_duplicates("date", keep="last").sort_values("date")
        merged = merged[merged["date"] < now].reset_index(drop=True)
        hi = end if cov is None else max(end, pd.Timestamp(cov["to"]))
        self._write(self._bars_path(ticker), merged)
        atomic_write_bytes(self._coverage_path(ticker),
                           json.dumps({"from": f"{lo:%Y-%m-%d}", "to": f"{hi:%Y-%m-%d}"}).encode())

    def history(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        lo = max(pd.Timestamp(start), pd.Timestamp(self.cfg.history_start))
        hi = min(pd.Timestamp(end), today() - pd.Timedelta(days=1))
        parts = []
        for sym in sorted(set(symbols)):
            if lo <= hi:
                try:
                    self.ensure(sym, lo, hi)
                except SourceError as exc:  # one symbol's failure is recorded, the others go on
                    self.failures[sym] = str(exc)
                    continue
            bars = self.stored_bars(sym)
            if bars is not None and len(bars):
                parts.append(bars.assign(symbol=sym))
        if symbols and len(self.failures) >= len(set(symbols)):
            first = next(iter(self.failures.values()))
            raise SourceError(f"tradingview: no history for any symbol; first error: {first}")
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
