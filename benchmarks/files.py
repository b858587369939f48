"""The files source at scale: a long CSV of N symbols x Y years (written from the synthetic source) read,
validated and turned into the first backfill partition (catalog and prices of its first date).

    uv run python -m benchmarks files [--symbols 500] [--years 10] [--repeat 3]

Each measurement runs in a fresh child process: wall time of the read and validation (``FilesSource``:
pyarrow, dates and zones, duplicates, frequencies, prices), of the catalog and prices stages of the first
partition, and the source's memory (peak RSS of the child minus its RSS after imports). The reference, in
the same run and alternated with it, is a bare ``pyarrow.csv.read_csv`` of the same file (what any reader
must pay). Targets: read + first partition <= 10 s, source memory < 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 10.0
TARGET_MEMORY_MIB = 1024.0


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_csv(directory: Path, symbols: int, years: int) -> tuple[Path, Path, str]:
    """The synthetic market written as a user's long CSV (date, symbol, OHLCV) and a catalog CSV."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from tvquant_assets.sources.synthetic import SyntheticSource

    end = pd.Timestamp("2020-12-31")
    start = pd.Timestamp(year=end.year - years + 1, month=1, day=1)
    src = SyntheticSource(n_symbols=symbols, start=start, end=end, seed=11)
    bars = src.history(list(src.catalog()["symbol"]), start, end)
    prices = directory / "prices.csv"
    bars["date"] = bars["date"].dt.date
    pacsv.write_csv(pa.Table.from_pandas(bars, preserve_index=False), prices)
    catalog = directory / "catalog.csv"
    src.catalog().to_csv(catalog, index=False)
    first = pd.bdate_range(start + pd.Timedelta(days=400), periods=1)[0]
    return prices, catalog, first.strftime("%Y-%m-%d")


def _manifest_text(prices: Path, catalog: Path, first: str) -> str:
    return (f"name: files_bench\nstart: {first}\nsource: {{kind: files, prices: '{prices}', catalog: '{catalog}'}}\n"
            "universe: {min_history_days: 200}\n")


def phase_files(prices: str, catalog: str, first: str) -> dict:
    import pandas as pd

    from tvquant_assets.lake import Lake
    from tvquant_assets.manifest.load import parse_manifest
    from tvquant_assets.stages import catalog as catalog_stage
    from tvquant_assets.stages import prices as prices_stage
    from tvquant_assets.stages.context import RunContext

    base = _rss_mib()
    manifest = parse_manifest(_manifest_text(Path(prices), Path(catalog), first))
    with tempfile.TemporaryDirectory() as lake_dir:
        ctx = RunContext(manifest, Lake(lake_dir))
        t0 = time.perf_counter()
        parsed = ctx.source.parsed()
        read = time.perf_counter() - t0
        rows = len(parsed.bars)
        d = pd.Timestamp(first)
        cat = catalog_stage.run(ctx, [d])
        ctx.lake.write(manifest.name, "catalog", d, cat.frames[d])
        bars = prices_stage.run(ctx, [d]).frames[d]
        total = time.perf_counter() - t0
    return {"read_s": read, "first_partition_s": total - read, "total_s": total, "rows": rows,
            "bars_on_first_date": len(bars), "source_mib": _peak_mib() - base, "peak_mib": _peak_mib()}


def phase_reference(prices: str) -> dict:
    import pyarrow.csv as pacsv

    base = _rss_mib()
    t0 = time.perf_counter()
    table = pacsv.read_csv(prices)
    return {"total_s": time.perf_counter() - t0, "rows": table.num_rows, "source_mib": _peak_mib() - base}


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks", "files", *args], capture_output=True, text=True,
                         cwd=ROOT, env=os.environ.copy())
    if out.returncode:
        raise SystemExit(f"benchmark phase {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_files":
        print(json.dumps(phase_files(*argv[1:4])))
        return 0
    if argv and argv[0] == "_reference":
        print(json.dumps(phase_reference(argv[1])))
        return 0
    ap = argparse.ArgumentParser(prog="python -m benchmarks files", description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        prices, catalog, first = write_csv(Path(tmp), args.symbols, args.years)
        written = time.perf_counter() - t0
        size_mib = prices.stat().st_size / 2**20
        ours, ref = [], []
        for _ in range(args.repeat):  # alternated, so load on the machine hits both alike
            ref.append(_child(["_reference", str(prices)]))
            ours.append(_child(["_files", str(prices), str(catalog), first]))
    med = {k: statistics.median(r[k] for r in ours) for k in ("read_s", "first_partition_s", "total_s", "source_mib",
                                                                "peak_mib")}
    ref_s = statistics.median(r["total_s"] for r in ref)
    ok = med["total_s"] <= TARGET_SECONDS and med["source_mib"] < TARGET_MEMORY_MIB
    result = {"symbols": args.symbols, "years": args.years, "rows": ours[0]["rows"], "csv_mib": round(size_mib, 1),
              "csv_written_s": round(written, 2), **{k: round(v, 3) for k, v in med.items()},
              "reference_pyarrow_read_s": round(ref_s, 3), "ratio_vs_pyarrow_read": round(med["total_s"] / ref_s, 2),
              "reference_mib": round(statistics.median(r["source_mib"] for r in ref), 1),
              "targets": {"total_s": TARGET_SECONDS, "source_mib": TARGET_MEMORY_MIB}, "passed": ok}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"long CSV: {args.symbols} symbols x {args.years} years = {result['rows']:,} rows, {size_mib:.0f} MiB "
              f"(written in {written:.1f} s)")
        print(f"files source: read + validate {med['read_s']:.2f} s, first partition (catalog + prices) "
              f"{med['first_partition_s']:.2f} s, total {med['total_s']:.2f} s (target <= {TARGET_SECONDS:.0f} s); "
              f"medians of {args.repeat}")
        print(f"reference: pyarrow.csv.read_csv alone {ref_s:.2f} s -> ratio {result['ratio_vs_pyarrow_read']:.1f}x")
        print(f"memory: source {med['source_mib']:.0f} MiB above the imports (target < {TARGET_MEMORY_MIB:.0f} MiB), "
              f"child peak {med['peak_mib']:.0f} MiB; pyarrow alone {result['reference_mib']:.0f} MiB")
        print("PASS" if ok else "FAIL")
    return 0 if ok else 1
