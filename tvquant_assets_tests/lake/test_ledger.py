"""Audit ledger file: chain integrity, tamper detection with the right message and index, concurrent appenders."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pandas as pd
import pytest

from tvquant_assets.core.ledger import GENESIS, Head, entry_hash, entry_hmac
from tvquant_assets.errors import LedgerError
from tvquant_assets.hashing import canonical_json
from tvquant_assets.lake.ledger import HMAC_ENV, Ledger


@pytest.fixture(autouse=True)
def no_key_from_env(monkeypatch):
    monkeypatch.delenv(HMAC_ENV, raising=False)


def filled(tmp_path: Path, n: int = 5) -> Ledger:
    ledger = Ledger(tmp_path / "demo.jsonl")
    for i in range(n):
        ledger.append({"partition": f"2024-01-0{i + 1}", "i": i, "note": "é\u2028x"})
    return ledger


def rewrite(ledger: Ledger, lines: list[str]) -> None:
    ledger.path.write_text("".join(lines), encoding="utf-8")


def lines_of(ledger: Ledger) -> list[str]:
    return ledger.path.read_text(encoding="utf-8").split("\n")[:-1]


def test_intact_chain(tmp_path):
    ledger = Ledger(tmp_path / "demo.jsonl")
    assert ledger.head() is None and ledger.entries() == [] and ledger.verify().ok
    first = ledger.append({"partition": "2024-01-01", "v": 1})
    assert first["seq"] == 0 and first["prev_hash"] == GENESIS and first["entry_hash"] == entry_hash(first)
    second = ledger.append({"partition": "2024-01-02", "v": 2})
    ledger.append({"partition": "2024-01-01", "v": 3})
    assert ledger.head()["seq"] == 2
    assert second["prev_hash"] == first["entry_hash"]
    assert ledger.latest_for("partition", "2024-01-01")["payload"]["v"] == 3
    assert ledger.latest_for("partition", "1999-01-01") is None
    ledger.append({"partition": pd.Timestamp("2024-01-05"), "v": 4})  # stored as its ISO string
    assert ledger.latest_for("partition", pd.Timestamp("2024-01-05"))["payload"]["v"] == 4
    report = ledger.verify()
    assert report.ok and report.n_entries == 4 and report.first_bad is None
    # one canonical JSON object per line
    for line, entry in zip(lines_of(ledger), ledger.entries()):
        assert line == canonical_json(entry)


def test_edit_is_detected(tmp_path):
    ledger = filled(tmp_path)
    lines = lines_of(ledger)
    entry = json.loads(lines[2])
    entry["payload"]["i"] = 99
    lines[2] = canonical_json(entry)
    rewrite(ledger, [ln + "\n" for ln in lines])
    report = ledger.verify()
    assert (report.ok, report.first_bad, report.reason) == (False, 2, "entry 2: hash mismatch (edited)")


def test_edited_head_blocks_appends(tmp_path):
    ledger = filled(tmp_path, 2)
    lines = lines_of(ledger)
    lines[-1] = lines[-1].replace('"i":1', '"i":7')
    rewrite(ledger, [ln + "\n" for ln in lines])
    with pytest.raises(LedgerError, match="fails its hash"):
        ledger.append({"x": 1})


def test_delete_is_detected(tmp_path):
    ledger = filled(tmp_path)
    lines = lines_of(ledger)
    del lines[1]
    rewrite(ledger, [ln + "\n" for ln in lines])
    report = ledger.verify()
    assert (report.ok, report.n_entries, report.first_bad) == (False, 4, 1)
    assert report.reason == ("entry 1: 1 entry missing before it (deleted): it is seq 2 and follows an entry "
                             "not in the file")


def test_delete_first_is_detected(tmp_path):
    ledger = filled(tmp_path)
    rewrite(ledger, [ln + "\n" for ln in lines_of(ledger)[1:]])
    report = ledger.verify()
    assert report.first_bad == 0 and report.reason.startswith("entry 0: 1 entry missing before it (deleted)")


def test_reorder_is_detected(tmp_path):
    ledger = filled(tmp_path)
    lines = lines_of(ledger)
    lines[2], lines[3] = lines[3], lines[2]
    rewrite(ledger, [ln + "\n" for ln in lines])
    report = ledger.verify()
    assert (report.ok, report.first_bad) == (False, 2)
    assert report.reason == "entry 2: reordered (it follows line 3, which comes after it)"


def test_truncated_last_line_is_detected(tmp_path):
    ledger = filled(tmp_path)
    data = ledger.path.read_bytes()
    ledger.path.write_bytes(data[:-25])
    report = ledger.verify()
    assert (report.ok, report.n_entries, report.first_bad) == (False, 5, 4)
    assert report.reason == "line 4 is not valid JSON: the file ends mid-entry (truncated)"
    with pytest.raises(LedgerError, match="truncated"):
        ledger.append({"x": 1})
    with pytest.raises(LedgerError, match="line 4"):
        ledger.entries()


def test_wrong_seq_is_detected(tmp_path):
    ledger = filled(tmp_path, 2)
    head = ledger.head()
    bad = {"seq": 5, "prev_hash": head["entry_hash"], "payload": {"i": 2}}
    bad["entry_hash"] = entry_hash(bad)
    with open(ledger.path, "a", encoding="utf-8") as f:
        f.write(canonical_json(bad) + "\n")
    report = ledger.verify()
    assert (report.first_bad, report.reason) == (2, "entry 2: seq 5, expected 2 (edited)")


def test_unserializable_payload_is_refused(tmp_path):
    ledger = filled(tmp_path, 1)
    with pytest.raises(LedgerError, match="serializable"):
        ledger.append({"x": float("nan")})
    assert ledger.verify().n_entries == 1


def test_missing_final_newline_is_completed(tmp_path):
    ledger = filled(tmp_path, 2)
    ledger.path.write_bytes(ledger.path.read_bytes()[:-1])
    assert ledger.verify().ok
    ledger.append({"i": 2})
    report = ledger.verify()
    assert report.ok and report.n_entries == 3


def forge_chain(entries: list[dict], key: bytes | None = None) -> list[str]:
    """Re-link and re-hash ``entries`` from the start: a consistent rewrite (optionally with a key)."""
    out, prev = [], GENESIS
    for seq, e in enumerate(entries):
        e = {"seq": seq, "prev_hash": prev, "payload": e["payload"]}
        e["entry_hash"] = entry_hash(e)
        if key:
            e["hmac"] = entry_hmac(key, e["entry_hash"])
        out.append(canonical_json(e) + "\n")
        prev = e["entry_hash"]
    return out


def test_forged_entry_with_recomputed_chain_fails_the_recorded_head(tmp_path):
    ledger = filled(tmp_path)
    recorded = Head(4, ledger.head()["entry_hash"], "Dagster run abcd1234")
    entries = ledger.entries()
    forged = {"payload": {"partition": "2024-01-02", "i": 1, "note": "better numbers"}}
    rewrite(ledger, forge_chain(entries[:2] + [forged] + entries[2:4]))  # same length, chain recomputed
    assert ledger.verify().ok  # on its own the file is consistent...
    report = ledger.verify([recorded])  # ...but not with the head Dagster recorded
    assert (report.ok, report.first_bad) == (False, 4)
    assert report.reason.startswith("head mismatch vs Dagster: Dagster run abcd1234 recorded entry 4 as "
                                    f"{recorded.entry_hash[:16]}, the file has ")
    assert report.reason.endswith("(rewritten at or before entry 4)")


def test_whole_file_rewritten_consistently_fails_the_recorded_head(tmp_path):
    ledger = filled(tmp_path)
    heads = [Head(2, ledger.entries()[2]["entry_hash"], "Dagster run r1"),
             Head(4, ledger.head()["entry_hash"], "Dagster run r2")]
    assert ledger.verify(heads).ok
    entries = ledger.entries()
    for e in entries:
        e["payload"]["i"] += 100
    rewrite(ledger, forge_chain(entries))
    report = ledger.verify(heads)
    assert not report.ok and "head mismatch vs Dagster: Dagster run r2 recorded entry 4" in report.reason


def test_truncated_whole_entries_fail_the_recorded_head(tmp_path):
    ledger = filled(tmp_path)
    head = Head(4, ledger.head()["entry_hash"], "Dagster run r9")
    rewrite(ledger, [ln + "\n" for ln in lines_of(ledger)[:3]])
    assert ledger.verify().ok  # three whole entries: a valid, shorter chain
    report = ledger.verify([head])
    assert (report.ok, report.first_bad) == (False, 3)
    assert report.reason == ("truncated: Dagster run r9 recorded the chain head at entry 4, but the file ends at "
                             "entry 2 (2 entries missing)")


def test_inserted_entry_is_detected(tmp_path):
    ledger = filled(tmp_path)
    lines = lines_of(ledger)
    first = json.loads(lines[1])
    extra = {"seq": 2, "prev_hash": first["entry_hash"], "payload": {"i": 42}}
    extra["entry_hash"] = entry_hash(extra)
    lines.insert(2, canonical_json(extra))
    rewrite(ledger, [ln + "\n" for ln in lines])
    report = ledger.verify()
    assert (report.first_bad, report.reason) == (3, "entry 3: follows line 1, so line 2 was inserted")


def test_hmac_signs_entries_and_catches_a_forged_chain(tmp_path, monkeypatch):
    key = b"s3cret-ledger-key"
    ledger = Ledger(tmp_path / "signed.jsonl", hmac_key=key)
    for i in range(4):
        ledger.append({"i": i})
    assert key.decode() not in ledger.path.read_text() and "s3cret" not in repr(ledger)
    assert all(e["hmac"] == entry_hmac(key, e["entry_hash"]) for e in ledger.entries())
    report = ledger.verify()
    assert report.ok and report.notes == ("HMAC checked on all 4 entries",)
    # the key comes from the environment by default
    monkeypatch.setenv(HMAC_ENV, key.decode())
    assert Ledger(ledger.path).verify().ok
    monkeypatch.delenv(HMAC_ENV)
    assert Ledger(ledger.path).verify().notes == (f"4 entries carry an HMAC; set {HMAC_ENV} to check them",)
    # a forger without the key: recomputed chain, stripped or guessed HMACs
    entries = ledger.entries()
    entries[1]["payload"]["i"] = 7
    rewrite(ledger, forge_chain(entries))
    report = ledger.verify()
    assert (report.first_bad, report.reason) == (
        0, f"entry 0: no HMAC although {HMAC_ENV} is set (forged, or written without the key)")
    rewrite(ledger, forge_chain(entries, key=b"guessed"))
    report = ledger.verify()
    assert (report.first_bad, report.reason) == (0, "entry 0: HMAC mismatch (forged, or written with another key)")
    # an entry inserted with a recomputed chain, the rest re-signed with the real key except the forgery
    good = forge_chain(entries[:2], key=key)
    forged = json.loads(forge_chain(entries[:3], key=b"guessed")[2])
    rewrite(ledger, good + [canonical_json(forged) + "\n"])
    report = ledger.verify()
    assert (report.first_bad, report.reason) == (2, "entry 2: HMAC mismatch (forged, or written with another key)")


def test_append_planned_decides_under_the_lock_and_refuses_a_broken_chain(tmp_path):
    ledger = filled(tmp_path, 3)
    seen = []

    def plan(entries):
        seen.append(len(entries))
        return [{"after": entries[-1]["seq"]}]

    new = ledger.append_planned(plan)
    assert seen == [3] and new[0]["seq"] == 3 and new[0]["payload"] == {"after": 2}
    assert ledger.append_planned(lambda entries: []) == [] and ledger.verify().n_entries == 4
    lines = lines_of(ledger)
    lines[1], lines[2] = lines[2], lines[1]
    rewrite(ledger, [ln + "\n" for ln in lines])
    with pytest.raises(LedgerError, match=r"ledger broken at entry 1: entry 1: reordered"):
        ledger.append_planned(plan)


def test_append_many_is_one_chained_batch(tmp_path):
    ledger = filled(tmp_path, 1)
    batch = ledger.append_many([{"b": i} for i in range(3)])
    assert [e["seq"] for e in batch] == [1, 2, 3]
    assert [e["prev_hash"] for e in batch[1:]] == [e["entry_hash"] for e in batch[:-1]]
    assert ledger.verify().ok and ledger.entries()[1:] == batch


def _appender(path: str, worker: int, n: int, barrier) -> None:
    barrier.wait()  # start together so appends really interleave
    ledger = Ledger(path)
    for i in range(n):
        if worker % 2:
            ledger.append({"worker": worker, "i": i})
        else:  # read-decide-append, as the audit stage does: only when not already there
            ledger.append_planned(lambda entries, i=i: [] if any(
                e["payload"] == {"worker": worker, "i": i} for e in entries) else [{"worker": worker, "i": i}])
            ledger.append_planned(lambda entries, i=i: [] if any(
                e["payload"] == {"worker": worker, "i": i} for e in entries) else [{"worker": worker, "i": i}])


def test_concurrent_appenders_serialize(tmp_path):
    path = str(tmp_path / "concurrent.jsonl")
    # forkserver: children fork from one clean server that imported the ledger once (plain fork from a
    # threaded pytest process may deadlock; spawn would re-import pandas eight times)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tvquant_assets.lake.ledger"])
    barrier = ctx.Barrier(8)
    procs = [ctx.Process(target=_appender, args=(path, w, 25, barrier)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ledger = Ledger(path)
    report = ledger.verify()
    assert report.ok, report.reason
    assert report.n_entries == 200
    got = sorted((e["payload"]["worker"], e["payload"]["i"]) for e in ledger.entries())
    assert got == [(w, i) for w in range(8) for i in range(25)]


def test_a_forged_tail_entry_is_not_covered_by_the_recorded_head(tmp_path, monkeypatch):
    """A correctly chained entry appended after the last head Dagster recorded: without a key the tail
    is refused (no head covers it); with the key set, every entry's HMAC covers it (a forger without
    the key cannot sign)."""
    ledger = filled(tmp_path)
    recorded = Head(4, ledger.head()["entry_hash"], "Dagster run abcd1234")
    assert ledger.verify([recorded]).ok
    ledger.append({"partition": "2024-01-06", "i": 5, "note": "forged at the end"})
    assert ledger.verify().ok  # the chain alone is fine
    report = ledger.verify([recorded])
    assert (report.ok, report.first_bad) == (False, 5)
    assert report.reason.startswith("entry 5: 1 entry after the last chain head recorded in Dagster (entry 4, "
                                    "Dagster run abcd1234) are covered by no head")
    key = b"k" * 32
    monkeypatch.setenv(HMAC_ENV, key.hex())
    signed = Ledger(tmp_path / "signed.jsonl")
    for i in range(3):
        signed.append({"i": i})
    head = Head(1, signed.entries()[1]["entry_hash"], "Dagster run 1")
    report = signed.verify([head])
    assert report.ok and "1 entries after the last recorded head are covered by their HMAC" in report.notes
    forged = signed.entries()[-1]
    nxt = {"seq": 3, "prev_hash": forged["entry_hash"], "payload": {"i": 3}}
    nxt["entry_hash"] = entry_hash(nxt)  # chained right, but signed without the key
    nxt["hmac"] = "0" * 64
    with open(signed.path, "a", encoding="utf-8") as fh:
        fh.write(canonical_json(nxt) + "\n")
    report = signed.verify([head])
    assert (report.ok, report.first_bad) == (False, 3) and "HMAC mismatch" in report.reason


def test_a_trailing_blank_line_is_not_truncation(tmp_path):
    ledger = filled(tmp_path, 3)
    with open(ledger.path, "a", encoding="utf-8") as fh:
        fh.write("\n  \n")  # an editor's extra newline(s)
    report = ledger.verify()
    assert report.ok and report.n_entries == 3 and "2 blank line(s) skipped" in report.notes
    ledger.append({"partition": "2024-01-04"})  # appending after them keeps the chain intact
    assert ledger.verify().ok and len(ledger.entries()) == 4


def test_audit_verify_with_an_empty_dagster_home_creates_nothing(tmp_path, monkeypatch, capsys):
    from tvquant_assets.cli import main

    text = (Path(__file__).resolve().parents[2] / "manifests" / "sp500_demo.yaml").read_text()
    manifest = tmp_path / "sp500_v.yaml"
    manifest.write_text(text.replace("name: sp500_demo", "name: sp500_v"))
    lake = tmp_path / "lake"
    Ledger(lake / "sp500_v" / "ledger.jsonl").append({"date": "2020-01-02"})
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["audit", "verify", "--manifest", str(manifest), "--lake", str(lake)]) == 0
    assert "no Dagster instance found" in capsys.readouterr().out
    assert list(home.iterdir()) == []
