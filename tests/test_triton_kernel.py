"""The fused Triton ChaCha20 masking kernel, run in Triton's CPU interpreter.

tests/conftest.py sets ``TRITON_INTERPRET=1`` before anything imports triton,
so the ``@triton.jit`` kernel (and triton's own library functions) run on CPU
tensors in the interpreter: the same kernel source and launch arguments as on
a GPU.  It is checked against the RFC 8439 A.1 keystream vectors (the ones
with the all-zero nonce our masks use; §2.3.2's vector has a non-zero nonce)
and against ``hazmat.masking.add_masks``, which the conftest fixture routes
through the C and the numpy kernel in turn.  The interpreter is slow (about 0.2 s per
program and key step), so each kernel run is cached and checked against every
backend, and the vectors are a few tiles long.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from lepton_secagg.adapters import _triton_chacha20 as tc  # noqa: E402
from lepton_secagg.adapters import torch as lt  # noqa: E402
from lepton_secagg.hazmat import masking  # noqa: E402

if not tc.interpreted():
    pytest.skip(
        "TRITON_INTERPRET is off (tests/conftest.py sets it unless the environment does); "
        "on a GPU, bench/gpu_check.py checks the compiled kernel",
        allow_module_level=True,
    )

WORDS_PER_STREAM = masking.STREAM_LIMITS["chacha20"] // 4  # 2^36 32-bit words
NP_DTYPES = {"u32": np.uint32, "u64": np.uint64}

# RFC 8439 A.1 test vectors #1-#4: (key, block counter, keystream); nonce all zero.
RFC8439_A1 = [
    (
        bytes(32),
        0,
        "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
        "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
        # #2: the same key at counter 1, so one 128-byte run covers both
        "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
        "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f",
    ),
    (
        bytes(31) + b"\x01",
        1,
        "3aeb5224ecf849929b9d828db1ced4dd832025e8018b8160b82284f3c949aa5a"
        "8eca00bbb4a73bdad192b5c42f73f2fd4e273644c8b36125a64addeb006c13a0",
    ),
    (
        b"\x00\xff" + bytes(30),
        2,
        "72d54dfbf12ec44b362692df94137f328fea8da73990265ec1bbbea1ae9af0ca"
        "13b25aa26cb4a648cb9b9d1be65b2c0924a66c54d545ec1b7374f4872e99f096",
    ),
]


def _launch(vector: np.ndarray, keys, signs, offset: int, blocks: int, keys_per_step: int) -> np.ndarray:
    """The kernel on a copy of ``vector`` (uint32/uint64), launched directly with this shape.

    Cached: the conftest runs every test once per kernel backend, and the
    kernel's output does not depend on the backend.
    """
    return _cached_launch(vector.dtype.str, vector.tobytes(), tuple(keys), tuple(signs), offset, blocks, keys_per_step).copy()


@functools.cache
def _cached_launch(dtype, data, keys, signs, offset, blocks, keys_per_step):
    t = lt.as_ring_tensor(np.frombuffer(data, dtype).copy())
    key_words = lt._key_words(torch, keys, t.device)
    sign_masks = torch.tensor([0 if s > 0 else -1 for s in signs], dtype=t.dtype)
    tc.add_masks(t, key_words, sign_masks, offset, blocks=blocks, keys_per_step=keys_per_step)
    return lt.as_ring_numpy(t)


def _random_keys(rng, count):
    keys = [rng.bytes(32) for _ in range(count)]
    signs = [int(s) for s in rng.choice([1, -1], count)]
    return keys, signs


# ---------------------------------------------------------------------------
# RFC 8439 vectors


@pytest.mark.parametrize("dtype", sorted(NP_DTYPES))
@pytest.mark.parametrize("case", range(len(RFC8439_A1)))
def test_rfc8439_a1_keystream_blocks(dtype, case):
    key, counter, hex_stream = RFC8439_A1[case]
    expected = bytes.fromhex(hex_stream)
    npdt = NP_DTYPES[dtype]
    per_block = 64 // np.dtype(npdt).itemsize
    zeros = np.zeros(len(expected) // np.dtype(npdt).itemsize, dtype=npdt)
    added = _launch(zeros, [key], [1], counter * per_block, blocks=4, keys_per_step=1)
    assert added.astype(np.dtype(npdt).newbyteorder("<")).tobytes() == expected


# ---------------------------------------------------------------------------
# parity with the C and numpy kernels

# (dtype, n, offset in elements, keys, blocks per program, keys per step)
CASES = {
    "one element": ("u32", 1, 0, 1, 2, 1),
    "u32 across blocks and tiles": ("u32", 75, 21, 1, 2, 1),  # tiles of 32 words; starts 5 words into block 1
    "u64 across blocks and tiles": ("u64", 37, 13, 1, 2, 1),  # tiles of 16 elements; starts 5 into block 1
    "u32 40 keys": ("u32", 300, 7, 40, 16, 32),  # 2 programs; key steps of 32 and a masked 8
    "u64 40 keys": ("u64", 150, 11, 40, 16, 32),
    "u32 counter past 2^31": ("u32", 40, (1 << 31) * 16 - 20, 2, 2, 2),  # block counters cross the int32 sign bit
    "u64 counter past 2^31": ("u64", 20, (1 << 31) * 8 - 10, 2, 2, 2),
    "u32 end of the stream": ("u32", 30, WORDS_PER_STREAM - 30, 2, 2, 4),
    "u64 end of the stream": ("u64", 15, WORDS_PER_STREAM // 2 - 15, 2, 2, 1),
}


def _case(name):
    """(vector, keys, signs, offset, kernel output) of one of CASES."""
    dtype, n, offset, nkeys, blocks, keys_per_step = CASES[name]
    rng = np.random.default_rng(sorted(CASES).index(name))
    keys, signs = _random_keys(rng, nkeys)
    npdt = NP_DTYPES[dtype]
    vector = rng.integers(0, np.iinfo(npdt).max, size=n, dtype=npdt, endpoint=True)
    return vector, keys, signs, offset, _launch(vector, keys, signs, offset, blocks, keys_per_step)


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_is_bit_identical_to_add_masks(name, kernel_backend):
    vector, keys, signs, offset, output = _case(name)
    expected = masking.add_masks(vector.copy(), keys, signs, "chacha20", offset)
    assert np.array_equal(output, expected)
    assert not np.array_equal(output, vector)


# ---------------------------------------------------------------------------
# the entry point: adapters.torch.add_masks(engine=...)


def test_engine_triton_through_the_adapter(kernel_backend):
    rng = np.random.default_rng(11)
    keys, signs = _random_keys(rng, 2)
    vector = rng.integers(0, 2**32, size=300, dtype=np.uint64).astype(np.uint32)
    expected = masking.add_masks(vector.copy(), keys, signs, "chacha20", 9)
    # a non-contiguous torch.uint32 view: the adapter masks a contiguous copy and writes it back
    base = torch.zeros(600, dtype=torch.int32)
    strided = base[::2]
    strided.copy_(lt.as_ring_tensor(vector.copy()))
    out = lt.add_masks(strided.view(torch.uint32), keys, signs, "chacha20", 9, engine="triton")
    assert np.array_equal(lt.as_ring_numpy(strided), expected)
    assert out.dtype == torch.uint32 and not base[1::2].any()


def test_auto_engine_picks_triton_for_cuda_tensors_only(monkeypatch):
    calls = []
    monkeypatch.setattr(lt.masking, "_triton_add", lambda *args: calls.append(args[2].device.type))
    t = torch.zeros(8, dtype=torch.int32)
    lt.add_masks(t, [bytes(32)], [1])  # auto on the CPU: the C/numpy kernel, never Triton
    assert calls == [] and t.any()
    lt.add_masks(torch.zeros(8, dtype=torch.int32), [bytes(32)], [1], engine="triton")
    assert calls == ["cpu"]
    assert lt._choose_engine("auto", torch.device("cuda"), "chacha20") == "triton"
    assert lt._choose_engine("auto", torch.device("cuda"), "aes128ctr") == "kernel"
    assert lt._choose_engine("auto", torch.device("mps"), "chacha20") == "torch"
    assert lt._choose_engine("auto", torch.device("cpu"), "chacha20") == "kernel"
    monkeypatch.setattr(lt.masking, "_triton_kernel", lambda: None)  # triton not installed: the torch-ops fallback
    assert lt._choose_engine("auto", torch.device("cuda"), "chacha20") == "torch"


@pytest.mark.parametrize(
    ("suite", "patch", "match"),
    [
        ("aes128ctr", None, "chacha20 only"),
        ("chacha20", "no triton", "needs the triton package"),
        ("chacha20", "compiled", "CUDA tensors"),
    ],
)
def test_engine_triton_rejects_what_it_cannot_run(suite, patch, match, monkeypatch):
    if patch == "no triton":
        monkeypatch.setattr(lt.masking, "_triton_kernel", lambda: None)
    elif patch == "compiled":
        monkeypatch.setattr(tc, "interpreted", lambda: False)
    key = bytes(16 if suite == "aes128ctr" else 32)
    with pytest.raises(ValueError, match=match):
        lt.add_masks(torch.zeros(4, dtype=torch.int32), [key], [1], suite, engine="triton")


@functools.cache
def _fresh_interpreter(code: str):
    """``python -c code`` once per test session: (returncode, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_the_adapter_imports_triton_only_when_a_kernel_needs_it():
    code = (
        "import sys, torch\n"
        "from lepton_secagg.adapters import torch as lt\n"
        "lt.add_masks(torch.zeros(4, dtype=torch.int32), [bytes(32)], [1])\n"
        "assert 'triton' not in sys.modules, 'masking a CPU tensor imported triton'\n"
        "print('ok')\n"
    )
    returncode, stdout, stderr = _fresh_interpreter(code)
    assert returncode == 0 and stdout.strip() == "ok", stderr


# ---------------------------------------------------------------------------
# bench/gpu_check.py


@functools.cache
def _smoke_run():
    script = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"
    env = {**os.environ, "PYTHONPATH": str(script.parents[1])}
    proc = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=300, env=env)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.slow  # ~10 s: a fresh interpreter imports torch and triton, then interprets a few launches
def test_gpu_check_smoke_mode_runs_on_the_cpu():
    returncode, stdout, stderr = _smoke_run()
    assert returncode == 0, stderr[-3000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["device"] == "cpu (Triton interpreter)"
    assert report["bit_identical"] is True
    assert set(report["keystream_gbps"]) == {"triton", "torch_ops", "c_1_thread", "c_all_threads"}
    assert all(check["ok"] for check in report["identity_checks"]) and len(report["identity_checks"]) >= 4
    assert report["end_to_end_ms"]["total"] > 0 and report["ratios"]["cpu_pipeline_over_end_to_end"] is not None
    assert report["device_seam"]["bit_identical"] is True and report["device_seam"]["engine"] == "triton"
