"""docs/manifest.md is generated from the schema and must match it; every field says what it means."""

from pathlib import Path

from tvquant_assets.manifest.docs import DOC_PATH, REGENERATE, missing_descriptions, render, type_name
from tvquant_assets.manifest.schema import Manifest

ROOT = Path(__file__).resolve().parents[2]


def test_committed_manifest_reference_is_up_to_date():
    assert DOC_PATH == ROOT / "docs" / "manifest.md"
    assert DOC_PATH.read_text(encoding="utf-8") == render(), f"docs/manifest.md is stale: run `{REGENERATE}`"


def test_every_field_has_a_description():
    missing = missing_descriptions()
    assert missing == [], f"add Field(description=...) in tvquant_assets/manifest/schema.py for: {missing}"


def test_reference_lists_every_field_with_type_and_default():
    page = render()
    for name in Manifest.model_fields:
        assert f"| `{name}` |" in page
    assert "| `max_weight` | number (> 0.0, <= 1.0) | `0.35` |" in page
    assert "| `start` | date (YYYY-MM-DD) | **required** |" in page
    assert "one of `ward`, `average`, `complete`, `single`" in page
    # nested blocks are linked and have their own section
    assert "[SelectionConfig](#selection)" in page and '<a id="selection-linkage"></a>' in page
    assert type_name(int | None) == "integer or null"
    assert type_name(list[str]) == "list of string"
