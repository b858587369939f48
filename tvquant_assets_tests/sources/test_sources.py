import numpy as np
import pandas as pd
import pytest

from tvquant_assets.errors import RegistryError, SourceError
from tvquant_assets.manifest.schema import BundledSourceConfig, SyntheticSourceConfig
from tvquant_assets.sources import SOURCES, build_source


def test_bundled_is_real_close_only_sp500_with_sectors():
    src = build_source(BundledSourceConfig())
    cat = src.catalog()
    assert len(cat) == 20 and cat["sector"].notna().all()
    assert cat.set_index("symbol").loc["XOM", "sector"] == "Energy"
    assert src.fields == ("close",)
    bars = src.history(["AAPL", "XOM"], pd.Timestamp("2020-03-16"), pd.Timestamp("2020-03-16"))
    assert list(bars.columns) == ["date", "symbol", "close"]  # no invented volume/high/low
    assert bars["close"].gt(0).all() and len(bars) == 2
    # 2020-03-16 was a -12% day for the S&P 500: the data is real
    prev = src.history(["XOM"], pd.Timestamp("2020-03-13"), pd.Timestamp("2020-03-13"))["close"].iloc[0]
    assert bars.set_index("symbol").loc["XOM", "close"] / prev - 1 < -0.05
    with pytest.raises(SourceError, match="unknown symbols NOPE"):
        src.history(["NOPE"], pd.Timestamp("2020-01-01"), pd.Timestamp("2020-01-10"))


def test_synthetic_is_seeded_consistent_and_ohlc_coherent():
    cfg = SyntheticSourceConfig(n_symbols=30, start="2018-01-01", end="2019-12-31", seed=3)
    a, b = build_source(cfg), build_source(cfg)
    full = a.history(list(a.catalog()["symbol"]), pd.Timestamp("2018-01-01"), pd.Timestamp("2019-12-31"))
    sub = b.history(["SYN0003"], pd.Timestamp("2019-01-01"), pd.Timestamp("2019-01-31"))
    same = full[(full.symbol == "SYN0003") & (full.date >= "2019-01-01") & (full.date <= "2019-01-31")]
    np.testing.assert_array_equal(same["close"].to_numpy(), sub["close"].to_numpy())
    assert (full["low"] <= full[["open", "close"]].min(axis=1) + 1e-12).all()
    assert (full["high"] >= full[["open", "close"]].max(axis=1) - 1e-12).all()
    assert (full["volume"] > 0).all()
    other = build_source(SyntheticSourceConfig(n_symbols=30, start="2018-01-01", end="2019-12-31", seed=4))
    assert not np.allclose(other.history(["SYN0003"], pd.Timestamp("2019-01-01"),
                                         pd.Timestamp("2019-01-31"))["close"], sub["close"])
    # late listings: no bar before the first date
    first = a.first_dates()
    late = first[first > pd.Timestamp("2018-01-01")]
    for sym, d in late.items():
        assert full.loc[full.symbol == sym, "date"].min() == d
    assert set(a.regimes().unique()) <= {0, 1}


def test_registry_builds_each_kind_from_its_config():
    assert SOURCES.names == ("bundled", "synthetic", "tradingview", "files")
    assert type(build_source(BundledSourceConfig())) is SOURCES.load("bundled")
    with pytest.raises(RegistryError, match=r"^source 'synthetic' takes no parameter 'colour' \(accepted: "):
        SOURCES.create("synthetic", colour="red")
