"""The example scripts run as written (subprocess, small sizes) and report success.

They run in a subprocess, so the kernel backend fixture does not reach them:
they run in the first backend pass only.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _first_pass_only(kernel_backend):
    if kernel_backend.__name__.endswith("_speedups"):
        pytest.skip("subprocess examples do not depend on the kernel backend; run once")


def _run(*args, timeout=180):
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_torch_masking_example():
    pytest.importorskip("torch")
    out = _run(EXAMPLES / "torch_masking.py", "--quick")
    last = json.loads(out.strip().splitlines()[-1])
    assert last["ok"] is True and last["included"] == [0, 2] and last["max_error"] <= last["step"]
    assert "masks cancel in the sum: True" in out


def test_fedavg_hospitals_example(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    out = _run(EXAMPLES / "fedavg_hospitals.py", "--quick", "--workdir", tmp_path)
    last = json.loads(out.strip().splitlines()[-1])
    assert last["ok"] is True and last["rounds"] == 2 and last["versions"] == 3
    assert (tmp_path / "hospital0_train.csv").read_text().splitlines()[0].endswith(",label")
    assert (tmp_path / "progress.png").read_bytes()[:4] == b"\x89PNG"
    assert last["workdir"] == str(tmp_path) and last["plot"] == str(tmp_path / "progress.png")  # where it says it left them
    assert last["audit_log"] == str(tmp_path / "audit.jsonl") and (tmp_path / "audit.jsonl").stat().st_size > 0
    assert "round 2: federated accuracy" in out


def test_demo_loopback_example():
    out = _run(EXAMPLES / "demo_loopback.py", "12", "200")  # 3 of its clients crash: n = 12 keeps t reachable
    assert "sum matches the plaintext sum: True" in out
