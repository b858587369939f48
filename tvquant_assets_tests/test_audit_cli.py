"""`tvquant audit verify|replay|show` on a real Dagster run (the shared sp500_it_run fixture)."""

import json
import shutil
from pathlib import Path

import pytest

from tvquant_assets.cli import main
from tvquant_assets.core.ledger import GENESIS, HMAC_ENV, Ledger, entry_hash
from tvquant_assets.hashing import canonical_json
from tvquant_assets.lake import Lake


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
