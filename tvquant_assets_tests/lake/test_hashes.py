"""``Lake.hashes``: partition hashes without reading frames (the audit's and lineage's reads), equal to the
hashes a full read gives, from the footer the lake wrote, remembered beyond the frame cache."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tvquant_assets.errors import LakeError
from tvquant_assets.hashing import df_hash
from tvquant_assets.lake import Lake

DATES = list(pd.bdate_range("2024-01-01", periods=6))


def _frame(i: int) -> pd.DataFrame:
    return pd.DataFrame({"symbol": ["A", "B"], "close": [1.0 + i, 2.0 * i]})


def test_hashes_come_from_the_footer_and_equal_a_full_read(tmp_path, monkeypatch):
    writer = Lake(str(tmp_path))
    for i, d in enumerate(DATES):
        writer.write("m", "prices", d, _frame(i))
    cold = Lake(str(tmp_path))  # nothing cached
    reads: list = []
    real = Lake.read_path_with_hash
    monkeypatch.setattr(Lake, "read_path_with_hash",
                        lambda self, p, verify=False: (reads.append(p), real(self, p, verify))[1])
    got = cold.hashes("m", "prices", DATES)
    assert reads == []  # footers only
    assert got == {d: df_hash(_frame(i)) for i, d in enumerate(DATES)}
    assert got == {d: h for d, (_, h) in cold.read_many("m", "prices", DATES).items()}


def test_missing_partitions_and_files_without_a_stored_hash(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write("m", "scan", DATES[0], _frame(0))
    with pytest.raises(LakeError, match="missing partition"):
        lake.hashes("m", "scan", DATES[:2])
    assert list(lake.hashes("m", "scan", DATES[:2], missing_ok=True)) == [DATES[0]]
    plain = tmp_path / "m" / "scan" / f"{DATES[1]:%Y-%m-%d}.parquet"  # written by hand: no hash in it
    pq.write_table(pa.Table.from_pandas(_frame(5), preserve_index=False), plain)
    assert Lake(str(tmp_path)).hashes("m", "scan", [DATES[1]]) == {DATES[1]: df_hash(_frame(5))}


def test_a_rewritten_partition_gives_its_new_hash(tmp_path):
    lake = Lake(str(tmp_path), cache_bytes=0)  # no frame cache: the remembered hashes alone
    lake.write("m", "scan", DATES[0], _frame(0))
    assert lake.hashes("m", "scan", DATES[:1]) == {DATES[0]: df_hash(_frame(0))}
    other = Lake(str(tmp_path / "elsewhere"))  # another process's write of the same file
    other.write("m", "scan", DATES[0], _frame(7))
    target = tmp_path / "m" / "scan" / f"{DATES[0]:%Y-%m-%d}.parquet"
    target.write_bytes((tmp_path / "elsewhere" / "m" / "scan" / f"{DATES[0]:%Y-%m-%d}.parquet").read_bytes())
    assert lake.hashes("m", "scan", DATES[:1]) == {DATES[0]: df_hash(_frame(7))}
