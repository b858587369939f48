"""``docs/manifest.md`` generated from the pydantic schema: every field, its type, default and meaning.

Regenerate after changing the schema (a test fails until the committed file matches)::

    uv run tvquant manifests docs --write
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import json
import re
import types
import typing
from pathlib import Path

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from tvquant_assets.manifest.schema import Manifest

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "manifest.md"
REGENERATE = "uv run tvquant manifests docs --write"

HEADER = f"""# Manifest reference

<!-- Generated from tvquant_assets/manifest/schema.py by `{REGENERATE}`; do not edit by hand. -->

A manifest is one YAML file in `manifests/` describing one pipeline instance: where prices come from,
which universe to scan, how to select, detect regimes, estimate, optimize and backtest. The file name
must equal its `name`. Unknown keys are errors; fields marked **required** have no default, all others
may be left out. `tvquant manifests validate` reports every problem as one line naming the field.
The reader (`manifest/reader.py`) also refuses what YAML allows but a manifest must not: a key repeated
in one mapping, NaN or infinity, numbers beyond 1e15 in magnitude, text that is not UTF-8 or holds a NUL
or control character, files over 1 MB, nesting deeper than 64 levels, more than 100 aliases, or aliases
that expand to more than 200,000 values. `synthetic` needs `start` before `end`; `selection.min_symbols`
may not exceed `selection.max_symbols`.

Each section lists the fields of one block; a field whose type is another block links to it.
"""


def _is_model(t) -> bool:
    return inspect.isclass(t) and issubclass(t, BaseModel)


def _anchor(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "manifest"


def _choices(t) -> list | None:
    """The allowed values of a Literal, an Enum, or a union of them; None for other types."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Literal:
        return list(args)
    if inspect.isclass(t) and issubclass(t, enum.Enum):
        return [m.value for m in t]
    if origin in (typing.Union, types.UnionType) and type(None) not in args:
        parts = [_choices(a) for a in args]
        if all(p is not None for p in parts):
            return list(dict.fromkeys(v for p in parts for v in p))
    return None


def type_name(t, links: dict[type, str] | None = None) -> str:
    """A reader's name for an annotation: 'integer', 'one of `a`, `b`', 'list of ...'."""
    links = links or {}
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Annotated:
        return type_name(args[0], links)
    choices = _choices(t)
    if choices is not None:
        return "one of " + ", ".join(f"`{json.dumps(c) if not isinstance(c, str) else c}`" for c in choices)
    if origin in (typing.Union, types.UnionType):
        non_null = [a for a in args if a is not type(None)]
        models = [a for a in non_null if _is_model(a)]
        if models and len(models) == len(non_null) and len(models) > 1:
            text = " or ".join(type_name(a, links) for a in models)
        else:
            text = " or ".join(type_name(a, links) for a in non_null)
        return text + (" or null" if len(non_null) < len(args) else "")
    if origin in (list, tuple, set, frozenset):
        return f"list of {type_name(args[0], links)}" if args else "list"
    if origin is dict:
        return f"mapping of {type_name(args[0], links)} to {type_name(args[1], links)}"
    if _is_model(t):
        target = links.get(t)
        return f"[{t.__name__}](#{target})" if target else t.__name__
    return {int: "integer", float: "number", str: "string", bool: "boolean", dt.date: "date (YYYY-MM-DD)",
            type(None): "null"}.get(t, getattr(t, "__name__", str(t)))


def _constraints(info: FieldInfo) -> str:
    parts = []
    bounds = ((annotated_types.Ge, "ge", ">="), (annotated_types.Gt, "gt", ">"), (annotated_types.Le, "le", "<="),
              (annotated_types.Lt, "lt", "<"))
    for meta in info.metadata:
        for cls, attr, sym in bounds:
            if isinstance(meta, cls):
                parts.append(f"{sym} {getattr(meta, attr)}")
        if isinstance(meta, annotated_types.MinLen):
            parts.append(f"at least {meta.min_length} item(s)")
        if isinstance(meta, annotated_types.MaxLen):
            parts.append(f"at most {meta.max_length} item(s)")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    value = info.default_factory() if info.default_factory is not None else info.default
    if value is PydanticUndefined:
        return "**required**"
    if isinstance(value, BaseModel):
        dumped = value.model_dump(mode="json", exclude_defaults=True)
        return "see its section" if not dumped else f"`{json.dumps(dumped, separators=(', ', ': '))}`"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return "`" + json.dumps([v.model_dump(mode="json") for v in value], separators=(", ", ": ")) + "`"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, dt.date):
        return f"`{value.isoformat()}`"
    return f"`{json.dumps(value, default=str)}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _models(model: type[BaseModel], path: str, out: list[tuple[str, type[BaseModel]]]) -> None:
    """Depth-first list of (yaml path, model) for every block reachable from ``model``."""
    out.append((path, model))
    for name, info in model.model_fields.items():
        sub = f"{path}.{name}" if path else name
        for t in _nested_models(info.annotation):
            label = sub
            if _is_union_of_models(info.annotation):
                kind = t.model_fields.get("kind")
                label = f"{sub} (kind: {kind.default})" if kind is not None else f"{sub} ({t.__name__})"
            elif typing.get_origin(info.annotation) is list or typing.get_origin(info.annotation) is dict:
                label = f"{sub}[]" if typing.get_origin(info.annotation) is list else f"{sub}.<key>"
            if all(m is not t for _, m in out):
                _models(t, label, out)


def _nested_models(t) -> list[type[BaseModel]]:
    if _is_model(t):
        return [t]
    return [m for a in typing.get_args(t) for m in _nested_models(a)]


def _is_union_of_models(t) -> bool:
    return typing.get_origin(t) in (typing.Union, types.UnionType) and len(_nested_models(t)) > 1


def meaning(info: FieldInfo) -> str:
    """The field's description, else (for a field holding one block) the block's docstring summary."""
    if (info.description or "").strip():
        return info.description.strip()
    models = _nested_models(info.annotation)
    if len(models) == 1 and models[0].__doc__ and typing.get_origin(info.annotation) is None:
        return inspect.cleandoc(models[0].__doc__).split("\n\n")[0].replace("\n", " ")
    return ""


def missing_descriptions(model: type[BaseModel] = Manifest) -> list[str]:
    """Fields without a meaning, as yaml paths (the docs would leave them blank)."""
    blocks: list[tuple[str, type[BaseModel]]] = []
    _models(model, "", blocks)
    return [f"{path + '.' if path else ''}{name} ({m.__name__})" for path, m in blocks
            for name, info in m.model_fields.items() if not meaning(info)]


def render(model: type[BaseModel] = Manifest) -> str:
    blocks: list[tuple[str, type[BaseModel]]] = []
    _models(model, "", blocks)
    links = {m: _anchor(path) for path, m in blocks}
    lines = [HEADER]
    for path, m in blocks:
        title = path or "manifest (top level)"
        lines.append(f'<a id="{links[m]}"></a>\n\n## `{title}`\n')
        doc = inspect.cleandoc(m.__doc__ or "")
        if doc and not doc.startswith(("A base class", "Usage docs")):
            lines.append(doc + "\n")
        lines.append("| field | type | default | meaning |")
        lines.append("|---|---|---|---|")
        for name, info in m.model_fields.items():
            typ = type_name(info.annotation, links)
            extra = _constraints(info)
            if extra:
                typ = f"{typ} ({extra})"
            lines.append(f"| `{name}` | {_cell(typ)} | {_cell(_default(info))} | {_cell(meaning(info))} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write(path: Path | str = DOC_PATH) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render(), encoding="utf-8")
    return p


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
