"""``tvquant lake sql`` is a sandbox: one SELECT over the views; every escape the hardening probe found is
refused with one line and leaves no file behind."""

import json
import os

import pandas as pd
import pytest

from tvquant_assets.cli import main
from tvquant_assets.errors import LakeError
from tvquant_assets.lake import Lake, sql_console


@pytest.fixture
def lake(tmp_path):
    root = tmp_path / "lake"
    lk = Lake(str(root))
    for d, px in (("2020-01-02", 100.0), ("2020-01-03", 101.0)):
        lk.write("m", "prices", d, pd.DataFrame({"symbol": ["AAA", "BBB"], "close": [px, 2 * px]}))
    (root / "m" / "ledger.jsonl").write_text(
        json.dumps({"seq": 0, "prev_hash": "0" * 64, "payload": {"date": "2020-01-02"}, "entry_hash": "a" * 64}) + "\n")
    (root / "m" / "repairs.json").write_text('{"secret": 1}')
    (root / "m" / "prices_evil").mkdir()
    (root / "m" / "prices_evil" / "x.csv").write_text("a\n1\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOPSECRET\n")
    return {"lake": lk, "root": root, "outside": outside, "tmp": tmp_path}


def _files(tmp):
    return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))


def test_views_are_queryable_with_a_default_row_limit(lake):
    res = sql_console.run(lake["lake"], "SELECT partition_date, symbol, close FROM m.prices ORDER BY 1, 2")
    assert [(str(r[0]), r[1], r[2]) for r in res.rows] == [
        ("2020-01-02", "AAA", 100.0), ("2020-01-02", "BBB", 200.0),
        ("2020-01-03", "AAA", 101.0), ("2020-01-03", "BBB", 202.0)]
    assert sql_console.run(lake["lake"], "SELECT date FROM m.ledger").rows == [("2020-01-02",)]
    big = sql_console.run(lake["lake"], "SELECT * FROM range(5000)")
    assert len(big.rows) == sql_console.DEFAULT_LIMIT and big.truncated
    assert len(sql_console.run(lake["lake"], "SELECT * FROM range(5000)", limit=0).rows) == 5000
    # reading a view's own files directly is inside the allow-list
    assert len(sql_console.run(lake["lake"], f"SELECT * FROM glob('{lake['root']}/m/prices/*')").rows) == 2


def _escapes(root, outside):
    p = f"{root}/m/prices"
    return {
        "copy into the lake": f"COPY (SELECT 'AAA' AS symbol, 1e9 AS close) TO '{p}/2020-01-06.parquet'",
        "copy outside": f"COPY (SELECT 1) TO '{outside}/out.csv'",
        "export database": f"EXPORT DATABASE '{outside}/exp'",
        "second statement": f"SELECT 1; COPY (SELECT 1) TO '{p}/2020-01-07.parquet'",
        "second select": "SELECT 1; SELECT 2",
        "read_csv": f"SELECT * FROM read_csv('{outside}/secret.txt')",
        "read_text": f"SELECT * FROM read_text('{outside}/secret.txt')",
        "read_text /etc": "SELECT * FROM read_text('/etc/passwd')",
        "glob": "SELECT * FROM glob('/etc/*')",
        "dot-dot": f"SELECT * FROM read_text('{p}/../../../outside/secret.txt')",
        "sibling prefix": f"SELECT * FROM read_csv('{root}/m/prices_evil/x.csv')",
        "lake file that is no view": f"SELECT * FROM read_text('{root}/m/repairs.json')",
        "read_blob": "SELECT * FROM read_blob('/etc/hostname')",
        "attach": f"ATTACH '{outside}/other.duckdb' AS o",
        "install": "INSTALL httpfs",
        "load": "LOAD httpfs",
        "set": "SET enable_external_access = true",
        "reset": "RESET lock_configuration",
        "create": "CREATE TABLE t AS SELECT 1",
        "query() of a copy": f"SELECT * FROM query('COPY (SELECT 1) TO ''{outside}/q.csv''')",
        "getenv": "SELECT getenv('HOME')",
        "pragma": "PRAGMA enable_profiling",
    }


@pytest.mark.parametrize("name", list(_escapes("R", "O")))
def test_every_escape_is_refused_in_one_line_and_writes_nothing(lake, name, capsys):
    sql = _escapes(lake["root"], lake["outside"])[name]
    before = _files(lake["tmp"])
    with pytest.raises(LakeError) as info:
        sql_console.run(lake["lake"], sql)
    assert len(str(info.value).splitlines()) == 1 and str(info.value).startswith("sql: ")
    assert "TOPSECRET" not in str(info.value)
    assert main(["lake", "sql", sql, "--lake", str(lake["root"])]) == 2
    err = capsys.readouterr()
    assert "TOPSECRET" not in err.out and len(err.err.strip().splitlines()) == 1
    assert _files(lake["tmp"]) == before
    assert len(lake["lake"].partitions("m", "prices")) == 2


def test_statement_kinds_are_named(lake):
    with pytest.raises(LakeError, match="COPY statements are not allowed"):
        sql_console.check_statement("COPY (SELECT 1) TO 'x.csv'")
    with pytest.raises(LakeError, match="exactly one statement is allowed, found 2"):
        sql_console.check_statement("SELECT 1; SELECT 2")
    sql_console.check_statement("WITH a AS (SELECT 1) SELECT * FROM a;  ")  # one trailing ; is fine


def test_runaway_query_is_interrupted(lake):
    with pytest.raises(LakeError, match="interrupted after 0.5 s"):
        sql_console.run(lake["lake"], "SELECT count(*) FROM range(1000000000000) a", timeout=0.5)


def test_cli_prints_rows_and_says_when_the_limit_cut(lake, capsys):
    assert main(["lake", "sql", "SELECT * FROM range(3)", "--limit", "2", "--json",
                 "--lake", str(lake["root"])]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == [{"range": 0}, {"range": 1}]
    assert "showing the first 2 rows" in out.err
    assert not os.path.exists(lake["root"] / "tvquant.duckdb")  # the console writes no database
