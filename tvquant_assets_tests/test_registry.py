"""Registry: lazy imports, declared metadata, unknown names and parameters are one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tvquant_assets.errors import RegistryError
from tvquant_assets.registry import Entry, Registry


@dataclass(frozen=True)
class Tagged(Entry):
    tags: tuple[str, ...] = ()


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """A registry over a throwaway module, so importing it can be observed."""
    (tmp_path / "tvq_plugin_mod.py").write_text(
        "def make(alpha, *, beta=2):\n    return ('made', alpha, beta)\n\n"
        "def anything(**kw):\n    return kw\n\n"
        "class Thing:\n    def __init__(self, size=1):\n        self.size = size\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tvq_plugin_mod", raising=False)
    return Registry("plugin", {
        "make": "tvq_plugin_mod:make",
        "thing": Tagged("tvq_plugin_mod:Thing", tags=("a", "b")),
        "any": "tvq_plugin_mod:anything",
        "missing": "tvq_plugin_mod:nothing",
    })


def test_names_and_metadata_do_not_import(plugins):
    assert plugins.names == ("make", "thing", "any", "missing") and list(plugins) == list(plugins.names)
    assert "thing" in plugins and "nope" not in plugins and len(plugins) == 4
    assert plugins.info("thing").tags == ("a", "b") and plugins.info("make") == Entry("tvq_plugin_mod:make")
    assert "tvq_plugin_mod" not in sys.modules
    assert plugins.load("make")("x") == ("made", "x", 2)
    assert "tvq_plugin_mod" in sys.modules


def test_create_checks_every_parameter(plugins):
    assert plugins.create("make", alpha=1, beta=3) == ("made", 1, 3)
    assert plugins.create("thing", size=4).size == 4
    assert plugins.create("any", whatever=1) == {"whatever": 1}  # **kwargs takes anything
    with pytest.raises(RegistryError) as err:
        plugins.create("thing", size=1, colour="red")
    assert str(err.value) == "plugin 'thing' takes no parameter 'colour' (accepted: size)"
    with pytest.raises(RegistryError, match=r"^plugin 'make' takes no parameters 'x', 'y' \(accepted: alpha, beta\)$"):
        plugins.create("make", alpha=1, x=1, y=2)


def test_unknown_name_and_bad_entries_are_one_line_errors(plugins):
    for call in (plugins.info, plugins.load, plugins.create):
        with pytest.raises(RegistryError) as err:
            call("nope")
        assert str(err.value) == "unknown plugin 'nope'; registered: any, make, missing, thing"
    assert isinstance(err.value, ValueError)  # callers catching ValueError keep working
    with pytest.raises(RegistryError, match="plugin 'missing': module tvq_plugin_mod has no attribute 'nothing'"):
        plugins.load("missing")
    with pytest.raises(RegistryError, match="is not 'package.module:attribute'"):
        Registry("plugin", {"bad": "tvq_plugin_mod.make"})


def test_registered_targets_exist():
    from tvquant_assets.core.engines import ENGINES
    from tvquant_assets.core.simulators import SIMULATORS
    from tvquant_assets.sources import SOURCES

    root = Path(__file__).resolve().parents[1]
    for registry in (ENGINES, SIMULATORS, SOURCES):
        for name in registry:
            module, _, attribute = registry.info(name).target.partition(":")
            path = root.joinpath(*module.split(".")).with_suffix(".py")
            assert path.is_file(), f"{registry.kind} {name!r}: {path} is missing"
            assert re.search(rf"^(class|def) {attribute}\b", path.read_text(), re.M), f"{attribute} not in {path}"


def test_manifest_validation_imports_no_engine_simulator_or_network_library():
    code = ("import sys\n"
            "from tvquant_assets.manifest import discover_manifests, validate_files\n"
            "assert validate_files(discover_manifests('manifests')) == []\n"
            "heavy = ('skfolio', 'cvxpy', 'riskfolio', 'vectorbt', 'nautilus_trader', 'cvxportfolio', 'websockets',\n"
            "         'requests', 'tvquant_assets.sources.tradingview.source')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
