"""Code versions that follow the code and the config: a stage's version hashes the manifest sections it
reads (``SECTIONS``, with those of every stage upstream of it), its module and every package module it
imports, transitively, so any change to code or config a stage runs marks its partitions stale in Dagster,
and a change anywhere else does not.

``SECTIONS`` names the top-level manifest fields each stage reads (``*``: all of them, e.g. the audit seals
the manifest hash). ``tvquant_assets_tests/stages/test_manifest_reads.py`` runs every stage with the
manifest behind a recorder and fails when a stage reads a field outside its declaration. A stage missing
from the table (a new one) hashes the whole manifest.

The import graph is read from the source text (``ast``), not by importing:

- every ``import`` statement counts, at module level or inside a function;
- ``from package import name`` follows ``name`` to the module that defines it: a package's ``__init__.py``
  that only re-exports a name is not a dependency of its users (``from tvquant_assets.lake import Lake``
  depends on ``lake/store.py``, not on every module ``lake/__init__.py`` imports);
- a registry loads its entries by name at run time, so where a stage imports a registry's loader
  (``build_source``, ``get_engine``, ``get_simulator``) the modules the manifest selects are added: the
  source of ``source.kind``, the engines of the tournament candidates, the simulators of
  ``backtest.simulators`` (a registry's name tables, imported to validate manifests, add nothing);
- every stage also runs under the package's thread pinning (``tvquant_assets/__init__.py``,
  ``determinism.py``).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from tvquant_assets.core.engines import ENGINES
from tvquant_assets.core.simulators import SIMULATORS
from tvquant_assets.hashing import obj_hash
from tvquant_assets.manifest import Manifest, manifest_hash
from tvquant_assets.sources import SOURCES

PACKAGE = "tvquant_assets"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
ALWAYS = (PACKAGE, f"{PACKAGE}.determinism")


def _plugins(manifest: Manifest) -> dict[tuple[str, str], list[str]]:
    """(registry module, loader) -> the modules of the entries ``manifest`` selects through it."""
    return {
        (f"{PACKAGE}.sources", "build_source"): [SOURCES.module(manifest.source.kind)],
        (f"{PACKAGE}.core.engines", "get_engine"):
            sorted({ENGINES.module(c.engine) for c in manifest.tournament.candidates}),
        (f"{PACKAGE}.core.simulators", "get_simulator"):
            sorted({SIMULATORS.module(s) for s in manifest.backtest.simulators}),
    }


class Statement(NamedTuple):
    """One import statement: ``import a, b`` (kind "import") or ``from module import a as x`` (kind "from",
    ``level`` dots), and whether it is at module level."""

    kind: str
    module: str | None
    level: int
    names: tuple[tuple[str, str | None], ...]
    top_level: bool


def _parse(text: str) -> tuple[Statement, ...]:
    tree = ast.parse(text)
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(Statement("import" if isinstance(node, ast.Import) else "from",
                                 getattr(node, "module", None), getattr(node, "level", 0) or 0,
                                 tuple((a.name, a.asname) for a in node.names), id(node) in top))
    return tuple(out)


def _cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tvquant" / f"import-statements-{sys.version_info[0]}.{sys.version_info[1]}.json"


@functools.cache
def _disk_cache() -> dict[str, list]:
    try:
        return json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


_pending: dict[str, list] = {}
_used: set[str] = set()
MAX_CACHED = 4000  # older versions of edited modules are dropped beyond this


def statements(text: str) -> tuple[Statement, ...]:
    """The import statements of a module's source text. Parsing every module of a stage costs ~0.5 s per
    process, so results are kept on disk keyed by the text's SHA-256 (exact: any edit is a new key)."""
    key = hashlib.sha256(text.encode()).hexdigest()
    _used.add(key)
    raw = _disk_cache().get(key)
    if raw is None:
        found = _parse(text)
        _pending[key] = [list(st[:3]) + [[list(n) for n in st.names], st.top_level] for st in found]
        return found
    return tuple(Statement(k, m, lv, tuple((a, b) for a, b in names), top) for k, m, lv, names, top in raw)


def save_statement_cache() -> None:
    """Write the statements parsed in this process to the disk cache (atomically; skipped when not
    writable)."""
    if not _pending:
        return
    merged = {**_disk_cache(), **_pending}
    if len(merged) > MAX_CACHED:
        merged = {k: v for k, v in merged.items() if k in _used}
    path = _cache_path()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".imports-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(merged, fh)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return
    _disk_cache().update(_pending)
    _pending.clear()


class ImportGraph:
    """Modules of the package under ``root`` (the folder holding ``tvquant_assets/``) and what each imports."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def file(self, module: str) -> Path | None:
        base = self.root.joinpath(*module.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None

    @functools.cache  # noqa: B019 - one graph per root, kept for the process
    def _statements(self, module: str) -> tuple[Statement, ...]:
        return statements(self.source(module))

    def source(self, module: str) -> str:
        return self.file(module).read_text(encoding="utf-8")

    def _is_package(self, module: str) -> bool:
        path = self.file(module)
        return path is not None and path.name == "__init__.py"

    def _reexports(self, package: str) -> dict[str, str]:
        """Names a package's ``__init__.py`` imports from elsewhere (name -> module it comes from)."""
        out = {}
        for st in self._statements(package):
            if st.top_level and st.kind == "from":
                base = self._absolute(package, st, is_package=True)
                for name, asname in st.names:
                    out[asname or name] = self._resolve_from(base, name)
        return out

    def _absolute(self, module: str, st: Statement, is_package: bool) -> str:
        if not st.level:
            return st.module or ""
        parts = module.split(".")
        parts = parts if is_package else parts[:-1]
        parts = parts[: len(parts) - st.level + 1]
        return ".".join([*parts, *([st.module] if st.module else [])])

    def _resolve_from(self, base: str, name: str) -> str:
        """The module that ``from base import name`` depends on."""
        if self.file(f"{base}.{name}") is not None:  # a submodule
            return f"{base}.{name}"
        if self._is_package(base):
            target = self._reexports(base).get(name)
            if target is not None and target != base:
                return target
        return base

    @functools.cache  # noqa: B019
    def imports(self, module: str) -> frozenset[tuple[str, str]]:
        """``(package module, name)`` pairs ``module`` imports, anywhere in its text (name "" for a whole
        module)."""
        out: set[tuple[str, str]] = set()
        is_package = self._is_package(module)
        for st in self._statements(module):
            if st.kind == "import":
                out.update((name, "") for name, _ in st.names)
            else:
                base = self._absolute(module, st, is_package)
                out.update((self._resolve_from(base, name), name) for name, _ in st.names)
        return frozenset(p for p in out if p[0].split(".")[0] == PACKAGE and self.file(p[0]) is not None)

    def closure(self, modules: Iterable[str], plugins: dict[tuple[str, str], list[str]] | None = None) -> list[str]:
        """``modules`` and everything they import, transitively (with the modules ``plugins`` names wherever
        one of its loaders is imported), sorted."""
        plugins = plugins or {}
        seen: set[str] = set()
        pending = list(modules)
        while pending:
            m = pending.pop()
            if m in seen or self.file(m) is None:
                continue
            seen.add(m)
            for pair in sorted(self.imports(m)):
                pending += [pair[0], *plugins.get(pair, [])]
        return sorted(seen)


def stage_modules(stage: str, manifest: Manifest, root: Path = PACKAGE_ROOT.parent) -> list[str]:
    """Every package module the code of ``stage`` runs for ``manifest``."""
    return _graph(Path(root)).closure([f"{PACKAGE}.stages.{stage}", *ALWAYS], _plugins(manifest))


EVERYTHING = "*"
UNHASHED = frozenset({"name", "description"})  # the asset key's own name; prose
# What each stage's own code reads of the manifest: dotted paths of fields (a path covers everything under
# it). Its code version hashes these and those of every stage upstream of it (``stage_sections``).
# What the trailing price window reads (``RunContext.window_start``, ``lookback_rows``, the warm-up bars).
WINDOW = ("calendar", "start", "source", "universe.min_history_days", "estimation.lookback",
          "regime.growth_window", "regime.hmm_window", "regime.long_window", "regime.metrics_window",
          "regime.regret.apply", "regime.weights", "selection.correlation_lookbacks", "selection.momentum_lookback",
          "selection.momentum_skip", "selection.short.enabled", "selection.short.slope_window",
          "selection.short.trend_window", "selection.windows")
# The stage's code and its checks' (``defs/checks.py``). The audit seals the manifest hash: everything.
SECTIONS: dict[str, tuple[str, ...]] = {
    "catalog": ("calendar", "start", "source", "universe"),
    "prices": ("calendar", "start", "source", "quality"),
    "scan": (*WINDOW, "universe"),
    "regime": (*WINDOW, "regime", "regime_presets", "tournament.adaptive", "backtest.costs"),
    "selection": (*WINDOW, "selection", "regime_presets", "quality", "tournament.book"),
    "estimation": (*WINDOW, "estimation", "tournament.book"),
    "tournament": (*WINDOW, "tournament", "rebalance", "regime_presets", "selection.linkage", "quality"),
    "backtest": ("calendar", "start", "source", "backtest", "benchmark", "rebalance", "quality"),
    "drift": ("calendar", "start", "source", "backtest", "rebalance"),
    "audit": (EVERYTHING,),
    "regime_regret": ("calendar", "start", "rebalance", "regime", "regime_presets", "backtest", "tournament"),
    "verdict": ("calendar", "start", "backtest", "tournament"),
}


def covered(path: str, declared) -> bool:
    """Whether a read of ``path`` is inside ``declared`` (a path covers the fields under it)."""
    if path.split(".")[0] in UNHASHED or EVERYTHING in declared:
        return True
    return any(path == d or path.startswith(f"{d}.") for d in declared)


def stage_sections(stage: str) -> frozenset[str] | None:
    """The manifest fields ``stage``'s output can depend on: its own ``SECTIONS`` and those of every stage
    it reads (same-date upstream, previous dates), transitively; None when any of them is undeclared or
    reads everything."""
    from tvquant_assets.stages import MODULES

    out: set[str] = set()
    pending, seen = [str(stage)], set()
    while pending:
        s = pending.pop()
        if s in seen:
            continue
        seen.add(s)
        declared = SECTIONS.get(s)
        if declared is None or EVERYTHING in declared:
            return None
        out.update(declared)
        pending += [str(u) for u in (*MODULES[s].SPEC.upstream, *MODULES[s].SPEC.previous)]
    return frozenset(out)


def _at(dump, path: str):
    for key in path.split("."):
        dump = dump.get(key) if isinstance(dump, dict) else None
    return dump


def config_hash(stage: str, manifest: Manifest) -> str:
    """The hash of the manifest fields ``stage`` depends on (:func:`stage_sections`), or the manifest hash."""
    sections = stage_sections(stage)
    if sections is None:
        return manifest_hash(manifest)
    dump = manifest.model_dump(mode="json")
    return obj_hash({p: _at(dump, p) for p in sorted(sections)})


def code_version(stage: str, manifest: Manifest, root: Path = PACKAGE_ROOT.parent) -> str:
    """16 hex digits over the manifest fields the stage depends on (:func:`config_hash`) and the source of
    every module :func:`stage_modules` lists."""
    graph = _graph(Path(root))
    digest = hashlib.sha256(config_hash(stage, manifest).encode())
    for module in stage_modules(stage, manifest, root):
        digest.update(f"\0{module}\0".encode())
        digest.update(graph.source(module).encode())
    save_statement_cache()
    return digest.hexdigest()[:16]


@functools.cache
def _graph(root: Path) -> ImportGraph:
    return ImportGraph(root)
