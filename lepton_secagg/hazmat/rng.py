"""The one source of secret randomness, injectable.

Theory of operation: every key, seed, nonce and polynomial coefficient the
library draws comes from an object with a ``bytes(n) -> bytes`` method.
``SystemRng`` reads the operating system's CSPRNG.  ``DeterministicRng``
expands a seed with AES-128-CTR (keyed by SHA-256 of the seed), so a test or a
vector can replay a whole transcript; it is never the default.
"""
from __future__ import annotations

import builtins
import hashlib
import os
from typing import Protocol, runtime_checkable

from Crypto.Cipher import AES

__all__ = ["Rng", "SystemRng", "DeterministicRng", "resolve"]


@runtime_checkable
class Rng(Protocol):
    """Anything that returns ``n`` secret random bytes."""

    def bytes(self, n: int) -> bytes: ...


class SystemRng:
    """Randomness from the operating system (``os.urandom``)."""

    def bytes(self, n: int) -> bytes:
        return os.urandom(_check_count(n))

    def __repr__(self) -> str:
        return "SystemRng()"


class DeterministicRng:
    """A reproducible stream for tests and vectors: AES-128-CTR keyed by SHA-256(seed).

    Args:
        seed: bytes, str or a non-negative int naming the stream.
    """

    def __init__(self, seed: bytes | str | int):
        if isinstance(seed, bool) or not isinstance(seed, (bytes, str, int)):
            raise TypeError(f"seed must be bytes, str or int, not {type(seed).__name__}.")
        # A type tag keeps the int, str and bytes forms of a seed apart.
        if isinstance(seed, int):
            if seed < 0:
                raise ValueError("an integer seed must be non-negative.")
            seed = b"I" + seed.to_bytes((seed.bit_length() + 8) // 8, "big")
        elif isinstance(seed, str):
            seed = b"S" + seed.encode()
        else:
            seed = b"B" + seed
        key = hashlib.sha256(b"lepton-secagg/v1/deterministic-rng" + seed).digest()[:16]
        self._cipher = AES.new(key, AES.MODE_CTR, nonce=b"")

    def bytes(self, n: int) -> bytes:
        return self._cipher.encrypt(bytes(_check_count(n)))

    # builtins.bytes: inside this class ``bytes`` names the method
    def fork(self, label: builtins.bytes | str) -> "DeterministicRng":
        """A new independent stream derived from this one and ``label``."""
        if isinstance(label, str):
            label = label.encode()
        return DeterministicRng(self.bytes(32) + label)

    def __repr__(self) -> str:
        return "DeterministicRng(<seeded>)"


def resolve(rng: Rng | None) -> Rng:
    """Return ``rng``, or a ``SystemRng`` when it is None; reject objects without ``bytes``."""
    if rng is None:
        return SystemRng()
    if not callable(getattr(rng, "bytes", None)):
        raise TypeError(f"rng must have a bytes(n) method, got {type(rng).__name__}.")
    return rng


def _check_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"the byte count must be an int, not {type(n).__name__}.")
    if n < 0:
        raise ValueError(f"the byte count must be non-negative, got {n}.")
    return n
