import os

import pandas as pd
import pytest

from tvquant_assets.errors import LakeError
from tvquant_assets.lake import Lake, atomic_write_bytes


def test_layout_is_manifest_asset_date(tmp_path):
    lake = Lake(tmp_path)
    lake.write("demo", "prices", pd.Timestamp("2020-01-02"), pd.DataFrame({"a": [1.0]}))
    assert (tmp_path / "demo" / "prices" / "2020-01-02.parquet").is_file()
    assert lake.partitions("demo", "prices") == [pd.Timestamp("2020-01-02")]


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    lake = Lake(tmp_path)
    target = tmp_path / "demo" / "prices" / "2020-01-03.parquet"

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setenv("TVQUANT_LAKE_FSYNC", "1")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        lake.write("demo", "prices", "2020-01-03", pd.DataFrame({"a": [1.0]}))
    assert not target.exists()
    assert list((tmp_path / "demo" / "prices").iterdir()) == []  # no temp file either
    monkeypatch.undo()
    lake.write("demo", "prices", "2020-01-03", pd.DataFrame({"a": [1.0]}))
    monkeypatch.setattr(os, "replace", lambda a, b: boom(None))
    with pytest.raises(OSError):
        lake.write("demo", "prices", "2020-01-03", pd.DataFrame({"a": [2.0]}))
    assert Lake(tmp_path).read("demo", "prices", "2020-01-03")["a"].tolist() == [1.0]


def test_atomic_write_bytes_replaces_whole_file(tmp_path):
    p = tmp_path / "x.bin"
    atomic_write_bytes(p, b"old")
    atomic_write_bytes(p, b"new-content")
    assert p.read_bytes() == b"new-content"


def test_cache_notices_files_changed_by_someone_else(tmp_path):
    a, b = Lake(tmp_path), Lake(tmp_path)
    a.write("m", "s", "2020-01-02", pd.DataFrame({"v": [1.0]}))
    assert a.read("m", "s", "2020-01-02")["v"].tolist() == [1.0]
    b.write("m", "s", "2020-01-02", pd.DataFrame({"v": [2.0, 3.0]}))
    assert a.read("m", "s", "2020-01-02")["v"].tolist() == [2.0, 3.0]


def test_missing_and_unsafe_paths_are_clear_errors(tmp_path):
    lake = Lake(tmp_path)
    with pytest.raises(LakeError, match="missing partition .*2020-01-06.parquet; materialize it first"):
        lake.read("m", "prices", "2020-01-06")
    with pytest.raises(LakeError, match="not a safe path component"):
        lake.path("../etc", "prices", "2020-01-06")
    (tmp_path / "m" / "prices").mkdir(parents=True)
    (tmp_path / "m" / "prices" / "2020-01-07.parquet").write_bytes(b"garbage")
    with pytest.raises(LakeError, match="unreadable partition"):
        lake.read("m", "prices", "2020-01-07")
    got = lake.read_many("m", "prices", ["2020-01-06"], missing_ok=True)
    assert got == {}


def test_read_uses_the_hash_stored_at_write_and_verify_recomputes_it(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tvquant_assets.hashing import df_hash
    from tvquant_assets.lake import store

    df = pd.DataFrame({"symbol": ["AAPL", "KO"], "close": [1.5, 2.5]})
    Lake(tmp_path).write("demo", "prices", "2020-01-02", df)
    path = tmp_path / "demo" / "prices" / "2020-01-02.parquet"
    table = pq.read_table(path)
    assert table.schema.metadata[store.HASH_KEY].decode() == df_hash(df)

    calls = []
    monkeypatch.setattr(store, "df_hash", lambda frame: calls.append(1) or df_hash(frame))
    assert Lake(tmp_path).read_with_hash("demo", "prices", "2020-01-02")[1] == df_hash(df)
    assert calls == []  # a fresh process does not hash the partition again

    # someone rewrites the values but keeps the stored label: only a content check can tell
    forged = pa.table({"symbol": ["AAPL", "KO"], "close": [1.5, 9.9]}).replace_schema_metadata(table.schema.metadata)
    pq.write_table(forged, path)
    assert Lake(tmp_path).read_with_hash("demo", "prices", "2020-01-02")[1] == df_hash(df)
    assert Lake(tmp_path).read_with_hash("demo", "prices", "2020-01-02", verify=True)[1] == \
        df_hash(forged.to_pandas()) != df_hash(df)
    pq.write_table(forged.replace_schema_metadata(None), path)  # files written by other tools: hashed on read
    assert Lake(tmp_path).read_with_hash("demo", "prices", "2020-01-02")[1] == df_hash(forged.to_pandas())
