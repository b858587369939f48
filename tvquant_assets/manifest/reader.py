"""Read a manifest file's text into plain Python values, refusing what YAML allows but a manifest must not.

Every refusal is one ``ManifestError`` line naming the file and where:

- bytes that are not UTF-8 (``byte N``), a NUL or other control character (``line L, column C``);
- files larger than ``MAX_BYTES``; YAML nesting deeper than ``MAX_DEPTH``; more than ``MAX_ALIASES``
  aliases, or a document whose aliases expand to more than ``MAX_NODES`` nodes (the "billion laughs":
  a few lines that expand to 10^8 leaves pass a schema with an untyped field, then stall a run);
- a key repeated in one mapping (YAML keeps the last one silently: a second ``tournament:`` block would
  replace the first);
- NaN or infinity anywhere, and numbers beyond ``MAX_MAGNITUDE`` (``momentum_lookback: 1e20`` overflows
  int64 far downstream), naming the field.

The expanded size is counted on the composed node graph with memoization (linear in the document), so
the bomb is refused before anything is built from it.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from tvquant_assets.errors import ManifestError

MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_ALIASES = 100
MAX_NODES = 200_000
MAX_MAGNITUDE = 1e15


def read_text(path: Path | str) -> str:
    """The file as text; one line naming the file and the byte when it is not UTF-8."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{p}: cannot read the manifest: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise ManifestError(f"{p}: {len(data):,} bytes; a manifest is at most {MAX_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{p}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                            f"a manifest is a YAML text file") from None


def _line_col(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {col}"


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and depth while composing and refuses duplicate keys."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0
        self._paths: dict[int, str] = {}
        self._stack: list[str] = []

    def compose_node(self, parent, index):
        name = index.value if isinstance(index, yaml.ScalarNode) else f"[{index}]" if isinstance(index, int) \
            else None
        if name is not None:
            self._stack.append(name)
        try:
            if self.check_event(yaml.AliasEvent):
                self._aliases += 1
                if self._aliases > MAX_ALIASES:
                    raise _Refused(f"{self._where()}: more than {MAX_ALIASES} YAML aliases; write the values out")
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise _Refused(f"{self._where()}: nested deeper than {MAX_DEPTH} levels")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        finally:
            if name is not None:
                self._stack.pop()

    def _where(self) -> str:
        path = "".join(p if p.startswith("[") else f".{p}" for p in self._stack).lstrip(".")
        return path or "(top level)"

    def construct_yaml_timestamp(self, node):
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise _Refused(f"{self._paths.get(id(node)) or '(top level)'}: {node.value!r} is not a valid date "
                           f"({exc})") from None

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:
                    continue  # unhashable key: the base class reports it
                if first != key_node.start_mark.line + 1:
                    raise _Refused(f"{_key_path(self, node)}{key}: key repeated (lines {first} and "
                                   f"{key_node.start_mark.line + 1}); YAML would keep only the last one")
        return super().construct_mapping(node, deep=deep)


def _key_path(loader: _BoundedLoader, node) -> str:
    path = loader._paths.get(id(node), "")
    return f"{path}." if path else ""


class _Refused(Exception):
    pass


def _expanded_sizes(root) -> dict[int, int]:
    """Nodes under each node with every alias expanded, counted without expanding anything."""
    memo: dict[int, int] = {}

    def size(node) -> int:
        got = memo.get(id(node))
        if got is not None:
            return got
        if isinstance(node, yaml.ScalarNode):
            n = 1
        elif isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(c) for c in node.value)
        else:
            n = 1 + sum(size(k) + size(v) for k, v in node.value)
        memo[id(node)] = n
        return n

    size(root)
    return memo


def _largest_field(root, sizes: dict[int, int]) -> str:
    """The deepest field whose expanded value alone exceeds MAX_NODES (where the bomb sits)."""
    path, node = "", root
    while isinstance(node, yaml.MappingNode):
        big = [(k, v) for k, v in node.value if sizes[id(v)] > MAX_NODES]
        if len(big) != 1:
            break
        k, node = big[0]
        path = f"{path}.{getattr(k, 'value', '?')}" if path else str(getattr(k, "value", "?"))
    return path or "(top level)"


def _index_paths(root) -> dict[int, str]:
    """Dotted field path of every node (first place it occurs), for messages."""
    paths: dict[int, str] = {}
    stack = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in paths:
            continue
        paths[id(node)] = path
        if isinstance(node, yaml.ScalarNode):
            continue
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                name = k.value if isinstance(k, yaml.ScalarNode) else "?"
                stack.append((v, f"{path}.{name}" if path else str(name)))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                stack.append((v, f"{path}[{i}]"))
    return paths


def _bad_numbers(value, path: str = ""):
    """(field, problem) of the first NaN, infinity or out-of-range number, depth first."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return path, "NaN is not a number a manifest accepts"
        if math.isinf(value):
            return path, "infinity is not a number a manifest accepts"
    if isinstance(value, (int, float)) and abs(value) > MAX_MAGNITUDE:
        return path, f"{value:g} is out of range (at most {MAX_MAGNITUDE:g} in magnitude)"
    if isinstance(value, dict):
        for k, v in value.items():
            got = _bad_numbers(v, f"{path}.{k}" if path else str(k))
            if got:
                return got
    elif isinstance(value, list):
        for i, v in enumerate(value):
            got = _bad_numbers(v, f"{path}[{i}]")
            if got:
                return got
    return None


def load_yaml(text: str, path: Path | str = "<string>"):
    """Parse one YAML document with the bounds above; ManifestError (one line) otherwise."""
    bad = next((i for i, ch in enumerate(text) if ch == "\x00"), None)
    if bad is not None:
        raise ManifestError(f"{path}: NUL byte at {_line_col(text, bad)}; a manifest is a YAML text file")
    loader = None
    try:
        loader = _BoundedLoader(text)
        root = loader.get_single_node()
        if root is None:
            return None
        sizes = _expanded_sizes(root)
        if sizes[id(root)] > MAX_NODES:
            raise _Refused(f"{_largest_field(root, sizes)}: YAML aliases expand to {sizes[id(root)]:,} values "
                           f"(at most {MAX_NODES:,}); write the values out")
        loader._paths = _index_paths(root)
        value = loader.construct_document(root)
    except _Refused as exc:
        raise ManifestError(f"{path}: {exc}") from None
    except yaml.reader.ReaderError as exc:
        where = _line_col(text, exc.position) if isinstance(exc.position, int) else "an unknown position"
        raise ManifestError(f"{path}: character {exc.character!r} at {where} is not allowed in YAML") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "the start"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"{path}: not valid YAML at {where}: {problem}") from None
    except RecursionError:
        raise ManifestError(f"{path}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    got = _bad_numbers(value)
    if got:
        field, problem = got
        raise ManifestError(f"{path}: {field or '(top level)'}: {problem}")
    return value


_BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", _BoundedLoader.construct_yaml_timestamp)
