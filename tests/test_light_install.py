"""`make demo` needs only the core: the demo runs with torch, Flower, ray, scikit-learn and
matplotlib unimportable, and the Makefile's demo target installs nothing beyond the core."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "flwr", "ray", "sklearn", "matplotlib", "pytest", "hypothesis")


def test_the_demo_runs_without_the_heavy_packages():
    blocked = ", ".join(f"{name!r}: None" for name in HEAVY)
    code = (f"import sys; sys.modules.update({{{blocked}}}); from lepton_secagg.cli import main; "
            "sys.exit(main(['demo', '-n', '8', '-m', '100', '--seed', '1', '-q']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "decoded sum == plaintext sum of the included inputs: OK" in proc.stdout


def _recipe(makefile: str, target: str) -> tuple[str, str]:
    """(prerequisites, recipe lines) of ``target``."""
    match = re.search(rf"^{re.escape(target)}:([^\n]*)\n((?:\t[^\n]*\n)*)", makefile, re.M)
    assert match, f"no rule for {target} in the Makefile"
    return match.group(1), match.group(2)


def test_make_demo_installs_the_core_only_and_make_test_everything():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    prerequisites, _ = _recipe(makefile, "demo")
    assert prerequisites.split() == ["$(CORE)"]
    _, core = _recipe(makefile, "$(CORE)")
    assert "pip install --quiet -e .\n" in core
    assert not any(word in core for word in ("torch", "flwr", "[dev]", "requirements-flower"))
    prerequisites, full = _recipe(makefile, "$(STAMP)")
    assert "$(CORE)" in prerequisites.split()  # make test after make demo still installs the rest
    assert all(word in full for word in ('"torch==2.13.0"', '".[dev]"', "requirements-flower.txt", '"flwr==1.42.0"'))
    assert _recipe(makefile, "test")[0].split() == ["$(STAMP)"]
