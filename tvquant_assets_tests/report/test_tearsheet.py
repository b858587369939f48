"""The tearsheet: right numbers, point in time, defensive about stages it does not know, and rendered
for real in headless Chromium (every chart drawn, no console errors, no network, a screenshot saved)."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.errors import LakeError
from tvquant_assets.lake import Lake
from tvquant_assets.report import build_report
from tvquant_assets.report.data import collect, drawdowns, rolling_sharpe
from tvquant_assets.stages.context import RunContext

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
GENERATED = re.compile(r"generated \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")
BENCH = "S&P 500 (benchmark)"  # the demo's benchmark line


def chart_data(page_html: str, chart_id: str) -> dict:
    """The JSON blob the page script reads for one line chart."""
    fig = page_html.split(f'data-chart="{chart_id}"', 1)[1]
    blob = fig.split('<script type="application/json" class="chart-data">', 1)[1].split("</script>", 1)[0]
    return json.loads(blob)


@pytest.fixture(scope="module")
def lake_copy(small_lake, tmp_path_factory):
    """A private copy of the small lake this module may modify."""
    dst = tmp_path_factory.mktemp("report_lake") / "lake"
    shutil.copytree(small_lake["lake_root"], dst)
    return {**small_lake, "lake_root": str(dst)}


@pytest.fixture(scope="module")
def built(lake_copy):
    result = build_report(lake_copy["manifest"], lake_root=lake_copy["lake_root"])
    return result, Path(result.path).read_text(encoding="utf-8")


def test_report_is_written_beside_the_stages_for_the_latest_date(built, lake_copy):
    result, page = built
    m = lake_copy["manifest"]
    assert result.date == lake_copy["end"]
    assert result.path == f"{lake_copy['lake_root']}/{m.name}/report/2020-03-31.html"
    assert result.missing == ()
    assert result.leader is not None and result.featured == result.leader  # no adaptive engine yet
    for section in result.sections:
        if section != "other":
            assert f'id="{section}"' in page, section


def test_page_needs_no_network(built):
    _, page = built
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(http" not in page
    assert "default-src 'none'" in page  # the CSP blocks anything that slipped through


def test_curves_match_the_backtest_partitions(built, lake_copy):
    _, page = built
    m = lake_copy["manifest"]
    lake = Lake.open(lake_copy["lake_root"])
    equity = chart_data(page, "equity")
    dates = manifest_dates(m, lake_copy["start"], lake_copy["end"])
    assert equity["x"] == [d.strftime("%Y-%m-%d") for d in dates]
    for k, d in enumerate(dates[::9]):
        board = lake.read(m.name, "backtest", d).set_index("candidate")
        for s in equity["series"]:
            column, name = ("bench_equity", board.index[0]) if s["name"] == BENCH else ("equity", s["name"])
            assert s["y"][k * 9] == pytest.approx(board.loc[name, column], rel=1e-5)
    # drawdown and rolling Sharpe against direct computations on the same returns
    eq = pd.DataFrame({s["name"]: s["y"] for s in equity["series"]}, index=pd.DatetimeIndex(equity["x"]))
    dd = chart_data(page, "drawdown")
    for s in dd["series"]:
        path = eq[s["name"]].to_numpy()
        expected = path / np.maximum(np.maximum.accumulate(path), 1.0) - 1.0
        np.testing.assert_allclose(np.array(s["y"], dtype=float), expected, atol=1e-5)
    returns = pd.DataFrame({c: [lake.read(m.name, "backtest", d).set_index("candidate").loc[c, "day_return"]
                                for d in dates] for c in eq.columns if c != BENCH}, index=pd.DatetimeIndex(dates))
    rs = rolling_sharpe(returns, 21, 252)
    last = returns.iloc[-21:]
    np.testing.assert_allclose(rs.iloc[-1], last.mean() / last.std(ddof=1) * np.sqrt(252), rtol=1e-12)
    assert rs.iloc[:20].isna().all().all()
    np.testing.assert_allclose(drawdowns(pd.DataFrame({"a": [1.1, 0.99, 1.2, 0.6]}))["a"],
                               [0.0, 0.99 / 1.1 - 1, 0.0, -0.5])
    np.testing.assert_allclose(drawdowns(pd.DataFrame({"a": [0.9, 0.95]}))["a"], [-0.1, -0.05])


def test_benchmark_line_and_relative_chart(built, lake_copy):
    """The demo's S&P 500 index: a dashed line on the equity and drawdown charts, the relative chart is
    equity / benchmark equity - 1, and the leaderboard and summary carry the relative metrics."""
    _, page = built
    equity = chart_data(page, "equity")
    bench = next(s for s in equity["series"] if s["name"] == BENCH)
    assert BENCH in [s["name"] for s in chart_data(page, "drawdown")["series"]]
    assert page.count('stroke-dasharray="6,3"') == 2
    rel = chart_data(page, "relative")
    assert rel["x"] == equity["x"] and BENCH not in [s["name"] for s in rel["series"]]
    for s in rel["series"]:
        eq = next(e for e in equity["series"] if e["name"] == s["name"])
        np.testing.assert_allclose(s["y"], np.array(eq["y"]) / np.array(bench["y"]) - 1.0, atol=1e-5)
    lb = page.split('id="leaderboard"', 1)[1].split("</section>", 1)[0]
    for col in ("excess_return", "alpha", "beta", "tracking_error", "information_ratio", "up_capture",
                "down_capture"):
        assert f">{col}</th>" in lb, col
    assert "bench_equity" not in lb and "information ratio" in page.split('id="summary"', 1)[1].split("</section>")[0]


def test_weights_are_the_decisions_of_rebalance_dates(lake_copy):
    m = lake_copy["manifest"]
    data = collect(RunContext(m, Lake.open(lake_copy["lake_root"])), lake_copy["end"])
    lake = Lake.open(lake_copy["lake_root"])
    for cand, w in data.decisions.items():
        assert list(w.index) == [pd.Timestamp("2020-02-03"), pd.Timestamp("2020-03-02")]  # monthly
        t = lake.read(m.name, "tournament", "2020-03-02")
        t = t[(t["candidate"] == cand) & (t["symbol"] != "")].set_index("symbol")["weight"]
        np.testing.assert_allclose(w.loc[pd.Timestamp("2020-03-02"), t.index], t.to_numpy())
    assert set(data.regimes["label"]) >= {"CRISIS"}  # March 2020 is in the window
    assert data.linkage is not None and len(data.clustered) == int((data.selection["cluster"] > 0).sum())


def test_held_weights_drift_with_prices_between_decisions(built, lake_copy):
    """The featured book shown "held after drift": each name's weight moves with its own price relative to
    the book between decisions, and on D it is the book the drift stage monitors."""
    m = lake_copy["manifest"]
    lake = Lake.open(lake_copy["lake_root"])
    data = collect(RunContext(m, lake), lake_copy["end"])
    held = data.held
    assert 'data-chart="weights:held"' in built[1] and not held.empty
    assert held.index[-1] == lake_copy["end"] and held.index.is_monotonic_increasing
    decided = data.decisions[data.featured].index
    close = pd.concat([lake.read(m.name, "prices", d) for d in held.index]).pivot_table(
        index="date", columns="symbol", values="close")
    pairs = 0
    for a, b in zip(held.index[:-1], held.index[1:], strict=True):
        if ((decided > a) & (decided <= b)).any():
            continue  # a decision between the two rows: the book was traded
        names = held.columns[(held.loc[a] > 0) & (held.loc[b] > 0)]
        growth = (held.loc[b, names] / held.loc[a, names]) / (close.loc[b, names] / close.loc[a, names])
        np.testing.assert_allclose(growth, growth.iloc[0], rtol=1e-9)  # one factor: the book's own growth
        pairs += 1
    assert pairs >= 2
    drift = lake.read(m.name, "drift", lake_copy["end"])
    assert set(drift["candidate"]) == {data.featured}  # the drift stage monitors the leader too
    w = drift.set_index("symbol")["weight"]
    np.testing.assert_allclose(held.loc[lake_copy["end"], w.index].to_numpy(), w.to_numpy(), atol=1e-12)


def test_dendrogram_is_the_tree_selection_cut(lake_copy):
    """Cutting the report's tree like selection does gives selection's clusters of D (same windows)."""
    from tvquant_assets.core.linkage import cut

    m = lake_copy["manifest"]
    assert len(m.selection.correlation_windows) > 1  # the averaged-distance case
    for d in ("2020-03-10", lake_copy["end"]):
        data = collect(RunContext(m, Lake.open(lake_copy["lake_root"])), d)
        ours = dict(zip(data.clustered, cut(data.linkage, m.selection.linkage), strict=True))
        sel = data.selection.set_index("symbol")["cluster"]

        def groups(labels):
            return sorted(sorted(s for s in labels if labels[s] == c) for c in set(labels.values()))

        assert groups(ours) == groups({s: int(sel[s]) for s in data.clustered})
        np.testing.assert_allclose(np.diag(data.correlation), 1.0)


def test_report_for_a_past_date_ignores_everything_after_it(lake_copy, tmp_path):
    m = lake_copy["manifest"]
    d = pd.Timestamp("2020-03-10")
    first = build_report(m, d, lake_root=lake_copy["lake_root"], out=tmp_path / "a.html")
    page_a = Path(first.path).read_text()
    assert chart_data(page_a, "equity")["x"][-1] == "2020-03-10"
    # scramble every stage partition after D (and the prices) in a second lake: the report must not move
    other = tmp_path / "lake"
    shutil.copytree(lake_copy["lake_root"], other)
    lake = Lake(str(other))
    rng = np.random.default_rng(3)
    for stage in ("backtest", "tournament", "regime", "selection", "prices"):
        for day in [x for x in lake.partitions(m.name, stage) if x > d]:
            f = lake.read(m.name, stage, day)
            for c in f.columns:
                if f[c].dtype.kind == "f":
                    f[c] = f[c] * rng.uniform(0.5, 2.0, len(f))
            lake.write(m.name, stage, day, f)
    second = build_report(m, d, lake_root=str(other), out=tmp_path / "b.html")
    page_b = Path(second.path).read_text()
    assert GENERATED.sub("", page_a) == GENERATED.sub("", page_b)


def test_optional_columns_and_unknown_stages_are_shown(lake_copy, tmp_path):
    m = lake_copy["manifest"]
    root = tmp_path / "lake"
    shutil.copytree(lake_copy["lake_root"], root)
    lake = Lake(str(root))
    d = lake_copy["end"]
    board = lake.read(m.name, "backtest", d)
    board["dsr"] = np.linspace(0.91, 0.12, len(board))
    board["pbo"] = 0.375
    board["simulator"] = "vectorized"
    other_sim = board.assign(simulator="vectorbt", equity=board["equity"] * 10)  # must not reach the curves
    lake.write(m.name, "backtest", d, pd.concat([board, other_sim], ignore_index=True))
    orders = pd.DataFrame({"symbol": ["AAPL", "MSFT"], "side": ["buy", "sell"], "quantity": [10.0, 4.0],
                           "notional": [1500.0, -900.0], "reason": ["drift 6.1% > 5%", "drift 5.4% > 5%"]})
    lake.write(m.name, "drift", d, orders)  # a stage of the graph (#6) holding the order list
    lake.write(m.name, "regime_regret", d, pd.DataFrame({"threshold": [1.25], "regret": [0.013]}))
    tournament = lake.read(m.name, "tournament", d)
    tournament["adaptive_pick"] = tournament["candidate"] == "skfolio/hrp"
    lake.write(m.name, "tournament", d, tournament)

    result = build_report(m, d, lake_root=str(root))
    page = Path(result.path).read_text()
    lb = page.split('id="leaderboard"', 1)[1].split("</section>", 1)[0]
    assert "dsr" in lb and "pbo" in lb and "37.50%" in lb and "vectorbt" in lb
    od = page.split('id="orders"', 1)[1].split("</section>", 1)[0]
    assert "MSFT" in od and "drift 5.4% &gt; 5%" in od
    assert 'id="other"' in page and "regime_regret" in page
    assert result.featured == "skfolio/hrp"
    last = {s["name"]: s["y"][-1] for s in chart_data(page, "equity")["series"] if s["name"] != BENCH}
    assert last == pytest.approx(board.set_index("candidate")["equity"].to_dict(), rel=1e-5)
    assert "simulator vectorized only" in page


def test_missing_backtest_is_one_clear_line(lake_copy, tmp_path):
    empty = Lake(str(tmp_path / "nothing"))
    with pytest.raises(LakeError, match=r"^sp500_it: no backtest partitions in the lake .*tvquant backfill"):
        build_report(lake_copy["manifest"], lake_root=str(empty.root))


def test_tearsheet_renders_in_headless_chromium(built, tmp_path):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian chromium is not installed: apt-get install -y chromium (.ci/run does it)"
    result, page_html = built
    expected = {"equity", "quadrant", "drawdown", "relative", "rolling_sharpe", "dendrogram", "correlation",
                "regime_metrics"} | {f"weights:{c}" for c in re.findall(r'data-chart="weights:([^"]+)"', page_html)}
    assert len(expected) >= 7 + 4
    shot = tmp_path / "tearsheet.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            problems, requests = [], []
            page.on("console", lambda msg: problems.append(msg.text) if msg.type in ("error", "warning") else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("request", lambda req: requests.append(req.url))
            page.goto(Path(result.path).as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=15_000)
            drawn = page.evaluate("""() => Array.from(document.querySelectorAll('figure.chart')).map(f => {
                const svg = f.querySelector('svg');
                const marks = svg ? svg.querySelectorAll('path.series, rect, polyline, polygon, circle') : [];
                const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
                let area = 0;
                marks.forEach(m => { const b = m.getBBox(); area += b.width * b.height + b.width + b.height; });
                return {id: f.dataset.chart, empty: f.classList.contains('empty'), marks: marks.length,
                        area: area, width: box.width, height: box.height};
            })""")
            by_id = {c["id"]: c for c in drawn}
            assert expected <= set(by_id), expected - set(by_id)
            for c in drawn:
                assert not c["empty"], c
                assert c["marks"] > 0 and c["area"] > 0 and c["width"] > 100 and c["height"] > 30, c
            # hovering the equity chart shows the date and a value per candidate
            svg = page.locator('figure[data-chart="equity"] svg')
            box = svg.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
            tip = page.locator('figure[data-chart="equity"] .tooltip')
            assert tip.is_visible() and re.search(r"2020-0[23]-\d\d", tip.inner_text())
            # clicking a legend entry hides that series
            page.locator('figure[data-chart="equity"] ul.legend li[data-series="0"]').click()
            assert page.locator('figure[data-chart="equity"] path.series[data-series="0"]').is_hidden()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert all(u.startswith(("file://", "data:", "about:")) for u in requests), requests
    assert shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")
