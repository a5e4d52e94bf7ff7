"""The client's whole update in one pass: float vector in, masked ring vector out.

``encode_masked(quantizer, values, ...)`` is ``Quantizer``'s clip, scale and
stochastic rounding, the weight slot, every mask of the masked-input round and
the reduction mod 2^bits, done by one kernel (``_kernels.encode_masked``: C,
or its numpy specification) that reads each value once and writes each ring
word once, straight into the array the wire sends.

The rounding stream.  Stochastic rounding needs one uniform per value.  They
come from a keyed stream, not from numpy's PCG64, so that the C kernel can
make them on the fly and the numpy specification can make the same ones:

* key: ``round_key``, ``prg.key_size(suite)`` bytes the caller draws from the
  client's ``rng`` (the session's one source of secrets); a fresh key per
  vector;
* stream: the mask PRG ``suite`` (``prg.keystream``) under that key, from
  byte 0, read as little-endian uint32 words; word i belongs to value i;
* uniform: ``u_i = w_i * 2^-32``, a float64 in [0, 1) (exact);
* decision: ``q_i = floor(s_i) + (u_i < s_i - floor(s_i))`` with
  ``s_i = (clip(x_i) + clip) * levels / (2 clip)``, then ``min(q_i, levels)``
  times the weight, as ``Quantizer`` does.  32 bits make the rounding
  probability exact to 2^-32 of a step.

The outcome of rounding is hidden by the masks (DESIGN.md §3 even allows an
OS-seeded PCG64); taking it from the client's rng keeps a session replayable
from one seed.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _kernels
from .masking import check_mask_arguments
from .prg import key_size
from .quantize import Quantizer
from .ring import RingVector, dtype_for

__all__ = ["check_float_input", "encode_masked", "quantize_keyed"]


def check_float_input(quantizer: Quantizer, values: npt.ArrayLike, weight: int | None) -> npt.NDArray[np.floating[Any]]:
    """Validate a float update for ``quantizer``; returns it as a contiguous float32/float64 vector.

    The array is returned as it is when it already is one (no copy): the
    caller must not change it until it is encoded.  Finiteness is checked by
    the kernel, during the pass.

    Raises:
        TypeError: not a Quantizer, or values that are not real numbers.
        ValueError: not 1-D, or a weight that does not fit the quantizer.
    """
    if not isinstance(quantizer, Quantizer):
        raise TypeError(f"quantizer must be a Quantizer, not {type(quantizer).__name__}.")
    array = np.asarray(values)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"values must be real numbers, got dtype {array.dtype}.")
    if array.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        array = array.astype(np.float64)
    if array.ndim != 1:
        raise ValueError(f"values must be a 1-D vector, got shape {array.shape}.")
    if quantizer.max_weight is not None:  # weighted
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= quantizer.max_weight:
            raise ValueError(f"this Quantizer is weighted; pass weight= an int in 1..{quantizer.max_weight}, got {weight!r}.")
    elif weight is not None:
        raise ValueError("this Quantizer has no weight slot; create it with max_weight= to send weights.")
    return np.ascontiguousarray(array.astype(array.dtype.newbyteorder("="), copy=False))


def encode_masked(
    quantizer: Quantizer,
    values: npt.ArrayLike,
    *,
    weight: int | None = None,
    round_key: bytes,
    keys: Sequence[bytes] = (),
    signs: Sequence[int] = (),
    suite: str = "aes128ctr",
    threads: int | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> tuple[RingVector, int]:
    """Quantise ``values``, add the masks and reduce, in one pass.

    Args:
        quantizer: the session's quantiser (its ``clip``, ``levels`` and
            ``bits``; ``max_weight`` when weighted).
        values: the 1-D float update (float32 or float64 are used in place).
        weight: the client's weight, 1..max_weight, for a weighted quantiser.
        round_key: the key of the rounding stream (see the module docstring).
        keys, signs: the mask PRG keys and their +1/-1 signs, as ``masking.add_masks``.
        suite: the PRG suite of the masks and of the rounding stream.
        threads: worker threads (None: one per CPU, up to 8, for vectors of 1 MiB or more).
        meanwhile: called once, with no arguments, while the kernel's threads
            work (the C kernel; the numpy one calls it first), so Python work
            that does not depend on the result overlaps the pass; if it
            raises, the pass is abandoned and its exception propagates.

    Returns:
        ``(vector, clipped)``: a fresh ``dtype_for(bits)`` array of length
        ``quantizer.encoded_length(len(values))`` in Z_(2^bits), and how many
        values lay outside [-clip, clip].

    Raises:
        TypeError / ValueError: bad arguments, or NaN / infinite values.
    """
    array = check_float_input(quantizer, values, weight)
    if not isinstance(round_key, (bytes, bytearray)) or len(round_key) != key_size(suite):
        raise ValueError(f"round_key must be {key_size(suite)} bytes for {suite}.")
    length = quantizer.encoded_length(array.size)
    key_list, sign_list = check_mask_arguments(keys, signs, suite, 0, length, dtype_for(quantizer.bits).itemsize)
    out = np.empty(length, dtype=dtype_for(quantizer.bits))
    if quantizer.weighted:
        out[-1] = weight  # the weight slot, masked with the rest
    if threads is None:
        threads = min(os.cpu_count() or 1, 8) if out.nbytes >= (1 << 20) else 1
    elif isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}.")
    scale = quantizer.levels / (2 * quantizer.clip)
    # check_float_input let a weight through only for a weighted quantizer
    clipped, nonfinite = _kernels.encode_masked(
        array, out, quantizer.bits, float(quantizer.clip), float(scale), min(quantizer.levels, 1 << 63),
        weight if weight is not None else 1, bytes(round_key), key_list, sign_list, suite, threads, meanwhile,
    )
    if nonfinite:
        raise ValueError(f"values contain {nonfinite} NaN or infinite elements; only finite values can be quantised.")
    return out, clipped


def quantize_keyed(
    quantizer: Quantizer, values: npt.ArrayLike, *, weight: int | None = None, round_key: bytes, suite: str = "aes128ctr"
) -> tuple[RingVector, int]:
    """``encode_masked`` without masks: the quantised vector the fused pass masks."""
    return encode_masked(quantizer, values, weight=weight, round_key=round_key, suite=suite)
