"""The package builds and works without a C compiler (the extension is optional)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_failed_compiler_still_leaves_a_working_package(tmp_path, kernel_backend):
    if kernel_backend.__name__.endswith("_native") and not os.environ.get("LEPTON_SECAGG_PUREPYTHON"):
        pytest.skip("one build is enough: it runs in the C backend pass")
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "*.so", "__pycache__", ".hypothesis"))
    env = dict(os.environ, CC="false", LDSHARED="false")
    env.pop("LEPTON_SECAGG_PUREPYTHON", None)
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("lepton_secagg-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "_speedups" in n and not n.endswith(".pyi")], "the extension was built after all"
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True, timeout=300)
    probe = (
        "import numpy as np, lepton_secagg as ls, lepton_secagg._kernels as k;"
        "assert ls.__file__.startswith(%r), ls.__file__;"
        "cfg = ls.Config(num_clients=4, vector_length=8, threshold=3);"
        "x = [np.arange(8, dtype=np.uint32)] * 4;"
        "r = ls.testing.simulate(cfg, x, {1: 'share_keys'}, seed=1);"
        "assert (r.sum == 3 * x[0]).all(); print(k.BACKEND)" % str(target)
    )
    # cwd away from the checkout: ``python -c`` puts the working directory first on sys.path.
    out = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ, PYTHONPATH=str(target)), cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "python"
