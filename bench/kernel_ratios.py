"""Masking-kernel throughput as ratios against OpenSSL, measured in one run.

    .venv/bin/python bench/kernel_ratios.py            # full run (~1 min)
    .venv/bin/python bench/kernel_ratios.py --quick    # smoke run (~10 s)
    .venv/bin/python bench/kernel_ratios.py --json     # + a JSON last line

Rows (GB/s = 10^9 bytes of keystream consumed per second, 10 keys, uint32):
  aes128ctr C kernel, 1 thread  vs  `openssl speed -evp aes-128-ctr -bytes 16384`  (target >= 1.5x)
  chacha20  C kernel, 1 thread  vs  `openssl speed -evp chacha20 -bytes 16384`     (target >= 1.0x)
  chacha20 `avx2` pipeline      vs  the same, OpenSSL limited to its AVX2 code     (target >= 1.0x)
  2 threads vs 1 thread on the same call                                           (target >= 1.3x)
  server unmasking: one call with 4,140 keys on m = 1e6 uint32, all threads, vs the
  floor keys * m * 4 B / (single-core aes128ctr rate)                               (target <= 1.3x)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

try:
    from lepton_secagg._kernels import _speedups
except ImportError:
    _speedups = None

SERVER_KEYS = 900 + 3240  # SecAgg+ n=1000, k=36, 10% dropped: 900 self + 100 * ~32.4 pairwise
CPU_FLAGS = ("aes", "vaes", "vpclmulqdq", "avx2", "avx512f", "avx512bw", "avx512vl", "sha_ni")


def cpu_info() -> tuple[str, list[str]]:
    model, flags = "unknown", []
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        m = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
        model = m.group(1) if m else model
        m = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
        have = set(m.group(1).split()) if m else set()
        flags = [f for f in CPU_FLAGS if f in have]
    except OSError:
        pass
    return model, flags


# OPENSSL_ia32cap masks (OpenSSL 3.0 capability vector, second 64-bit word = CPUID.7.0 EBX:ECX).
# Masking only AVX512F (bit 64+16) is not enough for chacha20: OpenSSL then takes ChaCha20_8xvl
# (ymm registers with AVX512VL's vprold).  Its plain AVX2 code, ChaCha20_8x, needs AVX512VL
# (bit 64+31) masked as well.
OPENSSL_AVX2_ONLY = ":~0x80010000"


def openssl_speed(alg: str, seconds: int, ia32cap: str | None = None) -> float | None:
    """GB/s of `openssl speed -evp ALG -bytes 16384 -seconds S` (None if unavailable)."""
    cmd = ["openssl", "speed", "-evp", alg, "-bytes", "16384", "-seconds", str(seconds)]
    env = None if ia32cap is None else dict(os.environ, OPENSSL_ia32cap=ia32cap)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 30, env=env).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines()[::-1]:
        if line.upper().startswith(alg.upper()):
            m = re.search(r"([\d.]+)k\s*$", line)
            if m:
                return float(m.group(1)) * 1000 / 1e9
    return None


def time_call(vector, keys, signs, suite, threads, reps) -> float:
    best = float("inf")
    _speedups.add_masks(vector, keys, signs, suite, 0, threads)  # warm up (page faults, caches)
    for _ in range(reps):
        t = time.perf_counter()
        _speedups.add_masks(vector, keys, signs, suite, 0, threads)
        best = min(best, time.perf_counter() - t)
    return best


def rate(suite, m, threads, reps, nkeys=10, dtype=np.uint32) -> float:
    rng = np.random.default_rng(1)
    keys = [rng.bytes(16 if suite == "aes128ctr" else 32) for _ in range(nkeys)]
    signs = [1, -1] * (nkeys // 2) + [1] * (nkeys % 2)
    v = np.zeros(m, dtype)
    return nkeys * m * v.itemsize / time_call(v, keys, signs, suite, threads, reps) / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    args = ap.parse_args()
    if _speedups is None:
        print("the C extension is not built (or LEPTON_SECAGG_PUREPYTHON is set); nothing to measure.")
        return 1

    quick = args.quick
    reps = 3 if quick else 7
    sizes = [1_000_000] if quick else [1_000_000, 10_000_000]
    secs = 1 if quick else 2
    ncpu = os.cpu_count() or 1
    model, flags = cpu_info()
    kernels = _speedups._kernels()
    print(f"CPU: {model}; {ncpu} logical CPUs; flags: {' '.join(flags)}")
    print(f"kernels: aes128ctr={kernels['aes128ctr']} chacha20={kernels['chacha20']} "
          f"(available: {_speedups._available_kernels()})")

    ossl_aes = openssl_speed("aes-128-ctr", secs)
    ossl_cha = openssl_speed("chacha20", secs)
    ossl_cha_avx2 = openssl_speed("chacha20", secs, OPENSSL_AVX2_ONLY) if "avx2" in flags else None
    res: dict = {"cpu": model, "flags": flags, "kernels": kernels,
                 "openssl_aes128ctr_gbs": ossl_aes, "openssl_chacha20_gbs": ossl_cha,
                 "openssl_chacha20_avx2_gbs": ossl_cha_avx2, "rows": []}
    rows = res["rows"]

    def row(name, value, ref, ratio, target):
        rows.append({"case": name, "value": value, "reference": ref, "ratio": ratio, "target": target})

    single = {}
    for suite, ossl in (("aes128ctr", ossl_aes), ("chacha20", ossl_cha)):
        for m in sizes:
            r1 = rate(suite, m, 1, reps)
            single[suite, m] = r1
            row(f"{suite} m={m:.0e} 1 thread (GB/s) vs openssl", r1, ossl,
                r1 / ossl if ossl else None, ">= 1.5" if suite == "aes128ctr" else ">= 1.0")
    for suite in ("aes128ctr", "chacha20"):
        for m in sizes:
            r2 = rate(suite, m, 2, 3 * reps)  # more repetitions: the other vCPU may be busy
            row(f"{suite} m={m:.0e} 2 threads vs 1 thread (GB/s)", r2, single[suite, m],
                r2 / single[suite, m], ">= 1.3")

    # other AES / ChaCha20 pipelines on this CPU, 1 thread, m = 1e6
    try:
        for aes in _speedups._available_kernels()["aes128ctr"]:
            _speedups._set_kernels(aes, None)
            r = rate("aes128ctr", 1_000_000, 1, reps)
            row(f"aes128ctr kernel {aes} m=1e+06 1 thread (GB/s) vs openssl", r, ossl_aes,
                r / ossl_aes if ossl_aes else None, "-")
        for cha in _speedups._available_kernels()["chacha20"]:
            _speedups._set_kernels(None, cha)
            r = rate("chacha20", 1_000_000, 1, 1 if cha == "scalar" else reps)
            row(f"chacha20 kernel {cha} m=1e+06 1 thread (GB/s) vs openssl", r, ossl_cha,
                r / ossl_cha if ossl_cha else None, "-")
            if cha == "avx2" and ossl_cha_avx2:
                row(f"chacha20 kernel {cha} m=1e+06 1 thread (GB/s) vs openssl AVX2 "
                    f"(OPENSSL_ia32cap={OPENSSL_AVX2_ONLY})", r, ossl_cha_avx2, r / ossl_cha_avx2, ">= 1.0")
    finally:
        _speedups._set_kernels()

    # server unmasking floor
    m = 1_000_000
    nkeys = SERVER_KEYS // 10 if quick else SERVER_KEYS
    rng = np.random.default_rng(2)
    keys = [rng.bytes(16) for _ in range(nkeys)]
    signs = [1] * (nkeys * 900 // SERVER_KEYS) + [-1] * (nkeys - nkeys * 900 // SERVER_KEYS)
    v = np.zeros(m, np.uint32)
    t = time_call(v, keys, signs, "aes128ctr", ncpu, 2 if quick else 3)
    floor = nkeys * m * 4 / (single["aes128ctr", m] * 1e9)
    row(f"server unmask: {nkeys} keys, m=1e6 u32, {ncpu} threads (s) vs 1-core floor", t, floor,
        t / floor, "<= 1.3")

    w = max(len(r["case"]) for r in rows)
    print()
    print(f"{'case':<{w}}  {'value':>9}  {'reference':>9}  {'ratio':>6}  target")
    for r in rows:
        ref = f"{r['reference']:.3f}" if r["reference"] is not None else "n/a"
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "n/a"
        print(f"{r['case']:<{w}}  {r['value']:>9.3f}  {ref:>9}  {ratio:>6}  {r['target']}")
    if args.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
