"""The one-shot pipeline with one process vs several worker processes (``TVQUANT_WORKERS``), same range, same
run: wall time of each, the ratio, the CPU seconds of the calling process and of its workers, the machine's load
average, and whether every partition hashes the same.

Each configuration runs in a fresh Python process on an empty temp lake; as the CLI does, it starts the workers
before importing the stack (their imports run beside its own), and the timing starts after its imports (a
worker not ready by then delays nothing: stages run in process until it is). Configurations alternate when
``--repeat`` > 1; the figure reported is the best of the repeats. Workers start as ``TVQUANT_WORKER_START``
says (fork, the Linux default: forked per split stage, nothing to import; or loky's spawned workers).

    uv run python -m benchmarks workers [--manifest sp500_demo] [--start 2019-01-02] [--end 2020-12-31]
                                        [--workers 2] [--repeat 1] [--workers-first]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
from tvquant_assets import workers
workers.start()  # as the CLI does before its imports
from tvquant_assets.calendar import manifest_dates
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import resolve_manifest
from tvquant_assets.stages import ASSETS, Stage
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.plan import run_one_shot

_, manifest, start, end, root = sys.argv
m = resolve_manifest(manifest)[1]
lake = Lake(root)
def workers_cpu():  # the worker processes' CPU seconds: forked ones have exited (rusage of children),
    import resource  # loky's stay alive (psutil)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = ru.ru_utime + ru.ru_stime
    try:
        import psutil
    except ImportError:
        return total
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total
t0, c0, w0 = time.perf_counter(), time.process_time(), workers_cpu()
run_one_shot(RunContext(m, lake, run_id="bench"), manifest_dates(m, start, end))
wall, cpu, wcpu = time.perf_counter() - t0, time.process_time() - c0, workers_cpu() - w0
hashes = {str(s): {str(d.date()): h for d, (_, h) in lake.read_many(m.name, s, lake.partitions(m.name, s)).items()}
          for s in ASSETS if s is not Stage.AUDIT}
print(json.dumps({"wall": wall, "parent_cpu": cpu, "workers_cpu": wcpu, "hashes": hashes}))
"""


def _run(manifest: str, start: str, end: str, workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="tvq-bench-workers-") as tmp:
        env = {**os.environ, "TVQUANT_WORKERS": str(workers), "TVQUANT_LAKE": str(Path(tmp) / "lake")}
        out = subprocess.run([sys.executable, "-c", CHILD, manifest, start, end, str(Path(tmp) / "lake")],
                             env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks workers", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="sp500_demo")
    parser.add_argument("--start", default="2019-01-02")
    parser.add_argument("--end", default="2020-12-31")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workers-first", action="store_true", help="start with the several-worker run")
    args = parser.parse_args(argv)
    from tvquant_assets.bytecode import ensure_compiled

    ensure_compiled()  # as the CLI's first command: without bytecode the stages' lazy imports are timed too
    best: dict[int, dict] = {}
    load_before = os.getloadavg()
    for i in range(args.repeat):
        order = (1, args.workers) if (i + args.workers_first) % 2 == 0 else (args.workers, 1)
        for n in order:
            r = _run(args.manifest, args.start, args.end, n)
            print(f"  run {i + 1}: {n} worker(s) {r['wall']:.1f} s wall, CPU {r['parent_cpu']:.1f} s caller + "
                  f"{r['workers_cpu']:.1f} s workers, load {os.getloadavg()[0]:.1f}", flush=True)
            if n not in best or r["wall"] < best[n]["wall"]:
                best[n] = r
    load_after = os.getloadavg()
    one, many = best[1], best[args.workers]
    same = one["hashes"] == many["hashes"]
    n_parts = sum(len(v) for v in one["hashes"].values())
    from tvquant_assets.workers import start_method

    print(f"one-shot {args.manifest} {args.start}..{args.end} ({n_parts} partitions, audit excluded from hashes), "
          f"workers started by {start_method()}")
    print(f"  1 worker        {one['wall']:8.1f} s wall   CPU {one['parent_cpu']:6.1f} s")
    print(f"  {args.workers} workers       {many['wall']:8.1f} s wall   CPU {many['parent_cpu']:6.1f} s caller + "
          f"{many['workers_cpu']:.1f} s workers")
    print(f"  speed-up        {one['wall'] / many['wall']:8.2f}x   (target >= 1.7x on a quiet 2-core machine)")
    print(f"  caller CPU      {one['parent_cpu'] / many['parent_cpu']:8.2f}x less (the bound on a quiet machine: "
          "the caller computes the stages that are not split)")
    print(f"  load average    {load_before[0]:.1f} before, {load_after[0]:.1f} after; {os.cpu_count()} cores")
    print(f"  hashes          {'identical' if same else 'DIFFERENT'}")
    return 0 if same else 1
