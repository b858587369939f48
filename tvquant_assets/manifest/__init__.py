from tvquant_assets.manifest.load import (
    discover_manifests,
    load_manifest,
    manifest_hash,
    parse_manifest,
    resolve_manifest,
    validate_files,
)
from tvquant_assets.manifest.schema import Manifest

__all__ = [
    "Manifest",
    "discover_manifests",
    "load_manifest",
    "manifest_hash",
    "parse_manifest",
    "resolve_manifest",
    "validate_files",
]
