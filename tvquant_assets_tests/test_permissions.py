"""The lake, the ledger and the Dagster instance are owner-only (0600 files, 0700 folders), whatever the
umask: the lake and the ledger create their files 0600 themselves, the entry points set umask 077 so what
Dagster creates (the instance's SQLite databases) follows."""

import os
import stat

import pandas as pd
import pytest

from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.permissions import UMASK_ENV, restrict_umask


@pytest.fixture
def default_umask():
    old = os.umask(0o022)  # the usual default: files 0644, folders 0755
    yield
    os.umask(old)


def _modes(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


def test_lake_and_ledger_files_are_owner_only_even_under_a_permissive_umask(tmp_path, default_umask):
    lake = Lake(str(tmp_path / "lake"))
    lake.write("m", "prices", "2020-01-02", pd.DataFrame({"symbol": ["A"], "close": [1.0]}))
    Ledger(lake.ledger_path("m")).append({"date": "2020-01-02"})
    modes = _modes(tmp_path / "lake")
    files = {k: v for k, v in modes.items() if os.path.isfile(tmp_path / "lake" / k)}
    assert files and all(v == 0o600 for v in files.values()), modes
    assert modes["m/prices"] == 0o700, modes


def test_the_instance_created_by_an_entry_point_is_owner_only(tmp_path, monkeypatch, default_umask):
    from dagster import DagsterInstance

    from tvquant_assets.runner import ensure_dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(UMASK_ENV, raising=False)
    assert restrict_umask() == 0o077
    home = ensure_dagster_home()
    with DagsterInstance.get() as instance:
        instance.get_runs()  # opens (creates) the run, event and schedule databases
    modes = _modes(home)
    assert any(k.endswith(".db") for k in modes), modes
    bad = {k: oct(v) for k, v in modes.items()
           if v != (0o700 if os.path.isdir(home / k) else 0o600)}
    assert not bad, bad
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700


def test_tvquant_umask_overrides(monkeypatch, default_umask):
    monkeypatch.setenv(UMASK_ENV, "027")
    assert restrict_umask() == 0o027
    monkeypatch.setenv(UMASK_ENV, "not-octal")
    assert restrict_umask() == 0o077
