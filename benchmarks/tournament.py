"""Tournament benchmark: ``uv run python -m benchmarks tournament [--folds N] [--hier-n N] [--hier-t T] ...``

Measured in one run, on the bundled S&P 500 set (20 stocks, 1990-2022) and a synthetic factor panel:

1. walk-forward 252-day train / 21-day test: per fold, one Ledoit-Wolf estimate, then every custom profile
   (ms per fold and profile), against skfolio's own ``WalkForward`` + ``cross_val_predict`` on the
   profiles it has (ratio of totals);
2. wrapper overhead of the third-party engines: ``engine.fit`` vs the same library call made directly;
3. HRP / HERC at N x T (default 500 x 1000): custom vs skfolio vs Riskfolio, and custom HRP with scipy's
   optimal leaf ordering instead of ours (same weights);
4. every risk measure: HRP / HERC per fold, custom vs skfolio, and custom at N x T (``--only-measures``
   runs just this section);
5. the whole tournament (the sp500_demo candidates plus the custom profiles and adaptive; with
   ``--all-engines`` also riskfolio, cvxportfolio and skfolio min-variance) over all monthly rebalance dates
   (all 20 symbols, no selection stage): wall time, Python-heap peak, process max RSS.

BLAS is pinned to one thread (determinism, and fair on a shared 2-core machine).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd

# The speed targets (custom engine): median per fold and profile, all profiles over all folds,
# third-party wrapper over the direct library call, HRP/HERC at N=500, T=1000.
TARGET_FOLD_MS = 5.0
TARGET_ALL_FOLDS_S = 30.0
TARGET_OVERHEAD = 1.10
TARGET_HIER_MS = 100.0

CUSTOM_PROFILES = ("min_variance", "max_sharpe", "risk_parity", "hrp", "herc", "benchmark", "equal_weight",
                   "barbell")


def _close() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset

    close = load_sp500_dataset()
    close.index = pd.DatetimeIndex(close.index).as_unit("ns")
    return close.sort_index()[sorted(close.columns)].astype("float64")


def _met(value: float, target: float) -> str:
    return "met" if value <= target else "NOT met"


def _median_ms(xs) -> float:
    return float(np.median(xs) * 1e3) if len(xs) else float("nan")


# perf_counter (wall) by default; --cpu-clock: this process's CPU time, steadier on a loaded shared machine
# (every timed call runs single-threaded under threadpool_limits(1)).
_CLOCK = {"now": time.perf_counter}


def _timed(fn, *args, **kwargs):
    now = _CLOCK["now"]
    t0 = now()
    out = fn(*args, **kwargs)
    return out, now() - t0


def walk_forward(close: pd.DataFrame, n_folds: int | None, run_skfolio: bool) -> dict:
    from sklearn.covariance import LedoitWolf

    from tvquant_assets.core.engines import get_engine
    from tvquant_assets.core.engines.base import EngineInputs
    from tvquant_assets.manifest.schema import LinkageConfig

    rets = close.pct_change().iloc[1:]
    x = rets.to_numpy()
    starts = list(range(0, len(x) - 252 - 21 + 1, 21))
    if n_folds:
        starts = starts[:n_folds]
    engine = get_engine("custom", linkage=LinkageConfig())
    syms = list(rets.columns)
    per_profile = {p: [] for p in CUSTOM_PROFILES}
    est_times = []
    t_all = time.perf_counter()
    for s in starts:
        train = x[s:s + 252]
        t0 = time.perf_counter()
        cov = LedoitWolf().fit(train).covariance_ * 252
        mu = train.mean(axis=0) * 252
        est_times.append(time.perf_counter() - t0)
        inp = EngineInputs(syms, mu, cov, pd.DataFrame(train, columns=syms))
        for p in CUSTOM_PROFILES:
            r, dt = _timed(engine.fit, inp, p, 1.0, 0.0)
            per_profile[p].append(dt)
    custom_total = time.perf_counter() - t_all
    out = {"folds": len(starts), "custom_total_s": custom_total,
           "custom_ms": {p: _median_ms(v) for p, v in per_profile.items()},
           "custom_p95_ms": {p: float(np.percentile(v, 95) * 1e3) for p, v in per_profile.items()},
           "estimation_ms": _median_ms(est_times)}
    if run_skfolio:
        from skfolio.measures import RiskMeasure
        from skfolio.model_selection import WalkForward, cross_val_predict
        from skfolio.moments import LedoitWolf as SkLW
        from skfolio.optimization import (
            EqualWeighted,
            HierarchicalEqualRiskContribution,
            HierarchicalRiskParity,
            MeanRisk,
            ObjectiveFunction,
            RiskBudgeting,
        )
        from skfolio.prior import EmpiricalPrior

        prior = EmpiricalPrior(covariance_estimator=SkLW())
        models = {
            "min_variance": MeanRisk(risk_measure=RiskMeasure.VARIANCE, prior_estimator=prior),
            "max_sharpe": MeanRisk(risk_measure=RiskMeasure.VARIANCE, prior_estimator=prior,
                                   objective_function=ObjectiveFunction.MAXIMIZE_RATIO),
            "risk_parity": RiskBudgeting(risk_measure=RiskMeasure.VARIANCE, prior_estimator=prior),
            "hrp": HierarchicalRiskParity(risk_measure=RiskMeasure.VARIANCE, prior_estimator=prior),
            "herc": HierarchicalEqualRiskContribution(risk_measure=RiskMeasure.CVAR),
            "equal_weight": EqualWeighted(),
        }
        frame = rets.iloc[: starts[-1] + 252 + 21] if n_folds else rets
        sk = {}
        for name, model in models.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, dt = _timed(cross_val_predict, model, frame, cv=WalkForward(train_size=252, test_size=21))
            sk[name] = dt
        out["skfolio_total_s"] = sk
        ours = {p: float(np.sum(per_profile[p])) for p in sk}
        out["custom_same_profiles_s"] = sum(ours.values()) + float(np.sum(est_times))
        out["skfolio_same_profiles_s"] = sum(sk.values())
    return out


def wrapper_overhead(close: pd.DataFrame, n: int) -> dict:
    """Our engine.fit vs the library called directly with the same objects: per fold the best of 3 alternated
    calls each, then the median over ``n`` folds."""
    import cvxportfolio as cvx
    import riskfolio as rp
    from skfolio.distance import CovarianceDistance
    from skfolio.measures import RiskMeasure
    from skfolio.optimization import HierarchicalRiskParity, MeanRisk, ObjectiveFunction
    from sklearn.covariance import LedoitWolf

    from tvquant_assets.core.engines import get_engine
    from tvquant_assets.core.engines.base import EngineInputs
    from tvquant_assets.core.engines.skfolio_engine import fixed_prior

    rets = close.pct_change().iloc[1:]
    syms = list(rets.columns)
    folds = []
    for s in range(0, len(rets) - 252, max(1, (len(rets) - 252) // n))[:n]:
        train = rets.iloc[s:s + 252]
        cov = LedoitWolf().fit(train.to_numpy()).covariance_ * 252
        folds.append(EngineInputs(syms, train.mean().to_numpy() * 252, cov, train))

    def direct_skfolio_mv(inp):
        MeanRisk(objective_function=ObjectiveFunction.MINIMIZE_RISK, risk_measure=RiskMeasure.VARIANCE,
                 prior_estimator=fixed_prior(inp.mu, inp.cov), min_weights=0.0, max_weights=1.0,
                 solver="CLARABEL", solver_params={"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10,
                                                   "tol_feas": 1e-10, "warm_start": False},
                 raise_on_failure=False).fit(inp.returns)

    def direct_skfolio_hrp(inp):
        HierarchicalRiskParity(risk_measure=RiskMeasure.VARIANCE, prior_estimator=fixed_prior(inp.mu, inp.cov),
                               distance_estimator=CovarianceDistance(covariance_estimator="precomputed"),
                               min_weights=0.0, max_weights=1.0).fit(inp.returns)

    def direct_riskfolio_hrp(inp):
        cov = pd.DataFrame(inp.cov, index=syms, columns=syms)
        with contextlib.redirect_stdout(io.StringIO()):
            rp.HCPortfolio(returns=inp.returns, w_max=1.0, w_min=0.0, solvers=["CLARABEL", "SCS"]).optimization(
                model="HRP", codependence="custom_cov", custom_cov=cov, method_cov="custom_cov", rm="MV",
                linkage="ward", leaf_order=True)

    def direct_riskfolio_mv(inp):
        port = rp.Portfolio(returns=inp.returns)
        port.mu = pd.DataFrame([inp.mu], columns=syms)
        port.cov = pd.DataFrame(inp.cov, index=syms, columns=syms)
        port.solvers = ["CLARABEL", "SCS"]
        port.ainequality = np.eye(len(syms))
        port.binequality = np.full((len(syms), 1), 1.0)
        port.optimization(model="Classic", rm="MV", obj="MinRisk", rf=0, l=0, hist=True)

    def direct_cvxportfolio_mv(inp):
        scale = float(np.trace(inp.cov)) / len(syms)
        sigma = pd.DataFrame(inp.cov / scale, index=syms, columns=syms)
        policy = cvx.SinglePeriodOptimization(-cvx.FullCovariance(Sigma=sigma),
                                              [cvx.LongOnly(applies_to_cash=True), cvx.NoCash(),
                                               cvx.MaxWeights(1.0)], include_cash_return=False)
        h = pd.Series(0.0, index=[*syms, "cash"])
        h["cash"] = 1.0
        policy.execute(h=h, market_data=None, t=pd.Timestamp("2000-01-03"))

    cases = [("skfolio", "min_variance", direct_skfolio_mv), ("skfolio", "hrp", direct_skfolio_hrp),
             ("riskfolio", "min_variance", direct_riskfolio_mv), ("riskfolio", "hrp", direct_riskfolio_hrp),
             ("cvxportfolio", "min_variance", direct_cvxportfolio_mv)]
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for engine_name, profile, direct in cases:
            engine = get_engine(engine_name)
            engine.fit(folds[0], profile, 1.0, 0.0)
            direct(folds[0])  # warm both
            ours, lib = [], []
            for inp in folds:  # per fold, the best of 3 alternated calls each: robust to load spikes
                pair: dict[str, list[float]] = {"ours": [], "lib": []}
                for k in range(3):
                    for first in ("ours", "lib") if k % 2 == 0 else ("lib", "ours"):
                        if first == "ours":
                            pair["ours"].append(_timed(engine.fit, inp, profile, 1.0, 0.0)[1])
                        else:
                            pair["lib"].append(_timed(direct, inp)[1])
                ours.append(min(pair["ours"]))
                lib.append(min(pair["lib"]))
            out[f"{engine_name}/{profile}"] = (_median_ms(ours), _median_ms(lib))
    return out


def hierarchical_scale(n: int, t: int, repeats: int) -> dict:
    from unittest import mock

    import riskfolio as rp
    from scipy.cluster.hierarchy import optimal_leaf_ordering as scipy_optimal_leaf_ordering
    from skfolio.cluster import HierarchicalClustering
    from skfolio.measures import RiskMeasure
    from skfolio.optimization import HierarchicalEqualRiskContribution, HierarchicalRiskParity

    from tvquant_assets.core import leaf_ordering
    from tvquant_assets.core.engines import get_engine, hierarchy
    from tvquant_assets.core.engines.base import EngineInputs
    from tvquant_assets.manifest.schema import LinkageConfig

    rng = np.random.default_rng(5)
    loadings = rng.normal(0, 1, (n, 5))
    factors = rng.normal(0, 0.01, (t, 5))
    x = factors @ loadings.T + rng.normal(0, 0.01, (t, n))
    syms = [f"S{i:04d}" for i in range(n)]
    rets = pd.DataFrame(x, columns=syms)
    cov = np.cov(x, rowvar=False) * 252
    inp = EngineInputs(syms, x.mean(axis=0) * 252, cov, rets)
    engine = get_engine("custom", linkage=LinkageConfig(max_clusters=10))
    out = {"numba load/compile s": leaf_ordering.compile_seconds()}
    cpu = {}

    def timed_fit(profile):
        # wall and this process's CPU time: on a shared machine the CPU time shows what other work added
        c0, t0 = time.process_time(), time.perf_counter()
        engine.fit(inp, profile, 1.0, 0.0)
        return time.perf_counter() - t0, time.process_time() - c0

    for profile in ("hrp", "herc"):
        wall, used = zip(*[timed_fit(profile) for _ in range(repeats)])
        out[f"custom {profile}"], cpu[f"custom {profile}"] = _median_ms(wall), _median_ms(used)
    # The same HRP fit with scipy's optimal_leaf_ordering swapped in (identical weights, its time).
    with mock.patch.object(hierarchy, "optimal_leaf_ordering", scipy_optimal_leaf_ordering):
        wall, used = zip(*[timed_fit("hrp") for _ in range(repeats)])
    out["custom hrp, scipy OLO"], cpu["custom hrp, scipy OLO"] = _median_ms(wall), _median_ms(used)
    out["cpu"] = cpu
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["skfolio hrp"] = _timed(HierarchicalRiskParity(risk_measure=RiskMeasure.VARIANCE).fit, rets)[1] * 1e3
        out["skfolio herc"] = _timed(HierarchicalEqualRiskContribution(
            risk_measure=RiskMeasure.CVAR, hierarchical_clustering_estimator=HierarchicalClustering(
                max_clusters=10)).fit, rets)[1] * 1e3
        with contextlib.redirect_stdout(io.StringIO()):
            for model, rm in (("HRP", "MV"), ("HERC", "CVaR")):
                port = rp.HCPortfolio(returns=rets)
                out[f"riskfolio {model.lower()}"] = _timed(
                    port.optimization, model=model, codependence="pearson", rm=rm, linkage="ward",
                    leaf_order=True, k=10 if model == "HERC" else None)[1] * 1e3
    return out


TARGET_MEASURE_RATIO = 10.0  # skfolio / custom per fold, HRP and HERC, every risk measure


def risk_measures_bench(close: pd.DataFrame, folds: int, n: int, t: int) -> dict:
    """Per risk measure: HRP/HERC ms per fold on the S&P set (custom engine vs skfolio's estimator on the
    same window and covariance) and custom at N x T synthetic."""
    from skfolio.measures import RiskMeasure
    from skfolio.optimization import HierarchicalEqualRiskContribution, HierarchicalRiskParity

    from tvquant_assets.core.engines import get_engine
    from tvquant_assets.core.engines.base import EngineInputs, FitSpec
    from tvquant_assets.core.engines.risk_measures import MEASURES, SKFOLIO_NAMES
    from tvquant_assets.core.estimation import estimate, returns_window, unpack
    from tvquant_assets.core.panel import PricePanel
    from tvquant_assets.manifest.schema import EstimationConfig, LinkageConfig

    panel = PricePanel(close=close)
    syms = list(close.columns)
    dates = list(close.index[252::21][:folds])
    ests = estimate(panel, {d: syms for d in dates}, dates, EstimationConfig())
    inputs = []
    for d in dates:
        e = unpack(ests[d])
        inputs.append(EngineInputs(e.symbols, e.mu, e.cov, returns_window(panel, e.symbols, d, 252)))
    engine = get_engine("custom", linkage=LinkageConfig(max_clusters=5))
    out: dict = {"fold": {}, "scale": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in MEASURES:
            spec = FitSpec(risk_measure=m)
            for profile, cls in (("hrp", HierarchicalRiskParity), ("herc", HierarchicalEqualRiskContribution)):
                ours = [_timed(engine.fit, inp, profile, 1.0, 0.0, spec)[1] for inp in inputs]
                theirs = [_timed(cls(risk_measure=RiskMeasure[SKFOLIO_NAMES[m]]).fit, inp.returns)[1]
                          for inp in inputs]
                out["fold"][(m, profile)] = (_median_ms(ours), _median_ms(theirs))
        rng = np.random.default_rng(5)
        x = rng.normal(0, 0.01, (t, 5)) @ rng.normal(0, 1, (n, 5)).T + rng.normal(0, 0.01, (t, n))
        names = [f"S{i:04d}" for i in range(n)]
        big = EngineInputs(names, x.mean(axis=0) * 252, np.cov(x, rowvar=False) * 252, pd.DataFrame(x, columns=names))
        big_engine = get_engine("custom", linkage=LinkageConfig(max_clusters=10))
        big_engine.fit(big, "hrp")  # numba load outside the timings
        for m in MEASURES:
            for profile in ("hrp", "herc"):
                out["scale"][(m, profile)] = _median_ms(
                    [_timed(big_engine.fit, big, profile, 1.0, 0.0, FitSpec(risk_measure=m))[1] for _ in range(3)])
    return out


def whole_tournament(close: pd.DataFrame, first_year: int, all_engines: bool) -> dict:
    from tvquant_assets.calendar import rebalance_dates
    from tvquant_assets.core.estimation import estimate
    from tvquant_assets.core.panel import PricePanel
    from tvquant_assets.core.tournament import run_tournament
    from tvquant_assets.manifest import load_manifest
    from tvquant_assets.manifest.schema import Candidate, RebalanceConfig

    m = load_manifest("manifests/sp500_demo.yaml")
    pairs = [("custom", "risk_parity"), ("custom", "herc"), ("custom", "benchmark"), ("custom", "barbell"),
             ("adaptive", "adaptive")]
    if all_engines:
        pairs += [("skfolio", "min_variance"), ("riskfolio", "hrp"), ("cvxportfolio", "min_variance")]
    extra = [Candidate(engine=e, profile=p) for e, p in pairs]
    names = {c.name for c in m.tournament.candidates}
    cfg = m.tournament.model_copy(update={"candidates": [*m.tournament.candidates,
                                                         *[c for c in extra if c.name not in names]]})
    panel = PricePanel(close=close)
    days = [d for d in close.index if d.year >= first_year]
    rebal = rebalance_dates(days, RebalanceConfig(rule="monthly"))
    syms = list(close.columns)
    regime = pd.DataFrame({"label": ["NORMAL"], "quadrant": ["EXPANSION"], "preset_max_weight": [np.nan]})
    t0 = time.perf_counter()
    ests = estimate(panel, {d: syms for d in rebal}, rebal, m.estimation)
    t_est = time.perf_counter() - t0
    out = run_tournament(panel, ests, {d: regime for d in rebal}, rebal, lambda d: True, cfg, {}, m.estimation,
                         None, m.selection.linkage)
    wall = time.perf_counter() - t0
    # Python-heap peak of the same run on its first 3 dates (tracemalloc slows Python ~2x: not timed).
    tracemalloc.start()
    few = rebal[:3]
    run_tournament(panel, {d: ests[d] for d in few}, {d: regime for d in few}, few, lambda d: True, cfg, {},
                   m.estimation, None, m.selection.linkage)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    solve = pd.concat(out.values()).groupby("candidate")["solve_ms"].median()
    return {"dates": len(rebal), "candidates": len(cfg.candidates), "wall_s": wall, "estimation_s": t_est,
            "tracemalloc_peak_mb": peak / 2**20, "median_solve_ms": solve.to_dict()}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks tournament", description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=0, help="walk-forward folds (0 = all, 383 on the S&P set)")
    ap.add_argument("--no-skfolio-walk-forward", action="store_true", help="skip skfolio's WalkForward (slow)")
    ap.add_argument("--overhead-folds", type=int, default=20)
    ap.add_argument("--hier-n", type=int, default=500)
    ap.add_argument("--hier-t", type=int, default=1000)
    ap.add_argument("--hier-repeats", type=int, default=5)
    ap.add_argument("--tournament-from", type=int, default=1991, help="first year of the whole-tournament run")
    ap.add_argument("--all-engines", action="store_true",
                    help="whole tournament also with skfolio/riskfolio/cvxportfolio candidates (slow: ~1 s each)")
    ap.add_argument("--measure-folds", type=int, default=20, help="S&P folds of the risk-measure section")
    ap.add_argument("--only-measures", action="store_true", help="run only the risk-measure section")
    ap.add_argument("--cpu-clock", action="store_true",
                    help="time with this process's CPU time instead of wall time (for a loaded machine)")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    if args.cpu_clock:
        _CLOCK["now"] = time.process_time

    with threadpool_limits(1):
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2-core machine); "
              f"clock: {'CPU time' if args.cpu_clock else 'wall'}")
        close = _close()
        rm = risk_measures_bench(close, args.measure_folds, args.hier_n, args.hier_t)
        print(f"risk measures: HRP/HERC median ms per fold over {args.measure_folds} S&P folds (custom vs skfolio, "
              f"target skfolio/custom >= {TARGET_MEASURE_RATIO:g}x) and custom at N={args.hier_n}, T={args.hier_t} "
              f"(target <= {TARGET_HIER_MS:g} ms at 500 x 1000):")
        at_target = (args.hier_n, args.hier_t) == (500, 1000)
        for (m, profile), (ours, theirs) in rm["fold"].items():
            big = rm["scale"][(m, profile)]
            print(f"  {profile:<5}{m:<26}custom {ours:7.2f}  skfolio {theirs:8.2f}  ratio {theirs / ours:6.1f}x "
                  f"{'met' if theirs / ours >= TARGET_MEASURE_RATIO else 'NOT met':<8}  N={args.hier_n}: {big:8.1f} ms"
                  f"{'  ' + _met(big, TARGET_HIER_MS) if at_target else ''}")
        if args.only_measures:
            print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            return 0
        wf = walk_forward(close, args.folds or None, not args.no_skfolio_walk_forward)
        print(f"walk-forward 252/21 on the bundled S&P set: {wf['folds']} folds, "
              f"estimation {wf['estimation_ms']:.2f} ms/fold")
        print(f"  {'profile':<14}{'median ms':>10}{'p95 ms':>10}{'skfolio s':>11}   target median <= "
              f"{TARGET_FOLD_MS:g} ms")
        for p in CUSTOM_PROFILES:
            sk = wf.get("skfolio_total_s", {}).get(p)
            print(f"  {p:<14}{wf['custom_ms'][p]:>10.2f}{wf['custom_p95_ms'][p]:>10.2f}"
                  f"{'' if sk is None else f'{sk:>11.1f}':>11}   {_met(wf['custom_ms'][p], TARGET_FOLD_MS)}")
        print(f"  custom, all {len(CUSTOM_PROFILES)} profiles, all folds: {wf['custom_total_s']:.2f} s "
              f"(target <= {TARGET_ALL_FOLDS_S:g} s{'' if args.folds == 0 else ' over all 383 folds'}: "
              f"{_met(wf['custom_total_s'], TARGET_ALL_FOLDS_S) if args.folds == 0 else 'not measured'})")
        if "skfolio_total_s" in wf:
            ours, theirs = wf["custom_same_profiles_s"], wf["skfolio_same_profiles_s"]
            print(f"  same {len(wf['skfolio_total_s'])} profiles: custom {ours:.2f} s vs skfolio WalkForward "
                  f"{theirs:.1f} s -> skfolio/custom = {theirs / ours:.1f}x")
        print(f"wrapper overhead (median ms per fit over {args.overhead_folds} S&P folds, ours vs library; "
              f"target ratio <= {TARGET_OVERHEAD:.2f}):")
        for k, (ours, lib) in wrapper_overhead(close, args.overhead_folds).items():
            print(f"  {k:<26} ours {ours:8.2f}  library {lib:8.2f}  ratio {ours / lib:5.3f}  "
                  f"{_met(ours / lib, TARGET_OVERHEAD)}")
        print(f"hierarchical allocators at N={args.hier_n}, T={args.hier_t} (wall ms, median of "
              f"{args.hier_repeats} for custom; target custom <= {TARGET_HIER_MS:g} ms at N=500, T=1000):")
        hs = hierarchical_scale(args.hier_n, args.hier_t, args.hier_repeats)
        load = hs.pop("numba load/compile s")
        cpu = hs.pop("cpu")
        at_target = (args.hier_n, args.hier_t) == (500, 1000)
        for k, v in hs.items():
            verdict = f"  {_met(v, TARGET_HIER_MS)}" if at_target and k in ("custom hrp", "custom herc") else ""
            used = f"  (CPU {cpu[k]:.1f} ms)" if k in cpu else ""
            print(f"  {k:<24}{v:10.1f}{verdict}{used}")
        print(f"  optimal leaf ordering: custom hrp with scipy's OLO / with ours = "
              f"{hs['custom hrp, scipy OLO'] / hs['custom hrp']:.1f}x (same weights); numba import + kernel "
              f"load{' (compile if not cached)' if load > 3 else ''} once per process: {load:.2f} s, not in "
              f"the times above")
        print(f"  skfolio/custom hrp {hs['skfolio hrp'] / hs['custom hrp']:.0f}x, "
              f"riskfolio/custom hrp {hs['riskfolio hrp'] / hs['custom hrp']:.0f}x, "
              f"skfolio/custom herc {hs['skfolio herc'] / hs['custom herc']:.0f}x, "
              f"riskfolio/custom herc {hs['riskfolio herc'] / hs['custom herc']:.0f}x")
        wt = whole_tournament(close, args.tournament_from, args.all_engines)
        print(f"whole tournament (no target; printed): {wt['candidates']} candidates x {wt['dates']} monthly "
              f"rebalances: "
              f"{wt['wall_s']:.1f} s wall (estimation {wt['estimation_s']:.1f} s), "
              f"Python-heap peak (tracemalloc, 3 dates) {wt['tracemalloc_peak_mb']:.1f} MB, "
              f"process max RSS (whole benchmark) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        for k, v in sorted(wt["median_solve_ms"].items()):
            print(f"  {k:<28} median {v:8.2f} ms")
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0
