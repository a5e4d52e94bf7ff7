"""The mask PRG: a seekable keystream with a bit-exact contract.

``keystream(suite, key, nbytes, offset)`` returns bytes ``offset`` to
``offset + nbytes`` of the stream:

* ``"aes128ctr"``: AES-128 with a 16-byte key in counter mode; the counter
  block is a 128-bit big-endian integer starting at 0 (IV = 0^16).
* ``"chacha20"``: RFC 8439 ChaCha20 with a 32-byte key, a 12-byte all-zero
  nonce and the block counter starting at 0.

pycryptodome is the reference implementation; the C kernels and the torch
path must reproduce it bit for bit.  PRG keys never come straight from a
secret: ``derive_prg_key`` runs HKDF over a 32-byte seed with a label naming
the suite and the purpose.
"""
from __future__ import annotations

from Crypto.Cipher import AES, ChaCha20
from Crypto.Cipher.ChaCha20 import ChaCha20Cipher
from Crypto.Cipher._mode_ctr import CtrMode

from .agreement import derive_key

__all__ = ["SUITES", "key_size", "keystream", "keystream_into", "derive_prg_key"]

#: suite name -> key size in bytes
SUITES = {"aes128ctr": 16, "chacha20": 32}

_CHACHA_NONCE = bytes(12)
_CHACHA_MAX = 64 * (1 << 32)  # a 32-bit block counter addresses 256 GiB
_STREAM_END = {"aes128ctr": 16 << 128, "chacha20": _CHACHA_MAX}  # AES: a 128-bit counter


def key_size(suite: str) -> int:
    """The PRG key size of ``suite``; ValueError for an unknown suite."""
    try:
        return SUITES[suite]
    except (KeyError, TypeError):
        raise ValueError(f"unknown PRG suite {suite!r}; choose one of {sorted(SUITES)}.") from None


def _cipher(suite: str, key: bytes, offset: int) -> CtrMode | ChaCha20Cipher:
    """A pycryptodome cipher positioned at byte ``offset`` of the stream."""
    size = key_size(suite)
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"the PRG key must be bytes, not {type(key).__name__}.")
    if len(key) != size:
        raise ValueError(f"a {suite} key is {size} bytes, got {len(key)}.")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"the offset must be a non-negative int, got {offset!r}.")
    if suite == "aes128ctr":
        cipher = AES.new(bytes(key), AES.MODE_CTR, nonce=b"", initial_value=offset // 16)
        if offset % 16:
            cipher.encrypt(bytes(offset % 16))
        return cipher
    if offset > _CHACHA_MAX:
        raise ValueError("a chacha20 stream is 256 GiB long; the offset is past its end.")
    chacha = ChaCha20.new(key=bytes(key), nonce=_CHACHA_NONCE)
    chacha.seek(offset)
    return chacha


def keystream(suite: str, key: bytes, nbytes: int, offset: int = 0) -> bytes:
    """Bytes ``offset .. offset + nbytes`` of the ``suite`` stream under ``key``."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"nbytes must be a non-negative int, got {nbytes!r}.")
    cipher = _cipher(suite, key, offset)
    if offset + nbytes > _STREAM_END[suite]:
        raise ValueError(f"a {suite} stream is {_STREAM_END[suite]} bytes long; the request runs past its end.")
    return cipher.encrypt(bytes(nbytes))


def keystream_into(suite: str, key: bytes, out: memoryview, zeros: bytes | memoryview, offset: int = 0) -> None:
    """Write ``len(out)`` keystream bytes from ``offset`` into ``out``.

    ``zeros`` is a zero-filled buffer of the same length, passed in so a loop
    over many keys allocates nothing.
    """
    _cipher(suite, key, offset).encrypt(zeros, output=out)


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
