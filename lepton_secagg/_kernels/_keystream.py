"""The mask PRG's keystream, on pycryptodome: the one implementation.

``keystream(suite, key, nbytes, offset)`` returns bytes ``offset`` to
``offset + nbytes`` of the stream:

* ``"aes128ctr"``: AES-128 with a 16-byte key in counter mode; the counter
  block is a 128-bit big-endian integer starting at 0 (IV = 0^16).
* ``"chacha20"``: RFC 8439 ChaCha20 with a 32-byte key, a 12-byte all-zero
  nonce and the block counter starting at 0.

It lives in the kernels layer because the numpy kernel (``_native.py``)
masks with it; ``hazmat.prg`` re-exports it as the PRG's public face and
adds key derivation.  pycryptodome is the reference; the C kernels and the
torch path must reproduce it bit for bit.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from Crypto.Cipher import AES, ChaCha20

if TYPE_CHECKING:  # the cipher classes, for annotations only (pycryptodome keeps CtrMode in a private module)
    from Crypto.Cipher._mode_ctr import CtrMode
    from Crypto.Cipher.ChaCha20 import ChaCha20Cipher

__all__ = ["SUITES", "key_size", "keystream", "keystream_into"]

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
        counter: CtrMode = AES.new(bytes(key), AES.MODE_CTR, nonce=b"", initial_value=offset // 16)
        if offset % 16:
            counter.encrypt(bytes(offset % 16))
        return counter
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
