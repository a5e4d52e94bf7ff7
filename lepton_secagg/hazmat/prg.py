"""The mask PRG: a seekable keystream with a bit-exact contract.

``keystream(suite, key, nbytes, offset)`` returns bytes ``offset`` to
``offset + nbytes`` of the stream:

* ``"aes128ctr"``: AES-128 with a 16-byte key in counter mode; the counter
  block is a 128-bit big-endian integer starting at 0 (IV = 0^16).
* ``"chacha20"``: RFC 8439 ChaCha20 with a 32-byte key, a 12-byte all-zero
  nonce and the block counter starting at 0.

pycryptodome is the reference implementation; the C kernels and the torch
path must reproduce it bit for bit.  The keystream itself is implemented
once, in the kernels layer (``_kernels/_keystream.py``, which the numpy
kernel masks with); this module re-exports it.  PRG keys never come straight
from a secret: ``derive_prg_key`` runs HKDF over a 32-byte seed with a label
naming the suite and the purpose.
"""
from __future__ import annotations

from .._kernels._keystream import SUITES, key_size, keystream, keystream_into
from .agreement import derive_key

__all__ = ["SUITES", "key_size", "keystream", "keystream_into", "derive_prg_key"]


def derive_prg_key(
    seed: bytes, suite: str, purpose: str, *, session_id: bytes = b"", round: str = "", parties: tuple[int, ...] = ()
) -> bytes:
    """The ``suite`` key for ``purpose`` from a 32-byte seed (HKDF-SHA256).

    ``session_id``, ``round`` and ``parties`` are passed to ``agreement.derive_key``.
    """
    if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
        raise ValueError("a PRG seed is 32 bytes.")
    if not isinstance(purpose, str) or not purpose:
        raise ValueError("purpose must be a non-empty string.")
    return derive_key(seed, f"{purpose}/{suite}", key_size(suite), session_id=session_id, round=round, parties=parties)
