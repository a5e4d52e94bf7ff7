"""Add or remove PRG masks on a vector in Z_(2^(8*itemsize)), in place.

``add_masks(vector, keys, signs)`` sets ``vector += sign_i * mask_i`` for each
key, where ``mask_i`` is ``keystream(suite, keys[i], len*itemsize,
offset*itemsize)`` read as little-endian words and ``offset`` counts
elements.  Arguments are checked here; the work happens in the kernel chosen
by ``lepton_secagg._kernels`` (C or numpy, bit-identical).
"""
from __future__ import annotations

import operator
import os
from collections.abc import Iterable, Sequence
from typing import SupportsIndex, cast

import numpy as np

from .. import _kernels
from .prg import key_size
from .ring import RingVector

__all__ = ["add_masks", "check_mask_arguments", "STREAM_LIMITS"]

#: bytes addressable in one stream: ChaCha20 has a 32-bit block counter (256 GiB);
#: AES streams are capped at 2^64 bytes so kernels can use 64-bit byte offsets.
STREAM_LIMITS = {"aes128ctr": 1 << 64, "chacha20": 64 << 32}


def check_mask_arguments(
    keys: Iterable[object], signs: Iterable[object], suite: str, offset: int, length: int, itemsize: int
) -> tuple[list[bytes], list[int]]:
    """Validate the arguments every masking entry point shares; returns keys as bytes and signs as ints.

    Raises:
        TypeError / ValueError: an unknown suite, a wrong key type or size, a
            sign other than +1/-1, a bad offset, or a range past the stream's end.
    """
    size = key_size(suite)
    key_list, sign_list = list(keys), list(signs)
    if len(key_list) != len(sign_list):
        raise ValueError(f"got {len(key_list)} keys but {len(sign_list)} signs.")
    out_keys: list[bytes] = []
    for key in key_list:
        if not isinstance(key, (bytes, bytearray)):
            raise TypeError(f"keys must be bytes, not {type(key).__name__}.")
        if len(key) != size:
            raise ValueError(f"a {suite} key is {size} bytes, got {len(key)}.")
        out_keys.append(bytes(key))
    out_signs: list[int] = []
    for sign in sign_list:
        # ints and numpy integers (operator.index refuses floats with TypeError); not
        # isinstance(sign, SupportsIndex), a runtime Protocol check costing ~10 us a sign
        try:
            value = None if isinstance(sign, bool) else operator.index(cast(SupportsIndex, sign))
        except TypeError:
            value = None
        if value not in (1, -1):
            raise ValueError(f"signs must be +1 or -1, got {sign!r}.")
        out_signs.append(value)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative int, got {offset!r}.")
    end = (offset + length) * itemsize
    if end > STREAM_LIMITS[suite]:
        raise ValueError(f"the mask range ends at byte {end}, past the {suite} stream limit of {STREAM_LIMITS[suite]}.")
    return out_keys, out_signs


def add_masks(
    vector: RingVector,
    keys: Sequence[bytes],
    signs: Sequence[int],
    suite: str = "aes128ctr",
    offset: int = 0,
    threads: int | None = None,
) -> RingVector:
    """Add ``sign_i * PRG(keys[i])`` to ``vector`` in place and return it.

    Args:
        vector: a writable 1-D uint32 or uint64 numpy array (any stride).
        keys: PRG keys, each ``prg.key_size(suite)`` bytes.
        signs: +1 or -1 for each key.
        suite: ``"aes128ctr"`` or ``"chacha20"``.
        offset: the element index of ``vector[0]`` in the mask streams.
        threads: worker threads for the C kernel (None: one per CPU for large
            vectors; 1: none).  The numpy kernel ignores it.

    Raises:
        TypeError / ValueError: wrong dtype, shape, key size, sign or offset.
    """
    if not isinstance(vector, np.ndarray):
        raise TypeError(f"vector must be a numpy array, not {type(vector).__name__}.")
    if vector.dtype not in (np.dtype(np.uint32), np.dtype(np.uint64)):
        raise TypeError(f"vector must be uint32 or uint64, got {vector.dtype}.")
    if vector.ndim != 1:
        raise ValueError(f"vector must be 1-D, got shape {vector.shape}.")
    if not vector.flags.writeable:
        raise ValueError("vector must be writable.")
    key_list, sign_list = check_mask_arguments(keys, signs, suite, offset, vector.shape[0], vector.itemsize)
    if threads is None:
        threads = min(os.cpu_count() or 1, 8) if vector.nbytes >= (1 << 20) else 1
    elif isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}.")
    if not key_list or vector.shape[0] == 0:
        return vector
    if not vector.flags.c_contiguous:
        # Kernels take contiguous buffers; work on a copy and write it back.
        work = np.ascontiguousarray(vector)
        _kernels.add_masks(work, key_list, sign_list, suite, offset, threads)
        vector[...] = work
        return vector
    _kernels.add_masks(vector, key_list, sign_list, suite, offset, threads)
    return vector
