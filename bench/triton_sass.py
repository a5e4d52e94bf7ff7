"""What the Triton masking kernel compiles to on a GPU, measured without one.

    python bench/triton_sass.py                 # sm_90 (H100/H200), every launch shape of gpu_check's sweep
    python bench/triton_sass.py --arch 80       # another compute capability

Triton ships ptxas and cuobjdump, so the kernel compiles to a cubin on any
Linux machine.  For each launch shape (blocks per program, warps) and element
width this prints the registers per thread, spills (stack / local bytes) and
the instructions of the key loop per 64-byte ChaCha20 block, split by pipe.
From that follows an upper bound on keystream throughput: on sm_80/sm_90 an SM
retires 64 lanes a clock of the integer ALU pipe (LOP3, SHF, IADD3) and 64 of
the FMA pipe (IMAD), and the ALU pipe is the busier one.  The bound ignores
latency and memory, so a real GPU reaches a fraction of it; bench/gpu_check.py
measures that fraction.
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SHAPES = [(64, 2), (128, 4), (256, 4), (256, 8), (512, 8), (512, 4)]
ALU = {"LOP3", "SHF", "IADD3", "ISETP", "SEL", "PRMT", "LEA", "VIADD"}
INSTRUCTION = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)[^;]*;")


def loop_body(sass: str) -> list[str]:
    """The opcodes of the kernel's one backward branch (the key loop)."""
    code = [(int(m.group(1), 16), m.group(3), m.group(0)) for m in INSTRUCTION.finditer(sass)]
    index = {address: i for i, (address, _, _) in enumerate(code)}
    for i, (address, opcode, text) in enumerate(code):
        target = re.search(r"BRA\s+0x([0-9a-f]+)", text) if opcode == "BRA" else None
        if target and int(target.group(1), 16) < address and int(target.group(1), 16) in index:
            return [op for _, op, _ in code[index[int(target.group(1), 16)] : i + 1]]
    raise RuntimeError("no loop found in the SASS")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 80, 90")
    parser.add_argument("--sms", type=int, default=132, help="SMs of the GPU the bound is for (H200: 132)")
    parser.add_argument("--ghz", type=float, default=1.98, help="its boost clock (H200: 1.98 GHz)")
    args = parser.parse_args(argv)

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from lepton_secagg.adapters import _triton_chacha20 as tc

    tools = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    rows = []
    for wide in (False, True):
        for blocks, warps in SHAPES:
            ring = "*i64" if wide else "*i32"
            signature = {
                "vector_ptr": ring, "key_ptr": "*i32", "sign_ptr": ring, "num_keys": "i32", "n": "i32",
                "first_block": "i32", "skip": "i32", "BLOCKS": "constexpr", "KEYS": "constexpr", "WIDE": "constexpr",
            }
            source = ASTSource(tc._add_masks_kernel, signature, constexprs={"BLOCKS": blocks, "KEYS": 1, "WIDE": wide})
            compiled = triton.compile(source, target=GPUTarget("cuda", args.arch, 32), options={"num_warps": warps})
            with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
                cubin.write(compiled.asm["cubin"])
                cubin.flush()
                usage = subprocess.run([tools / "cuobjdump", "-res-usage", cubin.name], capture_output=True, text=True, check=True).stdout
                sass = subprocess.run([tools / "cuobjdump", "-sass", cubin.name], capture_output=True, text=True, check=True).stdout
            registers, stack, local = (int(re.search(f"{k}:(\\d+)", usage).group(1)) for k in ("REG", "STACK", "LOCAL"))
            body = collections.Counter(loop_body(sass))
            per_block = blocks // (32 * warps)  # ChaCha20 blocks each thread computes per key
            alu = sum(n for op, n in body.items() if op in ALU) / per_block
            fma = sum(n for op, n in body.items() if op in {"IMAD", "IADD"}) / per_block
            total = sum(body.values()) / per_block
            bound = args.sms * args.ghz * 1e9 * 64 / max(alu, fma) * 64 / 1e9  # GB/s of keystream
            rows.append({
                "dtype": "uint64" if wide else "uint32", "blocks": blocks, "num_warps": warps,
                "registers": registers, "spill_bytes": stack + local,
                "loop_instructions_per_block": round(total), "alu_pipe": round(alu), "fma_pipe": round(fma),
                "instructions_per_byte": round(total / 64, 2), "alu_bound_gbps": round(bound),
            })
    print(f"sm_{args.arch}, triton {triton.__version__}; ALU bound for {args.sms} SMs at {args.ghz} GHz")
    print("| dtype | blocks | warps | registers | spills (B) | loop instr / block / key | ALU pipe | FMA pipe | instr / byte | ALU bound GB/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['dtype']} | {r['blocks']} | {r['num_warps']} | {r['registers']} | {r['spill_bytes']} | "
            f"{r['loop_instructions_per_block']} | {r['alu_pipe']} | {r['fma_pipe']} | {r['instructions_per_byte']} | {r['alu_bound_gbps']} |"
        )
    print(json.dumps({"arch": args.arch, "triton": triton.__version__, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
