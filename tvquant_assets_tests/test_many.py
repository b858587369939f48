"""Several manifests in one command without a daemon: one line says why they run one after another in
process, then each runs in the order given (the queued path runs for real in
``defs/test_multirun_backfill.py``)."""

from pathlib import Path

import pytest
from dagster import DagsterInstance

from tvquant_assets.defs.queue import queue_unavailable
from tvquant_assets.many import manifest_refs, run_many

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def two_manifests(tmp_path, monkeypatch):
    directory = tmp_path / "manifests"
    directory.mkdir()
    text = (ROOT / "tvquant_assets_tests" / "scenarios" / "sc_every_k_days.yaml").read_text()
    for name in ("many_a", "many_b"):
        (directory / f"{name}.yaml").write_text(text.replace("name: sc_every_k_days", f"name: {name}"))
    monkeypatch.setenv("TVQUANT_MANIFESTS", str(directory))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    return directory


def test_names_and_all_manifests(two_manifests):
    assert manifest_refs("many_a, many_b", False) == ["many_a", "many_b"]
    assert [Path(r).stem for r in manifest_refs(None, True)] == ["many_a", "many_b"]
    for spec, every, line in (("many_a,many_a", False, "named twice"), (None, False, "--all-manifests is required"),
                              ("many_a", True, "give one of them")):
        with pytest.raises(SystemExit, match=line):
            manifest_refs(spec, every)


def test_without_a_daemon_they_run_one_after_another_in_process(two_manifests, capsys):
    ran = []

    def run_in_process(ref, start, end):
        ran.append((ref, start, end))
        return 2 if ref == "many_a" else 0

    code = run_many(["many_a", "many_b"], lambda ref: ("2020-03-02", "2020-03-04"), lake_root=None, as_json=False,
                    run_in_process=run_in_process)
    assert code == 2  # the worst of the runs
    assert ran == [("many_a", "2020-03-02", "2020-03-04"), ("many_b", "2020-03-02", "2020-03-04")]
    err = capsys.readouterr().err
    assert "no dagster-daemon is running against the instance" in err and "one after another" in err
    with DagsterInstance.get() as instance:  # the local instance queues, but nothing dequeues
        assert "no dagster-daemon" in queue_unavailable(instance)


def test_a_bad_manifest_is_one_line_before_anything_runs(two_manifests):
    from tvquant_assets.errors import ManifestError

    with pytest.raises((SystemExit, ManifestError)):
        run_many(["many_a", "nope"], lambda ref: ("2020-03-02", "2020-03-02"), lake_root=None, as_json=False,
                 run_in_process=lambda *a: pytest.fail("nothing may run"))
