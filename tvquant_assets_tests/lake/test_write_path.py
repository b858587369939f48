"""The lake's write path: the fast column access and arrow conversion give the hashes and bytes of the
plain pandas/pyarrow path, and the read cache is bounded in bytes."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, UPathIOManager, build_output_context

from tvquant_assets.defs.io_manager import LakeIOManager
from tvquant_assets.errors import LakeError
from tvquant_assets.hashing import df_hash
from tvquant_assets.lake import Lake
from tvquant_assets.lake.store import CACHE_ENV, HASH_KEY, cache_budget_bytes, prepare_frame, to_arrow, to_parquet_bytes


def battery_frames():
    """Frames of every dtype and shape a stage could write (values chosen to hit NaN, -0.0, missing markers)."""
    import datetime as dt

    import numpy as np
    import pandas as pd

    n = 6
    f = np.array([0.5, -0.0, np.nan, 1e-300, -2.0, 3.25])
    cols = {
        "f": f, "i": np.arange(n), "u": np.arange(n, dtype="uint32"), "b": np.array([True, False] * 3),
        "s": pd.array(["a", None, "c", "é", "", "z"], dtype="str"),
        "S": pd.array(["a", None, "c", "d", "e", "f"], dtype="string"),
        "o": np.array(["x", 1, None, 2.5, float("nan"), (1, 2)], dtype=object),
        "dt": pd.date_range("2020-01-01", periods=n),
        "dtz": pd.date_range("2020-01-01", periods=n, tz="America/New_York"),
        "dtn": pd.array([pd.NaT, *pd.date_range("2021-01-01", periods=n - 1)]),
        "I": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
        "F": pd.array([1.0, None, 3, -0.0, 5, 6], dtype="Float64"),
        "B": pd.array([True, True, False, True, False, True], dtype="boolean"),
        "f32": np.arange(n, dtype="float32"), "took_ms": np.arange(n) * 1.0,
        "day": [dt.date(2020, 1, i + 1) for i in range(n)],
    }
    full = pd.DataFrame(cols)
    named = full[["f", "i"]].copy()
    named.columns = [1, 2]
    repeated = full[["f", "i", "s"]].copy()
    repeated.columns = ["a", "a", "b"]
    return {
        "every dtype": full,
        "categorical": full.assign(cat=pd.Categorical(list("abcabc"))),
        "every other row": full.iloc[::2],
        "string index": full.drop(columns=["o"]).set_index("s"),
        "two-level index": full.drop(columns=["o"]).set_index(["i", "S"]),
        "no rows": full.drop(columns=["o"]).iloc[0:0],
        "repeated names": repeated,
        "integer names": named,
        "all missing": pd.DataFrame({"x": [None] * 3}),
        "nothing": pd.DataFrame(),
        "offset index": pd.DataFrame({"f": f}, index=pd.RangeIndex(3, 3 + n)),
    }


# The df_hash of each frame as the per-Series implementation before this change computed it (commit eb51d0d).
PINNED = {
    "every dtype": "1c54a134d2967182",
    "categorical": "5c250978c36bb326",
    "every other row": "2a3722f1ab53c0fc",
    "string index": "8902c556f1f85ce3",
    "two-level index": "0151640ec58cdb6d",
    "no rows": "0da197a9856539d5",
    "repeated names": "6d9cb9103e66721f",
    "integer names": "a381e9243a8e8470",
    "all missing": "2bbc053c121ee0e9",
    "nothing": "5f1bcdac8d6de9cc",
    "offset index": "4d551370f40273f4",
}


def test_df_hash_gives_the_values_it_always_gave():
    assert {name: df_hash(frame)[:16] for name, frame in battery_frames().items()} == PINNED


def _reference_bytes(frame, digest: str) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**table.schema.metadata, HASH_KEY: digest.encode("ascii")})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy")
    return buf.getvalue()


def test_arrow_tables_and_parquet_bytes_are_pyarrows_own():
    """Twice: the first conversion of a layout goes through ``from_pandas``, the second uses the cached schema."""
    convertible = 0
    for _ in range(2):
        for name, frame in battery_frames().items():
            frame = frame.reset_index(drop=True)
            try:
                expected = pa.Table.from_pandas(frame, preserve_index=False)
            except (pa.ArrowException, ValueError) as exc:  # a mixed object column, repeated names: pyarrow's error
                with pytest.raises(type(exc)) as raised:
                    to_arrow(frame)
                assert str(raised.value) == str(exc)
                continue
            convertible += 1
            assert to_arrow(frame).equals(expected, check_metadata=True), name
            assert to_parquet_bytes(frame, "d1") == _reference_bytes(frame, "d1"), name
    assert convertible >= 14


def test_stamped_frames_are_written_without_hashing_again(tmp_path, monkeypatch):
    frame = battery_frames()["every other row"].drop(columns=["o"])
    prepared, digest = prepare_frame(frame)
    assert digest == df_hash(frame.reset_index(drop=True)) and prepared is not frame
    same, _ = prepare_frame(prepared)
    assert same is prepared  # a default index: no copy

    import tvquant_assets.lake.store as store

    monkeypatch.setattr(store, "df_hash", lambda df: pytest.fail("hashed again"))
    assert Lake(tmp_path).write("demo", "scan", "2020-01-02", prepared) == digest


def test_the_read_cache_is_bounded_in_bytes_least_recently_used_first(tmp_path):
    frame = battery_frames()["every dtype"].drop(columns=["o"])
    lake = Lake(tmp_path, cache_bytes=0)
    lake.write("demo", "scan", "2020-01-02", frame)
    assert lake.cache_nbytes == 0 and not lake._cache
    one = Lake(tmp_path)
    one.read("demo", "scan", "2020-01-02")
    size = one.cache_nbytes
    assert size > frame.memory_usage(deep=False).sum() > 0

    lake = Lake(tmp_path, cache_bytes=int(size * 2.5))
    dates = ["2020-01-02", "2020-01-03", "2020-01-06"]
    for d in dates[:2]:
        lake.write("demo", "scan", d, frame)
    lake.read("demo", "scan", dates[0])  # used: the other one goes first
    lake.write("demo", "scan", dates[2], frame)
    cached = {k.rsplit("/", 1)[-1][:10] for k in lake._cache}
    assert cached == {dates[0], dates[2]} and lake.cache_nbytes <= int(size * 2.5)
    for d in dates:  # evicted or not, every read is the file's content
        assert df_hash(lake.read("demo", "scan", d)) == df_hash(frame)


def test_cache_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert cache_budget_bytes() == 512 * 2**20
    monkeypatch.setenv(CACHE_ENV, "64")
    assert cache_budget_bytes() == 64 * 2**20
    monkeypatch.setenv(CACHE_ENV, "lots")
    with pytest.raises(LakeError, match=f"{CACHE_ENV}='lots': expected a number of megabytes"):
        cache_budget_bytes()


def test_a_partition_directory_removed_during_the_run_is_made_again(tmp_path):
    import shutil

    lake = Lake(tmp_path)
    frame = battery_frames()["offset index"]
    lake.write("demo", "prices", "2020-01-02", frame)
    shutil.rmtree(tmp_path / "demo")
    lake.write("demo", "prices", "2020-01-03", frame)
    assert (tmp_path / "demo" / "prices" / "2020-01-03.parquet").is_file()


def test_io_manager_paths_are_the_base_classs(tmp_path):
    manager = LakeIOManager(Lake(tmp_path))
    context = build_output_context(asset_key=AssetKey(["demo", "prices"]), partition_key="2020-01-02")
    ours = manager._get_paths_for_partitions(context)
    assert isinstance(ours["2020-01-02"], str)
    assert {k: str(v) for k, v in UPathIOManager._get_paths_for_partitions(manager, context).items()} == ours
