import numpy as np
import pandas as pd

from tvquant_assets.hashing import canonical_json, df_hash, obj_hash
from tvquant_assets.lake import Lake


def _frame():
    return pd.DataFrame({
        "symbol": ["AAPL", "MSFT", "KO"],
        "weight": [0.5, 0.25, np.nan],
        "n": [1, 2, 3],
        "selected": [True, False, True],
        "date": pd.to_datetime(["2020-01-02"] * 3),
    })


def test_df_hash_ignores_column_order_and_survives_parquet(tmp_path):
    df = _frame()
    h = df_hash(df)
    assert h == df_hash(df[list(reversed(df.columns))])
    lake = Lake(tmp_path)
    lake.write("m", "stage", "2020-01-02", df)
    fresh = Lake(tmp_path)  # no cache: a real parquet round trip
    assert fresh.read_with_hash("m", "stage", "2020-01-02")[1] == h
    assert df_hash(fresh.read("m", "stage", "2020-01-02")) == h


def test_df_hash_sees_values_rows_and_names():
    df = _frame()
    h = df_hash(df)
    changed = df.copy()
    changed.loc[0, "weight"] = 0.5 + 1e-15
    assert df_hash(changed) != h
    assert df_hash(df.iloc[[1, 0, 2]].reset_index(drop=True)) != h  # row order is content
    assert df_hash(df.rename(columns={"n": "m"})) != h
    assert df_hash(df.assign(symbol=["AAPL", "MSFT", "K O"])) != h


def test_df_hash_folds_negative_zero_and_nan_payloads_and_skips_timings():
    a = pd.DataFrame({"x": [0.0, np.nan]})
    b = pd.DataFrame({"x": [-0.0, np.float64("nan") * -1]})
    assert df_hash(a) == df_hash(b)
    assert df_hash(a.assign(solve_ms=[1.0, 2.0])) == df_hash(a.assign(solve_ms=[9.0, 3.0]))


def test_canonical_json_is_sorted_and_compact():
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert obj_hash({"a": 1, "b": 2}) == obj_hash({"b": 2, "a": 1})


def test_df_hash_canonical_form_is_pinned():
    """Ledgers compare hashes across versions: the canonical form may not drift silently. These digests
    were computed by the implementation documented in tvquant_assets/hashing.py; a change here needs a
    ledger migration note."""
    df = pd.DataFrame({
        "symbol": ["AAPL", "MSFT", None], "weight": [0.5, -0.0, np.nan], "n": [1, 2, 3],
        "u": np.array([1, 2, 3], dtype="uint32"), "selected": [True, False, True],
        "date": pd.to_datetime(["2020-01-02", "2020-01-03", None]),
        "tz": pd.to_datetime(["2020-01-02"] * 3).tz_localize("UTC"),
        "cat": pd.Categorical(["a", "b", "a"]), "obj": pd.Series([1.5, "x", None], dtype=object),
        "solve_ms": [1.0, 2.0, 3.0]})
    assert df_hash(df) == "ebf560c1e9d385a6fc057e125e4f7ea99c92f089bbd9c7356a8d0a9a3a6e5ea5"
    assert df_hash(df.set_index(["symbol", "n"])) == "e7fae5498b0a709693f2f108c45ef32f03959dbbd48d03da41ae2a15a7d1e24b"
    assert df_hash(df.iloc[:0]) == "8c525d70208ea2c177f97e2597afd07ea292d2ffa85c62dae14561b0e9529b37"


def test_df_hash_is_the_documented_canonical_form():
    """Spelled out by hand from the module docstring, so a faster implementation cannot drift from it."""
    import hashlib

    df = pd.DataFrame({
        "w": [0.5, -0.0], "n": np.array([3, 4], dtype="int32"), "s": pd.array(["KO", None], dtype="str"),
        "b": [True, False], "d": pd.to_datetime(["2020-01-02", "2020-01-03"]), "u": np.array([7, 8], dtype="uint16"),
        "c": pd.Categorical(["x", "y"]), "t": pd.to_datetime(["2020-01-02", "2020-01-03"]).tz_localize("UTC"),
        "o": [1.5, "a"], "lag_ms": [1.0, 2.0],
    })

    def f8(values):
        return np.asarray(values, dtype="<f8").tobytes()

    def text(values):
        encoded = [v.encode() for v in values]
        return np.array([len(e) for e in encoded], dtype="<i8").tobytes() + b"".join(encoded)

    ns = np.array(["2020-01-02", "2020-01-03"], dtype="datetime64[ns]").view("<i8").tobytes()
    parts = {
        "__index__0": ("num", f8([0, 1])), "b": ("bool", b"\x01\x00"), "c": ("str", text(["x", "y"])),
        "d": ("datetime", ns), "n": ("num", f8([3, 4])), "o": ("str", text(["1.5", "a"])),
        "s": ("str", text(["KO", "\x00NA"])), "t": ("datetime", ns), "u": ("uint", np.array([7, 8], "<u8").tobytes()),
        "w": ("num", f8([0.5, 0.0])),
    }
    h = hashlib.sha256(b"rows=2;")
    for name in sorted(parts):
        h.update(f"{name}:{parts[name][0]};".encode())
        h.update(parts[name][1])
    assert df_hash(df) == h.hexdigest()
    assert df_hash(df.set_index("s")) != df_hash(df)  # a real index is content too


def test_arrow_string_columns_hash_as_their_values_one_by_one():
    """Arrow-backed text is hashed from its buffers (offsets and UTF-8 data); the bytes must be the
    documented per-value ones for sliced, filtered and concatenated arrays, missing values and any text."""
    import hashlib
    import random

    rng = random.Random(3)
    alphabet = ["a", "B", "é", "日本", "\x00", "", " ", "🙂", "NA", "<NA>"]

    def expected(values, missing: str) -> str:
        encoded = [(missing if v is None or v != v else v).encode() for v in values]
        h = hashlib.sha256(f"rows={len(values)};".encode())
        h.update(b"__index__0:num;" + np.arange(len(values), dtype="<f8").tobytes())
        h.update(b"s:str;" + np.array([len(e) for e in encoded], dtype="<i8").tobytes() + b"".join(encoded))
        return h.hexdigest()

    for _ in range(400):
        values = [None if rng.random() < 0.15 else "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
                  for _ in range(rng.choice([0, 1, 7, 60]))]
        for dtype, missing in (("str", "\x00NA"), ("string[pyarrow]", "<NA>")):
            column = pd.Series(values, dtype=dtype)
            variants = [column, column.iloc[1:-1], column[column.index % 2 == 0],
                        pd.concat([column, column.iloc[::-1]])]
            for s in variants:
                kept = [None if pd.isna(v) else v for v in s]
                assert df_hash(pd.DataFrame({"s": s.reset_index(drop=True)})) == expected(kept, missing)
