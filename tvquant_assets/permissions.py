"""Owner-only files: the ledger, the lake and the Dagster instance hold decisions and credentials' effects.

Every tvquant entry point (the ``tvquant`` CLI, the Dagster code location) sets the process umask to
``0o077`` so whatever it or Dagster creates (parquet partitions, the ledger, the instance's SQLite
databases, the DuckDB file, folders) is 0600 / 0700. ``TVQUANT_UMASK`` (octal, e.g. ``027`` for a group
that reads the lake) overrides it. Files written by the lake and the ledger are also created 0600
explicitly, so library use without the entry points stays owner-only.
"""

from __future__ import annotations

import os

UMASK_ENV = "TVQUANT_UMASK"
OWNER_ONLY_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def restrict_umask() -> int:
    """Set the process umask (owner-only unless ``TVQUANT_UMASK`` says otherwise); returns it."""
    raw = os.environ.get(UMASK_ENV, "").strip()
    try:
        mask = int(raw, 8) if raw else OWNER_ONLY_UMASK
    except ValueError:
        mask = OWNER_ONLY_UMASK
    os.umask(mask & 0o777)
    return mask


def private_dir(path) -> None:
    """Create ``path`` (and parents) 0700; an existing folder keeps its mode."""
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)
