"""DuckDB views over the lake: one per stage per manifest plus the ledger, each queried."""

import json
import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tvquant_assets.cli import main
from tvquant_assets.errors import LakeError
from tvquant_assets.lake import Lake, duckdb_views
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.stages import STAGES


@pytest.fixture(scope="module")
def views(small_lake, tmp_path_factory):
    root = tmp_path_factory.mktemp("views") / "lake"
    shutil.copytree(small_lake["lake_root"], root)
    lake = Lake(str(root))
    db = root / "tvquant.duckdb"
    return {"lake": lake, "db": db, "views": duckdb_views.refresh(lake, None, db), "m": small_lake["manifest"]}


def test_one_view_per_stage_and_the_ledger_each_matching_the_files(views):
    lake, db, m = views["lake"], views["db"], views["m"]
    names = {v.qualified for v in views["views"]}
    assert names == {f"{m.name}.{s.value}" for s in STAGES} | {f"{m.name}.ledger", f"{m.name}.regime_regret",
                                                               f"{m.name}.verdict", f"{m.name}.vs_benchmark"}
    counts = duckdb_views.row_counts(db, views["views"])
    assert counts[f"{m.name}.vs_benchmark"] == counts[f"{m.name}.backtest"]  # every row is measured against it
    _, rows = duckdb_views.query(db, f"SELECT b.information_ratio, v.information_ratio FROM {m.name}.backtest b "
                                     f"JOIN {m.name}.vs_benchmark v USING (partition_date, candidate, simulator) "
                                     f"WHERE partition_date = DATE '2020-03-31'")
    assert rows and all(a == b for a, b in rows)
    for stage in STAGES:
        sizes = {d: pq.ParquetFile(lake.path(m.name, stage.value, d)).metadata.num_rows
                 for d in lake.partitions(m.name, stage.value)}
        assert counts[f"{m.name}.{stage.value}"] == sum(sizes.values()), stage
        cols, rows = duckdb_views.query(db, f"SELECT count(DISTINCT partition_date), min(partition_date), "
                                            f"max(partition_date), count(*) FROM {m.name}.{stage.value}")
        n, lo, hi, n_rows = rows[0]
        assert counts[f"{m.name}.{stage.value}"] == n_rows, stage  # the footers' count is the view's
        dates = [d for d, n_rows in sizes.items() if n_rows]  # an empty partition (a holiday) adds no rows
        assert (n, pd.Timestamp(lo), pd.Timestamp(hi)) == (len(dates), dates[0], dates[-1]), stage
    entries = Ledger(str(lake.ledger_path(m.name))).entries()
    assert counts[f"{m.name}.ledger"] == len(entries)
    _, rows = duckdb_views.query(db, f"SELECT seq, entry_hash, date FROM {m.name}.ledger ORDER BY seq DESC LIMIT 1")
    assert rows[0] == (entries[-1]["seq"], entries[-1]["entry_hash"], entries[-1]["payload"]["date"])


def test_values_round_trip_and_columns_union_across_partitions(views):
    lake, db, m = views["lake"], views["db"], views["m"]
    d = pd.Timestamp("2020-03-31")
    board = lake.read(m.name, "backtest", d).sort_values("candidate").reset_index(drop=True)
    cols, rows = duckdb_views.query(db, f"SELECT candidate, sharpe, equity FROM {m.name}.backtest "
                                        f"WHERE partition_date = DATE '2020-03-31' ORDER BY candidate")
    got = pd.DataFrame(rows, columns=cols)
    pd.testing.assert_series_equal(got["sharpe"], board["sharpe"], check_names=False)
    # a later code version adds a column: older partitions read it as NULL, no refresh needed
    board["deflated_sharpe"] = 0.5
    lake.write(m.name, "backtest", d, board)
    _, rows = duckdb_views.query(db, f"SELECT count(deflated_sharpe), count(*) FROM {m.name}.backtest")
    assert rows[0][0] == len(board) and rows[0][1] > len(board)


def test_new_stage_appears_and_vanished_stage_is_dropped_on_refresh(views):
    lake, db, m = views["lake"], views["db"], views["m"]
    lake.write(m.name, "orders", "2020-03-31", pd.DataFrame({"symbol": ["AAPL"], "side": ["buy"]}))
    names = {v.qualified for v in duckdb_views.refresh(lake, [m.name], db)}
    assert f"{m.name}.orders" in names
    shutil.rmtree(str(lake.asset_dir(m.name, "orders")))
    duckdb_views.refresh(lake, [m.name], db)
    _, rows = duckdb_views.query(db, "SELECT view_name FROM duckdb_views() WHERE schema_name = ? AND NOT internal"
                                 .replace("?", f"'{m.name}'"))
    assert "orders" not in {r[0] for r in rows} and "backtest" in {r[0] for r in rows}


def test_cli_lake_sql_json_and_one_line_errors(views, capsys):
    lake, m = views["lake"], views["m"]
    root = str(lake.root)
    assert main(["lake", "sql", f"SELECT label, count(*) AS n FROM {m.name}.regime GROUP BY label ORDER BY label",
                 "--lake", root, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sum(r["n"] for r in rows) == len(lake.partitions(m.name, "regime"))
    assert main(["lake", "sql", "SELECT * FROM nosuch.view", "--lake", root]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tvquant: error: sql: Catalog Error")
    assert main(["lake", "views", "--lake", root, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["views"][f"{m.name}.ledger"] > 0


def test_remote_lake_is_refused_in_one_line(tmp_path):
    with pytest.raises(LakeError, match="not a local directory"):
        duckdb_views.discover(Lake("memory://somewhere"))


def test_read_columns_equals_the_lake_read_bit_for_bit(tmp_path):
    """The threshold auditor's projected read: same values and row order as the lake's own read, an empty
    partition as an empty frame, a missing one as the lake's error."""
    import numpy as np

    lake = Lake(tmp_path)
    days = pd.bdate_range("2021-01-04", periods=4)
    rng = np.random.default_rng(3)
    for i, d in enumerate(days):
        n = 0 if i == 2 else 3
        lake.write("m", "backtest", d, pd.DataFrame({
            "candidate": [f"c{j}" for j in range(n)][::-1], "day_return": rng.normal(size=n) * 1e-2,
            "other": ["x"] * n}))
    got = duckdb_views.read_columns(lake, "m", "backtest", days, ["candidate", "day_return"])
    want = lake.read_many("m", "backtest", days)
    assert list(got) == list(days)
    for d in days:
        a, (b, _) = got[d], want[d]
        assert list(a.columns) == ["candidate", "day_return"] and len(a) == len(b)
        assert list(a["candidate"]) == list(b["candidate"])
        assert a["day_return"].to_numpy().tobytes() == b["day_return"].to_numpy().tobytes()
    with pytest.raises(LakeError):
        duckdb_views.read_columns(lake, "m", "backtest", [*days, pd.Timestamp("2021-01-11")], ["candidate"])
