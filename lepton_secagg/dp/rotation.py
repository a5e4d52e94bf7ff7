"""The randomized Hadamard rotation that flattens a vector before rounding.

Theory of operation: pad the vector with zeros to d = the next power of two,
flip the sign of each coordinate by a public random sign, and apply the
Walsh-Hadamard transform scaled by 1/sqrt(d).  The result is an orthogonal
map (norms are kept, so an L2 clip survives it) that spreads any vector's
energy evenly: each rotated coordinate is about ||x||/sqrt(d), which is what
lets a few bits per coordinate hold it.  ``unrotate`` applies the inverse
(the same transform, then the same signs) and drops the padding.

The signs need not be secret (they protect accuracy, not privacy): they come
from the AES-128-CTR keystream (``hazmat.prg``) under a key derived from a
32-byte seed the server publishes for the round, one bit per coordinate,
least significant bit of each byte first.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import numpy.typing as npt

from ..hazmat.prg import derive_prg_key, keystream

__all__ = ["round_seed", "padded_length", "rotation_signs", "fwht", "rotate", "unrotate"]

_SUITE = "aes128ctr"


def round_seed(label: bytes) -> bytes:
    """The public 32-byte rotation seed of the round whose session label is ``label`` (SHA-256)."""
    if not isinstance(label, (bytes, bytearray)):
        raise TypeError(f"the session label must be bytes, not {type(label).__name__}.")
    return hashlib.sha256(b"lepton-secagg/v1/dp-rotation-seed" + bytes(label)).digest()


def padded_length(length: int) -> int:
    """The smallest power of two >= ``length`` (at least 1)."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"the vector length must be a positive int, got {length!r}.")
    return 1 << (length - 1).bit_length()


def rotation_signs(seed: bytes, length: int) -> npt.NDArray[np.float64]:
    """``length`` signs (+1.0 / -1.0) from the public round seed (32 bytes)."""
    key = derive_prg_key(seed, _SUITE, "dp-rotation")
    raw = np.frombuffer(keystream(_SUITE, key, (length + 7) // 8), dtype=np.uint8)
    bits = np.unpackbits(raw, bitorder="little")[:length]
    return (1.0 - 2.0 * bits).astype(np.float64, copy=False)


def fwht(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The unnormalised Walsh-Hadamard transform along the last axis (length a power of two)."""
    a = np.array(values, dtype=np.float64)
    d = a.shape[-1]
    if d & (d - 1):
        raise ValueError(f"the Hadamard transform needs a power-of-two length, got {d}.")
    lead = a.shape[:-1]
    h = 1
    while h < d:
        blocks = a.reshape(*lead, d // (2 * h), 2, h)
        left, right = blocks[..., 0, :], blocks[..., 1, :]
        a = np.stack((left + right, left - right), axis=-2).reshape(*lead, d)
        h *= 2
    return a


def rotate(values: npt.ArrayLike, seed: bytes) -> npt.NDArray[np.float64]:
    """H D x / sqrt(d) of ``values`` zero-padded to d = padded_length(len(values))."""
    x = np.asarray(values, dtype=np.float64)
    d = padded_length(x.shape[-1])
    padded = np.zeros(x.shape[:-1] + (d,))
    padded[..., : x.shape[-1]] = x
    return fwht(padded * rotation_signs(seed, d)) / math.sqrt(d)


def unrotate(values: npt.ArrayLike, seed: bytes, length: int) -> npt.NDArray[np.float64]:
    """The inverse of ``rotate``: D H y / sqrt(d), cut back to ``length`` coordinates."""
    y = np.asarray(values, dtype=np.float64)
    d = y.shape[-1]
    if d != padded_length(length):
        raise ValueError(f"a rotated vector of {length} coordinates has {padded_length(length)}, got {d}.")
    return (fwht(y) * rotation_signs(seed, d) / math.sqrt(d))[..., :length]
