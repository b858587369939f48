"""The one hierarchical-clustering configuration shared by selection and the hierarchical engines.

Distance is the correlation distance ``sqrt(0.5 * (1 - rho))`` (de Prado), which is the Euclidean distance
between standardized return vectors up to a constant, so Ward linkage on it is well defined.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
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


def _correlation(values: np.ndarray) -> np.ndarray:
    """Pearson correlation of columns; pairwise-complete when there are NaN."""
    if not np.isnan(values).any():
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.corrcoef(values, rowvar=False)
    return pd.DataFrame(values).corr(min_periods=2).to_numpy()


def linkage_matrix(returns: pd.DataFrame, cfg: LinkageConfig) -> np.ndarray:
    """Scipy linkage matrix of the columns of ``returns``.

    Parameters
    ----------
    returns : DataFrame
        Rows = periods, columns = assets (at least 2). Leaf ``i`` of the tree is ``returns.columns[i]``.
    cfg : LinkageConfig
        Linkage method.

    Returns
    -------
    ndarray of shape (n - 1, 4)
        As returned by :func:`scipy.cluster.hierarchy.linkage`.
    """
    if returns.shape[1] < 2:
        raise ValueError(f"linkage needs at least 2 columns, got {returns.shape[1]}")
    dist = correlation_distance(_correlation(returns.to_numpy(dtype="float64")))
    return linkage(squareform(dist, checks=False), method=cfg.method)


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
    n = returns.shape[1]
    if n == 0:
        return np.zeros(0, dtype="int64")
    if n == 1:
        return np.ones(1, dtype="int64")
    order = np.argsort(np.asarray([str(c) for c in returns.columns]), kind="stable")
    z = linkage_matrix(returns.iloc[:, order], cfg)
    if cfg.distance_threshold is not None:
        raw = fcluster(z, t=cfg.distance_threshold, criterion="distance")
    else:
        raw = fcluster(z, t=min(cfg.max_clusters, n), criterion="maxclust")
    renumber: dict[int, int] = {}
    sorted_labels = np.empty(n, dtype="int64")
    for i, lab in enumerate(raw.tolist()):
        sorted_labels[i] = renumber.setdefault(lab, len(renumber) + 1)
    labels = np.empty(n, dtype="int64")
    labels[order] = sorted_labels
    return labels
