"""What the device seam costs on a CPU, against the numpy client's fused pipeline (issue 13).

Usage: .venv/bin/python bench/device_seam.py [--lengths 100000,1000000] [--keys 17] [--repeats 5] [--json]

For each length m, a float32 update and ``--keys`` ChaCha20 mask keys (mixed
signs, a 32-bit ring), in the same run and interleaved, per repetition:

* numpy: ``hazmat.pipeline.encode_masked``, what the masked-input round of a
  ``Client.set_float_input`` client runs (the baseline);
* seam, host path: ``adapters.torch.device_float_input(tensor, q,
  engine="kernel")`` bound to the session and masked: a CPU tensor handed to
  the same pipeline through the seam (what ``engine="auto"`` does for CPU
  tensors and aes128ctr sessions);
* seam, device path on the CPU (``engine="torch"``): rounding stream,
  quantisation and masks in torch ops, then the copy out.  On a CPU this only
  shows the path runs; a GPU's figure comes from ``bench/gpu_check.py``.

Each figure is the median over the repetitions, and each ratio is the median
of the per-repetition ratios to the baseline timed in that repetition.  The
masked vectors of the three paths are checked to be identical.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from lepton_secagg.adapters import torch as lt
from lepton_secagg.encoding import Quantizer
from lepton_secagg.hazmat import pipeline
from lepton_secagg.hazmat.rng import DeterministicRng


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="100000,1000000")
    parser.add_argument("--keys", type=int, default=17)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # docs/torch.md: torch's threads stall on a shared 2-vCPU machine
    gen = np.random.default_rng(1)
    keys = [gen.bytes(32) for _ in range(args.keys)]
    signs = [1] + [int(s) for s in gen.choice([1, -1], args.keys - 1)]
    rows = []
    for m in (int(x) for x in args.lengths.split(",")):
        q = Quantizer(clip=1.0, bits=32, num_clients=100)
        values = (gen.normal(0, 0.3, m)).astype(np.float32)
        tensor = torch.from_numpy(values)
        bound = {e: lt.device_float_input(tensor, q, engine=e).bind(m, 32, "chacha20", DeterministicRng(2)) for e in ("kernel", "torch")}
        key = bound["kernel"].round_key
        samples: dict[str, list[float]] = {"numpy": [], "seam_host": [], "seam_torch_ops": []}
        ratios: dict[str, list[float]] = {"seam_host": [], "seam_torch_ops": []}
        for _ in range(args.repeats):
            base, want = timed(lambda: pipeline.encode_masked(q, values, round_key=key, keys=keys, signs=signs, suite="chacha20")[0])
            host, got_host = timed(lambda: bound["kernel"].masked(keys, signs)[0])
            ops, got_ops = timed(lambda: bound["torch"].masked(keys, signs)[0])
            if not (np.array_equal(want, got_host) and np.array_equal(want, got_ops)):
                raise SystemExit(f"m={m}: the seam's masked vector differs from the numpy pipeline's")
            for name, t in (("numpy", base), ("seam_host", host), ("seam_torch_ops", ops)):
                samples[name].append(t)
            ratios["seam_host"].append(host / base)
            ratios["seam_torch_ops"].append(ops / base)
        row = {"m": m, "keys": args.keys, **{f"{k}_ms": round(statistics.median(v) * 1e3, 2) for k, v in samples.items()},
               **{f"{k}_over_numpy": round(statistics.median(v), 2) for k, v in ratios.items()}}
        rows.append(row)
        if not args.json:
            print(f"m={m:>9} keys={args.keys}: numpy {row['numpy_ms']:8.2f} ms | seam host path {row['seam_host_ms']:8.2f} ms "
                  f"(x{row['seam_host_over_numpy']}) | seam torch ops {row['seam_torch_ops_ms']:9.2f} ms (x{row['seam_torch_ops_over_numpy']})")
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
