"""Audit ledger: chain integrity, tamper detection with the right message and index, concurrent appenders."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pandas as pd
import pytest

from tvquant_assets.core.ledger import GENESIS, Ledger, entry_hash
from tvquant_assets.errors import LedgerError
from tvquant_assets.hashing import canonical_json


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
    assert report.reason == "entry 1: broken link to entry 0 (deleted, inserted or reordered)"


def test_delete_first_is_detected(tmp_path):
    ledger = filled(tmp_path)
    rewrite(ledger, [ln + "\n" for ln in lines_of(ledger)[1:]])
    report = ledger.verify()
    assert report.first_bad == 0 and "broken link" in report.reason


def test_reorder_is_detected(tmp_path):
    ledger = filled(tmp_path)
    lines = lines_of(ledger)
    lines[2], lines[3] = lines[3], lines[2]
    rewrite(ledger, [ln + "\n" for ln in lines])
    report = ledger.verify()
    assert (report.ok, report.first_bad) == (False, 2)
    assert report.reason == "entry 2: broken link to entry 1 (deleted, inserted or reordered)"


def test_truncated_last_line_is_detected(tmp_path):
    ledger = filled(tmp_path)
    data = ledger.path.read_bytes()
    ledger.path.write_bytes(data[:-25])
    report = ledger.verify()
    assert (report.ok, report.n_entries, report.first_bad) == (False, 5, 4)
    assert report.reason == "line 4 is not valid JSON (truncated?)"
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
    assert (report.first_bad, report.reason) == (2, "entry 2: seq 5, expected 2 (deleted or reordered)")


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


def _appender(path: str, worker: int, n: int, barrier) -> None:
    barrier.wait()  # start together so appends really interleave
    ledger = Ledger(path)
    for i in range(n):
        ledger.append({"worker": worker, "i": i})


def test_concurrent_appenders_serialize(tmp_path):
    path = str(tmp_path / "concurrent.jsonl")
    # forkserver: children fork from one clean server that imported the ledger once (plain fork from a
    # threaded pytest process may deadlock; spawn would re-import pandas eight times)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tvquant_assets.core.ledger"])
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
