"""Lake writes per partition file, on the demo's real partition frames, beside a bare parquet write.

    uv run python -m benchmarks lake_writes [--start 2019-01-02] [--end 2019-03-29] [--repeat 3]

The demo manifest runs one-shot over a short range (one process, ``TVQUANT_WORKERS=1``) and every frame the
stages hand to the lake is kept. Then, in the same process, alternated ``--repeat`` times, the same frames
(one ``write_many`` per asset, as the IO manager does) are written:

reference: ``pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)``, one by one, to a
    fresh directory: the least any parquet-per-partition lake pays;
lake, fresh: ``Lake.write_many`` into a fresh lake (hash, parquet bytes with the hash in their metadata,
    tmp file + ``os.replace``, cache);
Dagster path: what a Dagster run's "lake writes" cover: the asset's ``prepare_frame`` (default index,
    df_hash stamped for the UI metadata) then the IO manager's ``write_many``;
re-run: the same frames again into the lake holding them (nothing rewritten: checked by mtime).

Printed: ms per file (wall; best of the repeats) and CPU ms per file, the ratio to the reference and the
1 ms target. Also checked: files written by the lake are byte-identical from one repeat to the next and hash
(read back) as their frames.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

TARGET_MS = 1.0


def _capture(start: str, end: str, root: Path) -> dict[str, list[tuple[str, object]]]:
    """``{asset: [(date_key, frame), ...]}`` of every frame the one-shot run wrote (the last write of a
    partition wins)."""
    from tvquant_assets.calendar import manifest_dates
    from tvquant_assets.lake import Lake
    from tvquant_assets.manifest import resolve_manifest
    from tvquant_assets.stages.context import RunContext
    from tvquant_assets.stages.plan import run_one_shot

    frames: dict[str, dict[str, object]] = defaultdict(dict)

    class Recording(Lake):
        def write_many(self, items):
            for path, frame in items:
                parts = str(path).split("/")
                frames[parts[-2]][parts[-1][: -len(".parquet")]] = frame
            return super().write_many(items)

    manifest = resolve_manifest("sp500_demo")[1]
    run_one_shot(RunContext(manifest, Recording(root), run_id="bench"), manifest_dates(manifest, start, end))
    return {asset: sorted(by_date.items()) for asset, by_date in frames.items()}


def _timed(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _reference(frames, root: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for asset, items in frames.items():
        os.makedirs(root / asset, exist_ok=True)
        for key, frame in items:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / asset / f"{key}.parquet",
                           compression="snappy")


def _lake(frames, lake, prepared: bool) -> None:
    from tvquant_assets.lake.store import prepare_frame

    for asset, items in frames.items():
        batch = [(lake.path("sp500_demo", asset, key), prepare_frame(frame)[0] if prepared else frame)
                 for key, frame in items]
        lake.write_many(batch)


def _unstamped(frames):
    """Copies without the hash stamp of an earlier pass (a fresh run's frames carry none)."""
    out = {}
    for asset, items in frames.items():
        fresh = []
        for key, frame in items:
            copy = frame.copy(deep=False)
            copy.attrs = {}
            fresh.append((key, copy))
        out[asset] = fresh
    return out


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*.parquet"))}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks lake_writes", description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2019-01-02")
    parser.add_argument("--end", default="2019-03-29")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ["TVQUANT_WORKERS"] = "1"  # every frame passes through this process's lake
    tmp = Path(tempfile.mkdtemp(prefix="tvquant-lake-writes-"))
    try:
        return _run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args, tmp: Path) -> int:
    from tvquant_assets.hashing import df_hash
    from tvquant_assets.lake import Lake

    t0 = time.perf_counter()
    frames = _capture(args.start, args.end, tmp / "source")
    n = sum(len(v) for v in frames.values())
    print(f"demo {args.start}..{args.end} one-shot: {n} partition files of {len(frames)} assets captured "
          f"in {time.perf_counter() - t0:.1f} s; load {_load()}")
    results: dict[str, list[tuple[float, float]]] = defaultdict(list)
    first_bytes = None
    for i in range(args.repeat):
        ref = tmp / f"ref_{i}"
        results["reference"].append(_timed(lambda ref=ref: _reference(frames, ref)))
        shutil.rmtree(ref)
        fresh = Lake(tmp / f"lake_{i}")
        results["lake"].append(_timed(lambda fresh=fresh: _lake(_unstamped(frames), fresh, prepared=False)))
        snap = _snapshot(tmp / f"lake_{i}")
        results["rerun"].append(_timed(lambda fresh=fresh: _lake(_unstamped(frames), fresh, prepared=False)))
        if _snapshot(tmp / f"lake_{i}") != snap:
            raise SystemExit("lake_writes: a re-run of identical frames rewrote files")
        blobs = {k: b for k, (_, b) in snap.items()}
        if first_bytes is None:
            first_bytes = blobs
        elif blobs != first_bytes:
            raise SystemExit("lake_writes: identical frames gave different bytes in two fresh lakes")
        shutil.rmtree(tmp / f"lake_{i}")
        dag = Lake(tmp / f"dagster_{i}")
        results["dagster"].append(_timed(lambda dag=dag: _lake(_unstamped(frames), dag, prepared=True)))
        if i == 0:
            check = Lake(tmp / f"dagster_{i}", cache_bytes=0)
            for asset, items in frames.items():
                for key, frame in items:
                    stored, digest = check.read_path_with_hash(check.path("sp500_demo", asset, key), verify=True)
                    if digest != df_hash(frame.reset_index(drop=True)):
                        raise SystemExit(f"lake_writes: {asset}/{key} reads back with another hash")
        shutil.rmtree(tmp / f"dagster_{i}")

    def best(kind):
        wall = min(w for w, _ in results[kind]) / n * 1e3
        cpu = min(c for _, c in results[kind]) / n * 1e3
        return wall, cpu

    ref_wall, ref_cpu = best("reference")
    print(f"ms per partition file, best of {args.repeat} (wall; process CPU), load {_load()}:")
    print(f"  reference pq.write_table(from_pandas):  {ref_wall:6.3f}  ({ref_cpu:6.3f} CPU)")
    labels = {"lake": "Lake.write_many, fresh lake:", "dagster": "Dagster path (prepare + write_many):",
              "rerun": "re-run, nothing rewritten:"}
    for kind, label in labels.items():
        wall, cpu = best(kind)
        print(f"  {label:39s} {wall:6.3f}  ({cpu:6.3f} CPU)  {wall / ref_wall:5.2f}x reference  "
              f"{'meets' if wall <= TARGET_MS else 'misses'} the {TARGET_MS:g} ms target")
    print("  identical frames gave identical bytes in every fresh lake; a re-run rewrote nothing; "
          "every file reads back with its frame's hash")
    return 0


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
