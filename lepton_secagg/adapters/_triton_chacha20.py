"""The fused Triton ChaCha20 masking kernel: every key's mask added to a ring tensor in one launch.

``add_masks(vector, key_words, sign_masks, offset)`` sets ``vector[i] +=
sign_k * word_k[offset + i]`` (mod 2^32 or 2^64) for every key k, where
``word_k`` is the RFC 8439 ChaCha20 keystream of key k (nonce 0, block counter
from 0) read as little-endian 32- or 64-bit words: the contract of
``hazmat.masking.add_masks`` and the C kernel (src_ext/chacha20.c).

One program owns ``blocks`` consecutive 64-byte ChaCha20 blocks, one block per
lane.  It keeps the block's 16 words in 16 register vectors, runs the 20
rounds for each key in turn and sums the signed keystreams in registers; then
it interleaves the 16 (or 8 for uint64) word vectors into the memory order of
the vector and reads, adds and writes each element once.  The keystream never
touches memory, so a launch with K keys costs one pass over the vector and
20 K rounds per block.

This module imports triton when it is imported; ``adapters.torch`` imports it
lazily, the first time a GPU tensor is masked, so torch and triton stay out of
``import lepton_secagg`` (DESIGN.md §4, §7).  Under ``TRITON_INTERPRET=1``
(set before this module is imported) the same kernel runs on CPU tensors in
Triton's interpreter, which is how CI checks it without a GPU.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import triton
import triton.language as tl

if TYPE_CHECKING:
    import torch

__all__ = ["add_masks", "interpreted", "BLOCKS", "NUM_WARPS"]

#: ChaCha20 blocks per program (a power of two) and warps per program.  256
#: blocks on 4 warps give each thread two independent blocks to interleave
#: (instruction-level parallelism) in 156 registers without spills on sm_90
#: (bench/triton_sass.py); bench/gpu_check.py times a sweep of shapes on a GPU.
BLOCKS = 256
NUM_WARPS = 4

# The @triton.jit functions below are Triton's language, not Python: their
# parameters are Triton tensors typed by the JIT at launch, and Triton reads
# parameter annotations itself (``tl.constexpr``), so they carry none, and
# triton ships no type information: hence the per-line ignores.


@triton.jit
def _quarter_round(a, b, c, d):  # type: ignore[no-untyped-def]
    # rotations written out: x >> (32 - r) is a logical shift on uint32
    a = a + b
    d = d ^ a
    d = (d << 16) | (d >> 16)
    c = c + d
    b = b ^ c
    b = (b << 12) | (b >> 20)
    a = a + b
    d = d ^ a
    d = (d << 8) | (d >> 24)
    c = c + d
    b = b ^ c
    b = (b << 7) | (b >> 25)
    return a, b, c, d


@triton.jit
def _interleave8(x0, x1, x2, x3, x4, x5, x6, x7):  # type: ignore[no-untyped-def]
    # position 8 i + j of the result holds xj[i]: interleave(evens, odds), recursively
    return tl.interleave(
        tl.interleave(tl.interleave(x0, x4), tl.interleave(x2, x6)),
        tl.interleave(tl.interleave(x1, x5), tl.interleave(x3, x7)),
    )


@triton.jit
def _wide(lo, hi):  # type: ignore[no-untyped-def]
    """The uint64 element made of two little-endian keystream words."""
    return lo.to(tl.uint64) | (hi.to(tl.uint64) << 32)


@triton.jit  # type: ignore[untyped-decorator]
def _signed_sum(x, sign, valid, KEYS: tl.constexpr):  # type: ignore[no-untyped-def]
    """Sum over the key axis of ``x`` (sign 0) or ``-x`` (sign all ones), skipping keys past the end."""
    # (x ^ sign) - sign is x for sign 0 and -x for sign all-ones: no branch on the key
    signed = (x ^ sign) - sign
    if KEYS > 1:
        signed = tl.where(valid, signed, 0)
    return tl.sum(signed, axis=0)


@triton.jit  # type: ignore[untyped-decorator]
def _add_masks_kernel(  # type: ignore[no-untyped-def]
    vector_ptr,  # int32 / int64 ring elements (the bit patterns of uint32 / uint64)
    key_ptr,  # int32 (num_keys, 8): the little-endian words of each key
    sign_ptr,  # vector's dtype (num_keys,): 0 to add the mask, -1 (all ones) to subtract it
    num_keys,
    n,
    first_block,  # the stream block of vector[-skip]
    skip,  # elements of the first block before vector[0]
    BLOCKS: tl.constexpr,  # stream blocks per program
    KEYS: tl.constexpr,  # keys per loop iteration
    WIDE: tl.constexpr,  # uint64 elements
):
    pid = tl.program_id(0).to(tl.int64)
    lane_block = pid * BLOCKS + tl.arange(0, BLOCKS)
    counter = (lane_block + first_block).to(tl.uint32)[None, :]  # < 2^32: the caller checks the stream limit
    if WIDE:
        acc_t = tl.uint64
    else:
        acc_t = tl.uint32
    zero = tl.zeros([BLOCKS], dtype=acc_t)
    s0, s1, s2, s3, s4, s5, s6, s7 = zero, zero, zero, zero, zero, zero, zero, zero
    s8, s9, s10, s11, s12, s13, s14, s15 = zero, zero, zero, zero, zero, zero, zero, zero
    for first_key in range(0, num_keys, KEYS):
        key = first_key + tl.arange(0, KEYS)
        valid = (key < num_keys)[:, None]
        words = key_ptr + key * 8
        k0 = tl.load(words + 0, mask=key < num_keys, other=0).to(tl.uint32, bitcast=True)[:, None]
        k1 = tl.load(words + 1, mask=key < num_keys, other=0).to(tl.uint32, bitcast=True)[:, None]
        k2 = tl.load(words + 2, mask=key < num_keys, other=0).to(tl.uint32, bitcast=True)[:, None]
        k3 = tl.load(words + 3, mask=key < num_keys, other=0).to(tl.uint32, bitcast=True)[:, None]
        k4 = tl.load(words + 4, mask=key < num_keys, other=0).to(tl.uint32, bitcast=True)[:, None]
        k5 = tl.load(words + 5, mask=key < num_keys, other=0).to(tl.uint32, bitcast=True)[:, None]
        k6 = tl.load(words + 6, mask=key < num_keys, other=0).to(tl.uint32, bitcast=True)[:, None]
        k7 = tl.load(words + 7, mask=key < num_keys, other=0).to(tl.uint32, bitcast=True)[:, None]
        sign = tl.load(sign_ptr + key, mask=key < num_keys, other=0).to(acc_t, bitcast=True)[:, None]
        w = tl.zeros([KEYS, BLOCKS], dtype=tl.uint32)
        # RFC 8439 §2.3: constants "expand 32-byte k", the key, the counter, the all-zero nonce
        x0, x1, x2, x3 = w + 0x61707865, w + 0x3320646E, w + 0x79622D32, w + 0x6B206574
        x4, x5, x6, x7 = w + k0, w + k1, w + k2, w + k3
        x8, x9, x10, x11 = w + k4, w + k5, w + k6, w + k7
        x12, x13, x14, x15 = w + counter, w, w, w
        for _ in tl.static_range(10):
            x0, x4, x8, x12 = _quarter_round(x0, x4, x8, x12)
            x1, x5, x9, x13 = _quarter_round(x1, x5, x9, x13)
            x2, x6, x10, x14 = _quarter_round(x2, x6, x10, x14)
            x3, x7, x11, x15 = _quarter_round(x3, x7, x11, x15)
            x0, x5, x10, x15 = _quarter_round(x0, x5, x10, x15)
            x1, x6, x11, x12 = _quarter_round(x1, x6, x11, x12)
            x2, x7, x8, x13 = _quarter_round(x2, x7, x8, x13)
            x3, x4, x9, x14 = _quarter_round(x3, x4, x9, x14)
        x0, x1, x2, x3 = x0 + 0x61707865, x1 + 0x3320646E, x2 + 0x79622D32, x3 + 0x6B206574
        x4, x5, x6, x7 = x4 + k0, x5 + k1, x6 + k2, x7 + k3
        x8, x9, x10, x11 = x8 + k4, x9 + k5, x10 + k6, x11 + k7
        x12 = x12 + counter
        if WIDE:
            s0 += _signed_sum(_wide(x0, x1), sign, valid, KEYS)
            s1 += _signed_sum(_wide(x2, x3), sign, valid, KEYS)
            s2 += _signed_sum(_wide(x4, x5), sign, valid, KEYS)
            s3 += _signed_sum(_wide(x6, x7), sign, valid, KEYS)
            s4 += _signed_sum(_wide(x8, x9), sign, valid, KEYS)
            s5 += _signed_sum(_wide(x10, x11), sign, valid, KEYS)
            s6 += _signed_sum(_wide(x12, x13), sign, valid, KEYS)
            s7 += _signed_sum(_wide(x14, x15), sign, valid, KEYS)
        else:
            s0 += _signed_sum(x0, sign, valid, KEYS)
            s1 += _signed_sum(x1, sign, valid, KEYS)
            s2 += _signed_sum(x2, sign, valid, KEYS)
            s3 += _signed_sum(x3, sign, valid, KEYS)
            s4 += _signed_sum(x4, sign, valid, KEYS)
            s5 += _signed_sum(x5, sign, valid, KEYS)
            s6 += _signed_sum(x6, sign, valid, KEYS)
            s7 += _signed_sum(x7, sign, valid, KEYS)
            s8 += _signed_sum(x8, sign, valid, KEYS)
            s9 += _signed_sum(x9, sign, valid, KEYS)
            s10 += _signed_sum(x10, sign, valid, KEYS)
            s11 += _signed_sum(x11, sign, valid, KEYS)
            s12 += _signed_sum(x12, sign, valid, KEYS)
            s13 += _signed_sum(x13, sign, valid, KEYS)
            s14 += _signed_sum(x14, sign, valid, KEYS)
            s15 += _signed_sum(x15, sign, valid, KEYS)
    if WIDE:
        mask = _interleave8(s0, s1, s2, s3, s4, s5, s6, s7)
        index = pid * (BLOCKS * 8) + tl.arange(0, BLOCKS * 8) - skip
    else:
        mask = tl.interleave(
            _interleave8(s0, s2, s4, s6, s8, s10, s12, s14),
            _interleave8(s1, s3, s5, s7, s9, s11, s13, s15),
        )
        index = pid * (BLOCKS * 16) + tl.arange(0, BLOCKS * 16) - skip
    inside = (index >= 0) & (index < n)
    values = tl.load(vector_ptr + index, mask=inside, other=0).to(acc_t, bitcast=True)
    values += mask
    tl.store(vector_ptr + index, values.to(vector_ptr.dtype.element_ty, bitcast=True), mask=inside)


def interpreted() -> bool:
    """True when the kernel runs in Triton's CPU interpreter: ``TRITON_INTERPRET=1`` at import and now."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(_add_masks_kernel, InterpretedFunction) and bool(triton.knobs.runtime.interpret)


def add_masks(
    vector: torch.Tensor, key_words: torch.Tensor, sign_masks: torch.Tensor, offset: int, *,
    blocks: int = BLOCKS, keys_per_step: int = 1, num_warps: int = NUM_WARPS,
) -> None:
    """Add every key's signed ChaCha20 mask to ``vector`` in place, in one launch.

    Args:
        vector: a contiguous 1-D int32 / int64 tensor (uint32 / uint64 bit
            patterns) on the kernel's device (CUDA; the CPU in interpreter mode).
        key_words: int32 (num_keys, 8) on the same device, the little-endian
            words of each 32-byte key.
        sign_masks: (num_keys,) of the vector's dtype on the same device, 0 for
            a mask to add and -1 for one to subtract.
        offset: the element index of ``vector[0]`` in the streams; the caller
            has checked that the range ends within the 2^38-byte stream.
        blocks, num_warps: launch shape (``BLOCKS`` and ``NUM_WARPS`` by
            default); ``blocks`` must be a power of two.
        keys_per_step: keys computed side by side per loop step (a power of
            two).  1 on a GPU; more only pays off in the interpreter, which
            costs per operation rather than per element.

    The caller (``adapters.torch.add_masks``) validates everything; this
    function only launches.
    """
    per_block = 16 // (vector.element_size() // 4)
    first_block, skip = divmod(offset, per_block)
    total_blocks = -(-(skip + vector.numel()) // per_block)
    grid = (triton.cdiv(total_blocks, blocks),)
    _add_masks_kernel[grid](
        vector,
        key_words,
        sign_masks,
        key_words.shape[0],
        vector.numel(),
        first_block,
        skip,
        BLOCKS=blocks,
        KEYS=keys_per_step,
        WIDE=vector.element_size() == 8,
        num_warps=num_warps,
    )
