"""`tvquant audit verify|replay|show` on a real Dagster run (the shared sp500_it_run fixture)."""

import json
import shutil
from pathlib import Path

import pytest

from tvquant_assets.cli import main
from tvquant_assets.core.ledger import GENESIS, entry_hash
from tvquant_assets.hashing import canonical_json
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import HMAC_ENV, Ledger
from tvquant_assets.stages import STAGES


@pytest.fixture
def it(sp500_it_run, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(sp500_it_run["home"]))
    monkeypatch.delenv(HMAC_ENV, raising=False)
    return sp500_it_run


def _verify(it, *extra, lake=None):
    return main(["audit", "verify", "--manifest", str(it["manifest_path"]), "--lake", lake or it["lake_root"],
                 *extra])


@pytest.fixture
def ledger_file(it):
    """The run's ledger; restored byte for byte after the test tampers with it."""
    path = Path(str(Lake(it["lake_root"]).ledger_path(it["manifest"].name)))
    original = path.read_bytes()
    yield path
    path.write_bytes(original)


def _rechain(entries: list[dict]) -> str:
    out, prev = [], GENESIS
    for seq, e in enumerate(entries):
        e = {"seq": seq, "prev_hash": prev, "payload": e["payload"]}
        e["entry_hash"] = entry_hash(e)
        out.append(canonical_json(e))
        prev = e["entry_hash"]
    return "\n".join(out) + "\n"


def test_verify_compares_the_chain_head_recorded_in_dagster(it, ledger_file, capsys):
    assert _verify(it) == 0
    out = capsys.readouterr().out
    assert "ledger intact" in out and "chain head(s) recorded in Dagster match" in out
    entries = Ledger(ledger_file).entries()
    # a consistent rewrite of the whole file: every hash and link recomputed, one weight story changed
    entries[3]["payload"]["stages"]["tournament"]["output"] = "f" * 64
    ledger_file.write_text(_rechain(entries))
    assert Ledger(ledger_file).verify().ok  # the file alone cannot tell
    assert _verify(it) == 1
    err = capsys.readouterr().err
    assert "head mismatch vs Dagster: Dagster run" in err and "(rewritten at or before entry" in err
    assert _verify(it, "--no-dagster") == 0  # what the event log adds
    capsys.readouterr()
    # whole entries cut off the end: still a valid chain, but shorter than Dagster saw
    ledger_file.write_text("\n".join(ledger_file.read_text().splitlines()[:-3]) + "\n")
    ledger_file.write_text(_rechain(Ledger(ledger_file).entries()))
    assert _verify(it, "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and report["reason"].startswith("truncated: Dagster run")
    assert f"but the file ends at entry {len(entries) - 4}" in report["reason"]


def test_verify_without_recorded_heads_says_so(it, tmp_path, capsys):
    lake = tmp_path / "lake"
    name = it["manifest"].name
    (lake / name).mkdir(parents=True)
    shutil.copy(Path(str(Lake(it["lake_root"]).ledger_path(name))), lake / name / "ledger.jsonl")
    assert _verify(it, lake=str(lake)) == 0
    assert "a consistent whole-file rewrite cannot be ruled out" in capsys.readouterr().out


def _lake_state(root: str) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in Path(root).rglob("*") if p.is_file()}


def test_replay_of_several_dates_is_identical_and_writes_nothing(it, capsys):
    before = _lake_state(it["lake_root"])
    code = main(["audit", "replay", "--manifest", str(it["manifest_path"]), "--lake", it["lake_root"], "--date",
                 "2020-03-02", "2020-03-16", "2020-03-31"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("every stage identical, bit for bit, to the lake and the ledger") == 3
    assert _lake_state(it["lake_root"]) == before  # replay never writes the lake or the ledger


def _flip_last_bit(lake_root: str, manifest: str, stage: str, date: str, symbol: str) -> None:
    import numpy as np

    lake = Lake(lake_root)
    frame = lake.read(manifest, stage, date).copy()
    row = frame.index[frame["symbol"] == symbol][0]
    close = frame["close"].to_numpy(dtype="float64", copy=True)
    close.view(np.int64)[row] ^= 1  # the last bit of one byte of one price
    frame["close"] = close
    lake.write(manifest, stage, date, frame)


def test_replay_hashes_content_not_the_label_stored_in_the_file(it, tmp_path, capsys):
    """A price edited with another tool that keeps the lake's stored df_hash label is still named."""
    import pyarrow.parquet as pq

    root = str(tmp_path / "lake")
    shutil.copytree(it["lake_root"], root)
    name = it["manifest"].name
    path = Path(root) / name / "prices" / "2020-03-13.parquet"
    table = pq.read_table(path)
    close = table.column("close").to_numpy().copy()
    close[0] *= 1.01
    pq.write_table(table.set_column(table.schema.get_field_index("close"), "close", [close]), path)
    assert pq.read_table(path).schema.metadata == table.schema.metadata  # the stale label survived
    args = ["audit", "replay", "--manifest", str(it["manifest_path"]), "--lake", root, "--date", "2020-03-16"]
    assert main(args) == 1
    assert "FAILED at stage scan: replay != lake; inputs changed since the ledger entry: prices" \
        in capsys.readouterr().err


def test_replay_fails_naming_the_stage_when_one_input_byte_changes(it, tmp_path, capsys):
    import numpy as np

    root = str(tmp_path / "lake")
    shutil.copytree(it["lake_root"], root)
    name = it["manifest"].name
    original = Lake(root).read(name, "prices", "2020-03-13")
    _flip_last_bit(root, name, "prices", "2020-03-13", "AAPL")  # the day before D: inside every window
    changed = Lake(root).read(name, "prices", "2020-03-13")
    aapl = (original["symbol"] == "AAPL").to_numpy()
    assert np.count_nonzero(original["close"].to_numpy() != changed["close"].to_numpy()) == 1
    assert original["close"][aapl].iloc[0] == pytest.approx(changed["close"][aapl].iloc[0], rel=1e-15)
    args = ["audit", "replay", "--manifest", str(it["manifest_path"]), "--lake", root, "--date", "2020-03-16"]
    assert main(args) == 1
    assert "replay 2020-03-16 FAILED at stage scan: replay != lake; inputs changed since the ledger entry: prices" \
        in capsys.readouterr().err
    assert main([*args, "--json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    rows = {r["stage"]: r for r in report["stages"]}
    assert rows["catalog"]["ok"] and rows["prices"]["ok"]  # D's own bars are untouched
    assert rows["scan"]["problems"][0] == "replay != lake" and rows["scan"]["lake"] == rows["scan"]["ledger"]
    # the flipped price of D itself: the prices stage no longer matches its source or the ledger
    _flip_last_bit(root, name, "prices", "2020-03-16", "MSFT")
    assert main([*args, "--json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    prices = next(r for r in report["stages"] if r["stage"] == "prices")
    assert prices["problems"] == ["replay != lake", "lake != ledger (the partition changed after the entry)"]


def test_show_prints_the_decisions_and_their_provenance(it, capsys):
    args = ["audit", "show", "--manifest", str(it["manifest_path"]), "--lake", it["lake_root"], "--date",
            "2020-03-16"]
    assert main([*args, "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    lake = Lake(it["lake_root"])
    name = it["manifest"].name
    regime = lake.read(name, "regime", "2020-03-16").iloc[0]
    assert rec["regime"]["label"] == regime["label"] and rec["regime"]["label"] in ("TURBULENT", "CRISIS")
    selection = lake.read(name, "selection", "2020-03-16")
    assert [s["symbol"] for s in rec["selection"]["symbols"]] == list(selection.loc[selection["selected"], "symbol"])
    weights = lake.read(name, "tournament", "2020-03-16")
    assert {c["candidate"] for c in rec["tournament"]} == set(weights["candidate"])
    for c in rec["tournament"]:
        assert c["weight_sum"] == pytest.approx(1.0) and c["decision_date"] == "2020-03-02"
        top = weights[weights["candidate"] == c["candidate"]]["weight"].max()
        assert c["top"][0]["weight"] == pytest.approx(top)
    assert all(h["matches"] for h in rec["hashes"].values()) and len(rec["hashes"]) == len(STAGES) - 1
    pv = rec["provenance"]
    entry = Ledger(lake.ledger_path(name)).latest_for("date", "2020-03-16")
    assert (pv["entry_seq"], pv["entry_hash"], pv["ledger_intact"]) == (entry["seq"], entry["entry_hash"], True)
    assert pv["manifest_hash"] == entry["payload"]["manifest_hash"] and pv["run_id"] == it["report"].run_id
    assert set(pv["environment"]) >= {"uv_lock_hash", "python", "packages"}
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"regime: {regime['label']}" in text and f"all {len(STAGES) - 1} stages match the ledger" in text
    assert "custom/min_variance" in text and f"ledger entry {entry['seq']}" in text
    # default date: the latest in the ledger
    assert main(args[:-2] + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["date"] >= "2020-03-31"


def test_verify_refuses_an_entry_forged_after_the_recorded_head(it, ledger_file, capsys):
    """A correctly chained entry appended at the end (the probe's forgery) passed before; the heads Dagster
    recorded end before it. A trailing blank line is no truncation."""
    ledger_file.write_text(ledger_file.read_text() + "\n")
    assert _verify(it) == 0
    assert "1 blank line(s) skipped" in capsys.readouterr().out
    ledger = Ledger(ledger_file)
    ledger.append({**ledger.entries()[-1]["payload"], "note": "forged"})
    assert Ledger(ledger_file).verify().ok  # the chain alone is fine
    assert _verify(it) == 1
    err = capsys.readouterr().err
    assert f"entry {len(ledger.entries()) - 1}: 1 entry after the last chain head recorded in Dagster" in err
