"""The files source: layouts, fields, dates and zones, adjustments, and one line per bad file.

The sample data is skfolio's bundled S&P 500 closes (real, offline) written as a user would have them."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tvquant_assets.errors import SourceError
from tvquant_assets.hashing import df_hash
from tvquant_assets.lake import Lake
from tvquant_assets.lake.export import bars_bytes, export_prices
from tvquant_assets.sources.bundled import BundledSource
from tvquant_assets.sources.files import FilesSource

SYMBOLS = ["AAPL", "JPM", "KO", "MSFT"]
LO, HI = pd.Timestamp("2020-02-03"), pd.Timestamp("2020-04-30")


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return BundledSource().history(SYMBOLS, LO, HI)


def _write(path, frame: pd.DataFrame):
    frame.to_csv(path, index=False, lineterminator="\n")
    return str(path)


def _error(tmp_path, frame: pd.DataFrame, **kw) -> str:
    with pytest.raises(SourceError) as exc:
        FilesSource(_write(tmp_path / "p.csv", frame), **kw).history(SYMBOLS, LO, HI)
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_long_csv_wide_parquet_and_the_bundled_source_agree(tmp_path, bars):
    long = FilesSource(_write(tmp_path / "long.csv", bars))
    assert long.fields == ("close",)
    assert df_hash(long.history(SYMBOLS, LO, HI)) == df_hash(bars)
    wide_dir = tmp_path / "wide"
    wide_dir.mkdir()
    wide = bars.pivot(index="date", columns="symbol", values="close").reset_index()
    wide["date"] = wide["date"].dt.date
    pq.write_table(pa.Table.from_pandas(wide, preserve_index=False), wide_dir / "close.parquet")
    src = FilesSource(str(wide_dir / "*.parquet"), layout="wide")
    assert df_hash(src.history(SYMBOLS, LO, HI)) == df_hash(bars)
    assert src.history(["KO"], LO, LO + pd.Timedelta(days=1))["symbol"].tolist() == ["KO", "KO"]
    assert src.partitions_end() == HI.date()
    assert list(src.catalog().columns) == ["symbol", "exchange", "type", "sector", "industry", "currency"]
    assert (src.catalog()["sector"] == "").all()  # no catalog file: empty attributes


def test_zones_and_evening_sessions_map_to_partition_dates(tmp_path):
    rows = pd.DataFrame({
        "date": ["2024-01-02T16:00:00-05:00", "2024-01-03T21:00:00Z", "2024-01-04T18:00:00-05:00"],
        "symbol": ["ES"] * 3, "close": [1.0, 2.0, 3.0]})
    src = FilesSource(_write(tmp_path / "z.csv", rows), timezone="America/New_York", next_day_from="17:00")
    got = src.history(["ES"], pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-10"))
    # 16:00 NY stays on the 2nd; 21:00 UTC = 16:00 NY on the 3rd; 18:00 NY opens the session of the 5th
    assert got["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-02", "2024-01-03", "2024-01-05"]
    naive = rows.assign(date=["2024-01-02 16:00", "2024-01-03 16:00", "2024-01-04 16:00"])
    src = FilesSource(_write(tmp_path / "n.csv", naive), timezone="Asia/Tokyo")
    assert src.history(["ES"], pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-10"))["date"].dt.day.tolist() \
        == [2, 3, 4]


def test_total_return_uses_dividends_and_splits_point_in_time(tmp_path):
    rows = pd.DataFrame({"date": ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"], "symbol": ["X"] * 4,
                         "close": [100.0, 102.0, 51.0, 50.0], "open": [99.0, 101.0, 50.0, 51.0],
                         "dividend": [0.0, 2.0, 0.0, 0.0], "split": [1.0, 1.0, 2.0, 1.0]})
    src = FilesSource(_write(tmp_path / "d.csv", rows))
    got = src.history(["X"], pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-10"))
    # returns: (102 + 2)/100, 51*2/102, 50/51
    expected = [100.0, 104.0, 104.0 * 102 / 102, 104.0 * 50 / 51]
    assert got["close"].tolist() == pytest.approx(expected, rel=1e-12)
    assert got["open"].iloc[1] == pytest.approx(101.0 * 104.0 / 102.0)
    # appending a later dividend does not move the earlier closes
    later = pd.concat([rows, pd.DataFrame({"date": ["2024-01-08"], "symbol": ["X"], "close": [49.0],
                                           "open": [49.0], "dividend": [1.0], "split": [1.0]})])
    src2 = FilesSource(_write(tmp_path / "d2.csv", later))
    assert src2.history(["X"], pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-05"))["close"].tolist() \
        == got["close"].tolist()
    adj = rows.drop(columns=["dividend", "split"]).assign(adj_close=[50.0, 52.0, 51.0, 50.0])
    src3 = FilesSource(_write(tmp_path / "a.csv", adj))
    assert src3.history(["X"], pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-10"))["close"].tolist() \
        == [50.0, 52.0, 51.0, 50.0]


@pytest.mark.parametrize("change, expected", [
    (lambda b: b.assign(date=b["date"].astype(str).where(b.index != 5, "2020-02-31")),
     "p.csv line 7, column date: '2020-02-31' is not a date"),
    (lambda b: pd.concat([b, b.iloc[[3]]]), "duplicate (2020-02-03, MSFT), first at"),
    (lambda b: b.assign(close=b["close"].where(b.index != 2, -1.0)), "p.csv line 4, column close: -1 is not positive"),
    (lambda b: b.assign(close=b["close"].astype(object).where(b.index != 2, "12,5")),
     "p.csv line 4, column close: '12,5' is not a number"),
    (lambda b: b.assign(close=b["close"].where(b.index != 9, None)), "p.csv line 11, column close: missing close"),
    (lambda b: b.rename(columns={"close": "last"}), "p.csv: no close column (columns: date, symbol, last)"),
    (lambda b: pd.concat([b, b[b["symbol"] == "KO"].assign(symbol="WKLY")]).pipe(
        lambda f: f[(f["symbol"] != "WKLY") | (pd.to_datetime(f["date"]).dt.day_of_week == 0)]),
     "WKLY has a bar every 7 days (median): mixed frequencies (4 symbols daily)"),
    (lambda b: pd.concat([b.assign(date=b["date"].dt.strftime("%Y-%m-%d 10:00")),
                          b.assign(date=b["date"].dt.strftime("%Y-%m-%d 11:00"))]),
     "intraday bars or mixed frequencies"),
])
@pytest.mark.filterwarnings("error::UserWarning")  # the one line, and no pandas notice beside it
def test_bad_files_are_one_line_naming_file_row_and_column(tmp_path, bars, change, expected):
    assert expected in _error(tmp_path, change(bars.copy()))


def test_empty_glob_catalog_without_prices_and_a_renamed_column(tmp_path, bars):
    with pytest.raises(SourceError, match="no CSV or parquet file matches"):
        FilesSource(str(tmp_path / "none" / "*.csv")).catalog()
    cat = pd.DataFrame({"symbol": ["AAPL", "ZZZ"], "sector": ["Tech", "Ghost"]})
    with pytest.raises(SourceError, match=r"catalog.csv line 3, column symbol: 'ZZZ' has no price series"):
        FilesSource(_write(tmp_path / "p.csv", bars), catalog=_write(tmp_path / "catalog.csv", cat)).catalog()
    src = FilesSource(_write(tmp_path / "v.csv", bars.rename(columns={"close": "Last"})), columns={"close": "Last"},
                      catalog=_write(tmp_path / "c.csv", cat.iloc[:1]))
    got = src.catalog().set_index("symbol")["sector"]
    assert got["AAPL"] == "Tech" and got["MSFT"] == ""


def test_export_writes_what_the_files_source_reads_back(tmp_path, bars):
    lake = Lake(tmp_path / "lake")
    for d, g in bars.groupby("date"):
        lake.write("m", "prices", d, g.reset_index(drop=True))
    lake.write("m", "catalog", HI, BundledSource().catalog())
    for fmt in ("csv", "parquet"):
        out = export_prices(lake, "m", tmp_path / f"out.{fmt}", fmt)
        assert (out.rows, out.symbols) == (len(bars), 4)
        src = FilesSource(str(out.prices), catalog=str(out.catalog))
        assert df_hash(src.history(SYMBOLS, LO, HI)) == df_hash(bars)
        assert src.catalog()["sector"].tolist()[0] == "Information Technology"
    assert bars_bytes(bars.head(1), "csv").decode().splitlines()[1].startswith("2020-02-03,AAPL,")


def test_features_that_need_catalog_columns_say_so(tmp_path, bars):
    from tvquant_assets.errors import ManifestError
    from tvquant_assets.manifest import load_manifest
    from tvquant_assets.manifest.load import parse_manifest

    with pytest.raises(ManifestError, match=r"selection.max_per_sector read the catalog's sector; a files source "
                                            r"without source.catalog has none"):
        parse_manifest("name: m\nstart: 2020-03-02\nsource: {kind: files, prices: p.csv}\n"
                       "selection: {max_per_sector: 2}\n")
    _write(tmp_path / "p.csv", bars)
    (tmp_path / "catalog.csv").write_text("symbol,exchange\nAAPL,NASDAQ\n")
    (tmp_path / "m.yaml").write_text("name: m\nstart: 2020-03-02\nsource: {kind: files, prices: p.csv, catalog: "
                                     "catalog.csv}\nbacktest: {costs_by_class: {stock: {commission_bps: 1}}}\n")
    with pytest.raises(ManifestError, match=r"m.yaml: backtest.costs_by_class: read the catalog's type, which "
                                            r".*catalog.csv does not have \(columns: exchange, symbol\)"):
        load_manifest(tmp_path / "m.yaml")
    (tmp_path / "m.yaml").write_text("name: m\nstart: 2020-03-02\nsource: {kind: files, prices: p.csv, catalog: "
                                     "catalog.csv}\nbenchmark: {file: index.csv}\n")
    m = load_manifest(tmp_path / "m.yaml")  # relative paths are the manifest folder's
    assert m.source.prices == str(tmp_path / "p.csv") and m.benchmark.file == str(tmp_path / "index.csv")


def test_benchmark_from_a_file_or_a_symbol(tmp_path):
    from tvquant_assets.manifest.schema import BenchmarkConfig
    from tvquant_assets.sources.benchmark import benchmark_closes, sp500_index

    index = sp500_index().loc["2020"]
    index.rename("Close").rename_axis("Date").reset_index().to_csv(tmp_path / "spx.csv", index=False)
    got = benchmark_closes(BenchmarkConfig(file=str(tmp_path / "spx.csv")), pd.DataFrame())
    pd.testing.assert_series_equal(got, index, check_names=False, check_freq=False)
    assert BenchmarkConfig(file=str(tmp_path / "spx.csv")).label == "spx"
    panel = pd.DataFrame({"KO": [1.0, 2.0]}, index=pd.DatetimeIndex(["2020-01-02", "2020-01-03"]))
    assert benchmark_closes(BenchmarkConfig(symbol="KO"), panel).tolist() == [1.0, 2.0]
    bad = pd.DataFrame({"date": ["2020-01-02", "2020-01-02"], "close": [1.0, 2.0]})
    bad.to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(SourceError, match=r"dup.csv line 3, column date: duplicate date 2020-01-02"):
        benchmark_closes(BenchmarkConfig(file=str(tmp_path / "dup.csv")), pd.DataFrame())


def test_wide_files_one_per_field(tmp_path):
    src = BundledSource()
    bars = src.history(["KO", "PG"], LO, LO + pd.Timedelta(days=9))
    close = bars.pivot(index="date", columns="symbol", values="close")
    folder = tmp_path / "wide"
    folder.mkdir()
    close.reset_index().to_csv(folder / "close.csv", index=False)
    (close * 0.99).reset_index().to_csv(folder / "Open.csv", index=False)
    volume = pd.DataFrame(1000.0, index=close.index, columns=close.columns)
    volume.reset_index().to_csv(folder / "volume.csv", index=False)
    got = FilesSource(str(folder / "*.csv"), layout="wide")
    assert got.fields == ("open", "close", "volume")
    frame = got.history(["KO", "PG"], LO, HI)
    assert frame["open"].to_numpy() == pytest.approx(frame["close"].to_numpy() * 0.99)
    assert (frame["volume"] == 1000.0).all() and len(frame) == len(bars)
    volume.iloc[2, 1] = float("nan")
    volume.reset_index().to_csv(folder / "volume.csv", index=False)
    with pytest.raises(SourceError, match=r"close.csv line 4, column PG: a close on 2020-02-05 but no volume in "):
        FilesSource(str(folder / "*.csv"), layout="wide").catalog()
    (folder / "prices.csv").write_text("date,KO\n2020-02-03,1\n")
    with pytest.raises(SourceError, match=r"prices.csv: a wide file is named after its field"):
        FilesSource(str(folder / "*.csv"), layout="wide").catalog()
