"""The torch adapter's cost: ChaCha20 masking in torch ops, and the model-to-vector path.

    .venv/bin/python bench/bench_torch.py                  # CPU, 1 torch thread (~1 min)
    .venv/bin/python bench/bench_torch.py --quick          # smoke run (~10 s)
    .venv/bin/python bench/bench_torch.py --device cuda    # the torch rows on a GPU
    .venv/bin/python bench/bench_torch.py --json           # + a JSON last line
    .venv/bin/python -m pytest bench/bench_torch.py --benchmark-only   # pytest-benchmark

Masking rows: one call applies KEYS keys (mixed signs) to a vector of m ring
elements, chacha20; "torch" is ``adapters.torch.add_masks(engine="torch")`` on
``--device``, "C" the C kernel with 1 thread, "numpy" the numpy kernel
(pycryptodome keystream).  Every figure is the best of ``--reps`` calls after
one warm-up call; the ratio column is time / C time.

Model rows: an MLP with ~1.07 M parameters; flatten its state_dict, quantise
(32-bit ring, weighted), dequantise and unflatten, each vs the numpy
reference (``Quantizer.encode`` / ``decode`` on the same float64 vector).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

KEYS = 4


def _best(fn, reps: int, sync=lambda: None) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def _model(torch):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(784, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 256), torch.nn.BatchNorm1d(256),
        torch.nn.ReLU(), torch.nn.Linear(256, 10),
    )


def masking_rows(torch, device, sizes, reps, dtype_name="u32"):
    from lepton_secagg._kernels import _native
    from lepton_secagg.adapters import torch as lt

    try:
        from lepton_secagg._kernels import _speedups
    except ImportError:
        _speedups = None
    npdt = {"u32": np.uint32, "u64": np.uint64}[dtype_name]
    rng = np.random.default_rng(1)
    keys = [rng.bytes(32) for _ in range(KEYS)]
    signs = [1, -1] * (KEYS // 2)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for m in sizes:
        host = np.zeros(m, npdt)
        t = lt.as_ring_tensor(host.copy()).to(device)
        timings = {
            "torch": _best(lambda: lt.add_masks(t, keys, signs, "chacha20", 0, engine="torch"), reps, sync),
        }
        if _speedups is not None:
            timings["C"] = _best(lambda: _speedups.add_masks(host, keys, signs, "chacha20", 0, 1), reps)
        timings["numpy"] = _best(lambda: _native.add_masks(host, keys, signs, "chacha20", 0, 1), max(1, reps // 2))
        rows.append({"m": m, "dtype": dtype_name, "device": str(device), **timings})
    return rows


def model_rows(torch, device, reps):
    from lepton_secagg.adapters import torch as lt
    from lepton_secagg.encoding import Quantizer

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model = _model(torch).to(device)
    state = model.state_dict()
    params = sum(t.numel() for t in state.values())
    quantizer = Quantizer(clip=1.0, bits=32, num_clients=100, max_weight=1000)
    vector, spec = lt.flatten(state)
    floats = vector[: spec.num_float]
    host = floats.cpu().numpy()
    gen = torch.Generator(device=device).manual_seed(0)
    ints, _ = lt.quantize(floats, quantizer, weight=7, generator=gen)
    encoded, _ = quantizer.encode(host, weight=7, rng=np.random.default_rng(0))
    rest = vector[spec.num_float :]
    rows = [
        {"step": "flatten(state_dict)", "torch": _best(lambda: lt.flatten(state), reps, sync), "numpy": None},
        {
            "step": "quantize (weighted, 32 bits)",
            "torch": _best(lambda: lt.quantize(floats, quantizer, weight=7, generator=gen), reps, sync),
            "numpy": _best(lambda: quantizer.encode(host, weight=7, rng=np.random.default_rng(0)), reps),
        },
        {
            "step": "dequantize (count 1)",
            "torch": _best(lambda: lt.dequantize(ints, quantizer, 1), reps, sync),
            "numpy": _best(lambda: quantizer.decode(encoded, 1), reps),
        },
        {
            "step": "unflatten",
            "torch": _best(lambda: lt.unflatten(torch.cat([floats, rest]), spec), reps, sync),
            "numpy": None,
        },
    ]
    return params, rows


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.2f} ms"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device for the torch rows (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="m = 1e5 only, 2 reps")
    parser.add_argument("--json", action="store_true", help="print a JSON line last")
    args = parser.parse_args(argv)

    import torch

    from lepton_secagg import _kernels

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    reps = 2 if args.quick else args.reps
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    print(
        f"torch {torch.__version__}, device {device}, torch threads {torch.get_num_threads()}, "
        f"kernel backend {_kernels.BACKEND}, load {os.getloadavg()[0]:.2f}, {KEYS} keys per call, chacha20"
    )
    mask = masking_rows(torch, device, sizes, reps, "u32")
    if not args.quick:
        mask += masking_rows(torch, device, [1_000_000], reps, "u64")
    print()
    print("| m | dtype | torch (" + str(device) + ") | C, 1 thread | numpy kernel | torch / C | torch / numpy | torch GB/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in mask:
        nbytes = KEYS * r["m"] * (4 if r["dtype"] == "u32" else 8)
        c = r.get("C")
        print(
            f"| {r['m']:.0e} | {r['dtype']} | {_ms(r['torch'])} | {_ms(c)} | {_ms(r['numpy'])} | "
            f"{(r['torch'] / c) if c else float('nan'):.1f}x | {r['torch'] / r['numpy']:.2f}x | {nbytes / r['torch'] / 1e9:.3f} |"
        )
    params, model = model_rows(torch, device, reps)
    print()
    print(f"model: MLP 784-1024-256(BatchNorm)-10, {params:,} state_dict elements")
    print()
    print("| step | torch (" + str(device) + ") | numpy reference | torch / numpy |")
    print("|---|---|---|---|")
    for r in model:
        ratio = f"{r['torch'] / r['numpy']:.2f}x" if r["numpy"] else "-"
        print(f"| {r['step']} | {_ms(r['torch'])} | {_ms(r['numpy'])} | {ratio} |")
    if args.json:
        print(json.dumps({"device": str(device), "masking": mask, "model_params": params, "model": model}))
    return 0


# --- pytest-benchmark entry points (collected only when bench/bench_torch.py is named) ---


def _pytest_torch():
    import pytest

    return pytest.importorskip("torch")


def test_torch_chacha20_mask_1e6(benchmark):
    torch = _pytest_torch()
    from lepton_secagg.adapters import torch as lt

    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    keys = [rng.bytes(32) for _ in range(KEYS)]
    t = torch.zeros(1_000_000, dtype=torch.int32)
    benchmark(lt.add_masks, t, keys, [1, -1] * (KEYS // 2), "chacha20", 0, engine="torch")


def test_torch_quantize_1m_model(benchmark):
    torch = _pytest_torch()
    from lepton_secagg.adapters import torch as lt
    from lepton_secagg.encoding import Quantizer

    torch.set_num_threads(1)
    vector, spec = lt.flatten(_model(torch).state_dict())
    quantizer = Quantizer(clip=1.0, bits=32, num_clients=100)
    benchmark(lt.quantize, vector[: spec.num_float], quantizer, generator=torch.Generator().manual_seed(0))


if __name__ == "__main__":
    sys.exit(main())
