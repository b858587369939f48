"""The first tvquant command byte-compiles the environment once where PYTHONDONTWRITEBYTECODE is set."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROBE = textwrap.dedent("""
    import sys
    from tvquant_assets import bytecode
    bytecode.SENTINEL = "fakepkg"
    print(bytecode.ensure_compiled(sys.stdout), bytecode.ensure_compiled(sys.stdout))
""")


@pytest.mark.parametrize("dont_write", [True, False])
def test_compiles_once_only_when_python_does_not_write_bytecode(tmp_path: Path, dont_write: bool):
    site = tmp_path / "site"
    (site / "fakepkg").mkdir(parents=True)
    (site / "fakepkg" / "__init__.py").write_text("X = 1\n")
    (site / "other.py").write_text("Y = 2\n")
    (site / "broken.py").write_text("def (:\n")  # a file that does not compile is skipped silently
    (site / "escapes.py").write_text("CSS = 'var(--my-color-\\.)'\n")  # a SyntaxWarning, printed without -W
    repo = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": f"{site}:{repo}", "PATH": "/usr/bin:/bin"}
    if dont_write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    pycs = sorted(p.name.split(".")[0] for p in site.rglob("*.pyc"))
    if dont_write:
        assert out.stdout.splitlines()[-1] == "True False"  # compiled on the first call, not on the second
        assert "byte-compiling the environment once" in out.stdout
        assert pycs == ["__init__", "escapes", "other"]
        assert out.stderr == ""
    else:
        assert out.stdout.strip() == "False False"
        assert "other" not in pycs  # nothing compiled ahead of time: imports cache bytecode themselves
