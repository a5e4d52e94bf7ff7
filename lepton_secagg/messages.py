"""Protocol messages: one frozen dataclass per round and direction, plus Abort.

Messages are plain values (ints, bytes, tuples, one numpy array); they carry
no behaviour and import no crypto.  ``wire`` turns them into bytes and back.
Client-to-server messages name their ``sender``, so a server can refuse a
message whose claimed sender is not the connection it came from.

Rounds (Bonawitz et al. 2017; Bell et al. 2020 on a sparse graph):

=================  ==========================  ============================
round              server -> client            client -> server
=================  ==========================  ============================
advertise_keys     (the client starts)         ``AdvertiseKeys``
share_keys         ``ShareKeysRequest``        ``ShareKeys``
masked_input       ``MaskedInputRequest``      ``MaskedInput``
consistency_check  ``ConsistencyCheckRequest`` ``ConsistencySignature``
unmasking          ``UnmaskingRequest``        ``UnmaskingShares``
=================  ==========================  ============================

``consistency_check`` exists in active mode only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ROUNDS",
    "KeyEntry",
    "AdvertiseKeys",
    "ShareKeysRequest",
    "ShareKeys",
    "MaskedInputRequest",
    "MaskedInput",
    "ConsistencyCheckRequest",
    "ConsistencySignature",
    "UnmaskingRequest",
    "UnmaskingShares",
    "Join",
    "Abort",
    "CLIENT_MESSAGES",
    "SERVER_MESSAGES",
]

ROUNDS = ("advertise_keys", "share_keys", "masked_input", "consistency_check", "unmasking")


@dataclass(frozen=True)
class KeyEntry:
    """One client's advertised public keys as relayed by the server."""

    client_id: int
    encryption_key: bytes
    mask_key: bytes
    signature: bytes = b""


@dataclass(frozen=True)
class AdvertiseKeys:
    """Round 0: a client's two X25519 public keys (signed in active mode)."""

    sender: int
    encryption_key: bytes
    mask_key: bytes
    signature: bytes = b""


@dataclass(frozen=True)
class ShareKeysRequest:
    """Round 1: the session id and the keys of the client's live neighbours (itself included)."""

    session_id: bytes
    keys: tuple[KeyEntry, ...]


@dataclass(frozen=True)
class ShareKeys:
    """Round 1: one sealed pair of Shamir shares for each neighbour, as (recipient, box)."""

    sender: int
    boxes: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True)
class MaskedInputRequest:
    """Round 2: the boxes addressed to this client, as (sender, box)."""

    session_id: bytes
    boxes: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, eq=False)
class MaskedInput:
    """Round 2: the masked input vector y_u (uint32 or uint64, reduced mod 2^bits)."""

    sender: int
    vector: np.ndarray = field(repr=False)

    def __eq__(self, other):
        return (
            isinstance(other, MaskedInput)
            and self.sender == other.sender
            and self.vector.dtype == other.vector.dtype
            and np.array_equal(self.vector, other.vector)
        )

    __hash__ = None


@dataclass(frozen=True)
class ConsistencyCheckRequest:
    """Round 3 (active mode): the sorted ids whose masked input the server holds."""

    session_id: bytes
    survivors: tuple[int, ...]


@dataclass(frozen=True)
class ConsistencySignature:
    """Round 3 (active mode): the client's signature over (session id, survivors)."""

    sender: int
    signature: bytes


@dataclass(frozen=True)
class UnmaskingRequest:
    """Round 4: the survivors and, in active mode, neighbours' signatures on them as (id, signature)."""

    session_id: bytes
    survivors: tuple[int, ...]
    signatures: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class UnmaskingShares:
    """Round 4: shares of survivors' self-mask seeds and of dropped clients' mask keys, as (owner, share)."""

    sender: int
    self_mask_shares: tuple[tuple[int, bytes], ...] = field(repr=False)
    mask_key_shares: tuple[tuple[int, bytes], ...] = field(repr=False)


@dataclass(frozen=True)
class Join:
    """Transport handshake: a client names itself before the session starts."""

    client_id: int


@dataclass(frozen=True)
class Abort:
    """Either side ends the session (server) or its own participation (client)."""

    reason: str


CLIENT_MESSAGES = (AdvertiseKeys, ShareKeys, MaskedInput, ConsistencySignature, UnmaskingShares, Abort)
SERVER_MESSAGES = (ShareKeysRequest, MaskedInputRequest, ConsistencyCheckRequest, UnmaskingRequest, Abort)
