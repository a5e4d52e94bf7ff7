"""Aggregator keys and the client's sealing of the helper's input share (pure; no I/O).

Theory of operation: an aggregator's 32-byte secret seed yields an Ed25519
identity (it authenticates the aggregator-to-aggregator channel) and an
X25519 key pair (clients seal the helper's input share to it), both through
HKDF labels of their own.  Its public half is 64 bytes: Ed25519 verify key,
then X25519 public key; a client needs the helper's, out of band, so the
leader that relays the upload cannot read the helper's share.

Sealing is an ephemeral-static X25519 exchange, HKDF-SHA256 and
XChaCha20-Poly1305 with the task context and the report id as associated
data: ``ephemeral public (32) || AEAD box``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..exceptions import DecodeError
from ..hazmat import aead
from ..hazmat.agreement import generate_keypair, hkdf_sha256, keypair_from_private, shared_secret
from ..hazmat.rng import Rng, resolve
from ..hazmat.sign import Identity

__all__ = ["AggregatorKeys", "PUBLIC_SIZE", "split_public", "seal_share", "open_share"]

PUBLIC_SIZE = 64
_LABEL = b"lepton-secagg/v1/mpc/"


@dataclass(frozen=True)
class AggregatorKeys:
    """An aggregator's keys, derived from a 32-byte seed (``AggregatorKeys.generate(rng)`` draws one)."""

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise ValueError("an aggregator seed is 32 bytes.")

    @classmethod
    def generate(cls, rng: Rng | None = None) -> "AggregatorKeys":
        return cls(resolve(rng).bytes(32))

    @property
    def identity(self) -> Identity:
        return Identity(hkdf_sha256(self.seed, 32, info=_LABEL + b"ed25519"))

    @property
    def x25519_private(self) -> bytes:
        return hkdf_sha256(self.seed, 32, info=_LABEL + b"x25519")

    @property
    def public(self) -> bytes:
        """Ed25519 verify key (32) || X25519 public key (32)."""
        return self.identity.verify_key + keypair_from_private(self.x25519_private).public


def split_public(public: bytes) -> tuple[bytes, bytes]:
    """``(ed25519 verify key, x25519 public key)`` of a 64-byte public key."""
    if not isinstance(public, bytes) or len(public) != PUBLIC_SIZE:
        raise ValueError(f"an aggregator public key is {PUBLIC_SIZE} bytes.")
    return public[:32], public[32:]


def _box_key(secret: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return hkdf_sha256(secret, 32, info=_LABEL + b"seal" + ephemeral + recipient)


def seal_share(recipient_public: bytes, share: bytes, aad: bytes, rng: Rng | None = None) -> bytes:
    """Encrypt an input share to an aggregator's X25519 key."""
    _, x_public = split_public(recipient_public)
    source = resolve(rng)
    eph = generate_keypair(source)
    key = _box_key(shared_secret(eph.private, x_public), eph.public, x_public)
    return eph.public + aead.seal(key, share, aad, source)


def open_share(keys: AggregatorKeys, sealed: bytes, aad: bytes) -> bytes:
    """Decrypt a sealed input share (``DecryptionError`` if it was not made for these keys and ``aad``)."""
    if len(sealed) < 32 + aead.OVERHEAD:
        raise DecodeError(f"a sealed input share is at least {32 + aead.OVERHEAD} bytes, got {len(sealed)}.")
    private = keys.x25519_private
    own_public = keypair_from_private(private).public
    eph = sealed[:32]
    key = _box_key(shared_secret(private, eph), eph, own_public)
    return aead.open_box(key, sealed[32:], aad)
