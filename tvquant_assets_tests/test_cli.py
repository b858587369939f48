"""The command line: every command documents itself and its exit codes; errors are one line."""

import json
from pathlib import Path

import pandas as pd
import pytest

from tvquant_assets import cli
from tvquant_assets.cli import main

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [["demo"], ["run"], ["backfill"], ["report"], ["audit"], ["audit", "verify"], ["manifests"],
            ["manifests", "validate"], ["manifests", "list"], ["manifests", "docs"], ["lake"], ["lake", "sql"],
            ["lake", "views"], ["ui"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tvquant " + " ".join(command))
    if len(command) == 1 and command[0] not in ("audit", "manifests", "lake"):
        assert "exit codes:" in out and "130" in out


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for c in ("demo", "run", "backfill", "report", "audit", "manifests", "lake", "ui"):
        assert f"    {c}" in out


def test_unexpected_error_is_one_line_with_exit_3(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(cli, "cmd_manifests_list", boom)
    assert main(["manifests", "list"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tvquant: error: RuntimeError: disk on fire (TVQUANT_DEBUG=1 shows the traceback)"]


def test_known_error_is_one_line_with_exit_2(capsys):
    assert main(["report", "--manifest", "no_such_manifest"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tvquant: error: ") and "no_such_manifest" in err[0]


def test_manifests_list_json(capsys):
    assert main(["manifests", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"sp500_demo", "synthetic_demo"}
    assert all(len(r["hash"]) == 64 for r in rows)


def test_run_defaults_to_the_last_date_the_source_has():
    from tvquant_assets.lake import Lake
    from tvquant_assets.manifest import resolve_manifest
    from tvquant_assets.stages.context import RunContext
    from tvquant_assets.stages.plan import latest_partition

    _, m = resolve_manifest("sp500_demo")
    pipe = RunContext(m, Lake("unused-lake"))
    last_bar = pipe.source.history(list(pipe.source.catalog()["symbol"]), pd.Timestamp("2022-01-01"),
                                   pd.Timestamp("2026-01-01"))["date"].max()
    assert last_bar == pd.Timestamp("2022-12-28")  # skfolio's set ends on a Wednesday
    assert latest_partition(pipe, today="2026-11-26") == last_bar
    assert latest_partition(pipe, today="2020-03-22") == pd.Timestamp("2020-03-20")  # a Sunday: Friday's bars


@pytest.mark.parametrize("simulators", [["vectorized"], ["vectorized", "cvxportfolio"]])
def test_leaderboard_fits_80_columns_without_cutting_names(tmp_path, monkeypatch, capsys, simulators):
    """Longest engine/profile name of the registry, one or two simulators: nothing is cut at 80 columns."""
    import pandas as pd

    from tvquant_assets.cli import _print_leaderboard
    from tvquant_assets.lake import Lake

    names = ["cvxportfolio/market_neutral", "custom/equal_weight", "riskfolio/risk_parity"]
    rows = [{"candidate": c, "simulator": s, "total_return": 1.9519 - i, "ann_return": 0.3115, "ann_vol": 0.2272,
             "sharpe": 1.31, "max_drawdown": -0.3065, "turnover": 116.15, "dsr": 0.94, "pbo": 0.05}
            for i, (c, s) in enumerate((c, s) for c in names for s in simulators)]
    board = pd.DataFrame(rows).assign(rank=lambda f: range(1, len(f) + 1))
    Lake(tmp_path).write("m", "backtest", "2022-12-30", board)
    monkeypatch.setenv("COLUMNS", "80")
    _print_leaderboard("m", "2022-12-30", str(tmp_path))
    out = capsys.readouterr().out
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80
    assert "…" not in out
    for name in names:
        assert name in out
    if len(simulators) == 1:
        assert "simulator vectorized" in out.splitlines()[0]
    else:
        assert out.count("on cvxportfolio") == len(names) and out.count("on vectorized") == len(names)
    assert "195.2%" in out and "-30.6%" in out and "116.2" in out


def test_ui_shows_the_offline_manifests_by_default(tmp_path):
    """``tvquant ui`` without TVQUANT_MANIFESTS: only manifests whose source needs no network (rebuilt on
    each start, so a stale link never lingers)."""
    from tvquant_assets import cli
    from tvquant_assets.manifest import discover_manifests, load_manifest

    (tmp_path / "old.yaml").write_text("stale")
    d = cli._offline_manifests(tmp_path)
    names = sorted(load_manifest(p).name for p in discover_manifests(d))
    every = [load_manifest(p) for p in discover_manifests()]
    assert names == sorted(m.name for m in every if m.source.kind != "tradingview")
    assert {"sp500_demo", "synthetic_demo"} <= set(names) and len(names) < len(every)
    assert not (tmp_path / "old.yaml").exists()


def test_a_daily_run_starts_no_worker_processes(monkeypatch):
    """A range too short for any stage to split (one date) does not spend the other core on worker imports."""
    from tvquant_assets.stages.parallel import MIN_DATES_PER_PART

    assert cli.WORKER_MIN_DAYS == 2 * MIN_DATES_PER_PART
    assert not cli._worth_workers("2020-03-03", "2020-03-03")
    assert cli._worth_workers("2019-01-02", "2022-12-28") and cli._worth_workers("bad", "2020-01-01")
