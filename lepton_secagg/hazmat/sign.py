"""Ed25519 identities for the active-server mode (PyNaCl).

Each client holds a signing key (from a 32-byte seed drawn from the injected
rng, or loaded); the configuration lists every client's verify key, so a
server cannot substitute the public keys a client advertises.
"""
from __future__ import annotations

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from ..exceptions import SignatureError
from .rng import Rng, resolve

__all__ = ["SEED_SIZE", "VERIFY_KEY_SIZE", "SIGNATURE_SIZE", "Identity", "verify"]

SEED_SIZE = 32
VERIFY_KEY_SIZE = 32
SIGNATURE_SIZE = 64


class Identity:
    """An Ed25519 signing identity; the seed never appears in ``repr``."""

    __slots__ = ("_key",)

    def __init__(self, seed: bytes):
        if not isinstance(seed, (bytes, bytearray)):
            raise TypeError(f"the identity seed must be bytes, not {type(seed).__name__}.")
        if len(seed) != SEED_SIZE:
            raise ValueError(f"the identity seed must be {SEED_SIZE} bytes, got {len(seed)}.")
        self._key = SigningKey(bytes(seed))

    @classmethod
    def generate(cls, rng: Rng | None = None) -> "Identity":
        """A fresh identity drawn from ``rng``."""
        return cls(resolve(rng).bytes(SEED_SIZE))

    @property
    def verify_key(self) -> bytes:
        """The 32-byte public verify key."""
        return bytes(self._key.verify_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached signature of ``message``."""
        _check_message(message)
        return self._key.sign(bytes(message)).signature

    def __repr__(self) -> str:
        return f"Identity(verify_key={self.verify_key.hex()[:16]}...)"


def verify(verify_key: bytes, message: bytes, signature: bytes) -> None:
    """Check a detached signature.

    Raises:
        SignatureError: the signature is malformed or does not verify.
        ValueError: the verify key is malformed.
    """
    _check_message(message)
    if not isinstance(verify_key, (bytes, bytearray)) or len(verify_key) != VERIFY_KEY_SIZE:
        raise ValueError(f"a verify key is {VERIFY_KEY_SIZE} bytes.")
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != SIGNATURE_SIZE:
        raise SignatureError(f"a signature is {SIGNATURE_SIZE} bytes.")
    try:
        VerifyKey(bytes(verify_key)).verify(bytes(message), bytes(signature))
    except BadSignatureError:
        raise SignatureError("the Ed25519 signature does not verify.") from None
    except Exception as exc:  # libsodium rejects some malformed keys with other errors
        raise SignatureError(f"the Ed25519 signature cannot be checked: {type(exc).__name__}.") from None


def _check_message(message: object) -> None:
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise TypeError(f"the message must be bytes, not {type(message).__name__}.")
