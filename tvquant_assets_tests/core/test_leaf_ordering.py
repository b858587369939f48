"""The fast optimal leaf ordering returns scipy's linkage bitwise (so HRP keeps skfolio's seriation), and
its dynamic program reaches the brute-force minimum path length; HRP's large-universe path (numba bisection,
covariance used as given when positive definite) gives the same weights."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.cluster.hierarchy import optimal_leaf_ordering as scipy_olo
from scipy.spatial.distance import pdist, squareform

from tvquant_assets.core.engines import hierarchy
from tvquant_assets.core.leaf_ordering import minimal_path_length, optimal_leaf_ordering
from tvquant_assets.core.linkage import correlation_distance

METHODS = ("ward", "single", "average", "complete")


def _path_length(order, dist) -> float:
    return float(sum(dist[a, b] for a, b in itertools.pairwise(order)))


def _trees(seed: int, count: int, n_max: int):
    rng = np.random.default_rng(seed)
    for i in range(count):
        n = int(rng.integers(2, n_max + 1))
        x = rng.normal(size=(n, int(rng.integers(1, 6))))
        if i % 3 == 0:
            x = np.round(x, 1)  # repeated distances: ties in the table and in the linkage heights
        if i % 7 == 0:
            x[: n // 2] = x[0]  # duplicated points: zero distances, many equal-cost orders
        y = pdist(x)
        for method in METHODS:
            yield n, method, linkage(y, method), y


def test_same_linkage_as_scipy_on_random_trees():
    checked = 0
    for n, method, z, y in _trees(seed=11, count=150, n_max=200):
        assert np.array_equal(optimal_leaf_ordering(z, y, scipy_below=0), scipy_olo(z, y)), (n, method)
        checked += 1
    assert checked == 600


def test_same_linkage_as_scipy_on_correlation_trees():
    """The HRP case: Ward on the correlation distance of factor returns, up to N=300."""
    rng = np.random.default_rng(3)
    for n in (70, 150, 300):
        x = rng.normal(size=(400, 4)) @ rng.normal(size=(4, n)) + rng.normal(size=(400, n))
        y = squareform(correlation_distance(np.corrcoef(x.T)), checks=False)
        for method in METHODS:
            z = linkage(y, method)
            assert np.array_equal(optimal_leaf_ordering(z, y), scipy_olo(z, y)), (n, method)


def test_dynamic_program_reaches_the_brute_force_minimum():
    for n, method, z, y in _trees(seed=5, count=40, n_max=8):
        dist = squareform(y)
        orders = set()
        # every orientation of the tree: swap any subset of the n - 1 internal nodes
        for flips in itertools.product((False, True), repeat=n - 1):
            zz = z.copy()
            zz[list(flips), 0], zz[list(flips), 1] = z[list(flips), 1], z[list(flips), 0]
            orders.add(tuple(leaves_list(zz)))
        best = min(_path_length(o, dist) for o in orders)
        assert minimal_path_length(z, y) == pytest.approx(best, rel=1e-6, abs=1e-6), (n, method)
        # scipy's greedy read-out can even be longer than the unordered tree; only the DP value is minimal
        ours = _path_length(leaves_list(optimal_leaf_ordering(z, y, scipy_below=0)), dist)
        assert ours >= best - 1e-6


def test_scipy_readout_is_greedy_and_kept():
    """scipy issue 11227: scipy's order is not the minimum here; ours is scipy's, not the minimum."""
    d = np.array([[0.0, 0.46680166, 0.7747411, 0.79942054],
                  [0.46680166, 0.0, 0.28626558, 0.68441929],
                  [0.7747411, 0.28626558, 0.0, 0.74692541],
                  [0.79942054, 0.68441929, 0.74692541, 0.0]])
    y = squareform(d)
    z = linkage(y, "complete")
    ours = optimal_leaf_ordering(z, y, scipy_below=0)
    assert np.array_equal(ours, scipy_olo(z, y))
    assert _path_length(leaves_list(ours), d) > _path_length([0, 1, 2, 3], d) + 0.1
    assert minimal_path_length(z, y) == pytest.approx(_path_length([0, 1, 2, 3], d), rel=1e-6)


def test_hrp_tree_uses_the_fast_ordering_with_scipys_result():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 120)) + rng.normal(size=(300, 120))
    cov = np.cov(x, rowvar=False)
    ours = hierarchy.tree(cov)
    plain = hierarchy.tree(cov, optimal_ordering=False)
    sd = np.sqrt(np.diag(cov))
    y = squareform(correlation_distance(cov / np.outer(sd, sd)), checks=False)
    assert np.array_equal(ours, scipy_olo(plain, y))


@pytest.mark.parametrize("cap", [1.0, 0.02, None])
def test_hrp_large_universe_bisection_matches_the_numpy_loop(monkeypatch, cap):
    """From SCIPY_BELOW assets HRP splits in numba; the weights are the numpy loop's (to rounding)."""
    rng = np.random.default_rng(4)
    n = 90
    x = rng.normal(size=(250, 3)) @ rng.normal(size=(3, n)) + rng.normal(size=(250, n))
    cov = np.cov(x, rowvar=False)
    cap = 1.5 / n if cap is None else cap
    fast = hierarchy.hrp(cov, cap)
    monkeypatch.setattr(hierarchy, "SCIPY_BELOW", 10**9)
    loop = hierarchy.hrp(cov, cap)
    np.testing.assert_allclose(fast, loop, rtol=0, atol=1e-15)
    assert abs(fast.sum() - 1) < 1e-12 and fast.max() <= cap + 1e-12


def test_closed_forms_use_a_positive_definite_covariance_as_given():
    from tvquant_assets.core.engines.base import psd_covariance

    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 6))
    cov = np.cov(x, rowvar=False)
    psd, factor, _, note = psd_covariance(cov)
    assert factor is None and note == "" and np.array_equal(psd, (cov + cov.T) / 2)
    bad = cov.copy()
    bad[0, 1] = bad[1, 0] = 3 * np.sqrt(cov[0, 0] * cov[1, 1])  # |rho| > 1: not PSD
    psd, factor, scale, note = psd_covariance(bad)
    assert note.startswith("cov repaired") and np.linalg.eigvalsh(psd).min() > -1e-12
    np.testing.assert_allclose(factor.T @ factor * scale, psd)
