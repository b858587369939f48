"""Audit ledger chain, pure: building entries, every kind of tampering on a list of lines, HMACs, lookups.

The file (locks, appends, the key from the environment) is tested in ``lake/test_lake_ledger.py``.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd
import pytest

import tvquant_assets.core.ledger as core_ledger
from tvquant_assets.core.ledger import GENESIS, Head, entry_hash, entry_hmac, latest_for, next_lines, verify_lines
from tvquant_assets.hashing import canonical_json

PAYLOADS = [{"partition": f"2024-01-0{i + 1}", "i": i, "note": "é\u2028x"} for i in range(6)]


def chain(key: bytes | None = None) -> list[str]:
    return next_lines(None, PAYLOADS, key)


def test_next_lines_build_a_chain_that_extends_from_its_head():
    lines = chain()
    entries = [json.loads(line) for line in lines]
    assert [e["seq"] for e in entries] == list(range(6)) and entries[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["entry_hash"] for a, b in zip(entries, entries[1:]))
    assert all(e["entry_hash"] == entry_hash(e) and canonical_json(e) == line for e, line in zip(entries, lines))
    assert next_lines(entries[2], PAYLOADS[3:]) == lines[3:]  # appending later gives the same bytes
    assert next_lines(entries[-1], []) == []
    report = verify_lines(lines)
    assert (report.ok, report.n_entries, report.first_bad, report.reason, report.notes) == (True, 6, None, "ok", ())
    with pytest.raises(ValueError):
        next_lines(None, [{"x": float("nan")}])


def _forged(seq: int, prev: str) -> str:
    entry = {"seq": seq, "prev_hash": prev, "payload": {"i": 42}}
    return canonical_json({**entry, "entry_hash": entry_hash(entry)})


def _edit(lines):
    e = json.loads(lines[2])
    e["payload"]["i"] = 99
    return [*lines[:2], canonical_json(e), *lines[3:]]


def _hash(lines, i):
    return json.loads(lines[i])["entry_hash"]


TAMPERS = {
    "edit": (_edit, 2, "entry 2: hash mismatch (edited)"),
    "delete": (lambda ls: [ls[0], *ls[2:]], 1,
               "entry 1: 1 entry missing before it (deleted): it is seq 2 and follows an entry not in the file"),
    "delete two": (lambda ls: [ls[0], *ls[3:]], 1,
                   "entry 1: 2 entries missing before it (deleted): it is seq 3 and follows an entry not in the file"),
    "reorder": (lambda ls: [*ls[:2], ls[3], ls[2], *ls[4:]], 2,
                "entry 2: reordered (it follows line 3, which comes after it)"),
    "insert one": (lambda ls: [*ls[:2], _forged(2, _hash(ls, 1)), *ls[2:]], 3,
                   "entry 3: follows line 1, so line 2 was inserted"),
    "insert two": (lambda ls: [*ls[:2], *next_lines(json.loads(ls[1]), [{"i": 42}, {"i": 43}]), *ls[2:]], 4,
                   "entry 4: follows line 1, so lines 2..3 were inserted"),
    "forged link": (lambda ls: [*ls[:3], _forged(3, "f" * 64), *ls[4:]], 3,
                    "entry 3: broken link: it follows an entry not in the file (forged, or the one before it "
                    "deleted)"),
    "insert genesis": (lambda ls: [*ls[:2], _forged(0, GENESIS), *ls[2:]], 2,
                       "entry 2: inserted (it claims to start the chain)"),
    "wrong seq": (lambda ls: [*ls, _forged(9, _hash(ls, 5))], 6, "entry 6: seq 9, expected 6 (edited)"),
    "garbled": (lambda ls: [*ls[:1], "{not json", *ls[2:]], 1, "line 1 is not valid JSON: corrupted or edited"),
    "truncated": (lambda ls: [*ls[:-1], ls[-1][:-20]], 5,
                  "line 5 is not valid JSON: the file ends mid-entry (truncated)"),
}


@pytest.mark.parametrize("name", TAMPERS)
def test_every_tampering_names_the_first_bad_entry_and_why(name):
    tamper, first_bad, reason = TAMPERS[name]
    report = verify_lines(tamper(chain()))
    assert (report.ok, report.first_bad, report.reason) == (False, first_bad, reason)


def test_hmacs_and_where_the_key_comes_from():
    key = b"k3y"
    signed = chain(key)
    assert all(json.loads(line)["hmac"] == entry_hmac(key, json.loads(line)["entry_hash"]) for line in signed)
    assert verify_lines(signed, key=key).notes == ("HMAC checked on all 6 entries",)
    assert verify_lines(signed, key_name="$K").notes == ("6 entries carry an HMAC; set $K to check them",)
    assert verify_lines(signed, check_hmac=False).notes == ()
    report = verify_lines(chain(), key=key, key_name="$K")
    assert (report.first_bad, report.reason) == (0, "entry 0: no HMAC although $K is set (forged, or written "
                                                    "without the key)")
    assert verify_lines(chain(), key=key, check_hmac=False).ok  # appends check the chain, not the signatures
    report = verify_lines(chain(b"guessed"), key=key)
    assert (report.first_bad, report.reason) == (0, "entry 0: HMAC mismatch (forged, or written with another key)")


def test_recorded_heads_catch_a_consistent_rewrite_and_a_cut():
    lines = chain()
    heads = [Head(1, _hash(lines, 1), "run a"), Head(5, _hash(lines, 5), "run b")]
    assert verify_lines(lines, heads).notes == ("2 chain head(s) recorded in Dagster match (latest: entry 5, run b)",)
    rewritten = next_lines(None, [{**p, "i": 7} for p in PAYLOADS])
    report = verify_lines(rewritten, heads)
    assert (report.ok, report.first_bad) == (False, 5) and report.reason.startswith(
        f"head mismatch vs Dagster: run b recorded entry 5 as {_hash(lines, 5)[:16]}, the file has ")
    report = verify_lines(lines[:4], heads)
    assert (report.first_bad, report.reason) == (4, "truncated: run b recorded the chain head at entry 5, but the "
                                                    "file ends at entry 3 (2 entries missing)")


def test_latest_for_compares_stored_values():
    day = pd.Timestamp("2024-01-05")
    entries = [json.loads(line) for line in next_lines(None, [
        {"date": day, "v": 1}, {"date": "2024-01-06", "v": 2}, {"date": day, "v": 3}, {"date": None, "v": 4}])]
    assert latest_for(entries, "date", day)["payload"]["v"] == 3  # a Timestamp matches its stored ISO string
    assert latest_for(entries, "date", entries[0]["payload"]["date"])["seq"] == 2
    assert latest_for(entries, "date", "2024-01-06")["seq"] == 1
    assert latest_for(entries, "date", "1999-01-01") is None and latest_for([], "date", "x") is None


def test_the_core_ledger_does_no_io():
    tree = ast.parse(Path(core_ledger.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"os", "fcntl", "pathlib", "io", "shutil", "tempfile"}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & {"open", "environ", "getenv"}
