"""Byte-compile the environment once, on machines that set PYTHONDONTWRITEBYTECODE.

Without bytecode a cold import of the stack takes ~30 s instead of ~10 s. uv's ``compile-bytecode`` setting
would re-check all ~16,000 files of the environment on every ``uv run`` (1-4 s, and a "Bytecode compiled"
line each time), so instead the first ``tvquant`` command compiles site-packages once with the standard
library's ``compileall``; later commands find the bytecode and skip this in one ``stat``. When Python may
write bytecode itself (the usual case) nothing is done: imports cache it as they go.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

SENTINEL = "dagster"
"""A package of the environment whose compiled ``__init__`` says the environment was compiled."""


def needs_compile() -> Path | None:
    """The site-packages directory to compile, or None when there is nothing to do."""
    if not sys.flags.dont_write_bytecode:
        return None
    spec = importlib.util.find_spec(SENTINEL)  # finds, does not import
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    if Path(importlib.util.cache_from_source(spec.origin)).exists():
        return None
    return Path(spec.origin).parents[1]


def ensure_compiled(stream=None) -> bool:
    """Compile site-packages (all cores, errors silent) when :func:`needs_compile` says so; True if it did."""
    site = needs_compile()
    if site is None:
        return False
    print("tvquant: first run: byte-compiling the environment once (about a minute) so that later commands "
          "start fast", file=stream or sys.stderr, flush=True)
    # -W ignore: third-party sources with invalid escapes would print SyntaxWarnings with their source lines
    subprocess.run([sys.executable, "-W", "ignore", "-m", "compileall", "-qq", "-j", "0", str(site)], check=False)
    return True
