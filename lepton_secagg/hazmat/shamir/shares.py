"""The ``Share`` type and the byte encoding of a share value.

A secret of L bytes (1 <= L <= ``MAX_SECRET_SIZE``) is read as a
little-endian integer and cut into m = ceil(8L / 30) limbs of 30 bits (a
32-byte secret gives 9 limbs); a share value is

    value = uint16 L  ||  m x uint32 evaluation      (all little-endian)

so a 32-byte secret gives 38-byte shares.  ``_collect`` parses and validates
the shares of one secret for reconstruction.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import numpy.typing as npt

from ...exceptions import ReconstructionError
from .field import _P, MAX_SHARES, PRIME

#: the longest secret, in bytes
MAX_SECRET_SIZE = 1024

_LIMB_BITS = 30
_HEADER = 2  # uint16 secret length


@dataclass(frozen=True, init=False)
class Share:
    """One party's share: its x-coordinate ``index`` and the encoded evaluations ``value``.

    The value is secret, so it is left out of ``repr``.  ``index`` must be an
    int in 1..``MAX_SHARES`` (not a bool) and ``value`` bytes.
    """

    index: int
    value: bytes = field(repr=False)

    def __init__(self, index: int, value: bytes):
        # A server builds tens of thousands of these per round: one combined
        # test for the usual case, the detailed ones only when it fails.
        if index.__class__ is not int or not 0 < index <= MAX_SHARES or value.__class__ is not bytes:
            _check_share(index, value)
        # frozen: write the fields past the refusing __setattr__
        fields = self.__dict__
        fields["index"] = index
        fields["value"] = value


#: a share as the reconstruction functions accept it: a ``Share`` or an ``(index, value)`` pair
ShareLike = Share | tuple[int, bytes]


def _check_share(index: object, value: object) -> None:
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"a share index must be an int, not {type(index).__name__}.")
    if not 1 <= index <= MAX_SHARES:
        raise ValueError(f"a share index must lie in 1..{MAX_SHARES}, got {index}.")
    if not isinstance(value, bytes):
        raise TypeError(f"a share value must be bytes, not {type(value).__name__}.")


def share_size(secret_size: int) -> int:
    """The length in bytes of each share value of a ``secret_size``-byte secret."""
    _check_secret_size(secret_size)
    return _HEADER + 4 * _num_limbs(secret_size)


def _num_limbs(secret_size: int) -> int:
    return -(-8 * secret_size // _LIMB_BITS)


def _to_limbs(secret: bytes) -> np.ndarray:
    """The 30-bit little-endian limbs of ``secret`` as uint64."""
    width = _num_limbs(len(secret))
    bits = np.zeros(width * _LIMB_BITS, dtype=np.uint8)
    bits[: 8 * len(secret)] = np.unpackbits(np.frombuffer(secret, dtype=np.uint8), bitorder="little")
    words = np.zeros((width, 32), dtype=np.uint8)
    words[:, :_LIMB_BITS] = bits.reshape(width, _LIMB_BITS)
    return np.packbits(words, axis=1, bitorder="little").view("<u4")[:, 0].astype(np.uint64)


def _from_limbs(limbs: np.ndarray, length: int) -> bytes | None:
    """The ``length``-byte secret with these limbs, or None if none has them."""
    if (limbs >> np.uint64(_LIMB_BITS)).any():
        return None
    bits = np.unpackbits(limbs.astype("<u4").view(np.uint8), bitorder="little").reshape(-1, 32)
    kept = bits[:, :_LIMB_BITS].ravel()
    if kept[8 * length :].any():
        return None
    return np.packbits(kept[: 8 * length], bitorder="little").tobytes()


def _from_limbs_many(limbs: np.ndarray, lengths: np.ndarray) -> list[bytes | None]:
    """``[_from_limbs(row, length) ...]`` for an (L, m) array of limbs, in a few passes."""
    count, width = limbs.shape
    if count == 0:
        return []
    bits = np.unpackbits(limbs.astype("<u4").view(np.uint8).reshape(count, width, 4), axis=2, bitorder="little")
    bits = bits[:, :, :_LIMB_BITS].reshape(count, width * _LIMB_BITS)
    beyond = np.arange(width * _LIMB_BITS)[None, :] >= 8 * lengths[:, None]
    # numpy's stubs type any(axis=...) as a scalar or an array; with an axis of a 2-D array it is an array
    too_wide = cast("npt.NDArray[np.bool_]", (limbs >> np.uint64(_LIMB_BITS)).any(axis=1))
    invalid = too_wide | cast("npt.NDArray[np.bool_]", (bits.astype(bool) & beyond).any(axis=1))
    packed = np.packbits(bits, axis=1, bitorder="little")
    blob, stride = packed.tobytes(), packed.shape[1]
    return [
        None if bad else blob[row * stride : row * stride + length]
        for row, (bad, length) in enumerate(zip(invalid.tolist(), lengths.tolist()))
    ]


def _check_secret_size(size: int) -> None:
    if not 1 <= size <= MAX_SECRET_SIZE:
        raise ValueError(f"a secret must be 1 to {MAX_SECRET_SIZE} bytes long, got {size}.")


def _check_n_t(n: int, t: int) -> None:
    for name, value in (("n", n), ("t", t)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}.")
    if not 1 <= n <= MAX_SHARES:
        raise ValueError(f"n must lie in 1..{MAX_SHARES}, got {n}.")
    if not 1 <= t <= n:
        raise ValueError(f"the threshold t must lie in 1..n = 1..{n}, got {t}.")


def _check_t(t: object) -> None:
    if isinstance(t, bool) or not isinstance(t, int):
        raise TypeError(f"t must be an int, not {type(t).__name__}.")
    if not 1 <= t <= MAX_SHARES:
        raise ValueError(f"t must lie in 1..{MAX_SHARES}, got {t}.")


def _by_index(shares: Sequence[ShareLike]) -> tuple[dict[int, bytes], set[int]]:
    """index -> value for ``Share``s or ``(index, value)`` tuples, and the indices given two different values."""
    if not isinstance(shares, Sequence):
        raise TypeError(f"shares must be a sequence of Share, not {type(shares).__name__}.")
    by_index: dict[int, bytes] = {}
    conflicting: set[int] = set()
    for share in shares:
        if isinstance(share, tuple):
            share = Share(*share)
        elif not isinstance(share, Share):
            raise TypeError(f"expected a Share, got {type(share).__name__}.")
        if by_index.setdefault(share.index, share.value) != share.value:
            conflicting.add(share.index)
    return by_index, conflicting


#: one secret's validated shares: (sorted indices, secret length, limbs (s, m) uint64)
_Collected = tuple[tuple[int, ...], int, np.ndarray]


def _collect(shares: Sequence[ShareLike], t: int) -> _Collected:
    """Validate one secret's shares: (sorted indices, secret length, limbs as an (s, m) uint64 array)."""
    _check_t(t)
    by_index, conflicting = _by_index(shares)
    if conflicting:
        raise ReconstructionError(f"two shares have index {min(conflicting)} but different values.")
    if len(by_index) < t:
        raise ReconstructionError(f"reconstruction needs {t} distinct shares, got {len(by_index)}.")
    indices = tuple(sorted(by_index))
    values = [by_index[i] for i in indices]
    size = len(values[0])
    if any(len(v) != size for v in values):
        raise ReconstructionError("the shares have different lengths, so they cannot be shares of one secret.")
    if size < _HEADER:
        raise ReconstructionError(f"a share value is {size} bytes, too short to be a share.")
    rows = np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), size)
    if (rows[:, :_HEADER] != rows[0, :_HEADER]).any():
        raise ReconstructionError("the shares encode different secret lengths, so they cannot be shares of one secret.")
    length = int.from_bytes(values[0][:_HEADER], "little")
    if not 1 <= length <= MAX_SECRET_SIZE or size != share_size(length):
        raise ReconstructionError(f"a {size}-byte share value cannot encode a {length}-byte secret; it is malformed.")
    limbs = rows[:, _HEADER:].copy().view("<u4").astype(np.uint64)
    if (limbs >= _P).any():
        raise ReconstructionError(f"a share holds a number >= {PRIME}, outside the field; it is malformed.")
    return indices, length, limbs
