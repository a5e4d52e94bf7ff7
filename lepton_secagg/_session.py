"""What both roles derive the same way: session id, signed statements, box
layout, share indices and mask keys.  One definition, so the two sides
cannot drift apart.
"""
from __future__ import annotations

import hashlib
import struct

from .config import Config
from .exceptions import LocalProtocolError
from .hazmat.agreement import derive_key, shared_secret
from .hazmat.prg import derive_prg_key
from .messages import KeyEntry

_V1 = b"lepton-secagg/v1/"


def session_id(cfg: Config, entries: list[KeyEntry] | tuple[KeyEntry, ...]) -> bytes:
    """SHA-256 over the config digest and every advertised key pair and seed commitment, in id order."""
    h = hashlib.sha256(_V1 + b"session" + cfg.digest)
    for e in sorted(entries, key=lambda e: e.client_id):
        h.update(struct.pack(">I", e.client_id) + e.encryption_key + e.mask_key + e.seed_commitment)
    return h.digest()


def identities(cfg: Config) -> tuple[bytes, ...]:
    """Every client's verify key: ``cfg.identities``, which ``Client`` and ``Server`` require in active mode."""
    if cfg.identities is None:
        raise LocalProtocolError("active mode needs cfg.identities, every client's verify key.")
    return cfg.identities


def seed_commitment(client_id: int, seed: bytes) -> bytes:
    """SHA-256 commitment to a client's self-mask seed (32 random bytes, so it hides the seed)."""
    return hashlib.sha256(_V1 + b"seed-commitment" + struct.pack(">I", client_id) + seed).digest()


def advertise_statement(cfg: Config, client_id: int, encryption_key: bytes, mask_key: bytes, commitment: bytes) -> bytes:
    """What a client signs in active mode when it advertises its keys and seed commitment."""
    return _V1 + b"advertise" + cfg.digest + struct.pack(">I", client_id) + encryption_key + mask_key + commitment


def survivors_statement(cfg: Config, session: bytes, signer: KeyEntry, survivors: tuple[int, ...]) -> bytes:
    """What a client signs in the consistency check.

    The config digest, the session id, the signer's own advertised keys and
    seed commitment (fresh in every session, so a signature from another
    session never verifies, even under a session id the server chose) and the
    survivor set.
    """
    return (
        _V1 + b"consistency" + cfg.digest + session
        + struct.pack(">I", signer.client_id) + signer.encryption_key + signer.mask_key + signer.seed_commitment
        + struct.pack(f">I{len(survivors)}I", len(survivors), *survivors)
    )


def box_context(session: bytes, sender: int, recipient: int) -> bytes:
    """Associated data of the box carrying ``sender``'s shares to ``recipient``."""
    return _V1 + b"share-box" + session + struct.pack(">II", sender, recipient) + b"share_keys"


def box_key(private: bytes, peer_public: bytes, session: bytes, a: int, b: int) -> bytes:
    """The XChaCha20-Poly1305 key between clients ``a`` and ``b``."""
    return derive_key(shared_secret(private, peer_public), "share-encryption", 32, session_id=session, round="share_keys", parties=(a, b))


def pack_shares(owner: int, holder: int, self_share: bytes, key_share: bytes) -> bytes:
    """The plaintext of one box: both of ``owner``'s shares for ``holder``."""
    return struct.pack(">IIHH", owner, holder, len(self_share), len(key_share)) + self_share + key_share


def unpack_shares(plaintext: bytes) -> tuple[int, int, bytes, bytes]:
    """(owner, holder, self-mask share, mask-key share) from a box plaintext; ValueError if malformed."""
    if len(plaintext) < 12:
        raise ValueError("a share box plaintext is too short.")
    owner, holder, la, lb = struct.unpack(">IIHH", plaintext[:12])
    if len(plaintext) != 12 + la + lb:
        raise ValueError("a share box plaintext has the wrong length.")
    return owner, holder, plaintext[12 : 12 + la], plaintext[12 + la :]


def self_mask_key(cfg: Config, seed: bytes, session: bytes, owner: int) -> bytes:
    """The PRG key of ``owner``'s self mask."""
    return derive_prg_key(seed, cfg.prg, "self-mask", session_id=session, round="masked_input", parties=(owner,))


def pairwise_mask_key(cfg: Config, private: bytes, peer_public: bytes, session: bytes, a: int, b: int) -> bytes:
    """The PRG key of the pairwise mask between ``a`` and ``b`` (same at both ends)."""
    return derive_prg_key(shared_secret(private, peer_public), cfg.prg, "pairwise-mask", session_id=session, round="masked_input", parties=(a, b))


def pairwise_sign(me: int, peer: int) -> int:
    """+1 when ``me`` < ``peer``, else -1, so each pair's masks cancel in the sum."""
    return 1 if me < peer else -1
