"""The user's own prices: CSV or parquet files, long (date, symbol, fields) or wide (one file per field).

Layouts
    ``long``: every file holds rows ``date, symbol, <fields>``; ``wide``: one file per field, named after
    it (``close.csv``, ``volume.parquet``), first column (or ``date``) the date and one column per symbol (an
    empty cell: no bar that day).
Fields
    ``open, high, low, close, volume`` (close required), plus ``adj_close`` (the vendor's adjusted close),
    ``dividend`` (cash per share, on its ex-date) and ``split`` (new shares per old share on the split's
    date, e.g. 2 for a 2-for-1). ``adjust`` says how they are used (``docs/files.md``): ``none`` keeps the
    closes as they are; ``adjusted_close`` uses ``adj_close`` as the close and scales open/high/low by the
    same ratio (the vendor adjusts history with later actions: returns right, old levels not point in time);
    ``total_return`` builds a point-in-time total-return close forward from the first bar,
    ``c_t = c_{t-1} * (close_t * split_t + dividend_t) / close_{t-1}``, scaling open/high/low by ``c_t /
    close_t`` and volume by its inverse (value traded is kept). ``auto``: ``total_return`` when a dividend or
    split column is present, else ``adjusted_close`` when ``adj_close`` is, else ``none``.
Dates
    A date, or a date with a time, with or without a time zone. Stamps with a zone are converted to
    ``timezone``, stamps without one are read as local to it; a bar stamped at or after ``next_day_from``
    (local ``HH:MM``, e.g. a session that opens the evening before) belongs to the next date. The partition
    calendar then picks the partition dates, as for every source.
Bad input
    One :class:`SourceError` line naming the file, the line (CSV; the header is line 1) or row (parquet),
    and the column; the source refuses the whole set, so nothing of it reaches the lake.

Files are read with pyarrow (columnar, no per-row Python) once per process and set of files: a file whose
size or modification time changes is read again, so appended dates are picked up by the next run.
"""

from __future__ import annotations

import datetime as dt
import functools
import glob as globlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tvquant_assets.errors import BadDataError, SourceError
from tvquant_assets.sources.base import BAR_FIELDS, CATALOG_COLUMNS, Source

EXTRA_FIELDS = ("adj_close", "dividend", "split")
ALL_FIELDS = BAR_FIELDS + EXTRA_FIELDS
ALIASES = {
    "date": ("date", "datetime", "time", "timestamp", "day"),
    "symbol": ("symbol", "ticker", "instrument"),
    "open": ("open",), "high": ("high",), "low": ("low",), "close": ("close", "price"),
    "volume": ("volume", "vol"),
    "adj_close": ("adj_close", "adj close", "adjclose", "adjusted_close", "adjusted close"),
    "dividend": ("dividend", "dividends", "div"),
    "split": ("split", "splits", "split_factor", "split factor"),
}
POSITIVE = ("open", "high", "low", "close", "adj_close", "split")  # > 0; volume and dividend >= 0
MAX_DAILY_GAP_DAYS = 4.5  # a median gap between a symbol's bars above this is not daily data
_ZONE = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


@dataclass(frozen=True)
class _Where:
    """Row provenance: file index and 0-based data row, per parsed row."""

    files: tuple[str, ...]

    def at(self, file: int, row: int, column: str | None = None) -> str:
        path = self.files[file]
        pos = f"line {row + 2}" if path.lower().endswith(".csv") or path.lower().endswith(".csv.gz") \
            else f"row {row + 1}"
        return f"{path} {pos}" + (f", column {column}" if column else "")


def _fail(msg: str) -> SourceError:
    return BadDataError(f"source files: {msg}")


def _expand(pattern: str, what: str = "prices") -> list[str]:
    paths = sorted(globlib.glob(os.path.expanduser(pattern), recursive=True))
    paths = [p for p in paths if os.path.isfile(p) and _kind(p) is not None]
    if not paths:
        raise _fail(f"{what}: no CSV or parquet file matches {pattern!r}")
    return paths


def _kind(path: str) -> str | None:
    p = path.lower()
    if p.endswith(".csv") or p.endswith(".csv.gz"):
        return "csv"
    if p.endswith(".parquet") or p.endswith(".pq"):
        return "parquet"
    return None


def _stamp(paths) -> tuple:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((p, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _read_table(path: str):
    """A pyarrow table of the file (CSV types inferred by pyarrow; a bad value leaves its column text)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if _kind(path) == "csv":
            return pacsv.read_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 24),
                                  convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
        return pq.read_table(path)
    except Exception as exc:  # pyarrow's own message names the row for malformed CSV
        raise _fail(f"{path}: unreadable ({str(exc).splitlines()[0]})") from None


def _find_column(names: list[str], field: str, explicit: dict[str, str], path: str) -> str | None:
    if field in explicit:
        if explicit[field] not in names:
            raise _fail(f"{path}: no column {explicit[field]!r} (source.columns.{field}; columns: {', '.join(names)})")
        return explicit[field]
    lower = {n.strip().lower(): n for n in names}
    for alias in ALIASES[field]:
        if alias in lower:
            return lower[alias]
    return None


# dates -------------------------------------------------------------------------------------------------
def _dates(column, path: str, where: _Where, file: int, cfg: FilesConfig) -> tuple[np.ndarray, np.ndarray]:
    """Partition dates (datetime64[ns], midnight; zone and evening rule applied) and the local stamps."""
    import pyarrow as pa

    tz = cfg.timezone
    typ = column.type
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        ns = column.cast(pa.timestamp("ns", tz=getattr(typ, "tz", None)))
        values = pd.DatetimeIndex(ns.to_numpy().astype("datetime64[ns]") if not getattr(typ, "tz", None)
                                  else ns.cast(pa.int64()).to_numpy().astype("datetime64[ns]"))
        if getattr(typ, "tz", None):
            values = values.tz_localize("UTC").tz_convert(tz).tz_localize(None)
    else:
        text = pd.Series(column.cast(pa.string()).to_pandas(), dtype="object")
        blank = text.isna() | (text.astype(str).str.strip() == "")
        if blank.any():
            i = int(np.flatnonzero(blank.to_numpy())[0])
            raise _fail(f"{where.at(file, i, 'date')}: empty date")
        text = text.astype(str).str.strip()
        zoned = text.str.contains(_ZONE)
        if zoned.any() and not zoned.all():
            i = int(np.flatnonzero((~zoned).to_numpy() if zoned.iloc[0] else zoned.to_numpy())[0])
            raise _fail(f"{where.at(file, i, 'date')}: {text.iloc[i]!r} mixes stamps with and without a time zone")
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=bool(zoned.any()))
        bad = parsed.isna().to_numpy()
        if bad.any():
            parsed = pd.to_datetime(text, format="mixed", errors="coerce", utc=bool(zoned.any()), dayfirst=False)
            bad = parsed.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(f"{where.at(file, i, 'date')}: {text.iloc[i]!r} is not a date")
        if zoned.any():
            parsed = parsed.dt.tz_convert(tz).dt.tz_localize(None)
        values = pd.DatetimeIndex(parsed)
    if values.isna().any():
        i = int(np.flatnonzero(values.isna())[0])
        raise _fail(f"{where.at(file, i, 'date')}: empty date")
    values = values.as_unit("ns")
    days = values.normalize()
    if cfg.next_day_from is not None:
        hh, mm = (int(x) for x in cfg.next_day_from.split(":"))
        evening = (values - days) >= pd.Timedelta(hours=hh, minutes=mm)
        days = days + pd.to_timedelta(evening.astype("int64"), unit="D")
    return np.asarray(days.to_numpy(dtype="datetime64[ns]")), np.asarray(values.to_numpy(dtype="datetime64[ns]"))


# numbers -----------------------------------------------------------------------------------------------
def _numbers(column, field: str, where: _Where, file: int, rows: np.ndarray | None = None,
             allow_missing: bool = True, label: str | None = None) -> np.ndarray:
    """A numeric column as float64; ``field`` decides the checks, ``label`` (the file's column) the message."""
    import pyarrow as pa

    name = label or field
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_decimal(column.type):
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        values = np.where(pd.isna(values), np.nan, values).astype("float64")
    else:
        text = pd.Series(column.cast(pa.string()).to_pandas(), dtype="object")
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64")
        given = text.notna().to_numpy() & (text.astype(str).str.strip() != "").to_numpy()
        bad = np.isnan(values) & given
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            r = int(rows[i]) if rows is not None else i
            raise _fail(f"{where.at(file, r, name)}: {text.iloc[i]!r} is not a number")
    if not allow_missing:
        miss = np.isnan(values)
        if miss.any():
            i = int(np.flatnonzero(miss)[0])
            r = int(rows[i]) if rows is not None else i
            raise _fail(f"{where.at(file, r, name)}: missing {field}")
    if np.isinf(values).any():
        i = int(np.flatnonzero(np.isinf(values))[0])
        raise _fail(f"{where.at(file, int(rows[i]) if rows is not None else i, name)}: {values[i]} is not finite")
    bad = (values <= 0) if field in POSITIVE else (values < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        r = int(rows[i]) if rows is not None else i
        kind = "positive" if field in POSITIVE else "negative"
        raise _fail(f"{where.at(file, r, name)}: {values[i]:g} is not {kind}" if kind == "positive"
                    else f"{where.at(file, r, name)}: {values[i]:g} is negative")
    return values


# the parsed set ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FilesConfig:
    prices: str
    layout: str = "long"
    catalog: str | None = None
    columns: tuple[tuple[str, str], ...] = ()
    adjust: str = "auto"
    timezone: str = "UTC"
    next_day_from: str | None = None


@dataclass
class Parsed:
    bars: pd.DataFrame  # date, symbol, present bar fields; sorted by date then symbol
    fields: tuple[str, ...]
    adjust: str
    catalog: pd.DataFrame
    files: tuple[str, ...]


class _Symbols:
    """Symbol names -> integer codes shared by every file (rows carry codes, not strings)."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def encode(self, column, where: _Where, file: int, name: str) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        text = pc.utf8_trim_whitespace(column.cast(pa.string()))
        blank = pc.or_kleene(pc.is_null(text), pc.equal(text, "")).fill_null(True)
        if pc.any(blank).as_py():
            raise _fail(f"{where.at(file, int(np.flatnonzero(blank.to_numpy(zero_copy_only=False))[0]), name)}: "
                        "empty symbol")
        enc = pc.dictionary_encode(text).combine_chunks()
        local = np.array([self.codes.setdefault(str(v), len(self.codes)) for v in enc.dictionary.to_pylist()],
                         dtype=np.int64)
        return local[enc.indices.to_numpy(zero_copy_only=False)] if len(local) else np.zeros(0, dtype=np.int64)

    def sorted(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes renumbered in name order, and the names by new code."""
        names = np.array(sorted(self.codes), dtype=object)
        rank = np.empty(len(self.codes), dtype=np.int64)
        rank[[self.codes[n] for n in names]] = np.arange(len(names))
        return rank[codes], names


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _long(paths: list[str], cfg: FilesConfig) -> tuple[dict[str, np.ndarray], np.ndarray, _Where]:
    where = _Where(tuple(paths))
    explicit = dict(cfg.columns)
    symbols = _Symbols()
    parts = []
    for k, path in enumerate(paths):
        table = _read_table(path)
        names = list(table.column_names)
        date_col = _find_column(names, "date", explicit, path)
        sym_col = _find_column(names, "symbol", explicit, path)
        if date_col is None or sym_col is None:
            raise _fail(f"{path}: a long file needs date and symbol columns (columns: {', '.join(names)}); "
                        "name them in source.columns or use layout: wide")
        cols = {f: _find_column(names, f, explicit, path) for f in ALL_FIELDS}
        if cols["close"] is None:
            raise _fail(f"{path}: no close column (columns: {', '.join(names)}); name it in source.columns.close")
        days, stamps = _dates(table[date_col], path, where, k, cfg)
        frame = {"date": days, "stamp": stamps, "code": symbols.encode(table[sym_col], where, k, sym_col),
                 "file": np.full(len(days), k, dtype=np.int32), "row": np.arange(len(days), dtype=np.int64)}
        for f, c in cols.items():
            if c is not None:
                frame[f] = _numbers(table[c], f, where, k, allow_missing=f in ("dividend", "split"), label=c)
        parts.append(frame)
    fields = [f for f in ALL_FIELDS if all(f in p for p in parts)]
    partial = sorted({f for p in parts for f in p if f in ALL_FIELDS} - set(fields))
    if partial:
        raise _fail(f"fields {', '.join(partial)} are in some files only; every file needs the same fields")
    rows = _concat(parts)
    rows["code"], names = symbols.sorted(rows["code"])
    return rows, names, where


def _wide(paths: list[str], cfg: FilesConfig) -> tuple[dict[str, np.ndarray], np.ndarray, _Where]:
    where = _Where(tuple(paths))
    by_field: dict[str, int] = {}
    for k, path in enumerate(paths):
        stem = Path(path).name.split(".")[0].strip().lower()
        field = next((f for f, names in ALIASES.items() if stem in names and f not in ("date", "symbol")), None)
        if field is None:
            raise _fail(f"{path}: a wide file is named after its field ({', '.join(ALL_FIELDS)}), not {stem!r}")
        if field in by_field:
            raise _fail(f"{path}: field {field} also in {paths[by_field[field]]}")
        by_field[field] = k
    if "close" not in by_field:
        raise _fail(f"prices: no close file among {', '.join(paths)} (wide layout: close.csv or close.parquet)")
    grids = {}
    for field, k in by_field.items():
        path = paths[k]
        table = _read_table(path)
        names = list(table.column_names)
        date_col = _find_column(names, "date", dict(cfg.columns), path) or names[0]
        days, stamps = _dates(table[date_col], path, where, k, cfg)
        order = np.argsort(days, kind="stable")
        dup = np.flatnonzero(days[order][1:] == days[order][:-1])
        if len(dup):
            i, j = int(order[dup[0]]), int(order[dup[0] + 1])
            raise _fail(f"{where.at(k, j, date_col)}: duplicate date {str(days[j])[:10]} "
                        f"(first at {where.at(k, i).split(' ', 1)[1]})")
        symbols = [str(n).strip() for n in names if n != date_col]
        values = np.column_stack([_numbers(table[n], field, where, k, label=n) for n in names if n != date_col]) \
            if symbols else np.empty((len(days), 0))
        grids[field] = (pd.DataFrame(values, index=pd.DatetimeIndex(days), columns=symbols), stamps, k)
    close, stamps, k = grids["close"]
    names = np.array(sorted(close.columns), dtype=object)
    close = close[list(names)]
    rr, cc = np.nonzero(~np.isnan(close.to_numpy()))
    rows = {"date": close.index.to_numpy(dtype="datetime64[ns]")[rr], "stamp": stamps[rr], "code": cc.astype(np.int64),
            "file": np.full(len(rr), k, dtype=np.int32), "row": rr.astype(np.int64),
            "close": close.to_numpy()[rr, cc]}
    for field, (grid, _, fk) in grids.items():
        if field == "close":
            continue
        aligned = grid.reindex(index=close.index, columns=list(names)).to_numpy()[rr, cc]
        if field not in ("dividend", "split") and np.isnan(aligned).any():
            i = int(np.flatnonzero(np.isnan(aligned))[0])
            raise _fail(f"{where.at(k, int(rr[i]), str(names[cc[i]]))}: a close on {str(rows['date'][i])[:10]} "
                        f"but no {field} in {paths[fk]}")
        rows[field] = aligned
    return rows, names, where


def _check_rows(rows: dict[str, np.ndarray], names: np.ndarray, where: _Where) -> dict[str, np.ndarray]:
    """Rows sorted by symbol then date; refuses duplicates, intraday and non-daily series."""
    order = np.lexsort((rows["row"], rows["file"], rows["date"], rows["code"]))
    rows = {k: v[order] for k, v in rows.items()}
    code, day = rows["code"], rows["date"]
    same = (code[1:] == code[:-1]) & (day[1:] == day[:-1])
    if same.any():
        i = int(np.flatnonzero(same)[0])
        first = where.at(int(rows["file"][i]), int(rows["row"][i]))
        at = where.at(int(rows["file"][i + 1]), int(rows["row"][i + 1]), "date")
        sym, when = names[code[i]], str(day[i])[:10]
        if rows["stamp"][i] != rows["stamp"][i + 1]:
            raise _fail(f"{at}: {sym} has two bars on {when} ({first} too): intraday bars or mixed frequencies; "
                        "tvquant needs one bar per symbol per day")
        raise _fail(f"{at}: duplicate ({when}, {sym}), first at {first}")
    # frequency: the median gap between a symbol's consecutive bars
    new = np.r_[True, code[1:] != code[:-1]] if len(code) else np.zeros(0, dtype=bool)
    gaps = np.r_[np.nan, np.diff(day.astype("int64")) / 86_400e9] if len(code) else np.zeros(0)
    gaps[new] = np.nan
    med = pd.Series(gaps).groupby(code).median()
    slow = med[med > MAX_DAILY_GAP_DAYS]
    if len(slow):
        c = int(slow.index[0])
        i = int(np.flatnonzero(code == c)[0])
        daily = int((med <= MAX_DAILY_GAP_DAYS).sum())
        mixed = f"mixed frequencies ({daily} symbols daily)" if daily else "not daily"
        raise _fail(f"{where.at(int(rows['file'][i]), int(rows['row'][i]), 'date')}: {names[c]} has a bar every "
                    f"{slow.iloc[0]:.0f} days (median): {mixed}; tvquant needs daily bars")
    return rows


def _adjust(rows: dict[str, np.ndarray], mode: str) -> str:
    """Apply ``adjust`` in place on rows sorted by symbol then date; returns the mode used."""
    have = set(rows)
    if mode == "auto":
        mode = "total_return" if have & {"dividend", "split"} else "adjusted_close" if "adj_close" in have else "none"
    if mode == "none":
        return mode
    close = rows["close"]
    if mode == "adjusted_close":
        if "adj_close" not in have:
            raise _fail("adjust: adjusted_close needs an adj_close column")
        adjusted = rows["adj_close"]
    elif mode == "total_return":
        if not have & {"dividend", "split"}:
            raise _fail("adjust: total_return needs a dividend or split column")
        div = np.nan_to_num(rows["dividend"]) if "dividend" in have else np.zeros(len(close))
        split = np.where(np.isnan(rows["split"]), 1.0, rows["split"]) if "split" in have else np.ones(len(close))
        code = rows["code"]
        new = np.r_[True, code[1:] != code[:-1]] if len(code) else np.zeros(0, dtype=bool)
        prev = np.r_[np.nan, close[:-1]]
        growth = np.where(new, 1.0, (close * split + div) / prev)
        first_close = pd.Series(np.where(new, close, np.nan)).ffill().to_numpy()
        adjusted = first_close * np.exp(pd.Series(np.log(growth)).groupby(np.cumsum(new)).cumsum().to_numpy())
    else:
        raise _fail(f"adjust: unknown mode {mode!r}")
    ratio = adjusted / close
    for f in ("open", "high", "low"):
        if f in have:
            rows[f] = rows[f] * ratio
    if "volume" in have:
        rows["volume"] = rows["volume"] / ratio  # value traded is kept
    rows["close"] = adjusted
    return mode


def _catalog(path: str | None, symbols: list[str], prices: str) -> pd.DataFrame:
    if path is None:
        return pd.DataFrame({"symbol": symbols, **{c: "" for c in CATALOG_COLUMNS[1:]}})[CATALOG_COLUMNS]
    files = _expand(path, "catalog")
    if len(files) != 1:
        raise _fail(f"catalog: {path!r} matches {len(files)} files; name one file")
    table = _read_table(files[0])
    where = _Where(tuple(files))
    names = list(table.column_names)
    lower = {n.strip().lower(): n for n in names}
    if "symbol" not in lower:
        raise _fail(f"{files[0]}: a catalog needs a symbol column (columns: {', '.join(names)})")
    frame = table.to_pandas()
    out = pd.DataFrame({"symbol": frame[lower["symbol"]].astype("string").fillna("").str.strip()})
    for c in CATALOG_COLUMNS[1:]:
        out[c] = frame[lower[c]].astype("string").fillna("").str.strip() if c in lower else ""
    dup = out["symbol"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise _fail(f"{where.at(0, i, 'symbol')}: {out['symbol'].iloc[i]} is listed twice")
    known = set(symbols)
    orphan = ~out["symbol"].isin(known)
    if orphan.any():
        i = int(np.flatnonzero(orphan.to_numpy())[0])
        raise _fail(f"{where.at(0, i, 'symbol')}: {out['symbol'].iloc[i]!r} has no price series in {prices}")
    missing = pd.DataFrame({"symbol": sorted(known - set(out["symbol"]))})
    for c in CATALOG_COLUMNS[1:]:
        missing[c] = ""
    out = pd.concat([out.astype(object), missing.astype(object)], ignore_index=True)
    return out.sort_values("symbol").reset_index(drop=True)[CATALOG_COLUMNS].astype(object)


def catalog_columns(path: str) -> set[str]:
    """Lower-cased column names of a catalog file (its header or parquet schema only)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if _kind(path) == "parquet":
        return {n.strip().lower() for n in pq.read_schema(path).names}
    with pacsv.open_csv(path) as reader:
        return {n.strip().lower() for n in reader.schema.names}


_LOCK = threading.Lock()


@functools.lru_cache(maxsize=2)  # the files now and one earlier version
def _parse(cfg: FilesConfig, stamp: tuple, catalog_stamp: tuple) -> Parsed:
    """The parsed set, keyed by every file's path, size and mtime (``catalog_stamp`` only keys the cache)."""
    paths = [p for p, _, _ in stamp]
    rows, names, where = (_long if cfg.layout == "long" else _wide)(paths, cfg)
    rows = _check_rows(rows, names, where)
    mode = _adjust(rows, cfg.adjust)
    fields = tuple(f for f in BAR_FIELDS if f in rows)
    order = np.lexsort((rows["code"], rows["date"]))  # date, then symbol (codes are in name order)
    bars = pd.DataFrame({"date": rows["date"][order].astype("datetime64[ns]"),
                         "symbol": names[rows["code"][order]],
                         **{f: rows[f][order].astype("float64") for f in fields}})
    catalog = _catalog(cfg.catalog, list(names[np.unique(rows["code"])]), cfg.prices)
    return Parsed(bars, fields, mode, catalog, tuple(paths))


class FilesSource(Source):
    """Daily bars from the user's CSV or parquet files (module docstring)."""

    name = "files"

    def __init__(self, prices: str, layout: str = "long", catalog: str | None = None,
                 columns: dict[str, str] | None = None, adjust: str = "auto", timezone: str = "UTC",
                 next_day_from: str | None = None) -> None:
        self.cfg = FilesConfig(str(prices), layout, None if catalog is None else str(catalog),
                               tuple(sorted((columns or {}).items())), adjust, timezone, next_day_from)

    def parsed(self) -> Parsed:
        """The files as of now (read again when any file changed, was added or removed)."""
        prices = _stamp(_expand(self.cfg.prices))
        catalog = _stamp(_expand(self.cfg.catalog, "catalog")) if self.cfg.catalog is not None else ()
        with _LOCK:
            return _parse(self.cfg, prices, catalog)

    @property
    def fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.parsed().fields

    @property
    def has_catalog(self) -> bool:
        return self.cfg.catalog is not None

    def catalog(self) -> pd.DataFrame:
        return self.parsed().catalog.copy()

    def history(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        bars = self.parsed().bars
        days = bars["date"].to_numpy(dtype="datetime64[ns]")
        lo = np.searchsorted(days, _ns(start, np.datetime64("1677-09-22", "ns")), side="left")
        hi = np.searchsorted(days, _ns(end, np.datetime64("2262-04-11", "ns")), side="right")
        sub = bars.iloc[lo:hi]
        wanted = set(symbols)
        unknown = sorted(wanted - set(self.parsed().catalog["symbol"]))
        if unknown:
            raise _fail(f"unknown symbols {', '.join(unknown[:5])} (not in {self.cfg.prices})")
        if len(wanted) < len(self.parsed().catalog):
            sub = sub[sub["symbol"].isin(wanted)]
        return sub.reset_index(drop=True)

    def first_dates(self) -> pd.Series:
        bars = self.parsed().bars
        return bars.groupby("symbol")["date"].min()

    def partitions_end(self, now: dt.datetime | None = None) -> dt.date | None:
        """The last date with a bar in the files (Dagster partitions end there)."""
        bars = self.parsed().bars
        return None if bars.empty else pd.Timestamp(bars["date"].iloc[-1]).date()


def _ns(value, default: np.datetime64) -> np.datetime64:
    t = pd.Timestamp(value)
    if t <= pd.Timestamp.min + pd.Timedelta(days=1):
        return default
    if t >= pd.Timestamp.max - pd.Timedelta(days=1):
        return default
    return np.datetime64(t.tz_localize(None) if t.tzinfo else t, "ns")
