"""The XOFs of draft-irtf-cfrg-vdaf-20: XofTurboShake128 and XofFixedKeyAes128.

Theory of operation: TurboSHAKE128 and AES-128 come from pycryptodome
(``Crypto.Hash.TurboSHAKE128``, ``Crypto.Cipher.AES``); this module only
frames their inputs as the spec says and turns the byte stream into field
elements by rejection sampling.  Sampling reads whole batches and drops the
(rare: below 2^-32 per element for both fields) words that are not below the
modulus, which yields exactly the sequence of the spec's one-word-at-a-time loop.
"""
from __future__ import annotations

import numpy as np
from Crypto.Cipher import AES
from Crypto.Hash import TurboSHAKE128

from .field import Field, FieldVec

__all__ = ["XofTurboShake128", "XofFixedKeyAes128", "format_dst", "VERSION"]

# The version byte of every domain separation tag.  Draft 20 still carries 18
# (its test vectors only reproduce with 18: the byte changes with the wire format, not every draft).
VERSION = 18


def format_dst(algo_class: int, algo: int, usage: int) -> bytes:
    """The 8-byte tag prefix: version, algorithm class, algorithm id, usage (big-endian)."""
    return bytes([VERSION, algo_class]) + algo.to_bytes(4, "big") + usage.to_bytes(2, "big")


class _Xof:
    SEED_SIZE: int

    def __init__(self, seed: bytes, dst: bytes, binder: bytes):  # pragma: no cover - overridden
        raise NotImplementedError

    def next(self, length: int) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def next_vec(self, field: type[Field], length: int) -> FieldVec:
        """The next ``length`` field elements (rejection sampling, masked to the modulus' bit length)."""
        mask = (1 << field.MODULUS.bit_length()) - 1
        parts, have = [], 0
        while have < length:
            words = field.from_le_bytes(self.next((length - have) * field.ENCODED_SIZE)) & mask
            words = words[words < field.MODULUS]
            parts.append(words)
            have += len(words)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    @classmethod
    def derive_seed(cls, seed: bytes, dst: bytes, binder: bytes) -> bytes:
        return cls(seed, dst, binder).next(cls.SEED_SIZE)

    @classmethod
    def expand_into_vec(cls, field: type[Field], seed: bytes, dst: bytes, binder: bytes, length: int) -> FieldVec:
        if length == 0:
            return field.zeros(0)
        return cls(seed, dst, binder).next_vec(field, length)


def _check_dst(dst: bytes) -> None:
    if len(dst) > 0xFFFF:
        raise ValueError(f"dst: at most 65535 bytes, got {len(dst)}.")


class XofTurboShake128(_Xof):
    """TurboSHAKE128 (domain byte 1) over ``le16(len dst) || dst || le8(len seed) || seed || binder``."""

    SEED_SIZE = 32

    def __init__(self, seed: bytes, dst: bytes, binder: bytes):
        _check_dst(dst)
        if len(seed) > 255:
            raise ValueError(f"seed: at most 255 bytes, got {len(seed)}.")
        self._h = TurboSHAKE128.new(domain=1)
        self._h.update(len(dst).to_bytes(2, "little") + dst + bytes([len(seed)]) + seed + binder)

    def next(self, length: int) -> bytes:
        return self._h.read(length)


class XofFixedKeyAes128(_Xof):
    """Fixed-key AES-128 in the circular correlation-robust mode of the spec (16-byte seeds).

    The AES key is TurboSHAKE128 (domain byte 2) of ``le16(len dst) || dst || binder``;
    block ``i`` of the stream is ``AES(k, s) xor s`` with ``s = sigma(seed xor le128(i))``.
    """

    SEED_SIZE = 16

    def __init__(self, seed: bytes, dst: bytes, binder: bytes):
        _check_dst(dst)
        if len(seed) != self.SEED_SIZE:
            raise ValueError(f"seed: XofFixedKeyAes128 takes 16 bytes, got {len(seed)}.")
        h = TurboSHAKE128.new(domain=2)
        h.update(len(dst).to_bytes(2, "little") + dst + binder)
        self._cipher = AES.new(h.read(16), AES.MODE_ECB)
        self._seed = np.frombuffer(seed, dtype="<u8")
        self._consumed = 0

    def next(self, length: int) -> bytes:
        first, offset = divmod(self._consumed, 16)
        last = (self._consumed + length) // 16
        self._consumed += length
        count = last - first + 1
        # seed xor le128(i): the counter only reaches the low 64-bit half here.
        blocks = np.empty((count, 2), dtype="<u8")
        blocks[:, 0] = self._seed[0] ^ np.arange(first, last + 1, dtype=np.uint64)
        blocks[:, 1] = self._seed[1]
        sigma = np.empty_like(blocks)
        sigma[:, 0] = blocks[:, 1]
        sigma[:, 1] = blocks[:, 1] ^ blocks[:, 0]
        raw = sigma.tobytes()
        hashed = np.frombuffer(self._cipher.encrypt(raw), dtype="<u8") ^ sigma.reshape(-1)
        return hashed.tobytes()[offset : offset + length]
