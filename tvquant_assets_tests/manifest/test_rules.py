"""Cross-field rules (manifest/rules.py): each broken combination is refused at validation with one line
naming its fields; every shipped manifest passes."""

from pathlib import Path

import pytest
import yaml

from tvquant_assets.errors import ManifestError
from tvquant_assets.manifest import load_manifest
from tvquant_assets.manifest.load import parse_manifest
from tvquant_assets.manifest.rules import problems

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "manifests" / "sp500_demo.yaml").read_text())
SYNTHETIC = {"name": "syn", "source": {"kind": "synthetic", "n_symbols": 12, "start": "2018-01-01",
                                        "end": "2020-12-31"}, "start": "2019-06-03"}


def _with(base: dict, **changes) -> dict:
    out = yaml.safe_load(yaml.safe_dump(base))
    for dotted, value in changes.items():
        node, *path = dotted.split("__")
        target = out
        for key in [node, *path][:-1]:
            target = target.setdefault(key, {})
        target[[node, *path][-1]] = value
    return out


def _refused(raw: dict) -> str:
    with pytest.raises(ManifestError) as exc:
        parse_manifest(yaml.safe_dump(raw), "m.yaml")
    return str(exc.value)


@pytest.mark.parametrize("changes, fields", [
    ({"regime_presets__CRISIS__max_weight": 0.15},
     ["regime_presets.CRISIS.max_weight 0.15 x selection.min_symbols 6"]),
    ({"tournament__constraints__max_weight": 0.05},
     ["tournament.constraints.max_weight 0.05 x selection.max_symbols 12"]),
    ({"regime_presets__CRISIS__max_symbols": 4},
     ["regime_presets.CRISIS.max_weight 0.2 x max_symbols 4 = 0.8 < 1"]),
    ({"tournament__constraints__cluster_cap": 0.15}, ["tournament.constraints.cluster_cap 0.15 x "
                                                      "selection.linkage.max_clusters 5"]),
    ({"tournament__candidates": [{"engine": "custom", "profile": "market_neutral"}]},
     ["tournament.candidates[0].profile market_neutral is long/short", "long_only is true"]),
    ({"backtest__simulators": ["vectorized", "vectorbt"], "backtest__drift_band": 0.02},
     ["backtest.simulators[1] vectorbt does not model backtest.drift_band 0.02"]),
    ({"backtest__simulators": ["nautilus"], "backtest__borrow_bps_per_year": 50.0},
     ["backtest.simulators[0] nautilus does not model backtest.borrow_bps_per_year 50"]),
    ({"selection__vetoes__min_liquidity": 1e6}, ["selection.vetoes.min_liquidity needs volume and source bundled "
                                                 "has close only"]),
    ({"backtest__execution": "next_open"}, ["backtest.execution next_open needs open prices"]),
    ({"estimation__lookback": 20000},
     ["estimation.lookback 20000 is longer than the history of source bundled (8607 weekdays"]),
    ({"regime__long_window": 20000}, ["regime.long_window 20000 is longer than the history of source bundled"]),
    ({"backtest__drift__instrument": "alternative"},
     ["backtest.drift.instrument alternative trades the catalog's implementation alternatives, but source "
      "bundled has none"]),
    ({"start": "1990-03-01", "backtest__start": "1990-06-01"},
     ["backtest.start 1990-06-01 leaves 108 bars of history in source bundled", "needs 273"]),
    ({"regime__weights": "auto", "start": "1991-06-03", "backtest__start": "1991-06-03"},
     ["backtest.start 1991-06-03 leaves", "regime.long_window + regret.learn_window + regret.horizon (learning) "
      "needs 777"]),
])
def test_a_broken_combination_is_one_line_naming_its_fields(changes, fields):
    message = _refused(_with(DEMO, **changes))
    lines = message.splitlines()
    assert len(lines) == len([f for f in fields if "long_only is true" not in f]) or len(lines) == 1, message
    for field in fields:
        assert field in message, message
    assert all(line.startswith("m.yaml: ") for line in lines)


def test_calendar_that_drops_the_weekend_bars_of_a_24_7_source_is_refused():
    raw = yaml.safe_load((ROOT / "manifests" / "binance_spot.yaml").read_text())
    raw["calendar"] = "weekdays"
    assert "calendar weekdays drops the weekend bars of source tradingview (exchange_calendar 24/7)" in _refused(raw)


def test_synthetic_history_bounds_the_windows():
    assert problems(parse_manifest(yaml.safe_dump(SYNTHETIC))) == []
    message = _refused(_with(SYNTHETIC, estimation__lookback=900))
    assert message == ("m.yaml: estimation.lookback 900 is longer than the history of source synthetic (784 weekdays, "
                       "2018-01-01..2020-12-31)")


def test_every_shipped_manifest_passes_the_rules():
    for path in sorted((ROOT / "manifests").glob("*.yaml")):
        assert problems(load_manifest(path)) == [], path.name


def test_every_scenario_manifest_passes_the_rules():
    """Scenario manifests are for users to copy (the long/short one holds market_neutral on book long_short,
    where long_only does not apply)."""
    for path in sorted((ROOT / "tvquant_assets_tests" / "scenarios").glob("*.yaml")):
        assert problems(load_manifest(path)) == [], path.name


def test_paper_account_on_the_alternative_instrument_is_refused():
    """The paper account fills on the symbol's own bars; orders naming the perpetual would be filled at spot."""
    raw = yaml.safe_load((ROOT / "manifests" / "binance_spot.yaml").read_text())
    name = parse_manifest(yaml.safe_dump(raw), "m.yaml").tournament.candidates[0].name
    raw = _with(raw, rebalance__rule="drift", backtest__drift__candidate=name,
                backtest__drift__instrument="alternative", paper__enabled=True)
    message = _refused(raw)
    assert "paper.enabled fills each order on its symbol's own bars" in message, message
    assert "backtest.drift.instrument alternative" in message
    raw["backtest"]["drift"]["instrument"] = "primary"
    assert parse_manifest(yaml.safe_dump(raw), "m.yaml").paper.enabled
