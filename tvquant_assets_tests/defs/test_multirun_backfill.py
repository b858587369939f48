"""A chunked backfill on real Dagster infrastructure: a PostgreSQL 15 server, ``dagster-daemon`` (its own
process group) with the queued run coordinator at two concurrent runs, and a partition backfill of every
asset added to the instance the way the UI's "Materialize" dialog does (``PartitionBackfill.
from_asset_partitions``, what the GraphQL ``launchPartitionBackfill`` mutation calls). The assets are
chunked by ``TVQUANT_MAX_PARTITIONS_PER_RUN`` (``defs/chunks.py``), so the daemon's asset backfill
launches runs of at most five partitions; the path-dependent stages declare their previous partition.

Then: two runs overlapped and never more than two; no run holds more than five partitions; the
tournament, backtest and audit chunks ran in date order; and every partition's content hash equals the
one single in-process run over the same range (``runner.materialize_range``) writes: the tournament's
second chunk starts off a rebalance date (it carries the first chunk's decision) and rebalances with a
turnover penalty against it, and the backtest's second chunk holds the book built from the first chunk's
decisions. The audit partitions carry run ids (their entry hashes differ by design): their stage hashes
are compared, and the ledger verifies with one entry per date in date order.

The daemon's loop interval (30 s in Dagster) is set to 2 s in its process so the test stays short; the
dequeue interval is the queued coordinator's own setting.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import load_manifest
from tvquant_assets.stages import ASSETS, Stage
from tvquant_assets_tests.postgres import instance_yaml, postgres_server
from tvquant_assets_tests.stages.test_golden_hashes import partition_hashes

ROOT = Path(__file__).resolve().parents[2]
START, END, CHUNK = "2020-03-02", "2020-03-13", 5
PASSWORD_ENV = "TVQUANT_TEST_PG_PASSWORD"
TIMEOUT = 1500  # a loaded 2-core CI machine takes ~2 min per run (process start and imports)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"

MANIFEST = """\
name: mr_chunks
description: Every-3-days risk parity with a turnover penalty, backfilled in chunks of five dates.
source: {kind: bundled, dataset: sp500}
calendar: weekdays
start: 2020-03-02
universe: {min_history_days: 252, min_price: 1.0}
selection: {top_n_per_cluster: 3, max_symbols: 10, linkage: {method: ward, max_clusters: 4}}
tournament:
  candidates:
    - {engine: custom, profile: risk_parity}
    - {engine: custom, profile: min_variance}
  constraints: {max_weight: 0.35, turnover_penalty: 0.5}
rebalance: {rule: every_k_days, every_k_days: 3}
"""

QUEUE_YAML = """run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 2
    dequeue_interval_seconds: 1
    max_user_code_failure_retries: 3  # a code server slow to start a run (a loaded machine) is retried
    user_code_failure_retry_delay: 5
"""

DAEMON = textwrap.dedent("""\
    import sys
    import dagster._daemon.controller as controller
    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = 2  # the backfill loop reads it when it starts
    from dagster._daemon.cli import main
    sys.argv = ["dagster-daemon", "run", "-w", sys.argv[1]]
    main()
""")


def start_daemon(home: Path, workspace: Path, env: dict, log: Path) -> subprocess.Popen:
    """``dagster daemon run`` in its own process group (stop it with :func:`stop_daemon`)."""
    return subprocess.Popen([sys.executable, "-c", DAEMON, str(workspace)], cwd=home, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def stop_daemon(proc: subprocess.Popen, home: Path) -> None:
    """Stop the daemon's process group, then what it started in sessions of their own (its code server,
    run workers): the processes whose environment names this test's ``DAGSTER_HOME``."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    marker = f"DAGSTER_HOME={home}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            started_here = marker in (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if started_here:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """Postgres + daemon + a code location holding one manifest, chunked by five."""
    import tvquant_assets.definitions  # noqa: F401  its module-level defs: built before the environment changes

    with postgres_server() as (host, port, user, db):
        base = tmp_path_factory.mktemp("multirun")
        home, manifests, lake = base / "home", base / "manifests", base / "lake"
        home.mkdir()
        manifests.mkdir()
        (manifests / "mr_chunks.yaml").write_text(MANIFEST)
        (manifests / "mr_other.yaml").write_text(MANIFEST.replace("name: mr_chunks", "name: mr_other"))
        (home / "dagster.yaml").write_text(instance_yaml(host, port, user, db, PASSWORD_ENV, QUEUE_YAML))
        workspace = home / "workspace.yaml"
        workspace.write_text("load_from:\n  - python_module:\n      module_name: tvquant_assets.definitions\n"
                             f"      location_name: tvquant\n      working_directory: {ROOT}\n")
        env = {**os.environ, "DAGSTER_HOME": str(home), PASSWORD_ENV: "", "TVQUANT_MANIFESTS": str(manifests),
               "TVQUANT_LAKE": str(lake), "DAGSTER_EVENT_BATCH_SIZE": "500",
               "TVQUANT_MAX_PARTITIONS_PER_RUN": str(CHUNK), "DAGSTER_GRPC_TIMEOUT_SECONDS": "300",
               "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1"}
        saved = {k: os.environ.get(k) for k in env if os.environ.get(k) != env[k]}
        os.environ.update(env)
        with DagsterInstance.get():  # the schema exists before the daemon and the runs race
            pass
        log = Path(os.environ.get("TVQUANT_TEST_DAEMON_LOG", base / "daemon.log"))
        daemon = start_daemon(home, workspace, env, log)
        try:
            from tvquant_assets.defs.queue import queue_unavailable

            with DagsterInstance.get() as instance:  # the daemon's first heartbeat: the CLI sees a live queue
                wait_for(lambda: queue_unavailable(instance) is None, "the daemon's heartbeat",
                         {"log": log, "daemon": daemon}, timeout=180)
            yield {"home": home, "manifests": manifests, "lake": lake, "base": base, "env": env,
                   "log": log, "daemon": daemon}
        finally:
            stop_daemon(daemon, home)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def wait_for(predicate, what: str, deployment: dict, timeout: float = TIMEOUT):
    deadline, log = time.monotonic() + timeout, deployment["log"]
    while time.monotonic() < deadline:
        if deployment["daemon"].poll() is not None:
            raise AssertionError(f"the daemon exited; its log:\n{log.read_text()[-3000:]}")
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}; daemon log tail:\n{log.read_text()[-3000:]}")


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of [start, end] intervals open at one instant."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1]))
    best = now = 0
    for _, step in points:
        now += step
        best = max(best, now)
    return best


def test_chunked_backfill_runs_two_at_a_time_and_hashes_like_one_run(deployment, tmp_path, monkeypatch):
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
    from dagster._core.utils import make_new_backfill_id

    from tvquant_assets.definitions import build_definitions

    path = deployment["manifests"] / "mr_chunks.yaml"
    m = load_manifest(path)
    keys = [d.strftime("%Y-%m-%d") for d in manifest_dates(m, START, END)]
    assert len(keys) == 10
    instance = DagsterInstance.get()
    graph = build_definitions([path]).resolve_asset_graph()  # chunked: TVQUANT_MAX_PARTITIONS_PER_RUN is set
    selection = [AssetKey([m.name, str(s)]) for s in ASSETS]
    assert graph.get(AssetKey([m.name, "tournament"])).backfill_policy.max_partitions_per_run == CHUNK
    backfill_id = make_new_backfill_id()
    instance.add_backfill(PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id, asset_graph=graph, partition_names=keys, asset_selection=selection,
        backfill_timestamp=time.time(), tags={}, dynamic_partitions_store=instance, all_partitions=False,
        title="chunked", description=None, run_config=None))

    done = wait_for(lambda: (b := instance.get_backfill(backfill_id)).status != BulkActionStatus.REQUESTED and b,
                    "the backfill to finish", deployment)
    records = instance.get_run_records(RunsFilter(tags={"dagster/backfill": backfill_id}))
    failed = [r.dagster_run.run_id for r in records if r.dagster_run.status != DagsterRunStatus.SUCCESS]
    assert done.status == BulkActionStatus.COMPLETED_SUCCESS and not failed, (done.status, failed)

    # the queue: two runs at a time, never more; chunks of at most five partitions
    intervals = [(r.start_time, r.end_time) for r in records]
    assert max_overlap(intervals) == 2, intervals
    assert len(records) >= 2 * (len(keys) // CHUNK)
    for r in records:
        tags = r.dagster_run.tags
        n = len(manifest_dates(m, tags[RANGE_START], tags[RANGE_END]))
        assert n <= CHUNK, tags

    # the path-dependent stages ran chunk after chunk, in date order
    for stage in (Stage.TOURNAMENT, Stage.BACKTEST):
        events = instance.fetch_materializations(AssetKey([m.name, str(stage)]), limit=100, ascending=True).records
        assert [e.partition_key for e in events] == keys, stage
        assert len({e.run_id for e in events}) == len(keys) // CHUNK, stage  # one run per chunk

    # the reference: one single in-process run over the same range, on its own lake and instance
    monkeypatch.delenv("TVQUANT_MAX_PARTITIONS_PER_RUN")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "ref_home"))
    (tmp_path / "ref_home").mkdir()
    from tvquant_assets.runner import materialize_range

    reference = materialize_range(path, START, END, lake_root=str(tmp_path / "ref"))
    assert not reference.failures and len(reference.run_ids) == 1
    chunked, single = Lake(str(deployment["lake"])), Lake(str(tmp_path / "ref"))
    got, want = partition_hashes(chunked, m.name), partition_hashes(single, m.name)
    assert want["tournament"].keys() == set(keys)
    assert got == want
    audits = [chunked.read_many(m.name, Stage.AUDIT, [pd_ts(k) for k in keys]), single.read_many(
        m.name, Stage.AUDIT, [pd_ts(k) for k in keys])]
    for k in keys:
        rows = [a[pd_ts(k)][0].iloc[0] for a in audits]
        stage_hashes = [{c: r[c] for c in r.index if c.startswith("hash_")} for r in rows]
        assert stage_hashes[0] == stage_hashes[1], k
    ledger = Ledger(str(chunked.ledger_path(m.name)))
    report = ledger.verify()
    assert report.ok and report.n_entries == len(keys)
    assert sorted(e["payload"]["date"] for e in ledger.entries()) == keys
    first = min(r.start_time for r in records)
    for r in sorted(records, key=lambda r: r.start_time):
        t = r.dagster_run.tags
        print(f"{r.dagster_run.run_id[:8]} +{r.start_time - first:6.1f}s {r.end_time - r.start_time:6.1f}s "
              f"{t[RANGE_START]}..{t[RANGE_END]} {sorted(k.path[-1] for k in r.dagster_run.asset_selection)}")


def pd_ts(key: str):
    import pandas as pd

    return pd.Timestamp(key)


def test_several_manifests_run_concurrently_through_the_queue_as_their_jobs(deployment, capsys):
    """``tvquant run --manifest mr_chunks,mr_other --date D`` with the daemon up: two queued runs of the two
    pipeline jobs, launched together by the daemon. mr_chunks holds D-1 (the backfill above): its run
    succeeds and rewrites D with the same hash. mr_other's lake is empty and D is off a rebalance date, so
    its tournament cannot carry the previous decision: the run fails, the command exits 2, and the retry
    sensor answers that failure with a retry of mr_other_pipeline for D."""
    from dagster import RunRequest, build_run_status_sensor_context
    from dagster._core.storage.dagster_run import RunsFilter

    from tvquant_assets import cli
    from tvquant_assets.definitions import build_definitions
    from tvquant_assets.defs.sensors import CLI_PID_TAG

    day = "2020-03-11"
    lake = Lake(str(deployment["lake"]))
    before = lake.read_many("mr_chunks", Stage.TOURNAMENT, [pd_ts(day)], verify=True)[pd_ts(day)][1]
    code = cli.main(["run", "--manifest", "mr_chunks,mr_other", "--date", day, "--no-report"])
    out = capsys.readouterr().out
    assert code == 2, out
    assert out.count("queued: ") == 2 and "success: mr_chunks" in out and "failure: mr_other" in out, out
    instance = DagsterInstance.get()
    records = instance.get_run_records(RunsFilter(tags={"tvquant/submitted_by": "tvquant-cli"}))
    runs = {r.dagster_run.job_name: r for r in records}
    assert set(runs) == {"mr_chunks_pipeline", "mr_other_pipeline"}
    for r in records:
        run = r.dagster_run
        assert run.remote_job_origin.location_name == "tvquant" and CLI_PID_TAG not in run.tags
        assert run.tags["dagster/partition"] == day
        logs = instance.all_logs(run.run_id)
        assert logs and {e.run_id for e in logs} == {run.run_id}  # its own run log
    assert max_overlap([(r.start_time, r.end_time) for r in records]) == 2  # launched side by side
    after = lake.read_many("mr_chunks", Stage.TOURNAMENT, [pd_ts(day)], verify=True)[pd_ts(day)][1]
    assert after == before

    failed = runs["mr_other_pipeline"].dagster_run
    defs = build_definitions(sorted(deployment["manifests"].glob("*.yaml")))
    sensor = defs.resolve_sensor_def("retry_or_alert_failed_runs")
    failure = next(e for e in instance.all_logs(failed.run_id) if e.dagster_event is not None
                   and e.dagster_event.event_type_value == "PIPELINE_FAILURE").dagster_event
    ctx = build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=failure, dagster_instance=instance,
                                          dagster_run=failed).for_run_failure()
    retry = sensor(ctx)
    assert isinstance(retry, RunRequest) and retry.job_name == "mr_other_pipeline"
    assert retry.partition_key == day and retry.tags["tvquant/retry_of"] == failed.run_id


def test_a_backfill_of_several_manifests_queues_one_range_run_each(deployment, capsys):
    """``tvquant backfill --all-manifests --start S --end E --json``: one queued range run per manifest of the
    code location, both succeed; mr_chunks' partitions keep their hashes (the chunked backfill's)."""
    import json

    from tvquant_assets import cli

    lake = Lake(str(deployment["lake"]))
    days = [pd_ts("2020-03-02"), pd_ts("2020-03-03")]
    before = partition_hashes(lake, "mr_chunks")
    code = cli.main(["backfill", "--all-manifests", "--start", "2020-03-02", "--end", "2020-03-03", "--json"])
    out = capsys.readouterr().out
    summary, end = json.JSONDecoder().raw_decode(out)
    assert not out[end:].strip(), out  # the JSON only
    runs = summary["queued"]
    assert code == 0, runs
    assert sorted((r["job"], r["start"], r["end"], r["status"]) for r in runs) == [
        ("mr_chunks_pipeline", "2020-03-02", "2020-03-03", "SUCCESS"),
        ("mr_other_pipeline", "2020-03-02", "2020-03-03", "SUCCESS")]
    instance = DagsterInstance.get()
    for r in runs:
        run = instance.get_run_by_id(r["run_id"])
        assert run.tags[RANGE_START] == "2020-03-02" and run.tags[RANGE_END] == "2020-03-03"
    after = partition_hashes(lake, "mr_chunks")
    assert all(after[stage][d] == h for stage, hashes in before.items() for d, h in hashes.items())
    assert sorted(lake.partitions("mr_other", Stage.AUDIT)) == days
