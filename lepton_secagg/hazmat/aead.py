"""XChaCha20-Poly1305 authenticated encryption of Shamir shares (PyNaCl).

A sealed box is ``nonce (24 bytes) || ciphertext || tag (16 bytes)``; the
random nonce comes from the injected rng (192-bit nonces make collisions
negligible).  The associated data binds the session id, the sender, the
recipient and the round, so a ciphertext cannot be replayed elsewhere.
"""
from __future__ import annotations

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

from ..exceptions import DecryptionError
from .rng import Rng, resolve

__all__ = ["KEY_SIZE", "NONCE_SIZE", "OVERHEAD", "seal", "open_box"]

KEY_SIZE = 32
NONCE_SIZE = 24
OVERHEAD = NONCE_SIZE + 16


def seal(key: bytes, plaintext: bytes, associated_data: bytes, rng: Rng | None = None) -> bytes:
    """Encrypt and authenticate ``plaintext``; authenticate ``associated_data``."""
    _check(key, plaintext, associated_data)
    nonce = resolve(rng).bytes(NONCE_SIZE)
    return nonce + crypto_aead_xchacha20poly1305_ietf_encrypt(bytes(plaintext), bytes(associated_data), nonce, bytes(key))


def open_box(key: bytes, box: bytes, associated_data: bytes) -> bytes:
    """Decrypt a sealed box.

    Raises:
        DecryptionError: the box is too short, was tampered with, or was made
            with another key or associated data.
    """
    _check(key, box, associated_data)
    if len(box) < OVERHEAD:
        raise DecryptionError(f"a sealed box is at least {OVERHEAD} bytes, got {len(box)}.")
    box = bytes(box)
    try:
        return crypto_aead_xchacha20poly1305_ietf_decrypt(box[NONCE_SIZE:], bytes(associated_data), box[:NONCE_SIZE], bytes(key))
    except CryptoError:
        raise DecryptionError("the ciphertext failed authentication (tampered, or wrong key or context).") from None


def _check(key: bytes, data: bytes, associated_data: bytes) -> None:
    for name, value in (("key", key), ("data", data), ("associated data", associated_data)):
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"the {name} must be bytes, not {type(value).__name__}.")
    if len(key) != KEY_SIZE:
        raise ValueError(f"the key must be {KEY_SIZE} bytes, got {len(key)}.")
