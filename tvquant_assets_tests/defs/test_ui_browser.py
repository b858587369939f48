"""The Dagster UI tells the truth, in a real browser (Debian chromium through playwright, headless) against
``tvquant ui`` on a scratch instance after a short backfill: partitions end at the data's last date, every
check shows "Passed" for every materialized partition, re-executing checks from the UI reads the lake (a
corrupt price file planted behind the lake's back fails its partition only), the checks of one chosen partition
re-run by clicks (Jobs -> ``<manifest>_checks`` -> Launchpad -> partition -> Launch Run) report that partition's
failed check and nothing else, the tearsheet link opens the report. A screenshot of each page lands in the folder
printed (``TVQUANT_UI_SHOTS`` or a temporary one): CI keeps it as an artifact. Also: re-running an unchanged
range leaves every parquet file byte-identical.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tvquant_assets.runner import materialize_outputs, materialize_range
from tvquant_assets.stages import ASSETS

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NAME, START, END = "ui_demo", "2022-12-22", "2022-12-28"  # the bundled data ends on 2022-12-28
MATERIALIZED = ["2022-12-22", "2022-12-23", "2022-12-26", "2022-12-27", "2022-12-28"]
PRICES = [NAME, "prices"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parquet_bytes(lake: Path) -> dict[str, bytes]:
    return {str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A demo variant starting 2022-12-22, backfilled to 12-28 (one range run) plus its tearsheet, then the
    same range run again (for the byte-identity test)."""
    tmp = tmp_path_factory.mktemp("ui")
    manifests, lake, home = tmp / "manifests", tmp / "lake", tmp / "home"
    manifests.mkdir()
    text = (ROOT / "manifests" / "sp500_demo.yaml").read_text().replace("name: sp500_demo", f"name: {NAME}")
    text = text.replace("start: 1991-01-02", f"start: {START}").replace("start: 2019-01-02", f"start: {START}")
    (manifests / f"{NAME}.yaml").write_text(text)
    reports = _free_port()  # the tearsheet server's port, known to the report's link as to tvquant ui
    mp = pytest.MonkeyPatch()
    mp.setenv("TVQUANT_REPORTS_URL", f"http://127.0.0.1:{reports}")
    mp.setenv("DAGSTER_HOME", str(home))
    mp.setenv("TVQUANT_MANIFESTS", str(manifests))
    try:
        materialize_range(manifests / f"{NAME}.yaml", START, END, lake_root=str(lake))
        materialize_outputs(manifests / f"{NAME}.yaml", END, lake_root=str(lake), views=False)
        first = _parquet_bytes(lake)
        materialize_range(manifests / f"{NAME}.yaml", START, END, lake_root=str(lake))
        second = _parquet_bytes(lake)
    finally:
        mp.undo()
    return {"tmp": tmp, "manifests": manifests, "lake": lake, "home": home, "first": first, "second": second,
            "reports": reports}


def test_rerunning_an_unchanged_range_leaves_every_parquet_file_byte_identical(scratch):
    first, second = scratch["first"], scratch["second"]
    stages = {k.split("/")[1] for k in first}
    assert len(stages) == len(ASSETS) and len(first) == len(ASSETS) * len(MATERIALIZED), sorted(stages)  # all
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def _dismiss_dialogs(page) -> None:
    """Close what Dagster may pop over the page (its newsletter dialog appears late, once)."""
    for _ in range(3):
        skip = page.get_by_role("button", name="Skip")
        if skip.count():
            skip.first.click()
        backdrop = page.locator(".bp5-overlay-backdrop")
        if not backdrop.count():
            return
        page.keyboard.press("Escape")
        backdrop.first.wait_for(state="detached", timeout=10_000)


def _click(page, locator) -> None:
    """Click ``locator``; a dialog Dagster pops over the page meanwhile (it intercepts the click) is closed
    and the click tried again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        try:
            locator.click(timeout=15_000)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            _dismiss_dialogs(page)


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        out = json.loads(resp.read())
    assert "errors" not in out, out
    return out["data"]


def _wait_for_location(port: int, proc, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "tvquant ui exited"
        try:
            data = _graphql(port, "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus "
                                  "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
            entries = data["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [e["locationOrLoadError"] for e in entries
                          if e["locationOrLoadError"]["__typename"] == "PythonError"]
                assert not errors, errors
                return
        except OSError:
            pass
        time.sleep(2)
    raise AssertionError("tvquant ui did not load its code location in time")


CHECK_STATUSES = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  partitionKeys assetChecksOrError { ... on AssetChecks { checks { name partitionStatuses {
  ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } } } } } } } } }"""


def _check_statuses(port: int) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The partition keys of prices and, per check, each partition's status as the UI reads it."""
    node = _graphql(port, CHECK_STATUSES, {"path": PRICES})["assetNodeOrError"]
    keys = node["partitionKeys"]
    out = {}
    for c in node["assetChecksOrError"]["checks"]:
        by_key = {}
        for r in c["partitionStatuses"]["ranges"]:
            for k in keys[keys.index(r["startKey"]):keys.index(r["endKey"]) + 1]:
                by_key[k] = r["status"]
        out[c["name"]] = by_key
    return keys, out


def _wait_for_run(port: int, run_id: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _graphql(port, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                          {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(2)
    raise AssertionError(f"run {run_id} did not finish in time")


def _newest_run(port: int) -> tuple[str, list[str]]:
    data = _graphql(port, "{ runsOrError(limit: 1) { ... on Runs { results { runId "
                          "assetCheckSelection { name } } } } }")
    run = data["runsOrError"]["results"][0]
    return run["runId"], sorted(c["name"] for c in run["assetCheckSelection"] or [])


def _plant_nan_close(lake: Path, date: str, symbol: str) -> None:
    """Edit a price file behind the lake's back, keeping its stored hash label (what a disk fault or a
    stray script would do)."""
    path = lake / NAME / "prices" / f"{date}.parquet"
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.loc[frame["symbol"] == symbol, "close"] = float("nan")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata),
                   path)


def test_the_ui_shows_partitions_checks_and_the_tearsheet(scratch):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian chromium is not installed: apt-get install -y chromium (.ci/run does it)"
    shots = Path(os.environ.get("TVQUANT_UI_SHOTS") or scratch["tmp"] / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {shots}")
    port, reports = _free_port(), scratch["reports"]
    env = {**os.environ, "DAGSTER_HOME": str(scratch["home"]), "TVQUANT_MANIFESTS": str(scratch["manifests"])}
    log = (scratch["tmp"] / "ui.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "tvquant_assets.cli", "ui", "--port", str(port),
                             "--reports-port", str(reports), "--lake", str(scratch["lake"])],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_location(port, proc)
        keys, statuses = _check_statuses(port)
        assert keys == MATERIALIZED  # partitions end with the data, not today
        assert set(statuses) == {"price_values", "unique_bars", "complete_bars", "plausible_returns",
                                 "fresh_prices"}
        for name, by_key in statuses.items():
            assert by_key == dict.fromkeys(MATERIALIZED, "SUCCEEDED"), name

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                base = f"http://127.0.0.1:{port}"

                def visit(url: str, expect: str, shot: str):
                    page.goto(base + url)
                    page.get_by_text(expect, exact=False).first.wait_for(timeout=60_000)
                    skip = page.get_by_role("button", name="Skip")  # Dagster's newsletter dialog, once
                    if skip.count():
                        skip.first.click()
                    page.screenshot(path=str(shots / f"{shot}.png"), full_page=True)

                # 1. partitions end at the data's last date: 5 partitions, all materialized
                visit(f"/assets/{NAME}/prices?view=partitions", "Materialized (5)", "1_partitions")
                body = page.inner_text("body")
                assert "Missing (0)" in body and END in body and "2022-12-29" not in body
                # 2. the checks tab: every check succeeded, the latest evaluation passed
                visit(f"/assets/{NAME}/prices?view=checks", "Execute all", "2_checks")
                page.get_by_text("Passed", exact=True).first.wait_for(timeout=30_000)
                assert page.get_by_text("Succeeded", exact=True).count() == 5
                assert "Skipped" not in page.inner_text("body")
                # 3. "Execute all" re-checks what is in the lake: a NaN planted in one price file fails
                #    price_values on that partition only
                _plant_nan_close(scratch["lake"], "2022-12-27", "MSFT")
                before, _ = _newest_run(port)
                _dismiss_dialogs(page)
                _click(page, page.get_by_role("button", name="Execute all"))
                deadline = time.monotonic() + 60
                while (run := _newest_run(port))[0] == before and time.monotonic() < deadline:
                    time.sleep(1)
                run_id, checks = run
                assert run_id != before and checks == sorted(statuses)
                assert _wait_for_run(port, run_id) == "FAILURE"  # price_values is a blocking check
                visit(f"/runs/{run_id}", "price_values", "3_execute_all_run")
                # 4. the checks of one partition, by clicks: Jobs -> <manifest>_checks -> Launchpad, pick the
                #    partition, Launch Run (Dagster 1.13 disables a partitioned check's own Execute button)
                before = run_id
                _dismiss_dialogs(page)
                _click(page, page.locator('a[href="/jobs"]').first)  # the left navigation's "Jobs"
                _click(page, page.locator(f'a[href$="/jobs/{NAME}_checks"]').first)
                _dismiss_dialogs(page)
                _click(page, page.get_by_role("tab", name="Launchpad"))
                picker = page.get_by_placeholder("Partition")
                picker.wait_for(timeout=60_000)
                _dismiss_dialogs(page)
                _click(page, picker)
                picker.fill("2022-12-27")
                page.get_by_role("menuitem", name="2022-12-27", exact=True).click()
                page.get_by_text("No errors").first.wait_for(timeout=30_000)
                page.screenshot(path=str(shots / "4_checks_job_launchpad.png"), full_page=True)
                _click(page, page.get_by_role("button", name="Launch Run"))
                deadline = time.monotonic() + 60
                while (one := _newest_run(port)[0]) == before and time.monotonic() < deadline:
                    time.sleep(1)
                assert one != before
                assert _wait_for_run(port, one) == "FAILURE"  # a blocking check failed on that partition
                page.get_by_text("Blocking check(s) failed: price_values on 2022-12-27").first.wait_for(timeout=60_000)
                page.screenshot(path=str(shots / "4_checks_job_run.png"), full_page=True)
                for name in statuses:  # this run checked 2022-12-27 only, and only price_values failed there
                    runs = _graphql(port, EVALUATIONS, {"path": PRICES, "name": name})["assetCheckExecutions"]
                    mine = [(r["partition"], r["status"]) for r in runs if r["runId"] == one]
                    assert mine == [("2022-12-27", "FAILED" if name == "price_values" else "SUCCEEDED")], name
                _, after = _check_statuses(port)
                assert after["price_values"]["2022-12-27"] == "FAILED"
                assert {k: v for k, v in after["price_values"].items() if k != "2022-12-27"} == \
                    dict.fromkeys([k for k in MATERIALIZED if k != "2022-12-27"], "SUCCEEDED")
                assert after["unique_bars"] == dict.fromkeys(MATERIALIZED, "SUCCEEDED")
                visit(f"/assets/{NAME}/prices?view=checks", "Execute all", "4_checks_after_one_partition")
                # 5. the group graph opens whole: every asset's node inside the window
                visit(f"/locations/tvquant/asset-groups/{NAME}", "lake_views", "4_group_graph")
                page.wait_for_timeout(2_000)  # the layout's zoom to fit settles
                for asset in [*map(str, ASSETS), "report", "lake_views"]:
                    box = page.get_by_text(asset, exact=True).first.bounding_box()
                    assert box and box["y"] >= 0 and box["x"] + box["width"] <= 1400 \
                        and box["y"] + box["height"] <= 900, (asset, box)
                page.screenshot(path=str(shots / "4_group_graph.png"))
                # 6. the tearsheet link opens the report (served by tvquant ui on loopback)
                visit(f"/assets/{NAME}/report", "tearsheet_url", "5_report_asset")
                link = page.locator(f'a[href="http://127.0.0.1:{reports}/{NAME}/report/{END}.html"]').first
                with page.context.expect_page() as opened:
                    link.click()
                report = opened.value
                report.wait_for_selector("body[data-ready='1']", timeout=30_000)
                assert NAME in report.title() or NAME in report.inner_text("body")
                report.screenshot(path=str(shots / "6_tearsheet.png"), full_page=False)
            finally:
                browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        log.close()
    for shot in ("1_partitions", "2_checks", "3_execute_all_run", "4_checks_job_launchpad", "4_checks_job_run",
                 "4_checks_after_one_partition", "4_group_graph", "5_report_asset", "6_tearsheet"):
        assert (shots / f"{shot}.png").stat().st_size > 10_000, shot


EVALUATIONS = """query($path: [String!]!, $name: String!) { assetCheckExecutions(assetKey: {path: $path},
  checkName: $name, limit: 20) { runId status partition } }"""
