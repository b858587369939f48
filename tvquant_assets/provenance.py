"""Where a decision came from: code version (git), dependency lock, interpreter and key packages."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from tvquant_assets.hashing import file_hash

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GIT_SHA_ENV = "TVQUANT_GIT_SHA"
"""The commit an image was built from (``docker build --build-arg GIT_SHA=...``): images hold no .git."""
KEY_PACKAGES = ("dagster", "pandas", "numpy", "scipy", "scikit-learn", "cvxpy", "clarabel", "skfolio",
                "riskfolio-lib", "cvxportfolio", "vectorbt", "hmmlearn", "pyarrow", "threadpoolctl")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def environment() -> dict:
    """Provenance recorded in every ledger entry (computed once per process)."""
    versions = {}
    for pkg in KEY_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    from tvquant_assets.determinism import blas_threads, pin_threads

    pin_threads()
    return {
        "uv_lock_hash": file_hash(PROJECT_ROOT / "uv.lock"),
        "git_sha": _git("rev-parse", "HEAD") or os.environ.get(GIT_SHA_ENV) or None,
        "git_dirty": bool(status) if status is not None else None,
        "python": platform.python_version(),
        "packages": versions,
        "blas_threads": blas_threads(),
    }
