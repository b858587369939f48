"""Load and validate manifests; every problem becomes one readable line."""

from __future__ import annotations

import typing
from pathlib import Path

from pydantic import ValidationError

from tvquant_assets.errors import ManifestError
from tvquant_assets.hashing import obj_hash
from tvquant_assets.manifest.reader import load_yaml, read_text
from tvquant_assets.manifest.schema import Manifest

MANIFEST_DIR_ENV = "TVQUANT_MANIFESTS"


def default_manifest_dir() -> Path:
    import os

    env = os.environ.get(MANIFEST_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "manifests"


def _allowed(err: dict) -> str:
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        return f" (allowed: {ctx['expected']})"
    if "pattern" in ctx:
        return f" (allowed: text matching {ctx['pattern']})"
    return ""


def _location(loc: tuple) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in ("bundled", "synthetic", "tradingview", "files") and parts and parts[-1].startswith("source"):
            continue  # discriminated-union tag adds nothing for the reader
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


def format_validation_error(path: Path | str, exc: ValidationError) -> list[str]:
    lines: list[str] = []
    bad_keys: dict[str, list[str]] = {}  # a mapping key that is none of the allowed names (one line per key)
    for err in exc.errors():
        raw_loc = tuple(err["loc"])
        if "[key]" in raw_loc:
            loc = _location(raw_loc[:raw_loc.index("[key]")])
            allowed = (err.get("ctx") or {}).get("expected")
            bad_keys.setdefault(loc, [])
            if allowed and allowed not in bad_keys[loc]:
                bad_keys[loc].append(allowed)
            continue
        loc = _location(raw_loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field; remove it or fix its spelling"
        elif err["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{path}: {loc}: {msg}{_allowed(err)}")
    for loc, allowed in bad_keys.items():
        names = ", ".join(dict.fromkeys(n.strip() for a in allowed for n in a.replace(" or ", ", ").split(",")))
        lines.append(f"{path}: {loc}: unknown key" + (f" (allowed: {names})" if names else ""))
    return lines


def parse_manifest(text: str, path: Path | str = "<string>") -> Manifest:
    raw = load_yaml(text, path)  # bounded: aliases, depth, size; duplicate keys, NaN/inf refused
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: (top level): must be a mapping of fields, got {type(raw).__name__}")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ManifestError("\n".join(format_validation_error(path, exc))) from None
    _check_engines(manifest, path)
    from tvquant_assets.manifest.rules import problems  # cross-field combinations, one line each

    broken = problems(manifest)
    if broken:
        raise ManifestError("\n".join(f"{path}: {line}" for line in broken))
    return manifest


def _check_engines(manifest: Manifest, path: Path | str) -> None:
    from tvquant_assets.core.engines import ENGINES, LONG_SHORT_PROFILES, refusals  # declarations: no engine import

    problems = []
    long_only = manifest.tournament.constraints.long_only
    for i, cand in enumerate(manifest.tournament.candidates):
        if cand.engine not in ENGINES:
            problems.append(
                f"{path}: tournament.candidates[{i}].engine: unknown engine {cand.engine!r} "
                f"(allowed: {', '.join(sorted(ENGINES))})"
            )
        elif cand.profile.value not in ENGINES.info(cand.engine).profiles:
            problems.append(
                f"{path}: tournament.candidates[{i}].profile: engine {cand.engine!r} does not support "
                f"{cand.profile.value!r} (allowed: {', '.join(ENGINES.info(cand.engine).profiles)})"
            )
        elif not long_only and cand.engine != "adaptive" \
                and cand.profile.value not in ENGINES.info(cand.engine).long_short:
            problems.append(
                f"{path}: tournament.candidates[{i}]: {cand.name} is long-only but tournament.constraints."
                f"long_only is false; remove it or use one of "
                f"{', '.join(f'{e}/{p}' for e, ps in LONG_SHORT_PROFILES.items() for p in ps)}"
            )
    problems += [f"{path}: {line}" for line in refusals(manifest)]
    problems.extend(_book_problems(manifest, path))
    if problems:
        raise ManifestError("\n".join(problems))


def _book_problems(manifest: Manifest, path: Path | str) -> list[str]:
    """The books traded (``tournament.book``) against the selection, the candidates and the simulators."""
    from tvquant_assets.core.book_limits import JOINT_PROFILES, book_refusal

    m, book = manifest, manifest.book
    c = m.tournament.constraints
    out = []
    scans = getattr(m.source, "scans", None) or []
    short_side = m.selection.short.enabled or any(s.direction == "short" for s in scans)
    long_side = not scans or any(s.direction == "long" for s in scans)
    if book in ("short", "long_short") and not short_side:
        out.append(f"{path}: tournament.book: {book} needs a short book: set selection.short.enabled or a "
                   f"source scan with direction: short")
    if book in ("long", "long_short") and not long_side:
        out.append(f"{path}: tournament.book: {book} needs a long book but every source scan is direction: short")
    if book != "long" and not c.long_only:
        out.append(f"{path}: tournament.constraints.long_only: false (free signs on the long book) cannot be "
                   f"combined with tournament.book {book}; remove it")
    if book == "long_short" and not -c.gross < c.net < c.gross:
        out.append(f"{path}: tournament.constraints: book long_short needs -gross < net < gross "
                   f"(gross {c.gross:g}, net {c.net:g}; 130/30 is net 1, gross 1.6)")
    capped = c.cluster_cap is not None or any(p.cluster_cap is not None for p in m.regime_presets.values())
    for i, cand in enumerate(m.tournament.candidates):
        why = book_refusal(cand.engine, cand.profile.value, book)
        if why:
            out.append(f"{path}: tournament.candidates[{i}]: {cand.name} cannot run on tournament.book {book}: {why}")
        elif book == "long_short" and capped and cand.profile.value in JOINT_PROFILES:
            out.append(f"{path}: tournament.candidates[{i}]: {cand.name} over both books cannot honour "
                       f"tournament.constraints.cluster_cap (or a preset's cluster_cap); per-book profiles can")
    if any(v < 0 for v in m.backtest.borrow_bps_by_class.values()):
        out.append(f"{path}: backtest.borrow_bps_by_class: rates must be >= 0")
    return out


def load_manifest(path: Path | str) -> Manifest:
    """Read one manifest file; raises ManifestError with one line per problem."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: no such manifest file; list them with 'tvquant manifests list'")
    manifest = parse_manifest(read_text(p), p)
    if manifest.name != p.stem:
        raise ManifestError(f"{p}: name: {manifest.name!r} must equal the file name without .yaml ({p.stem!r})")
    manifest = _relative_to(manifest, p.resolve().parent)
    _check_catalog_columns(manifest, p)
    return manifest


def _relative_to(manifest: Manifest, folder: Path) -> Manifest:
    """File paths of a ``files`` source (and a benchmark file) are relative to the manifest's folder."""
    import os

    def absolute(value):
        return value if value is None or os.path.isabs(os.path.expanduser(value)) else str(folder / value)

    update = {}
    if manifest.source.kind == "files":
        src = manifest.source
        update["source"] = src.model_copy(update={"prices": absolute(src.prices), "catalog": absolute(src.catalog)})
    bench = getattr(manifest, "benchmark", None)
    if bench is not None and getattr(bench, "file", None):
        update["benchmark"] = bench.model_copy(update={"file": absolute(bench.file)})
    return manifest.model_copy(update=update) if update else manifest


def _check_catalog_columns(manifest: Manifest, path: Path) -> None:
    """A files source's catalog must have the columns the manifest's features read (when the file exists)."""
    import os

    src = manifest.source
    if src.kind != "files" or src.catalog is None or not os.path.isfile(src.catalog):
        return
    from tvquant_assets.sources.files import catalog_columns

    have = catalog_columns(src.catalog)
    missing = {f: c for f, c in manifest.catalog_needs().items() if c not in have}
    if missing:
        columns = ", ".join(sorted(set(missing.values())))
        raise ManifestError(f"{path}: {', '.join(missing)}: read the catalog's {columns}, "
                            f"which {src.catalog} does not have (columns: {', '.join(sorted(have))})")


def resolve_manifest(name_or_path: str | Path) -> tuple[Path, Manifest]:
    """Accept a path, or a bare name looked up in the manifests directory."""
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = default_manifest_dir() / f"{name_or_path}.yaml"
    return p, load_manifest(p)


def discover_manifests(directory: Path | str | None = None) -> list[Path]:
    d = Path(directory) if directory else default_manifest_dir()
    return sorted([*d.glob("*.yaml"), *d.glob("*.yml")])


def validate_files(paths: typing.Iterable[Path | str]) -> list[str]:
    """Every problem across the files, one line each (empty when all are valid)."""
    problems: list[str] = []
    for path in paths:
        try:
            load_manifest(path)
        except ManifestError as exc:
            problems.extend(str(exc).splitlines())
    return problems


def manifest_hash(manifest: Manifest) -> str:
    """Stable content hash of the normalized manifest (defaults filled, formatting irrelevant)."""
    return obj_hash(manifest.model_dump(mode="json"))
