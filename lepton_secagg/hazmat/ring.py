"""Vectors in Z_(2^bits), 1 <= bits <= 64, held as uint32 or uint64.

Adds wrap modulo 2^32 or 2^64 for free; since 2^bits divides that, a single
reduction at the end (``reduce``) gives the result mod 2^bits.
"""
from __future__ import annotations

import numpy as np

__all__ = ["MAX_BITS", "dtype_for", "modulus_mask", "reduce", "check_vector"]

MAX_BITS = 64


def dtype_for(bits: int) -> np.dtype:
    """uint32 for bits <= 32, uint64 above (little-endian, native on x86/ARM)."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an int in 1..{MAX_BITS}, got {bits!r}.")
    return np.dtype(np.uint32 if bits <= 32 else np.uint64)


def modulus_mask(bits: int) -> int:
    """2^bits - 1."""
    dtype_for(bits)
    return (1 << bits) - 1


def reduce(vector: np.ndarray, bits: int) -> np.ndarray:
    """``vector mod 2^bits`` in place (a no-op when bits is the dtype's full width); returns it."""
    if bits < 8 * vector.itemsize:
        np.bitwise_and(vector, vector.dtype.type(modulus_mask(bits)), out=vector)
    return vector


def check_vector(vector, length: int, bits: int, what: str = "input") -> np.ndarray:
    """Validate a client vector and return it as a fresh contiguous array of ``dtype_for(bits)``.

    Raises:
        TypeError: not an integer array.
        ValueError: wrong shape or length, or an element outside [0, 2^bits).
    """
    arr = np.asarray(vector)
    if arr.dtype.kind not in "ui":
        raise TypeError(f"the {what} must be an integer array, got dtype {arr.dtype}.")
    if arr.ndim != 1 or arr.shape[0] != length:
        raise ValueError(f"the {what} must be a 1-D array of length {length}, got shape {arr.shape}.")
    if arr.size:
        if arr.dtype.kind == "i" and int(arr.min()) < 0:
            raise ValueError(f"the {what} has negative elements; values must lie in [0, 2^{bits}).")
        if int(arr.max()) > modulus_mask(bits):
            raise ValueError(f"the {what} has elements >= 2^{bits}; values must lie in [0, 2^{bits}).")
    return np.ascontiguousarray(arr, dtype=dtype_for(bits)).copy()
