"""Registries of sources, engines and simulators: one line per entry, imported on first use.

An entry names its implementation as ``"package.module:attribute"`` (the full dotted module path, so the
string also says which file it lives in) and may carry declared metadata (an :class:`Entry` subclass, e.g.
an engine's profiles), which is read without importing anything: manifests validate fast. An unknown name
or an unknown constructor parameter is a :class:`RegistryError` (a ``ValueError``) of one line.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tvquant_assets.errors import RegistryError


@dataclass(frozen=True)
class Entry:
    """Where a registered implementation lives: ``"package.module:attribute"``."""

    target: str

    def __post_init__(self) -> None:
        module, _, attribute = self.target.partition(":")
        if not module or not attribute or ":" in attribute:
            raise RegistryError(f"registry target {self.target!r} is not 'package.module:attribute'")


class Registry:
    """Names -> :class:`Entry` (a plain string is an entry without metadata), in declaration order.

    ``name in registry``, iteration and ``len`` see the names without importing anything; :meth:`load`
    imports the attribute, :meth:`create` calls it with checked keyword parameters.
    """

    def __init__(self, kind: str, entries: Mapping[str, str | Entry]) -> None:
        self.kind = kind
        self._entries = {name: Entry(e) if isinstance(e, str) else e for name, e in entries.items()}

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def info(self, name: str) -> Entry:
        """The entry registered under ``name`` (its target and declared metadata); nothing is imported."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise RegistryError(f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(self))}") from None

    def module(self, name: str) -> str:
        """The dotted path of the module ``name`` lives in; nothing is imported."""
        return self.info(name).target.partition(":")[0]

    def load(self, name: str) -> Any:
        """Import and return the attribute registered under ``name``."""
        module, _, attribute = self.info(name).target.partition(":")
        try:
            return getattr(importlib.import_module(module), attribute)
        except AttributeError:
            raise RegistryError(f"{self.kind} {name!r}: module {module} has no attribute {attribute!r}") from None

    def create(self, name: str, **params: Any) -> Any:
        """Call the attribute registered under ``name`` with ``params``, after checking that it takes
        every one of them by keyword (a parameter it does not take is an error, never dropped)."""
        factory = self.load(name)
        accepted = [p for p in inspect.signature(factory).parameters.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.VAR_KEYWORD)]
        if not any(p.kind == p.VAR_KEYWORD for p in accepted):
            names = [p.name for p in accepted]
            unknown = [k for k in params if k not in names]
            if unknown:
                raise RegistryError(
                    f"{self.kind} {name!r} takes no parameter{'s' if len(unknown) > 1 else ''} "
                    f"{', '.join(map(repr, unknown))} (accepted: {', '.join(names) or 'none'})")
        return factory(**params)
