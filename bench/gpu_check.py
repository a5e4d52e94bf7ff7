"""The prepared GPU check of the Triton masking kernel (issue 13): one call, one JSON line.

    python bench/gpu_check.py            # a CUDA machine: about 1-3 minutes
    python bench/gpu_check.py --smoke    # any machine: tiny sizes in Triton's CPU interpreter (~10 s)

Run it from the repository root with the project's venv (torch, and triton
where the platform has it).  It installs nothing; it builds the C extension in
place (``setup.py build_ext --inplace``) when it is not built yet, since the C
kernel is both the reference and the CPU baseline.  What it cannot find
(triton, the C compiler) is reported as null, not worked around.

1. **Bit-identity**: ``adapters.torch.add_masks(engine="triton")`` on the
   device against the C kernel on the host, 17 keys with mixed signs, uint32
   and uint64, m = 1e6, 1e7, 1e8, odd element offsets (so the vector starts
   inside a block), plus one offset past block 2^31; the torch-ops path at
   m = 1e6.
2. **Keystream GB/s** at m = 1e8 uint32 with 17 keys (bytes of keystream
   summed over the keys, per second): the Triton kernel (its default launch
   shape, and a sweep of shapes), the torch-ops path, the C kernel with 1
   thread and with every CPU thread, all in this run.
3. **End to end**: a 1e8-parameter float32 update on the device quantised
   (``adapters.torch.quantize``, 32-bit ring), masked with 17 keys
   (``add_masks``, auto engine) and copied into a pinned host buffer; and the
   CPU pipeline on the same vector (``Quantizer.encode`` + the C kernel on
   every thread) as the baseline.
4. **The protocol path**: the same update through ``Client.set_input``'s
   device seam (``adapters.torch.device_float_input``, bound to a chacha20
   session: rounding stream, quantisation and 17 masks on the device, then one
   copy into page-locked host memory), checked bit for bit against the CPU's
   fused pipeline (``hazmat.pipeline.encode_masked``, every thread) on the same
   values and keys, which is also the baseline.

Timings are the best of a few calls after a warm-up call, with
``torch.cuda.synchronize()`` before each clock read.  The last stdout line is
the JSON report; progress goes to stderr.  ``--smoke`` runs the same code
paths on CPU tensors with Triton interpreted, at sizes the interpreter
finishes in seconds (its GB/s figures mean nothing): it proves the script is
not broken, and tests/test_triton_kernel.py runs it.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from pathlib import Path

if "--smoke" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"  # before anything imports triton

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KEYS = 17  # one self mask and 16 pairwise masks
SWEEP = [(64, 2), (128, 4), (256, 4), (256, 8), (512, 8)]  # (blocks, num_warps); 4 blocks a thread spill


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def c_kernel():
    """The C kernel module, built in place if it is missing; None if it cannot be built."""
    try:
        from lepton_secagg._kernels import _speedups
        return _speedups
    except ImportError:
        pass
    log("building the C extension (setup.py build_ext --inplace) ...")
    proc = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace", "-q"], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode:
        log(proc.stderr[-2000:])
        return None
    importlib.invalidate_caches()
    try:
        from lepton_secagg._kernels import _speedups
        return _speedups
    except ImportError:
        return None


def best_time(fn, reps: int, sync) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU tensors, Triton interpreted, tiny sizes")
    parser.add_argument("--reps", type=int, default=5, help="timed calls per figure (best is kept)")
    args = parser.parse_args(argv)

    import torch

    from lepton_secagg.adapters import torch as lt
    from lepton_secagg.encoding import Quantizer
    from lepton_secagg.hazmat import masking
    from lepton_secagg.hazmat import pipeline as fused_pipeline
    from lepton_secagg.hazmat.rng import DeterministicRng

    report: dict = {"torch": torch.__version__, "cpu_threads": os.cpu_count(), "smoke": args.smoke}
    if args.smoke:
        device = torch.device("cpu")
        report["device"] = "cpu (Triton interpreter)"
        keys_count, sizes, bench_m, e2e_m, reps = 2, [100], 500, 500, 1
        sync = lambda: None  # noqa: E731
    else:
        if not torch.cuda.is_available():
            print(json.dumps({**report, "error": "no CUDA device; run with --smoke on a CPU"}))
            return 2
        device = torch.device("cuda")
        report["device"] = torch.cuda.get_device_name(device)
        report["cuda"] = torch.version.cuda
        keys_count, sizes, bench_m, e2e_m, reps = KEYS, [10**6, 10**7, 10**8], 10**8, 10**8, args.reps
        sync = torch.cuda.synchronize
    kernel = lt._triton_kernel()
    report["triton"] = None if kernel is None else importlib.metadata.version("triton")
    c = c_kernel()
    threads = os.cpu_count() or 1
    rng = np.random.default_rng(13)
    keys = [rng.bytes(32) for _ in range(keys_count)]
    signs = [1] + [int(s) for s in rng.choice([1, -1], keys_count - 1)]

    def reference(host, offset):
        out = host.copy()
        if c is not None:
            c.add_masks(out, keys, signs, "chacha20", offset, threads)
        else:
            masking.add_masks(out, keys, signs, "chacha20", offset)
        return out

    # 1. bit-identity
    checks = []
    cases = [(dt, m, 4097 if dt == np.uint32 else 2049) for dt in (np.uint32, np.uint64) for m in sizes]
    cases.append((np.uint32, sizes[0], (1 << 31) * 16 - 7))  # crosses the counter's int32 sign boundary
    engines = ["triton"] if kernel is not None else []
    for dtype, m, offset in cases:
        host = rng.integers(0, np.iinfo(dtype).max, size=m, dtype=dtype, endpoint=True)
        expected = reference(host, offset)
        for engine in engines + (["torch"] if m == sizes[0] else []):
            t = lt.as_ring_tensor(host.copy()).to(device)
            lt.add_masks(t, keys, signs, "chacha20", offset, engine=engine)
            ok = bool(np.array_equal(lt.as_ring_numpy(t.cpu()), expected))
            checks.append({"engine": engine, "dtype": np.dtype(dtype).name, "m": m, "offset": offset, "ok": ok})
            log(f"bit-identity {engine} {np.dtype(dtype).name} m={m:.0e} offset={offset}: {'ok' if ok else 'MISMATCH'}")
            del t
    report["identity_checks"] = checks
    report["bit_identical"] = bool(checks) and all(x["ok"] for x in checks) and kernel is not None

    # 2. keystream GB/s at m = bench_m uint32
    stream_bytes = bench_m * 4 * keys_count
    host = np.zeros(bench_m, np.uint32)
    t = lt.as_ring_tensor(host.copy()).to(device)
    gbps = {}
    if kernel is not None:
        gbps["triton"] = stream_bytes / best_time(lambda: lt.add_masks(t, keys, signs, engine="triton"), reps, sync) / 1e9
        log(f"triton: {gbps['triton']:.1f} GB/s")
    else:
        gbps["triton"] = None
    gbps["torch_ops"] = stream_bytes / best_time(lambda: lt.add_masks(t, keys, signs, engine="torch"), min(reps, 2), sync) / 1e9
    log(f"torch ops: {gbps['torch_ops']:.2f} GB/s")
    for name, n in (("c_1_thread", 1), ("c_all_threads", threads)):
        if c is None:
            gbps[name] = None
            continue
        gbps[name] = stream_bytes / best_time(lambda: c.add_masks(host, keys, signs, "chacha20", 0, n), min(reps, 2), lambda: None) / 1e9
        log(f"C {n} thread(s): {gbps[name]:.2f} GB/s")
    report["keystream_gbps"] = gbps
    report["keystream_setup"] = {"m": bench_m, "dtype": "uint32", "keys": keys_count, "suite": "chacha20"}
    if kernel is not None:
        sweep = []
        for blocks, warps in SWEEP[:1] if args.smoke else SWEEP:
            key_words = lt._key_words(torch, keys, device)
            sign_masks = torch.tensor([0 if s > 0 else -1 for s in signs], dtype=torch.int32, device=device)
            run = lambda: kernel.add_masks(t, key_words, sign_masks, 0, blocks=blocks, num_warps=warps)  # noqa: E731
            rate = stream_bytes / best_time(run, reps, sync) / 1e9
            sweep.append({"blocks": blocks, "num_warps": warps, "gbps": round(rate, 1)})
            log(f"triton blocks={blocks} num_warps={warps}: {rate:.1f} GB/s")
        report["triton_sweep"] = sweep
        report["triton_default_shape"] = {"blocks": kernel.BLOCKS, "num_warps": kernel.NUM_WARPS}
    del t

    # 3. end to end: quantise + mask + copy to host
    quantizer = Quantizer(clip=1.0, bits=32, num_clients=100)
    update = torch.randn(e2e_m, dtype=torch.float32, device=device, generator=torch.Generator(device).manual_seed(1)) * 0.1
    generator = torch.Generator(device).manual_seed(2)
    wire = torch.empty(e2e_m, dtype=torch.int32, pin_memory=not args.smoke)
    stages = {}

    def pipeline():
        start = time.perf_counter()
        ints, _ = lt.quantize(update, quantizer, generator=generator)
        sync()
        quantised = time.perf_counter()
        lt.add_masks(ints, keys, signs)
        sync()
        masked = time.perf_counter()
        wire.copy_(ints, non_blocking=True)
        sync()
        done = time.perf_counter()
        stages.setdefault("runs", []).append((quantised - start, masked - quantised, done - masked, done - start))

    best_time(pipeline, reps, sync)
    q, mk, cp, total = min(stages["runs"][1:], key=lambda r: r[3])  # the warm-up run is dropped
    host_update = update.cpu().numpy().astype(np.float64)
    encoded = np.empty(e2e_m, np.uint32)

    def cpu_pipeline():
        encoded[:] = quantizer.encode(host_update, rng=np.random.default_rng(3))[0]
        masking.add_masks(encoded, keys, signs, "chacha20", 0, threads)

    cpu = best_time(cpu_pipeline, min(reps, 2), lambda: None)
    report["end_to_end_ms"] = {
        "m": e2e_m,
        "keys": keys_count,
        "quantize": round(q * 1e3, 3),
        "mask": round(mk * 1e3, 3),
        "copy_to_host": round(cp * 1e3, 3),
        "total": round(total * 1e3, 3),
        "cpu_pipeline": round(cpu * 1e3, 3),
    }
    log(f"end to end m={e2e_m:.0e}: {total * 1e3:.2f} ms on {device} vs {cpu * 1e3:.1f} ms on the CPU")
    if not args.smoke:
        triton_rate = gbps["triton"] or 0.0
        report["targets"] = {
            "triton_ge_300_gbps": triton_rate >= 300,
            "triton_ge_500_gbps": triton_rate >= 500,
            "end_to_end_le_30_ms": total * 1e3 <= 30,
        }

    # 4. the protocol path: what Client.set_input's device seam does in the masked-input round
    seam_engine = "triton" if args.smoke else "auto"
    bound = lt.device_float_input(update, quantizer, engine=seam_engine).bind(e2e_m, 32, "chacha20", DeterministicRng(4))
    seam_out: dict = {}
    seam_time = best_time(lambda: seam_out.update(device=bound.masked(keys, signs)[0]), reps, sync)
    host_values = update.cpu().numpy()
    fused = lambda: seam_out.update(cpu=fused_pipeline.encode_masked(  # noqa: E731
        quantizer, host_values, round_key=bound.round_key, keys=keys, signs=signs, suite="chacha20", threads=threads)[0])
    fused_time = best_time(fused, min(reps, 2), lambda: None)
    report["device_seam"] = {
        "m": e2e_m,
        "keys": keys_count,
        "engine": seam_engine,
        "bit_identical": bool(np.array_equal(seam_out["device"], seam_out["cpu"])),
        "total_ms": round(seam_time * 1e3, 3),
        "cpu_fused_pipeline_ms": round(fused_time * 1e3, 3),
    }
    log(f"device seam m={e2e_m:.0e}: {seam_time * 1e3:.2f} ms on {device} vs {fused_time * 1e3:.1f} ms in the CPU pipeline")
    report["keystream_gbps"] = {k: None if v is None else round(v, 3) for k, v in gbps.items()}
    ratio = lambda a, b: None if not a or not b else round(a / b, 2)  # noqa: E731
    report["ratios"] = {  # against baselines measured in this run
        "triton_over_torch_ops": ratio(gbps["triton"], gbps["torch_ops"]),
        "triton_over_c_all_threads": ratio(gbps["triton"], gbps["c_all_threads"]),
        "cpu_pipeline_over_end_to_end": ratio(cpu, total),
        "cpu_fused_pipeline_over_device_seam": ratio(fused_time, seam_time),
    }
    print(json.dumps(report))
    return 0 if report["bit_identical"] and report["device_seam"]["bit_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
