"""Cross-field rules: combinations every field of which is valid alone but that cannot run together.

Each rule returns one line naming the fields involved (``problems(manifest)``); ``load.parse_manifest``
refuses a manifest with any. What a rule knows about a source is static (``SOURCE_FACTS``: its fields, the
days it trades, the history it holds), so validating never builds a source or touches the network.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from tvquant_assets.manifest.schema import Manifest

LONG_SHORT_ONLY = ("market_neutral",)
"""Profiles that only exist long/short (their weights sum to zero)."""

REFERENCE_SIMULATOR_GAPS = {  # what each reference simulator does not model (core/simulators/_common.py)
    "vectorbt": ("drift_band", "borrow", "shorts_borrow"),
    "cvxportfolio": ("drift_band",),
    "nautilus": ("drift_band", "borrow", "shorts"),
}


@dataclass(frozen=True)
class SourceFacts:
    fields: tuple[str, ...]
    every_day: bool | None  # trades on weekends (None: unknown)
    first: dt.date | None  # first bar (None: unknown or live)
    last: dt.date | None


def source_facts(m: Manifest) -> SourceFacts | None:
    src = m.source
    if src.kind == "bundled":
        return SourceFacts(("close",), False, dt.date(1990, 1, 2), dt.date(2022, 12, 28))
    if src.kind == "synthetic":
        return SourceFacts(("open", "high", "low", "close", "volume"), False, src.start, src.end)
    if src.kind == "tradingview":
        return SourceFacts(("open", "high", "low", "close", "volume"), src.exchange_calendar == "24/7", None, None)
    return None  # a source these rules do not know yet: nothing is assumed


def _rows(first: dt.date, last: dt.date, every_day: bool | None) -> int:
    if every_day:
        return (last - first).days + 1
    return len(pd.bdate_range(first, last))


def _caps(m: Manifest) -> list[tuple[str, float, int, int]]:
    """(field, cap, names per cluster, book size) of the base constraints and of every preset's cap."""
    sel = m.selection
    out = [("tournament.constraints.max_weight", m.tournament.constraints.max_weight, sel.top_n_per_cluster,
            sel.max_symbols)]
    for label, p in m.regime_presets.items():
        key = getattr(label, "value", label)
        if p.max_weight is not None or p.max_symbols is not None or p.top_n_per_cluster is not None:
            cap = p.max_weight if p.max_weight is not None else m.tournament.constraints.max_weight
            field = f"regime_presets.{key}.max_weight" if p.max_weight is not None else \
                f"tournament.constraints.max_weight (in regime_presets.{key})"
            out.append((field, cap, p.top_n_per_cluster or sel.top_n_per_cluster, p.max_symbols or sel.max_symbols))
    return out


def infeasible_caps(m: Manifest) -> list[str]:
    """A long-only, fully invested book of n names needs n x max_weight >= 1."""
    if not m.tournament.constraints.long_only:
        return []
    sel, out = m.selection, []
    clusters = sel.linkage.max_clusters if sel.linkage.distance_threshold is None else None
    listed = len(m.universe.symbols) if m.universe.symbols else None
    for field, cap, per_cluster, book in _caps(m):
        sizes = [("selection.max_symbols" if book == sel.max_symbols else "max_symbols", book)]
        if clusters is not None:
            sizes.append((f"top_n_per_cluster {per_cluster} x selection.linkage.max_clusters", per_cluster * clusters))
        if listed is not None:
            sizes.append(("universe.symbols", listed))
        name, n = min(sizes, key=lambda x: x[1])
        if n * cap < 1 - 1e-12:
            out.append(f"{field} {cap:g} x {name} {n} = {n * cap:.3g} < 1: no fully invested long-only book of at "
                       f"most {n} names respects the cap; raise it to >= {1 / n:.4g} or allow more names")
        elif "min_symbols" in sel.model_fields_set and sel.min_symbols * cap < 1 - 1e-12:
            out.append(f"{field} {cap:g} x selection.min_symbols {sel.min_symbols} = {sel.min_symbols * cap:.3g} < 1: "
                       f"a date that selects only min_symbols names cannot respect the cap; raise min_symbols to "
                       f">= {int(-(-1 // cap))} or the cap to >= {1 / max(sel.min_symbols, 1):.4g}")
    return out


def infeasible_cluster_cap(m: Manifest) -> list[str]:
    c, link = m.tournament.constraints, m.selection.linkage
    if c.cluster_cap is None or link.distance_threshold is not None or not c.long_only:
        return []
    if c.cluster_cap * link.max_clusters < 1 - 1e-12:
        return [f"tournament.constraints.cluster_cap {c.cluster_cap:g} x selection.linkage.max_clusters "
                f"{link.max_clusters} = {c.cluster_cap * link.max_clusters:.3g} < 1: the clusters cannot hold a fully "
                f"invested book; raise cluster_cap to >= {1 / link.max_clusters:.4g} or max_clusters"]
    return []


def long_short_with_long_only(m: Manifest) -> list[str]:
    if m.book != "long" or not m.tournament.constraints.long_only:  # book long_short: long_only does not apply
        return []
    return [f"tournament.candidates[{i}].profile {c.profile.value} is long/short (weights sum to 0) but "
            f"tournament.constraints.long_only is true; set long_only: false or remove {c.name}"
            for i, c in enumerate(m.tournament.candidates) if c.profile.value in LONG_SHORT_ONLY]


def short_holders(m: Manifest) -> list[str]:
    """The candidates whose book holds shorts (``core/book_limits.py``: no optimizer imported)."""
    from tvquant_assets.core.book_limits import candidate_limits

    c = m.tournament.constraints
    return [cand.name for cand in m.tournament.candidates
            if candidate_limits(m.book, cand.engine, cand.profile.value, c).book != "long"]


def simulator_features(m: Manifest) -> list[str]:
    bt, out = m.backtest, []
    for i, sim in enumerate(bt.simulators):
        gaps = REFERENCE_SIMULATOR_GAPS.get(sim, ())
        if "drift_band" in gaps and bt.drift_band > 0:
            out.append(f"backtest.simulators[{i}] {sim} does not model backtest.drift_band {bt.drift_band:g} "
                       "(partial rebalancing); set drift_band: 0 or use vectorized")
        if "borrow" in gaps and bt.borrow_bps_per_year > 0:
            out.append(f"backtest.simulators[{i}] {sim} does not model backtest.borrow_bps_per_year "
                       f"{bt.borrow_bps_per_year:g}; set it to 0 or use vectorized or cvxportfolio")
        elif "borrow" in gaps and any(v > 0 for v in bt.borrow_bps_by_class.values()):
            out.append(f"backtest.simulators[{i}] {sim} does not model backtest.borrow_bps_by_class; remove it "
                       "or use vectorized or cvxportfolio")
        if "shorts" in gaps and not m.tournament.constraints.long_only:
            out.append(f"backtest.simulators[{i}] {sim} runs a cash account and cannot short, but "
                       "tournament.constraints.long_only is false; use vectorized or cvxportfolio")
        elif "shorts" in gaps and short_holders(m):
            out.append(f"backtest.simulators[{i}] {sim} runs a cash account and cannot short, but "
                       f"{', '.join(short_holders(m))} hold short positions (tournament.book {m.book}); use "
                       "vectorized, vectorbt or cvxportfolio")
    return out


def source_fields(m: Manifest) -> list[str]:
    facts = source_facts(m)
    if facts is None or "volume" in facts.fields:
        missing_volume = []
    else:
        missing_volume = [name for name, value in (
            ("selection.vetoes.min_liquidity", m.selection.vetoes.min_liquidity),
            ("universe.min_value_traded", m.universe.min_value_traded)) if value is not None]
        if m.selection.score_weights.get("liquidity"):
            missing_volume.append("selection.score_weights.liquidity")
    out = [f"{f} needs volume and source {m.source.kind} has {', '.join(facts.fields)} only; remove it"
           for f in missing_volume]
    if facts is not None and "open" not in facts.fields and m.backtest.execution == "next_open":
        out.append(f"backtest.execution next_open needs open prices and source {m.source.kind} has "
                   f"{', '.join(facts.fields)} only; use execution: close")
    return out


def calendar_fit(m: Manifest) -> list[str]:
    facts = source_facts(m)
    if facts is not None and facts.every_day and m.calendar == "weekdays":
        return [f"calendar weekdays drops the weekend bars of source {m.source.kind} "
                f"(exchange_calendar {getattr(m.source, 'exchange_calendar', '?')}); use calendar: daily"]
    return []


def windows(m: Manifest) -> dict[str, int]:
    """Every trailing window (rows) a manifest asks for, by field."""
    s, r = m.selection, m.regime
    out = {"estimation.lookback": m.estimation.lookback,
           "selection.momentum_lookback + momentum_skip": s.momentum_lookback + s.momentum_skip,
           "regime.long_window": r.long_window, "universe.min_history_days": m.universe.min_history_days}
    for i, w in enumerate(s.correlation_lookbacks or [s.correlation_lookback]):
        out[f"selection.correlation_lookbacks[{i}]" if s.correlation_lookbacks else "selection.correlation_lookback"] \
            = w
    for name, w in s.windows.model_dump().items() if hasattr(s, "windows") else ():
        out[f"selection.windows.{name}"] = int(w)
    if r.learns:  # the first learned decision needs a full regime window, then the decisions and their outcome
        out["regime.long_window + regret.learn_window + regret.horizon (learning)"] = \
            r.long_window + r.regret.learn_window + r.regret.horizon
    return out


def history(m: Manifest) -> list[str]:
    facts = source_facts(m)
    if facts is None or facts.first is None or facts.last is None:
        return []
    total = _rows(facts.first, facts.last, facts.every_day)
    days = "days" if facts.every_day else "weekdays"
    out = [f"{field} {w} is longer than the history of source {m.source.kind} ({total} {days}, "
           f"{facts.first}..{facts.last})" for field, w in windows(m).items() if w > total]
    if out:
        return out
    need_field, need = max(windows(m).items(), key=lambda x: x[1])
    if m.backtest.start is None:  # the backtest starts with the partitions: their warm-up is the manifest's own
        return []
    bt = m.backtest_start
    if bt > facts.last:
        return [f"backtest.start {bt} is after the last bar of source {m.source.kind} ({facts.last})"]
    have = _rows(facts.first, bt, facts.every_day) - 1 if bt > facts.first else 0
    if have < need:
        out.append(f"backtest.start {bt} leaves {have} bars of history in source {m.source.kind} "
                   f"(from {facts.first}) and {need_field} needs {need}; start the backtest on or after the warm-up")
    return out


def drift_instrument(m: Manifest) -> list[str]:
    if m.backtest.drift.instrument != "alternative" or getattr(m.source, "alternatives", None):
        return []
    return [f"backtest.drift.instrument alternative trades the catalog's implementation alternatives, but source "
            f"{m.source.kind} has none (source.alternatives names a preset of a tradingview source)"]


def paper_instrument(m: Manifest) -> list[str]:
    if not (m.paper.enabled and m.backtest.drift.instrument == "alternative"):
        return []
    return ["paper.enabled fills each order on its symbol's own bars, and backtest.drift.instrument alternative "
            "names another instrument (the perpetual, whose prices the source does not load): set instrument primary"]


RULES: tuple[Callable[[Manifest], list[str]], ...] = (
    infeasible_caps, infeasible_cluster_cap, long_short_with_long_only, simulator_features, source_fields,
    calendar_fit, history, drift_instrument, paper_instrument)


def problems(m: Manifest) -> list[str]:
    """One line per broken rule (empty: the combination can run)."""
    return [line for rule in RULES for line in rule(m)]
