"""The one hierarchical-clustering configuration shared by selection and the hierarchical engines.

Distance is the correlation distance ``sqrt(0.5 * (1 - rho))`` (de Prado), which is the Euclidean distance
between standardized return vectors up to a constant, so Ward linkage on it is well defined; ``rho`` is
Pearson's, Spearman's or Kendall's correlation (``LinkageConfig.distance``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform

from tvquant_assets.manifest.schema import LinkageConfig


def correlation_distance(corr: np.ndarray) -> np.ndarray:
    """Correlation distance matrix.

    Parameters
    ----------
    corr : ndarray of shape (n, n)
        Correlation matrix. NaN entries (a constant series has no correlation) count as ``rho = 0``.

    Returns
    -------
    ndarray of shape (n, n)
        ``sqrt(0.5 * (1 - rho))`` clipped to [0, 1], symmetric, zero diagonal.
    """
    rho = np.nan_to_num(np.asarray(corr, dtype="float64"), nan=0.0)
    rho = 0.5 * (rho + rho.T)  # float noise can make a computed correlation matrix slightly asymmetric
    dist = np.sqrt(np.clip(0.5 * (1.0 - rho), 0.0, 1.0))
    np.fill_diagonal(dist, 0.0)
    return dist


def _correlation(values: np.ndarray, kind: str = "pearson") -> np.ndarray:
    """Correlation of columns (``pearson``, ``spearman`` or ``kendall``); pairwise-complete when there are
    NaN; NaN for a constant column."""
    if kind != "pearson":
        return pd.DataFrame(values).corr(method=kind, min_periods=2).to_numpy()
    if np.isnan(values).any():
        return pd.DataFrame(values).corr(min_periods=2).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.atleast_2d(np.corrcoef(values, rowvar=False))  # one column: corrcoef returns a scalar


def returns_distance(values: np.ndarray, kind: str = "pearson") -> np.ndarray:
    """Correlation distance ``sqrt(0.5 (1 - rho))`` of the columns of a returns array."""
    return correlation_distance(_correlation(np.asarray(values, dtype="float64"), kind))


def selection_distance(panel, symbols: list[str], date: pd.Timestamp, windows: list[int],
                       kind: str = "pearson") -> np.ndarray:
    """The selection's distance of ``symbols`` on ``date``: the correlation distance averaged over the
    trailing return ``windows`` (rows <= date), as :mod:`tvquant_assets.core.selection` clusters."""
    returns = panel.returns()
    t = int(returns.index.searchsorted(pd.Timestamp(date), side="right")) - 1
    values = returns.reindex(columns=list(symbols)).to_numpy(dtype="float64")
    return average_distance([values[max(0, t - w + 1):t + 1] for w in windows], kind)


def linkage_matrix(returns: pd.DataFrame, cfg: LinkageConfig) -> np.ndarray:
    """Scipy linkage matrix of the columns of ``returns``.

    Parameters
    ----------
    returns : DataFrame
        Rows = periods, columns = assets (at least 2). Leaf ``i`` of the tree is ``returns.columns[i]``;
        pass the columns sorted by name to get the tree :func:`cluster` cuts.
    cfg : LinkageConfig
        Linkage method.

    Returns
    -------
    ndarray of shape (n - 1, 4)
        As returned by :func:`scipy.cluster.hierarchy.linkage`.
    """
    if returns.shape[1] < 2:
        raise ValueError(f"linkage needs at least 2 columns, got {returns.shape[1]}")
    dist = returns_distance(returns.to_numpy(dtype="float64"), cfg.distance)
    return linkage(squareform(dist, checks=False), method=cfg.method)


def cut(z: np.ndarray, cfg: LinkageConfig) -> np.ndarray:
    """Flat labels 1..k of the leaves of a monotone linkage tree, renumbered by first appearance.

    Same partition as ``scipy.cluster.hierarchy.fcluster`` with criterion ``distance`` (threshold set) or
    ``maxclust``: the smallest cut height leaving at most ``max_clusters`` clusters, so merges tied at that
    height go together and k may be smaller than asked. Done by hand because fcluster's validation costs
    more than the whole cut on the ~20 leaves selection clusters every day.
    """
    n = z.shape[0] + 1
    heights = z[:, 2]
    if cfg.distance_threshold is not None:
        merges = int(np.count_nonzero(heights <= cfg.distance_threshold))
    elif cfg.max_clusters >= n:
        merges = 0
    else:
        merges = int(np.count_nonzero(heights <= np.sort(heights)[n - cfg.max_clusters - 1]))
    # Monotone methods (ward/average/complete/single) emit merges by height, so the cut keeps a prefix.
    parent = list(range(2 * n - 1))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(merges):
        parent[root(int(z[i, 0]))] = n + i
        parent[root(int(z[i, 1]))] = n + i
    labels = np.empty(n, dtype="int64")
    renumber: dict[int, int] = {}
    for leaf in range(n):
        labels[leaf] = renumber.setdefault(root(leaf), len(renumber) + 1)
    return labels


def average_distance(windows: list[np.ndarray], kind: str = "pearson") -> np.ndarray:
    """Mean of the correlation distances of several return windows of the same columns.

    Each window is an ``(rows, n)`` array (NaN allowed: pairwise-complete correlation); averaging
    distances over short and long lookbacks gives a tree that is neither one crash nor one decade.
    """
    return np.mean([returns_distance(w, kind) for w in windows], axis=0)


def linkage_of_distance(dist: np.ndarray, cfg: LinkageConfig) -> np.ndarray:
    """Scipy linkage matrix of a square distance matrix (at least 2 x 2)."""
    return linkage(squareform(dist, checks=False), method=cfg.method)


def cluster_distance(dist: np.ndarray, cfg: LinkageConfig) -> np.ndarray:
    """Flat labels 1..k (renumbered by first appearance) from a square distance matrix."""
    n = dist.shape[0]
    if n <= 1:
        return np.ones(n, dtype="int64")
    return cut(linkage_of_distance(dist, cfg), cfg)


def cluster_sorted(values: np.ndarray, cfg: LinkageConfig) -> np.ndarray:
    """:func:`cluster` for a returns array whose columns are already in sorted-name order."""
    n = values.shape[1]
    if n <= 1:
        return np.ones(n, dtype="int64")
    dist = returns_distance(values, cfg.distance)
    return cut(linkage(squareform(dist, checks=False), method=cfg.method), cfg)


def cluster(returns: pd.DataFrame, cfg: LinkageConfig) -> np.ndarray:
    """Flat cluster labels of the columns of ``returns``.

    The tree is built on the columns sorted by name, so the result does not depend on column order; the
    tree is cut at ``cfg.distance_threshold`` when set, else into at most ``cfg.max_clusters`` clusters.
    Labels are renumbered 1..k by first appearance in sorted column order, so equal inputs always give
    equal labels.

    Parameters
    ----------
    returns : DataFrame
        Rows = periods, columns = assets.
    cfg : LinkageConfig

    Returns
    -------
    ndarray of int64, shape (n_columns,)
        Label of each column of ``returns`` (in the given column order); k <= n_columns.
    """
    order = np.argsort(np.asarray([str(c) for c in returns.columns], dtype=object), kind="stable")
    labels = np.empty(returns.shape[1], dtype="int64")
    labels[order] = cluster_sorted(returns.to_numpy(dtype="float64")[:, order], cfg)
    return labels
