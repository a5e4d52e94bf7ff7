"""Secure aggregation of torch models, step by step (no network).

1. three "organisations" hold a small torch model each, trained on different data;
2. each flattens its state_dict (``adapters.torch.flatten``) and quantises the
   float part with its number of examples as the weight slot
   (``adapters.torch.quantize``, the same integers as ``encoding.Quantizer``);
3. pairwise masks that cancel in the sum are added on the tensors themselves
   (``adapters.torch.add_masks``, ChaCha20): a masked vector alone looks random;
4. a full SecAgg session (``testing.simulate``, one client dropping out) sums
   the quantised vectors; the server dequantises the sum into the weighted
   average, which matches the plaintext weighted average within one step.

    python examples/torch_masking.py            # hidden width 64
    python examples/torch_masking.py --quick    # hidden width 8
"""
from __future__ import annotations

import argparse
import json
import os

import torch

import lepton_secagg as ls
from lepton_secagg.adapters import torch as lt


def main(hidden: int) -> dict[str, object]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(10, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)) for _ in range(3)]
    weights = [120, 45, 300]  # examples per organisation
    flats = [lt.flatten(m.state_dict()) for m in models]
    spec = flats[0][1]
    quantizer = ls.encoding.Quantizer(clip=1.0, bits=32, num_clients=3, max_weight=max(weights))
    encoded = [lt.quantize(vec[: spec.num_float], quantizer, weight=w)[0] for (vec, _), w in zip(flats, weights)]
    print(f"{len(models)} models of {spec.numel} elements; quantiser step {quantizer.step:.3g}, weight slot appended")

    # Pairwise masks: org 0 adds +PRG(k01), org 1 adds -PRG(k01), ...: they cancel in the sum.
    k01, k02, k12 = (os.urandom(32) for _ in range(3))
    keys = {0: ([k01, k02], [1, 1]), 1: ([k01, k12], [-1, 1]), 2: ([k02, k12], [-1, -1])}
    masked = [lt.add_masks(e.clone(), *keys[i], suite="chacha20") for i, e in enumerate(encoded)]
    plain_sum = torch.stack([e.to(torch.int64) for e in encoded]).sum(0) & 0xFFFFFFFF
    masked_sum = torch.stack([m.to(torch.int64) for m in masked]).sum(0) & 0xFFFFFFFF
    masks_cancel = bool(torch.equal(plain_sum, masked_sum))
    print(f"masked vectors differ from the inputs: {not torch.equal(masked[0], encoded[0])}; masks cancel in the sum: {masks_cancel}")

    # The full protocol: organisation 1 drops out before sending its masked input.
    cfg = ls.Config(num_clients=3, vector_length=spec.num_float + 1, threshold=2)
    res = ls.testing.simulate(cfg, [lt.as_ring_numpy(e) for e in encoded], dropouts={1: "masked_input"}, seed=1)
    mean, total_weight = lt.dequantize(lt.as_ring_tensor(res.sum), quantizer, len(res.included))
    expected = sum(weights[i] * flats[i][0][: spec.num_float] for i in res.included) / sum(weights[i] for i in res.included)
    error = float((mean - expected).abs().max())
    averaged = lt.unflatten(torch.cat([mean, flats[0][0][spec.num_float :]]), spec)
    ok = masks_cancel and error <= quantizer.step and total_weight == sum(weights[i] for i in res.included)
    print(f"included {list(res.included)}; total weight {total_weight}; max |secure - plaintext| = {error:.2e} "
          f"(step {quantizer.step:.2e}); averaged state_dict keys: {list(averaged)[:2]}...")
    print("secure weighted average matches the plaintext one:", ok)
    return {"ok": ok, "included": list(res.included), "max_error": error, "step": quantizer.step, "elements": spec.numel}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tiny model (CI)")
    args = ap.parse_args()
    out = main(8 if args.quick else 64)
    print(json.dumps(out))
    raise SystemExit(0 if out["ok"] else 1)
