"""Every malformed manifest in ``bad/`` (table: ``bad/expected.tsv``) is refused in one line naming the file
and the field: ``validate`` exits 1, ``backfill`` exits 2 with the same line, and nothing is created (no lake,
no Dagster instance). Plus the bounds of the YAML reader that need generated input (size, timing)."""

import time
from pathlib import Path

import pytest

from tvquant_assets.cli import main
from tvquant_assets.errors import ManifestError
from tvquant_assets.manifest import load_manifest, parse_manifest, reader

BAD = Path(__file__).parent / "bad"


def _expected() -> dict[str, str]:
    rows = [line.split("\t") for line in (BAD / "expected.tsv").read_text().splitlines()
            if line and not line.startswith("#")]
    return {r[0]: r[1] for r in rows}


EXPECTED = _expected()


def test_the_table_lists_every_fixture_and_there_are_at_least_60():
    assert sorted(EXPECTED) == sorted(p.name for p in BAD.glob("*.yaml"))
    assert len(EXPECTED) >= 60


def test_validate_and_backfill_refuse_each_in_one_line_and_create_nothing(tmp_path, monkeypatch, capsys):
    home, lake = tmp_path / "dagster_home", tmp_path / "lake"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    failures = []
    for name, fragment in sorted(EXPECTED.items()):
        path = BAD / name
        code = main(["manifests", "validate", str(path)])
        err = capsys.readouterr().err.strip().splitlines()
        line = err[0] if err else ""
        if code != 1 or len(err) != 1 or not line.startswith(f"{path}: ") or fragment not in line:
            failures.append(f"validate {name}: exit {code}, {err}")
            continue
        code = main(["backfill", "--manifest", str(path), "--start", "2016-03-01", "--end", "2016-03-04",
                     "--lake", str(lake), "--no-report"])
        err = capsys.readouterr().err.strip().splitlines()
        if code != 2 or err != [f"tvquant: error: {line}"]:
            failures.append(f"backfill {name}: exit {code}, {err}")
    assert not failures, "\n".join(failures)
    assert not lake.exists() and not home.exists()


def _base(name="big"):
    return (f"name: {name}\nsource: {{kind: synthetic, n_symbols: 20, start: 2015-01-01, end: 2016-12-31}}\n"
            f"start: 2016-03-01\n")


def test_a_file_over_the_size_bound_is_refused_before_parsing(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_text(_base() + "description: '" + "x" * reader.MAX_BYTES + "'\n")
    with pytest.raises(ManifestError, match=r"big.yaml: 1,000,\d+ bytes; a manifest is at most 1,000,000 bytes"):
        load_manifest(p)


def test_the_alias_bomb_is_refused_quickly_and_a_few_aliases_still_work():
    bomb = _base() + "universe:\n  symbols:\n" + "".join(
        f"    - &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else 'AAA'}]\n" for i in range(9))
    t0 = time.perf_counter()
    with pytest.raises(ManifestError, match=r"universe.symbols: YAML aliases expand to [\d,]+ values"):
        parse_manifest(bomb, "bomb.yaml")
    assert time.perf_counter() - t0 < 2.0  # counted on the node graph, never expanded
    ok = parse_manifest(_base() + "universe:\n  symbols: [&a AAA, BBB, CCC]\nselection:\n  correlation_lookbacks: "
                                  "[&w 60, 120]\n  correlation_lookback: *w\n", "ok.yaml")
    assert ok.universe.symbols == ["AAA", "BBB", "CCC"] and ok.selection.correlation_lookback == 60


def test_merge_keys_are_not_duplicates_and_large_plain_numbers_pass():
    text = _base() + "tournament:\n  constraints:\n    <<: {max_weight: 0.3}\n    gross: 1.5\n" \
                     "backtest:\n  drift:\n    notional: 1.0e+12\n"
    m = parse_manifest(text, "m.yaml")
    assert m.tournament.constraints.max_weight == 0.3 and m.backtest.drift.notional == 1e12
