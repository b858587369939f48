"""Screener: presets (layering, direction-correct filters), paging, retries, errors, universe merging."""

import random

import pytest

from tvquant_assets.errors import ManifestError, SourceError
from tvquant_assets.manifest import parse_manifest
from tvquant_assets.sources.tradingview import universe
from tvquant_assets.sources.tradingview.presets import (
    BUILTIN_PRESETS,
    build_payload,
    check_presets,
    resolve_preset,
    scan_filters,
)
from tvquant_assets.sources.tradingview.screener import RetryPolicy, ScreenerClient


def client(fake, attempts=4, timeout=5.0, page_size=1000, sleeps=None):
    policy = RetryPolicy(max_attempts=attempts, backoff_s=0.01, sleep=(sleeps.append if sleeps is not None
                                                                        else lambda s: None),
                         rng=random.Random(1))
    c = ScreenerClient(fake.scanner_url, policy, timeout_s=timeout)
    c.page_size = page_size
    return c


def test_presets_deep_merge_and_drop_rules_by_name():
    rating = resolve_preset("binance_rating")
    # inherited from binance_spot and crypto_base
    assert rating["market"] == "crypto" and rating["filter"]["liquid"]["right"] == 1_000_000
    assert rating["filter"]["priced"] == {"left": "close", "operation": "greater", "right": 0}
    # the spot trend rule is dropped (null), the rating rule added, per direction
    assert set(rating["long"]["filter"]) == {"rating"} and set(rating["short"]["filter"]) == {"rating"}
    custom = resolve_preset("mine", {"mine": {"extends": "binance_spot", "filter": {"liquid": {"right": 5e6}},
                                              "columns": ["SMA50"]}})
    assert custom["filter"]["liquid"] == {"left": "Value.Traded", "operation": "egreater", "right": 5e6}
    assert custom["filter"]["exchange"]["right"] == "BINANCE" and custom["columns"] == ["SMA50"]
    assert BUILTIN_PRESETS["binance_spot"]["filter"]["liquid"]["right"] == 1_000_000  # built-ins untouched


def test_short_scan_never_inherits_a_long_trend_rule():
    for name in BUILTIN_PRESETS:
        p = resolve_preset(name)
        long_rules, short_rules = scan_filters(p, "long"), scan_filters(p, "short")
        for rule in p["long"]["filter"].values():
            assert rule not in short_rules, (name, rule)
        for rule in p["short"]["filter"].values():
            assert rule not in long_rules, (name, rule)
    short = build_payload(resolve_preset("binance_rating"), "short", 0, 1000)
    rating = [f for f in short["filter"] if f["left"] == "Recommend.All"]
    assert rating == [{"left": "Recommend.All", "operation": "eless", "right": -0.5}]
    assert "filter2" not in short and short["range"] == [0, 1000] and short["markets"] == ["crypto"]
    # a directional rule in the shared filter is refused, naming the preset, the rule and the fix
    with pytest.raises(ValueError, match=r"preset 'bad': filter.trend uses directional field 'Recommend.MA'; "
                                         r"move it under long.filter or short.filter"):
        check_presets({"bad": {"extends": "crypto_base",
                               "filter": {"trend": {"left": "Recommend.MA", "operation": "greater", "right": 0}}}},
                      ["bad"])


def test_manifest_preset_errors_are_one_line(tmp_path):
    base = "name: m\nstart: 2024-01-01\nsource:\n  kind: tradingview\n  scans: [{preset: %s}]\n"
    with pytest.raises(ManifestError, match=r"source.*unknown preset \(known: .*binance_spot"):
        parse_manifest(base % "nosuch")
    with pytest.raises(ManifestError, match="extends cycle a -> b -> a"):
        parse_manifest(base % "a" + "  presets: {a: {extends: b}, b: {extends: a}}\n")
    with pytest.raises(ManifestError, match="unknown key.*colour"):
        parse_manifest(base % "a" + "  presets: {a: {extends: crypto_base, colour: red}}\n")


def test_scan_pages_by_page_size_and_returns_all_rows(fake_tv):
    c = client(fake_tv, page_size=3)
    preset = resolve_preset("crypto_base")
    frame = c.scan(preset, "long")
    assert len(frame) == 16 and frame["ticker"].is_unique
    ranges = [r["range"] for r in fake_tv.scan_requests]
    assert ranges == [[0, 3], [3, 6], [6, 9], [9, 12], [12, 15], [15, 18]]
    vt = frame["Value.Traded"].tolist()
    assert vt == sorted(vt, reverse=True)  # server-side sort survives paging


def test_429_storm_then_success_backs_off_exponentially_with_jitter(fake_tv):
    sleeps = []
    fake_tv.screener_faults[:] = ["429", "429", "503"]
    frame = client(fake_tv, attempts=4, sleeps=sleeps).scan(resolve_preset("binance_spot"), "long")
    assert sorted(frame["ticker"]) == ["BINANCE:BTCUSDC", "BINANCE:BTCUSDT", "BINANCE:ETHUSDT",
                                       "BINANCE:LINKFDUSD", "BINANCE:SOLUSDT"]
    assert len(sleeps) == 3
    for k, s in enumerate(sleeps):  # base 0.01 * 2**k, jitter in [0.5, 1.5)
        assert 0.5 * 0.01 * 2**k <= s < 1.5 * 0.01 * 2**k


def test_hard_attempt_cap_gives_one_clear_error(fake_tv):
    fake_tv.screener_faults[:] = ["429"] * 10
    with pytest.raises(SourceError, match=r"preset 'binance_spot' \(long\): gave up after 3 attempts, "
                                          r"last error: .*HTTP 429; try later or raise source.max_attempts"):
        client(fake_tv, attempts=3).scan(resolve_preset("binance_spot"), "long")


def test_timeout_malformed_json_and_empty_page_are_retried(fake_tv):
    fake_tv.screener_faults[:] = ["timeout", "malformed", "empty"]
    frame = client(fake_tv, attempts=4, timeout=0.3).scan(resolve_preset("binance_perp"), "long")
    assert sorted(frame["ticker"]) == ["BINANCE:BTCUSDT.P", "BINANCE:ETHUSDT.P", "BINANCE:SOLUSDT.P"]
    fake_tv.screener_faults[:] = ["malformed"] * 3
    with pytest.raises(SourceError, match="malformed JSON"):
        client(fake_tv, attempts=3).scan(resolve_preset("binance_perp"), "long")


def test_unknown_field_and_unknown_symbol_are_clear_errors(fake_tv):
    c = client(fake_tv)
    with pytest.raises(SourceError, match=r"HTTP 400: Unknown field \"NoSuchField\"; fix the preset"):
        c.scan(resolve_preset("x", {"x": {"extends": "crypto_base", "columns": ["NoSuchField"]}}), "long")
    with pytest.raises(SourceError, match="unknown symbols BINANCE:NOPEUSDT; remove them"):
        c.snapshot("crypto", ["BINANCE:BTCUSDT", "BINANCE:NOPEUSDT"], ["close"])
    assert c.snapshot("crypto", ["BINANCE:ETHUSDT"], ["close"])["close"].tolist() == [3400.0]


def test_ratings_short_side_really_returns_symbols(fake_tv):
    c = client(fake_tv)
    short = c.scan(resolve_preset("binance_rating"), "short")
    long = c.scan(resolve_preset("binance_rating"), "long")
    assert sorted(short["ticker"]) == ["BINANCE:ADAUSDT", "BINANCE:DOGEUSDT"]
    assert (short["Recommend.All"] <= -0.5).all()
    assert sorted(long["ticker"]) == ["BINANCE:BTCUSDC", "BINANCE:BTCUSDT", "BINANCE:SOLUSDT"]


def test_pool_merges_by_identity_and_direction_one_venue_per_base_with_alternatives(fake_tv):
    c = client(fake_tv)
    spot, rating = resolve_preset("binance_spot"), resolve_preset("binance_rating")
    scans = [("binance_spot", "long", c.scan(spot, "long")), ("binance_rating", "long", c.scan(rating, "long")),
             ("binance_rating", "short", c.scan(rating, "short"))]
    pool = universe.merge_pool(scans)
    btc = pool[pool["ticker"] == "BINANCE:BTCUSDT"]
    assert btc[["direction", "scans"]].values.tolist() == [["long", "binance_spot,binance_rating"]]
    assert pool.duplicated(["ticker", "direction"]).sum() == 0
    uni = universe.one_venue_per_base(pool, "derived", ["USDT", "USDC", "FDUSD"])
    # BTC trades as USDT and USDC (base derived from the name: the scanner has no base_currency field):
    # USDT wins although USDC has more value traded
    assert "BINANCE:BTCUSDC" not in set(uni["ticker"]) and "BINANCE:BTCUSDT" in set(uni["ticker"])
    assert uni.groupby(["base", "direction"]).size().max() == 1
    alt = universe.alternatives(uni, c.scan(resolve_preset("binance_perp"), "neutral"), "derived", ["USDT"])
    assert dict(zip(alt["ticker"], alt["alt_ticker"], strict=True)) == {
        "BINANCE:BTCUSDT": "BINANCE:BTCUSDT.P", "BINANCE:ETHUSDT": "BINANCE:ETHUSDT.P",
        "BINANCE:SOLUSDT": "BINANCE:SOLUSDT.P", "BINANCE:DOGEUSDT": "BINANCE:DOGEUSDT.P"}
    # no LINK/ADA perp and XRP's perp trades < $50M: no alternative recorded for them
    assert set(alt["alt_type"]) == {"swap"} and set(alt["alt_exchange"]) == {"BINANCE"}


def test_every_shipped_live_manifest_builds_its_payloads_offline():
    from pathlib import Path

    from tvquant_assets.manifest import load_manifest
    from tvquant_assets.sources.tradingview.presets import MARKETS

    root = Path(__file__).resolve().parents[2] / "manifests"
    seen = {}
    for path in sorted(root.glob("*.yaml")):
        m = load_manifest(path)
        if m.source.kind != "tradingview":
            continue
        for scan in m.source.scans:
            preset = resolve_preset(scan.preset, m.source.presets)
            payload = build_payload(preset, scan.direction, 0, 1000)
            assert payload["markets"] == [preset["market"]] and preset["market"] in MARKETS
            seen[m.name] = (preset["market"], {f["left"]: f for f in payload["filter"]}, payload)
    assert set(seen) == {"binance_spot", "binance_perp", "us_equities", "forex_majors", "futures",
                         "binance_ratings_long", "binance_ratings_short", "us_equities_selling_rips",
                         "forex_selling_rips", "crypto_selling_rips"}
    market, rules, _ = seen["forex_majors"]
    assert market == "forex" and len(rules["name"]["right"]) == 7
    market, rules, _ = seen["futures"]
    assert market == "futures" and rules["exchange"]["right"] == ["CME", "CME_MINI", "COMEX", "NYMEX"]
    market, rules, payload = seen["us_equities"]
    assert payload["symbols"] == {"symbolset": ["SYML:SP;SPX"]} and rules["ADX"]["right"] == 20
    assert rules["Value.Traded"]["right"] == 10_000_000
    assert seen["binance_perp"][1]["Value.Traded"]["right"] == 50_000_000
    assert seen["binance_ratings_short"][1]["Recommend.All"] == {"left": "Recommend.All", "operation": "eless",
                                                                 "right": -0.5}
    assert "Recommend.MA" not in seen["binance_ratings_short"][1]  # no inherited spot trend rule
