"""The ``tvquant`` command line: materialize manifests, build tearsheets, query the lake, check the ledger.

Errors are one line on stderr (``tvquant: error: ...``); --json prints a machine-readable summary."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

_STARTED = time.perf_counter()
EXIT_CODES = """exit codes:
  0    success
  1    a check failed (invalid manifest, broken ledger, replay mismatch)
  2    usage error or a failed run (bad argument, missing data, failed step)
  3    unexpected internal error (set TVQUANT_DEBUG=1 for the traceback)
  130  interrupted (Ctrl-C)"""
DEMO_MANIFEST = "sp500_demo"
DEMO_START, DEMO_END = "2019-01-02", "2022-12-28"  # the bundled data's last bar


LEADERBOARD_COLUMNS = (  # (backtest column, header, format); headers short so 80 columns hold the table
    ("total_return", "total", "{:.1%}"), ("ann_return", "ann.", "{:.1%}"), ("ann_vol", "vol", "{:.1%}"),
    ("sharpe", "sharpe", "{:.2f}"), ("max_drawdown", "max dd", "{:.1%}"), ("turnover", "turn.", "{:.1f}"),
    ("dsr", "dsr", "{:.2f}"), ("pbo", "pbo", "{:.2f}"),
)


def _print_leaderboard(manifest: str, date, lake_root: str | None) -> None:
    """The backtest leaderboard of ``date``, readable at 80 columns: names are never cut (one simulator goes
    into the title; several go under each candidate when a column of their own does not fit), numbers are
    compact, a legend line names the short headers."""
    from rich.console import Console
    from rich.measure import Measurement

    from tvquant_assets.runner import stage_frame
    from tvquant_assets.stages import Stage

    board = stage_frame(manifest, Stage.BACKTEST, date, lake_root).sort_values("rank")
    console = Console()
    table = None
    for layout in ("wide", "tight", "stacked"):
        table = _leaderboard_table(manifest, date, board, layout)
        if Measurement.get(console, console.options.update(width=1000), table).maximum <= console.width:
            break
    console.print(table)
    legend = {"total": "total/ann.: total/annualized return", "vol": "vol: annualized volatility",
              "max dd": "max dd: maximum drawdown", "turn.": "turn.: turnover (two-sided)",
              "dsr": "dsr: deflated Sharpe", "pbo": "pbo: probability of backtest overfitting"}
    console.print(", ".join(legend[h] for c, h, _ in LEADERBOARD_COLUMNS if c in board.columns and h in legend),
                  style="dim")
    if "excess_return" in board.columns and len(board):  # the leader against the manifest's benchmark
        r = board.iloc[0]
        console.print(f"vs benchmark: {r['candidate']} excess {r['excess_return']:+.2%}, beta {r['beta']:.2f}, "
                      f"information ratio {r['information_ratio']:.2f}")


def _leaderboard_table(manifest: str, date, board, layout: str):
    """``wide``: two spaces between columns; ``tight``: one; ``stacked``: also the simulator under the
    candidate instead of in a column."""
    from rich import box
    from rich.table import Table

    sims = sorted(map(str, board["simulator"].unique())) if "simulator" in board.columns else []
    title = f"{manifest} leaderboard as of {str(date)[:10]}" + (f", simulator {sims[0]}" if len(sims) == 1 else "")
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  padding=(0, 1 if layout == "wide" else 0), collapse_padding=True)
    sim_column = len(sims) > 1 and layout != "stacked"
    names = board["candidate"].astype(str)
    table.add_column("#", justify="right", no_wrap=True, min_width=len(str(len(board))))
    table.add_column("candidate", no_wrap=True, min_width=int(names.str.len().max()))
    if sim_column:
        table.add_column("simulator", no_wrap=True, min_width=max(map(len, sims)))
    shown = [c for c in LEADERBOARD_COLUMNS if c[0] in board.columns]
    for _, header, _ in shown:
        table.add_column(header, justify="right", no_wrap=True)
    for _, r in board.iterrows():
        name = str(r["candidate"])
        if len(sims) > 1 and not sim_column:
            name += f"\n  on {r['simulator']}"
        cells = [str(int(r["rank"])), name, *([str(r["simulator"])] if sim_column else [])]
        table.add_row(*cells, *(fmt.format(r[col]) for col, _, fmt in shown))
    return table


WORKER_MIN_DAYS = 64  # stages split a range over processes from 2 x parallel.MIN_DATES_PER_PART dates on


def _worth_workers(start: str, end: str) -> bool:
    """Whether [start, end] can hold enough dates for a stage to split (a daily run cannot: starting the
    workers would only spend the other core on their imports). Unreadable bounds: yes (checked later)."""
    import datetime as dt

    try:
        days = (dt.date.fromisoformat(str(end)[:10]) - dt.date.fromisoformat(str(start)[:10])).days + 1
    except ValueError:
        return True
    return days >= WORKER_MIN_DAYS


def _run_range(manifest: str, start: str, end: str, lake_root: str | None, as_json: bool,
               outputs: bool = True, skip_fresh: bool = False) -> int:
    from tvquant_assets import workers

    if _worth_workers(start, end):
        workers.start()  # the date-parallel stages' processes import beside this one (TVQUANT_WORKERS)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tvquant_assets import progress
    from tvquant_assets.lake import default_lake_root
    from tvquant_assets.manifest import resolve_manifest
    from tvquant_assets.runner import ensure_dagster_home, materialize_range
    from tvquant_assets.stages import assets_of

    assets = assets_of(resolve_manifest(manifest)[1])  # a bad manifest: one line before any folder is created
    home = ensure_dagster_home()
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                   TimeElapsedColumn(), disable=as_json, transient=False)
    task = bar.add_task(f"{manifest} {start}..{end}", total=len(assets))
    started = [0]

    def on_event(event: str, stage: str, n: int) -> None:
        if event == "start":
            started[0] += 1
            bar.update(task, description=f"{stage} ({n} partitions)", total=max(len(assets), started[0]))
        else:
            bar.advance(task)

    with bar, progress.listening(on_event):
        report = materialize_range(manifest, start, end, lake_root=lake_root, skip_fresh=skip_fresh)
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
        "failed_dates": sorted({str(f.date.date()) for f in report.failures}),
        "failures": [f.line() for f in report.failures if f.blocked_by is None], "run_ids": report.run_ids,
    }
    failed_backtests = {f.date for f in report.failures if f.stage == "backtest"}
    shown = report.end
    if report.end in failed_backtests:  # the tearsheet and leaderboard of the last date that has a backtest
        from tvquant_assets.calendar import manifest_dates
        from tvquant_assets.manifest import resolve_manifest

        good = [d for d in manifest_dates(resolve_manifest(manifest)[1], report.start, report.end)
                if d not in failed_backtests]
        shown = good[-1] if good else None
    if outputs and shown is not None:  # the tearsheet of the range's last date and the DuckDB views
        t0 = time.perf_counter()
        out = _outputs(manifest, shown, lake_root, as_json)
        summary.update({"tearsheet": out.tearsheet, "duckdb": out.database})
        summary["seconds"]["outputs"] = round(time.perf_counter() - t0, 2)
    summary["seconds"]["command_total"] = round(time.perf_counter() - _STARTED, 2)  # outputs included
    code = 2 if report.failures else 0
    if as_json:
        print(json.dumps(summary, indent=2))
        if report.failures:
            _print_failures(report)
        return code
    for note in report.notes:
        print(f"note: {note}")
    if shown is not None:
        _print_leaderboard(report.manifest, shown, lake_root)
    s = summary["seconds"]
    print(f"{report.partitions} partitions x {len(assets)} assets: runs {s['run_wall']:.1f} s = our compute "
          f"{s['our_compute']:.1f} s + lake writes {s['lake_writes']:.1f} s + Dagster bookkeeping "
          f"{s['dagster_bookkeeping']:.1f} s"
          + (f"; tearsheet and lake views {s['outputs']:.1f} s" if "outputs" in s else "")
          + f"; whole command {s['command_total']:.1f} s (imports and setup included)")
    print(f"lake:    {summary['lake']}")
    print(f"ledger:  {summary['ledger']}  (check it: tvquant audit verify --manifest {report.manifest})")
    print(f"dagster: {home}  (open the UI: tvquant ui)")
    if outputs:
        print(f"duckdb:  {summary['duckdb']}  (query it: tvquant lake sql \"SELECT * FROM {report.manifest}.backtest "
              f"LIMIT 5\")")
        print(f"tearsheet: {summary['tearsheet']}")
    if report.failures:
        _print_failures(report)
    return code


def _print_failures(report) -> None:
    """The failed dates and why, on stderr: each root failure and what it blocks, then a one-line verdict."""
    from tvquant_assets.defs.containment import Containment

    contained = Containment(report.failures, report.run_ids)
    groups: dict[tuple[str, str], list] = {}  # one line per stage and reason
    for root in contained.roots:
        groups.setdefault((root.stage, root.reason), []).append(root.date)
    for (stage, reason), ds in list(groups.items())[:20]:
        span = f"{ds[0].date()}" if len(ds) == 1 else f"{ds[0].date()}..{ds[-1].date()} ({len(ds)} dates)"
        print(f"failed: {stage} {span}: {reason}", file=sys.stderr)
    if len(groups) > 20:
        print(f"failed: ... {len(groups) - 20} more (tvquant backfill --json lists them)", file=sys.stderr)
    per: dict[str, list] = {}
    for f in contained.failures:
        if f.blocked_by is not None:
            per.setdefault(f.stage, []).append(f.date)
    if per:
        print("blocked (they read a failed partition): " + "; ".join(
            f"{s} {min(ds).date()}..{max(ds).date()} ({len(ds)})" for s, ds in per.items()), file=sys.stderr)
    dates = contained.failed_dates
    first = contained.roots[0] if contained.roots else None
    cause = f"; first: {first.stage} {first.date.date()}: {first.reason}" if first is not None else ""
    print(f"tvquant: error: {report.manifest}: {len(dates)} of {report.partitions} dates not complete "
          f"({dates[0].date()}..{dates[-1].date()}); every other date is materialized, checked and in the ledger "
          f"({len(report.run_ids)} runs){cause}", file=sys.stderr)


def _outputs(manifest: str, date, lake_root: str | None, as_json: bool, report: bool = True, views: bool = True):
    from rich.console import Console

    from tvquant_assets.runner import materialize_outputs

    what = " and ".join(w for w, on in (("tearsheet", report), ("lake views", views)) if on)
    with Console(stderr=True).status(f"building the {what} of {manifest}", spinner="dots") if not as_json \
            else _nullcontext():
        return materialize_outputs(manifest, date, lake_root=lake_root, report=report, views=views)


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()


def cmd_demo(args) -> int:
    return _run_range(DEMO_MANIFEST, args.start, args.end, args.lake, args.json, not args.no_report,
                      skip_fresh=not args.all)


def _many(args, dates_of, run_in_process) -> int | None:
    """Several manifests (``--manifest a,b``, ``--all-manifests``): queued or one by one (``many.py``);
    None for one manifest."""
    from tvquant_assets.many import manifest_refs, run_many

    refs = manifest_refs(args.manifest, args.all_manifests)
    if len(refs) == 1 and not args.all_manifests:
        return None
    return run_many(refs, dates_of, lake_root=args.lake, as_json=args.json, run_in_process=run_in_process,
                    wait=not args.no_wait)


def cmd_backfill(args) -> int:
    def run_in_process(ref: str, start: str, end: str) -> int:
        return _run_range(ref, start, end, args.lake, args.json, not args.no_report, skip_fresh=not args.all)

    code = _many(args, lambda ref: (args.start, args.end), run_in_process)
    return run_in_process(args.manifest, args.start, args.end) if code is None else code


def _run_dates(ref: str, date, lake_root) -> tuple[str, str]:
    """``tvquant run``'s range: ``date``, else the newest date with bars and every date appended since."""
    from tvquant_assets.lake import Lake, default_lake_root
    from tvquant_assets.manifest import resolve_manifest
    from tvquant_assets.stages.context import RunContext
    from tvquant_assets.stages.plan import latest_partition, pending_dates

    if date:
        return str(date)[:10], str(date)[:10]
    _, manifest = resolve_manifest(ref)
    ctx = RunContext(manifest, Lake.open(lake_root or default_lake_root()))
    last = latest_partition(ctx)
    return str((pending_dates(ctx, last) or [last])[0])[:10], str(last)[:10]


def cmd_run(args) -> int:
    def run_in_process(ref: str, start: str, end: str) -> int:
        return _run_range(ref, start, end, args.lake, args.json, not args.no_report)

    code = _many(args, lambda ref: _run_dates(ref, args.date, args.lake), run_in_process)
    if code is None:
        return run_in_process(args.manifest, *_run_dates(args.manifest, args.date, args.lake))
    return code


def cmd_report(args) -> int:
    out = _outputs(args.manifest, args.date, args.lake, args.json, report=True, views=False)
    if args.json:
        print(json.dumps({"manifest": out.manifest, "as_of": out.as_of, "tearsheet": out.tearsheet,
                          "run_id": out.run_id, "seconds": round(out.wall_seconds, 2)}, indent=2))
    else:
        print(f"tearsheet of {out.manifest} as of {out.as_of} (run {out.run_id[:8]}, {out.wall_seconds:.1f} s):")
        print(out.tearsheet)
    return 0


def cmd_lake_views(args) -> int:
    from tvquant_assets.lake import Lake, default_lake_root, duckdb_views

    lake = Lake.open(args.lake or default_lake_root())
    db = duckdb_views.default_db_path(lake)
    views = duckdb_views.refresh(lake, args.manifest or None, db)
    counts = duckdb_views.row_counts(db, views)
    if args.json:
        print(json.dumps({"database": str(db), "views": counts}, indent=2))
        return 0
    for name, n in counts.items():
        print(f"{name:40s} {n:>12,} rows")
    print(f"{len(counts)} views in {db}")
    return 0


def cmd_lake_sql(args) -> int:
    from tvquant_assets.lake import Lake, default_lake_root, sql_console

    lake = Lake.open(args.lake or default_lake_root())
    result = sql_console.run(lake, args.query, limit=args.limit, timeout=args.timeout or None)
    cols, rows = result.columns, result.rows
    if result.truncated:
        print(f"tvquant: showing the first {args.limit} rows (--limit N for more, --limit 0 for all)",
              file=sys.stderr)
    if args.json:
        print(json.dumps([dict(zip(cols, r, strict=True)) for r in rows], indent=2, default=str))
        return 0
    if args.csv:
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(cols)
        w.writerows(rows)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for c in cols:
        table.add_column(str(c), overflow="fold")
    for r in rows:
        table.add_row(*["" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v)) for v in r])
    Console(width=max(120, Console().width)).print(table)
    print(f"{len(rows)} row(s){' (limit reached)' if result.truncated else ''}",
          file=sys.stderr)
    return 0


def cmd_lake_export(args) -> int:
    from tvquant_assets.lake import Lake, default_lake_root
    from tvquant_assets.lake.export import export_prices
    from tvquant_assets.manifest import resolve_manifest

    _, manifest = resolve_manifest(args.manifest)
    out = export_prices(Lake.open(args.lake or default_lake_root()), manifest.name,
                        args.out or f"{manifest.name}_prices.{args.fmt}", args.fmt)
    summary = {"prices": str(out.prices), "catalog": str(out.catalog) if out.catalog else None, "rows": out.rows,
               "symbols": out.symbols, "first": str(out.first.date()), "last": str(out.last.date())}
    print(json.dumps(summary, indent=2) if args.json else
          f"{out.rows:,} bars of {out.symbols} symbols ({summary['first']}..{summary['last']}) -> {out.prices}"
          + (f" (+ {out.catalog})" if out.catalog else ""))
    return 0


def cmd_backtest(args) -> int:
    """One-shot walk-forward backtest over a range (no Dagster); same frames and hashes as the asset."""
    from tvquant_assets.calendar import manifest_dates
    from tvquant_assets.hashing import df_hash
    from tvquant_assets.lake import Lake, default_lake_root
    from tvquant_assets.manifest import resolve_manifest
    from tvquant_assets.runner import check_range
    from tvquant_assets.stages.context import RunContext
    from tvquant_assets.stages.plan import run_backtest_range

    _, manifest = resolve_manifest(args.manifest)
    write = True
    if args.simulators:
        from pydantic import ValidationError

        from tvquant_assets.errors import ManifestError

        try:
            bt = manifest.backtest.model_validate({**manifest.backtest.model_dump(), "simulators": args.simulators})
        except ValidationError as exc:
            raise ManifestError(f"--simulators: {exc.errors()[0]['msg']}") from None
        manifest = manifest.model_copy(update={"backtest": bt})
        write = False  # a what-if run: the lake keeps the manifest's own leaderboard
    start, end = check_range(manifest, args.start, args.end)
    root = args.lake or default_lake_root()
    dates = manifest_dates(manifest, start, end)
    t0 = time.perf_counter()
    result, notes = run_backtest_range(RunContext(manifest, Lake.open(root)), dates, write_lake=write)
    seconds = time.perf_counter() - t0
    hashes = {str(d.date()): df_hash(f) for d, f in result.frames.items()}
    if args.json:
        board = result.frames[end]
        print(json.dumps({"manifest": manifest.name, "start": str(start.date()), "end": str(end.date()),
                          "partitions": len(dates), "written": write, "seconds": round(seconds, 3), "notes": notes,
                          "hashes": hashes, "leaderboard": json.loads(board.to_json(orient="records"))}, indent=2))
        return 0
    for note in notes:
        print(f"note: {note}")
    if write:
        _print_leaderboard(manifest.name, end, root)
    else:
        print(result.frames[end].to_string(index=False))
    print(f"{len(dates)} dates backtested in {seconds:.1f} s (one call, no Dagster); "
          f"{end.date()} df_hash {hashes[str(end.date())][:16]}")
    return 0


def cmd_sources_check(args) -> int:
    from tvquant_assets.sources.tradingview.smoke import main

    return main(args.manifest, args.lake)


def cmd_manifests_validate(args) -> int:
    from tvquant_assets.manifest import discover_manifests, validate_files

    paths = args.paths or discover_manifests()
    problems = validate_files(paths)
    if args.json:
        print(json.dumps({"files": [str(p) for p in paths], "problems": problems}, indent=2))
        return 1 if problems else 0
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print(f"{len(paths)} manifest(s) valid")
    return 1 if problems else 0


def cmd_manifests_list(args) -> int:
    from tvquant_assets.manifest import discover_manifests, load_manifest, manifest_hash

    rows = []
    for p in discover_manifests():
        m = load_manifest(p)
        rows.append({"name": m.name, "source": m.source.kind, "start": str(m.start), "hash": manifest_hash(m),
                     "path": str(p)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['name']:24s} {r['source']:10s} start {r['start']}  hash {r['hash'][:12]}  {r['path']}")
    return 0


def cmd_manifests_docs(args) -> int:
    from tvquant_assets.manifest import docs

    if args.write:
        print(f"wrote {docs.write()}")
    else:
        print(docs.render(), end="")
    return 0


def _ledger_for(args):
    from tvquant_assets.lake import Lake, default_lake_root
    from tvquant_assets.lake.ledger import Ledger
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


def _short(h) -> str:
    return "-" if not h else str(h)[:12]


def cmd_audit_replay(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from tvquant_assets.lake import default_lake_root
    from tvquant_assets.manifest import resolve_manifest
    from tvquant_assets.replay import replay

    _, manifest = resolve_manifest(args.manifest)
    reports = [replay(manifest, args.lake or default_lake_root(), d) for d in args.date]
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
        return 0 if all(r.ok for r in reports) else 1
    console = Console(width=max(120, Console().width))
    for r in reports:
        table = Table(title=f"replay of {r.manifest} {r.date} (ledger entry {r.entry_seq}, {_short(r.entry_hash)})")
        for col in ("stage", "ledger", "lake", "replayed", "result"):
            table.add_column(col)
        for s in r.stages:
            replayed = "(entry check)" if s.stage == "audit" else _short(s.replayed)
            table.add_row(s.stage, _short(s.ledger), _short(s.lake), replayed,
                          "identical" if s.ok else "DIFF: " + "; ".join(s.problems))
        console.print(table)
        if r.ok:
            print(f"replay {r.date}: every stage identical, bit for bit, to the lake and the ledger")
        else:
            first = r.failed[0]
            print(f"replay {r.date} FAILED at stage {first.stage}: {'; '.join(first.problems)}", file=sys.stderr)
    return 0 if all(r.ok for r in reports) else 1


def cmd_audit_show(args) -> int:
    from tvquant_assets.decisions import decision_record
    from tvquant_assets.lake import default_lake_root
    from tvquant_assets.manifest import resolve_manifest

    _, manifest = resolve_manifest(args.manifest)
    record = decision_record(manifest, args.lake or default_lake_root(), args.date)
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    _print_decisions(record)
    return 0


def _print_decisions(rec: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(110, Console().width))
    pv = rec["provenance"]
    console.print(f"[bold]{rec['manifest']} {rec['date']}[/bold]")
    reg = rec["regime"] or {}
    if reg:
        extras = ", ".join(f"{k} {v:.3g}" for k, v in reg.items()
                           if k in ("vol_ratio", "stress_score", "growth") and isinstance(v, float))
        console.print(f"regime: {reg.get('label')} (quadrant {reg.get('quadrant')}, preset {reg.get('preset')}, "
                      f"max weight {reg.get('preset_max_weight')}); {extras}")
    sel = rec["selection"]
    if sel:
        names = ", ".join(f"{s['symbol']}(c{s.get('cluster')})" for s in sel["symbols"])
        console.print(f"selection: {sel['selected']} of {sel['screened']} screened: {names}")
    if rec["tournament"]:
        t = Table(title="tournament")
        for col in ("candidate", "status", "decided", "rebalanced", "cap", "holdings", "top weights"):
            t.add_column(col)
        for c in rec["tournament"]:
            top = ", ".join(f"{w['symbol']} {w['weight']:.1%}" for w in c["top"])
            t.add_row(c["candidate"], str(c.get("status")) + (f" ({c['fallback']})" if c.get("fallback") else ""),
                      str(c.get("decision_date")), str(c.get("rebalanced")), str(c.get("max_weight")),
                      str(c["holdings"]), top)
        console.print(t)
    if rec["leaderboard"]:
        board = "; ".join(f"{r.get('rank')}. {r.get('candidate')} sharpe "
                          + ("n/a" if r.get("sharpe") is None else f"{r['sharpe']:.2f}")
                          for r in rec["leaderboard"])
        console.print(f"leaderboard: {board}")
    bad = [s for s, h in rec["hashes"].items() if not h["matches"]]
    n = len(rec["hashes"])
    verdict = "DIFFER from the ledger: " + ", ".join(bad) if bad else f"all {n} stages match the ledger"
    console.print(f"hashes: {verdict}")
    git = pv["git"]
    env = pv["environment"]
    console.print(f"ledger entry {pv['entry_seq']} {pv['entry_hash'][:16]} ({pv['entries_for_date']} for this date"
                  f"{', supersedes ' + pv['supersedes'][:12] if pv['supersedes'] else ''}; "
                  f"{'signed' if pv['signed'] else 'unsigned'}; chain "
                  f"{'intact' if pv['ledger_intact'] else 'BROKEN: ' + pv['ledger_problem']})")
    console.print(f"written {pv['timestamp']} by run {pv['run_id']}; manifest {str(pv['manifest_hash'])[:16]}; "
                  f"git {str(git.get('sha'))[:12]}{' (dirty)' if git.get('dirty') else ''}; "
                  f"python {env.get('python')}; "
                  f"uv.lock {str(env.get('uv_lock_hash'))[:12]}")


def cmd_ui(args) -> int:
    """``dagster dev`` on this project's instance, plus the loopback server of the tearsheets; by default
    only the manifests that run offline (TVQUANT_MANIFESTS or --all-manifests choose others)."""
    import shutil
    import signal
    import subprocess

    from tvquant_assets.errors import TvquantError
    from tvquant_assets.report import server
    from tvquant_assets.runner import ensure_dagster_home

    dagster_exe = shutil.which("dagster") or shutil.which("dagster", path=os.path.dirname(sys.executable))
    if dagster_exe is None:
        raise TvquantError("ui: the 'dagster' command is not on PATH; run 'uv run tvquant ui' from the project, "
                           "or activate its environment (.venv/bin)")
    home = ensure_dagster_home()
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "500")
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    from tvquant_assets.lake import LAKE_ENV, default_lake_root
    from tvquant_assets.manifest.load import MANIFEST_DIR_ENV

    lake = Path(args.lake or default_lake_root()).resolve()
    os.environ[LAKE_ENV] = str(lake)  # dagster dev runs in home
    if not os.environ.get(MANIFEST_DIR_ENV) and not args.all_manifests:
        os.environ[MANIFEST_DIR_ENV] = str(_offline_manifests(home / "manifests_offline"))
    os.environ[server.REPORTS_URL_ENV] = f"http://127.0.0.1:{args.reports_port}"
    reports = server.start(lake, args.reports_port)
    print(f"DAGSTER_HOME={home}  lake={lake}  manifests={os.environ.get(MANIFEST_DIR_ENV, 'manifests/ (all)')}")
    print(f"tearsheets on http://127.0.0.1:{args.reports_port}/<manifest>/report/<date>.html")
    print(f"starting dagster dev on http://127.0.0.1:{args.port}", flush=True)
    from tvquant_assets.defs.launch import workspace_yaml

    workspace = home / "workspace.yaml"  # the location is named "tvquant", as CLI runs record it
    workspace.write_text(workspace_yaml())
    child = subprocess.Popen([dagster_exe, "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(args.port)],
                             cwd=home)

    def stop(signum, frame):  # pass SIGTERM on (Ctrl-C reaches the child through the terminal)
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        return child.wait()
    finally:
        reports.shutdown()


def _offline_manifests(directory: Path) -> Path:
    """A directory of links to the project's manifests whose source needs no network (rebuilt each start)."""
    from tvquant_assets.manifest import discover_manifests, load_manifest
    from tvquant_assets.sources import NETWORK_SOURCES

    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        if old.is_symlink() or old.suffix in (".yaml", ".yml"):
            old.unlink()
    for path in discover_manifests():
        if load_manifest(path).source.kind not in NETWORK_SOURCES:
            (directory / path.name).symlink_to(path.resolve())
    return directory


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tvquant", description=__doc__, epilog=EXIT_CODES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def parser(name: str, help: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=EXIT_CODES,
                              formatter_class=argparse.RawDescriptionHelpFormatter, **kw)

    def add_common(sp):
        sp.add_argument("--lake", default=None, help="lake root (default: $TVQUANT_LAKE or ./.tvquant/lake)")
        sp.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")

    def add_manifests(sp):
        sp.add_argument("--manifest", default=None,
                        help="manifest name (in manifests/) or path to a YAML file; several: a,b (queued when a "
                             "dagster-daemon runs on a queued instance, else one after another)")
        sp.add_argument("--all-manifests", action="store_true", help="every manifest of the manifests directory")
        sp.add_argument("--no-wait", action="store_true",
                        help="several manifests, queued: print the run ids and return without waiting")

    def add_recompute_all(sp):
        sp.add_argument("--all", action="store_true",
                        help="re-materialize every date (default: only the dates missing or stale in the "
                             "lake/instance)")

    def add_no_report(sp):
        sp.add_argument("--no-report", action="store_true",
                        help="skip the tearsheet and DuckDB views built after the run")

    d = parser("demo", f"materialize {DEMO_MANIFEST} {DEMO_START}..{DEMO_END} (a re-run skips what is fresh), "
                       "print the leaderboard and build the tearsheet")
    d.add_argument("--start", default=DEMO_START, help=f"first date (default {DEMO_START})")
    d.add_argument("--end", default=DEMO_END, help=f"last date (default {DEMO_END})")
    add_recompute_all(d)
    add_common(d)
    add_no_report(d)
    d.set_defaults(func=cmd_demo)

    r = parser("run", "materialize every stage of a manifest for one date (default: the latest date the "
                      "source has bars for), then its tearsheet")
    add_manifests(r)
    r.add_argument("--date", default=None, help="YYYY-MM-DD, a partition of the manifest")
    add_common(r)
    add_no_report(r)
    r.set_defaults(func=cmd_run)

    b = parser("backfill", "materialize every stage of a manifest for a date range (one run), then its tearsheet")
    add_manifests(b)
    b.add_argument("--start", required=True, help="first date YYYY-MM-DD")
    b.add_argument("--end", required=True, help="last date YYYY-MM-DD")
    add_recompute_all(b)
    add_common(b)
    add_no_report(b)
    b.set_defaults(func=cmd_backfill)

    rp = parser("report", "build the self-contained HTML tearsheet of a manifest and print its path")
    rp.add_argument("--manifest", required=True, help="manifest name (in manifests/) or path to a YAML file")
    rp.add_argument("--date", default=None, help="as of this date (default: the latest backtest partition)")
    add_common(rp)
    rp.set_defaults(func=cmd_report)

    lk = parser("lake", "DuckDB views over the parquet lake: refresh them or query them with SQL")
    lsub = lk.add_subparsers(dest="lake_command", required=True, metavar="SUBCOMMAND")
    lv = lsub.add_parser("views", help="(re)create one view per stage per manifest and list them with row counts")
    lv.add_argument("--manifest", action="append", help="only this manifest (repeatable; default: all in the lake)")
    add_common(lv)
    lv.set_defaults(func=cmd_lake_views)
    lq = lsub.add_parser("sql", help='run one SELECT over the views (sandboxed: no other statement, no other '
                                     'file), e.g. "SELECT * FROM sp500_demo.backtest LIMIT 5"')
    lq.add_argument("query", help="one SELECT; views are named <manifest>.<stage> (and <manifest>.ledger)")
    lq.add_argument("--timeout", type=float, default=300.0, help="interrupt after this many seconds (0: never)")
    lq.add_argument("--limit", type=int, default=1000, help="print at most this many rows (0: all; default 1000)")
    lq.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    add_common(lq)
    lq.set_defaults(func=cmd_lake_sql)
    le = lsub.add_parser("export", help="write a manifest's prices as a long CSV or parquet file (+ catalog.csv) "
                                        "that a files source reads back")
    le.add_argument("--manifest", required=True, help="manifest name (in manifests/) or path to a YAML file")
    le.add_argument("--stage", choices=["prices"], default="prices", help="what to export (prices)")
    le.add_argument("--format", choices=["csv", "parquet"], default="csv", dest="fmt")
    le.add_argument("--out", default=None, help="output file (default: ./<manifest>_prices.<format>)")
    add_common(le)
    le.set_defaults(func=cmd_lake_export)

    bt = parser("backtest", "one-shot walk-forward backtest over a range (no Dagster), same hashes as the asset")
    bt.add_argument("--manifest", required=True, help="manifest name (in manifests/) or path to a YAML file")
    bt.add_argument("--start", required=True)
    bt.add_argument("--end", required=True)
    bt.add_argument("--simulators", type=lambda v: [x for x in v.split(",") if x], default=None,
                    help="comma-separated simulators for a what-if run (not written to the lake)")
    add_common(bt)
    bt.set_defaults(func=cmd_backtest)


    src = parser("sources", "check a live source against the real service")
    ssub = src.add_subparsers(dest="sources_command", required=True, metavar="SUBCOMMAND")
    sc = ssub.add_parser("check", help="live smoke test: handshake, a screener page, a paged history, overnight "
                                       "dating, parity; exit 1 on a failure, 2 without network")
    sc.add_argument("--manifest", required=True, help="manifest name (in manifests/) or path to a YAML file")
    sc.add_argument("--lake", help="lake root for the day's screener snapshot (default: a temp directory)")
    sc.set_defaults(func=cmd_sources_check)

    m = parser("manifests", "validate or list manifests")
    msub = m.add_subparsers(dest="manifests_command", required=True, metavar="SUBCOMMAND")
    v = msub.add_parser("validate", help="one line per problem; exit 1 when any")
    v.add_argument("paths", nargs="*", help="YAML files (default: every manifest in manifests/)")
    v.add_argument("--json", action="store_true", help="print a JSON summary")
    v.set_defaults(func=cmd_manifests_validate)
    ls = msub.add_parser("list", help="list manifests with their content hash")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_manifests_list)
    md = msub.add_parser("docs", help="print the manifest reference generated from the schema (docs/manifest.md)")
    md.add_argument("--write", action="store_true", help="write docs/manifest.md instead of printing it")
    md.set_defaults(func=cmd_manifests_docs)

    a = parser("audit", "verify the ledger, replay a date, show a date's decisions")
    asub = a.add_subparsers(dest="audit_command", required=True)
    av = asub.add_parser("verify", help="exit 0 when intact, 1 naming the first bad entry and why")
    av.add_argument("--manifest", required=True, help="manifest name (in manifests/) or path to a YAML file")
    av.add_argument("--no-dagster", action="store_true",
                    help="do not compare with the chain heads recorded in the Dagster instance")
    add_common(av)
    av.set_defaults(func=cmd_audit_verify)
    ar = asub.add_parser("replay", help="recompute every stage for a date from the lake; compare bit for bit")
    ar.add_argument("--manifest", required=True, help="manifest name (in manifests/) or path to a YAML file")
    ar.add_argument("--date", required=True, nargs="+", help="partition date(s) YYYY-MM-DD")
    add_common(ar)
    ar.set_defaults(func=cmd_audit_replay)
    ash = asub.add_parser("show", help="a date's decisions (regime, selection, weights) and their provenance")
    ash.add_argument("--manifest", required=True, help="manifest name (in manifests/) or path to a YAML file")
    ash.add_argument("--date", default=None, help="partition date YYYY-MM-DD (default: the latest in the ledger)")
    add_common(ash)
    ash.set_defaults(func=cmd_audit_show)

    u = parser("ui", "start the Dagster UI (dagster dev) on this project's instance, with the tearsheets served "
                     "on --reports-port; only the manifests that run offline unless TVQUANT_MANIFESTS names a "
                     "directory or --all-manifests")
    u.add_argument("--port", type=int, default=3000)
    u.add_argument("--reports-port", type=int, default=3001, help="port of the tearsheet server (loopback)")
    u.add_argument("--all-manifests", action="store_true",
                   help="every manifest in manifests/, including those whose source needs the network")
    u.add_argument("--lake", default=None, help="lake root (default: $TVQUANT_LAKE or ./.tvquant/lake)")
    u.set_defaults(func=cmd_ui)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tvquant_assets.bytecode import ensure_compiled
    from tvquant_assets.errors import TvquantError
    from tvquant_assets.permissions import restrict_umask

    restrict_umask()  # the lake, the ledger and the instance are owner-only (docs/operations.md)

    ensure_compiled()  # once, where PYTHONDONTWRITEBYTECODE is set: cold imports ~10 s instead of ~30 s

    try:
        return int(args.func(args) or 0)
    except TvquantError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"tvquant: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tvquant: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, not a traceback; the traceback on request
        if os.environ.get("TVQUANT_DEBUG") == "1":
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"tvquant: error: {type(exc).__name__}: {first} (TVQUANT_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
