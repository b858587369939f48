"""The ``tvquant`` command line. Errors are one line on stderr; exit codes: 0 ok, 1 check failed
(validation problems, broken ledger), 2 usage or run error."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

_STARTED = time.perf_counter()
DEMO_MANIFEST = "sp500_demo"
DEMO_START, DEMO_END = "2019-01-02", "2022-12-30"


def _print_leaderboard(manifest: str, date, lake_root: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from tvquant_assets.enums import Stage
    from tvquant_assets.runner import stage_frame

    board = stage_frame(manifest, Stage.BACKTEST, date, lake_root).sort_values("rank")
    table = Table(title=f"{manifest} leaderboard as of {str(date)[:10]}")
    for col in ("rank", "candidate", "total_return", "ann_return", "ann_vol", "sharpe", "max_drawdown", "turnover"):
        table.add_column(col, justify="right" if col != "candidate" else "left")
    for _, r in board.iterrows():
        table.add_row(str(int(r["rank"])), r["candidate"], f"{r['total_return']:.2%}", f"{r['ann_return']:.2%}",
                      f"{r['ann_vol']:.2%}", f"{r['sharpe']:.2f}", f"{r['max_drawdown']:.2%}",
                      f"{r['turnover']:.2f}")
    Console(width=max(110, Console().width)).print(table)


def _run_range(manifest: str, start: str, end: str, lake_root: str | None, as_json: bool) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tvquant_assets import progress
    from tvquant_assets.enums import STAGES
    from tvquant_assets.lake import default_lake_root
    from tvquant_assets.runner import ensure_dagster_home, materialize_range
    home = ensure_dagster_home()
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                   TimeElapsedColumn(), disable=as_json, transient=False)
    task = bar.add_task(f"{manifest} {start}..{end}", total=len(STAGES))
    started = [0]

    def on_event(event: str, stage: str, n: int) -> None:
        if event == "start":
            started[0] += 1
            bar.update(task, description=f"{stage} ({n} partitions)", total=max(len(STAGES), started[0]))
        else:
            bar.advance(task)

    with bar, progress.listening(on_event):
        report = materialize_range(manifest, start, end, lake_root=lake_root)
    lake = Path(lake_root or default_lake_root()).resolve()
    summary = {
        "manifest": report.manifest, "start": str(report.start.date()), "end": str(report.end.date()),
        "partitions": report.partitions, "run_id": report.run_id,
        "seconds": {"command_total": round(time.perf_counter() - _STARTED, 2),
                    "run_wall": round(report.wall_seconds, 2),
                    "our_compute": round(report.compute_seconds, 2),
                    "lake_writes": round(report.lake_write_seconds, 2),
                    "dagster_bookkeeping": round(report.dagster_seconds, 2)},
        "lake": str(lake / report.manifest), "ledger": str(lake / report.manifest / "ledger.jsonl"),
        "dagster_home": str(home), "notes": report.notes,
    }
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    for note in report.notes:
        print(f"note: {note}")
    _print_leaderboard(report.manifest, report.end, lake_root)
    s = summary["seconds"]
    print(f"{report.partitions} partitions x {len(STAGES)} assets: runs {s['run_wall']:.1f} s = our compute "
          f"{s['our_compute']:.1f} s + lake writes {s['lake_writes']:.1f} s + Dagster bookkeeping "
          f"{s['dagster_bookkeeping']:.1f} s; whole command {s['command_total']:.1f} s (imports and setup included)")
    print(f"lake:    {summary['lake']}")
    print(f"ledger:  {summary['ledger']}  (check it: tvquant audit verify --manifest {report.manifest})")
    print(f"dagster: {home}  (open the UI: tvquant ui)")
    return 0


def cmd_demo(args) -> int:
    return _run_range(DEMO_MANIFEST, args.start, args.end, args.lake, args.json)


def cmd_backfill(args) -> int:
    return _run_range(args.manifest, args.start, args.end, args.lake, args.json)


def cmd_manifests_validate(args) -> int:
    from tvquant_assets.manifest import discover_manifests, validate_files

    paths = args.paths or discover_manifests()
    problems = validate_files(paths)
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print(f"{len(paths)} manifest(s) valid")
    return 1 if problems else 0


def cmd_manifests_list(args) -> int:
    from tvquant_assets.manifest import discover_manifests, load_manifest, manifest_hash

    for p in discover_manifests():
        m = load_manifest(p)
        print(f"{m.name:24s} {m.source.kind:10s} start {m.start}  hash {manifest_hash(m)[:12]}  {p}")
    return 0


def _ledger_for(args):
    from tvquant_assets.core.ledger import Ledger
    from tvquant_assets.lake import Lake, default_lake_root
    from tvquant_assets.manifest import resolve_manifest

    _, manifest = resolve_manifest(args.manifest)
    lake = Lake.open(args.lake or default_lake_root())
    path = lake.ledger_path(manifest.name)
    if not Path(str(path)).exists():
        print(f"tvquant: error: no ledger at {path}; materialize {manifest.name} first", file=sys.stderr)
        return manifest, lake, None
    return manifest, lake, Ledger(path)


def cmd_audit_verify(args) -> int:
    manifest, _, ledger = _ledger_for(args)
    if ledger is None:
        return 2
    heads, notes = [], []
    if not args.no_dagster:
        from tvquant_assets.defs.ledger_heads import open_instance, recorded_heads

        instance = open_instance()
        if instance is None:
            notes.append("no Dagster instance found (DAGSTER_HOME): chain heads not compared")
        else:
            heads = recorded_heads(instance, manifest.name, str(ledger.path))
            if not heads:
                notes.append(f"no chain head of {manifest.name}/audit for this ledger in the Dagster instance at "
                             f"{instance.root_directory}: a consistent whole-file rewrite cannot be ruled out")
    report = ledger.verify(heads)
    notes += list(report.notes)
    if args.json:
        print(json.dumps({"ok": report.ok, "entries": report.n_entries, "first_bad": report.first_bad,
                          "reason": report.reason, "notes": notes, "ledger": str(ledger.path)}, indent=2))
        return 0 if report.ok else 1
    for note in notes:
        print(f"note: {note}")
    if report.ok:
        print(f"ledger intact: {report.n_entries} entries ({ledger.path})")
        return 0
    print(f"ledger BROKEN at entry {report.first_bad}: {report.reason} ({ledger.path})", file=sys.stderr)
    return 1


def cmd_ui(args) -> int:
    from tvquant_assets.runner import ensure_dagster_home

    home = ensure_dagster_home()
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "500")
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    from tvquant_assets.lake import LAKE_ENV, default_lake_root

    os.environ[LAKE_ENV] = str(Path(args.lake or default_lake_root()).resolve())  # dagster dev runs in home
    print(f"DAGSTER_HOME={home}  lake={os.environ[LAKE_ENV]}")
    print(f"starting dagster dev on http://127.0.0.1:{args.port}")
    os.chdir(home)
    os.execvp("dagster", ["dagster", "dev", "-m", "tvquant_assets.definitions", "-h", "127.0.0.1",
                          "-p", str(args.port)])
    return 0  # pragma: no cover


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tvquant", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def add_common(sp):
        sp.add_argument("--lake", default=None, help="lake root (default: $TVQUANT_LAKE or ./.tvquant/lake)")
        sp.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")

    d = sub.add_parser("demo", help=f"materialize {DEMO_MANIFEST} {DEMO_START}..{DEMO_END} and print the leaderboard")
    d.add_argument("--start", default=DEMO_START)
    d.add_argument("--end", default=DEMO_END)
    add_common(d)
    d.set_defaults(func=cmd_demo)

    b = sub.add_parser("backfill", help="materialize every stage of a manifest for a date range (one run)")
    b.add_argument("--manifest", required=True, help="manifest name (in manifests/) or path to a YAML file")
    b.add_argument("--start", required=True)
    b.add_argument("--end", required=True)
    add_common(b)
    b.set_defaults(func=cmd_backfill)

    m = sub.add_parser("manifests", help="validate or list manifests")
    msub = m.add_subparsers(dest="manifests_command", required=True)
    v = msub.add_parser("validate", help="one line per problem; exit 1 when any")
    v.add_argument("paths", nargs="*", help="YAML files (default: every manifest in manifests/)")
    v.set_defaults(func=cmd_manifests_validate)
    ls = msub.add_parser("list", help="list manifests with their content hash")
    ls.set_defaults(func=cmd_manifests_list)

    a = sub.add_parser("audit", help="verify the ledger, replay a date, show a date's decisions")
    asub = a.add_subparsers(dest="audit_command", required=True)
    av = asub.add_parser("verify", help="exit 0 when intact, 1 naming the first bad entry and why")
    av.add_argument("--manifest", required=True, help="manifest name (in manifests/) or path to a YAML file")
    av.add_argument("--no-dagster", action="store_true",
                    help="do not compare with the chain heads recorded in the Dagster instance")
    add_common(av)
    av.set_defaults(func=cmd_audit_verify)

    u = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on this project's instance")
    u.add_argument("--port", type=int, default=3000)
    u.add_argument("--lake", default=None, help="lake root (default: $TVQUANT_LAKE or ./.tvquant/lake)")
    u.set_defaults(func=cmd_ui)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tvquant_assets.errors import TvquantError

    try:
        return int(args.func(args) or 0)
    except TvquantError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"tvquant: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tvquant: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
