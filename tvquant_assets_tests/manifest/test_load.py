import subprocess
import sys
from pathlib import Path

import pytest

from tvquant_assets.cli import main
from tvquant_assets.errors import ManifestError
from tvquant_assets.manifest import discover_manifests, load_manifest, manifest_hash, parse_manifest, validate_files

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def test_shipped_manifests_are_valid():
    paths = discover_manifests(MANIFESTS)
    assert {p.stem for p in paths} >= {"sp500_demo", "synthetic_demo"}
    assert validate_files(paths) == []


def test_demo_manifest_starts_early_with_backtest_in_demo_range():
    m = load_manifest(MANIFESTS / "sp500_demo.yaml")
    assert m.start.year == 1991 and m.source.kind == "bundled"
    assert str(m.backtest.start) == "2019-01-02"


def test_hash_is_stable_across_formatting_and_changes_with_content():
    text = (MANIFESTS / "sp500_demo.yaml").read_text()
    a = parse_manifest(text)
    reformatted = "\n".join(line for line in text.splitlines() if not line.strip().startswith("#"))
    b = parse_manifest(reformatted + "\n# trailing comment\n")
    assert manifest_hash(a) == manifest_hash(b)
    c = parse_manifest(text.replace("max_weight: 0.30", "max_weight: 0.31"))
    assert manifest_hash(c) != manifest_hash(a)
    assert len(manifest_hash(a)) == 64


def _write(tmp_path, name, body):
    p = tmp_path / f"{name}.yaml"
    p.write_text(body)
    return p


def test_malformed_manifest_lists_every_problem_on_one_line_each(tmp_path):
    p = _write(tmp_path, "bad", """
name: bad
start: 2019-01-02
calendar: monthly
selection:
  top_n_per_cluster: zero
  colour: red
tournament:
  candidates:
    - {engine: nosuch, profile: min_variance}
""")
    problems = validate_files([p])
    text = "\n".join(problems)
    assert any("calendar" in line and "weekdays" in line for line in problems), text
    assert any("selection.top_n_per_cluster" in line for line in problems), text
    assert any("selection.colour" in line and "unknown field" in line for line in problems), text
    assert all(line.startswith(str(p)) for line in problems)


def test_unknown_engine_and_unsupported_profile(tmp_path):
    p = _write(tmp_path, "eng", """
name: eng
start: 2019-01-02
tournament:
  candidates:
    - {engine: nosuch, profile: min_variance}
    - {engine: skfolio, profile: barbell}
""")
    with pytest.raises(ManifestError) as exc:
        load_manifest(p)
    lines = str(exc.value).splitlines()
    assert "tournament.candidates[0].engine: unknown engine 'nosuch'" in lines[0]
    assert "tournament.candidates[1].profile" in lines[1] and "skfolio" in lines[1]


def test_name_must_match_file_and_yaml_errors_are_one_line(tmp_path):
    p = _write(tmp_path, "other", "name: sp500\nstart: 2019-01-02\n")
    with pytest.raises(ManifestError, match="must equal the file name"):
        load_manifest(p)
    q = _write(tmp_path, "broken", "name: broken\nstart: [2019\n")
    with pytest.raises(ManifestError, match="not valid YAML at line"):
        load_manifest(q)
    r = _write(tmp_path, "traversal", "name: ../etc\nstart: 2019-01-02\n")
    assert any("name" in line and "pattern" in line for line in validate_files([r]))


def test_thresholds_must_be_ordered(tmp_path):
    p = _write(tmp_path, "thr", "name: thr\nstart: 2019-01-02\nregime:\n  thresholds: {quiet: 2.0}\n")
    assert any("regime.thresholds" in line and "quiet < turbulent < crisis" in line for line in validate_files([p]))


def test_cli_validate_exit_codes_and_no_traceback(tmp_path, capsys):
    good = MANIFESTS / "sp500_demo.yaml"
    assert main(["manifests", "validate", str(good)]) == 0
    bad = _write(tmp_path, "bad2", "name: bad2\nstart: not-a-date\nfoo: 1\n")
    assert main(["manifests", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "start" in err and "foo: unknown field" in err and "Traceback" not in err
    assert main(["manifests", "validate", str(tmp_path / "missing.yaml")]) == 1


def test_console_script_reports_errors_in_one_line(tmp_path):
    bad = _write(tmp_path, "bad3", "name: bad3\n")
    out = subprocess.run([sys.executable, "-m", "tvquant_assets.cli", "manifests", "validate", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip() == f"{bad}: start: required field is missing"
