"""Vectors in Z_(2^bits), 1 <= bits <= 64, held as uint32 or uint64.

Adds wrap modulo 2^32 or 2^64 for free; since 2^bits divides that, a single
reduction at the end (``reduce``) gives the result mod 2^bits.  A mask in
Z_(2^bits) is therefore the word-width keystream word reduced mod 2^bits.

On the wire a vector is packed at ``bits`` bits per element (``pack``,
``unpack``): a little-endian bit string, element i in bits [i bits,
(i + 1) bits), pad bits of the last byte 0, ``packed_size`` =
ceil(bits m / 8) bytes.  At 32 and 64 bits that is the words' own
little-endian bytes, so packing is a view and costs nothing.
"""
from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt

from .. import _kernels

__all__ = ["RingVector", "RingDtype", "MAX_BITS", "dtype_for", "modulus_mask", "reduce", "check_vector", "packed_size", "pack", "unpack"]

MAX_BITS = 64

#: A vector in Z_(2^bits): uint32 words for bits <= 32, uint64 above.
RingVector = npt.NDArray[np.uint32] | npt.NDArray[np.uint64]
#: The dtype of a ``RingVector``.
RingDtype = np.dtype[np.uint32] | np.dtype[np.uint64]


def dtype_for(bits: int) -> RingDtype:
    """uint32 for bits <= 32, uint64 above (little-endian, native on x86/ARM)."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an int in 1..{MAX_BITS}, got {bits!r}.")
    if bits <= 32:
        return np.dtype(np.uint32)
    return np.dtype(np.uint64)


def modulus_mask(bits: int) -> int:
    """2^bits - 1."""
    dtype_for(bits)
    return (1 << bits) - 1


def reduce(vector: RingVector, bits: int) -> RingVector:
    """``vector mod 2^bits`` in place (a no-op when bits is the dtype's full width); returns it."""
    if bits < 8 * vector.itemsize:
        np.bitwise_and(vector, vector.dtype.type(modulus_mask(bits)), out=vector)
    return vector


def check_vector(vector: npt.ArrayLike, length: int, bits: int, what: str = "input") -> RingVector:
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
    return _as_ring(arr, bits).copy()


def packed_size(length: int, bits: int) -> int:
    """ceil(bits * length / 8): the bytes of ``length`` elements packed at ``bits`` bits."""
    dtype_for(bits)
    return -(-length * bits // 8)


def pack(vector: RingVector, bits: int) -> memoryview:
    """The packed bytes of a reduced vector of ``dtype_for(bits)`` (a buffer; a view when no work is needed).

    Raises:
        TypeError: not a 1-D uint32/uint64 array.
        ValueError: an element is >= 2^bits.
    """
    if not isinstance(vector, np.ndarray) or vector.dtype not in (np.dtype(np.uint32), np.dtype(np.uint64)) or vector.ndim != 1:
        raise TypeError("pack takes a 1-D uint32 or uint64 numpy array.")
    words = np.ascontiguousarray(vector)
    if bits == 8 * words.itemsize and sys.byteorder == "little":
        return words.data.cast("B")  # the words' own bytes: no copy
    out = np.empty(packed_size(words.shape[0], bits), dtype=np.uint8)
    _kernels.pack_bits(words, bits, out)
    return out.data


def unpack(payload: bytes | bytearray | memoryview, bits: int, length: int) -> RingVector:
    """The ``length`` elements of ``dtype_for(bits)`` packed in ``payload`` (read-only when a view).

    Raises:
        ValueError: ``payload`` is not ``packed_size(length, bits)`` bytes, or
            its pad bits are not 0 (a non-canonical encoding).
    """
    dtype = dtype_for(bits)
    raw = np.frombuffer(payload, dtype=np.uint8)
    if raw.size != packed_size(length, bits):
        raise ValueError(f"{length} elements of {bits} bits take {packed_size(length, bits)} bytes, got {raw.size}.")
    pad = 8 * raw.size - bits * length
    if pad and int(raw[-1]) >> (8 - pad):
        raise ValueError("the pad bits after the last element are not 0 (a non-canonical encoding).")
    if bits == 8 * dtype.itemsize:
        return _as_ring(np.frombuffer(payload, dtype=dtype.newbyteorder("<")), bits)
    out = np.empty(length, dtype=dtype)
    _kernels.unpack_bits(raw, bits, out)
    return out


def _as_ring(array: npt.ArrayLike, bits: int) -> RingVector:
    """``array`` as a C-contiguous array of ``dtype_for(bits)`` (itself when it already is one)."""
    if dtype_for(bits) == np.dtype(np.uint32):
        return np.ascontiguousarray(array, dtype=np.uint32)
    return np.ascontiguousarray(array, dtype=np.uint64)
