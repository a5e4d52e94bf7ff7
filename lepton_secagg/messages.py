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
from typing import TypeAlias

import numpy as np

from .hazmat.ring import RingVector

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
    "ClientMessage",
    "ServerMessage",
    # federated-learning control messages (lepton_secagg.fl), tags >= 40
    "TensorBlob",
    "Hello",
    "Welcome",
    "ModelRequest",
    "ModelReply",
    "PhaseRequest",
    "PhaseOpen",
    "FL_MESSAGES",
    "Message",
]

ROUNDS = ("advertise_keys", "share_keys", "masked_input", "consistency_check", "unmasking")


@dataclass(frozen=True)
class KeyEntry:
    """One client's advertised public keys and seed commitment as relayed by the server."""

    client_id: int
    encryption_key: bytes
    mask_key: bytes
    seed_commitment: bytes
    signature: bytes = b""


@dataclass(frozen=True)
class AdvertiseKeys:
    """Round 0: a client's two X25519 public keys and the hash commitment to its self-mask seed (signed in active mode)."""

    sender: int
    encryption_key: bytes
    mask_key: bytes
    seed_commitment: bytes
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
    """Round 2: the masked input vector y_u in Z_(2^bits) (uint32 or uint64, reduced mod 2^bits).

    ``bits`` is the ring width the wire packs the elements at; None means the
    word width (32 for uint32, 64 for uint64).
    """

    sender: int
    vector: RingVector = field(repr=False)
    bits: int | None = None

    @property
    def ring_bits(self) -> int:
        """The ring width: ``bits``, or the word width when it is None."""
        return self.bits if self.bits is not None else 8 * self.vector.itemsize

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MaskedInput)
            and self.sender == other.sender
            and self.ring_bits == other.ring_bits
            and self.vector.dtype == other.vector.dtype
            and np.array_equal(self.vector, other.vector)
        )

    # typeshed types object.__hash__ as a method; None is the data model's way to make instances unhashable
    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class ConsistencyCheckRequest:
    """Round 3 (active mode): the sorted ids whose masked input the server holds."""

    session_id: bytes
    survivors: tuple[int, ...]


@dataclass(frozen=True)
class ConsistencySignature:
    """Round 3 (active mode): the client's signature over (config, session id, its own keys, survivors)."""

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

#: What a client sends (``Client.start``/``Client.receive`` return it; ``Server.receive`` takes it).
ClientMessage: TypeAlias = AdvertiseKeys | ShareKeys | MaskedInput | ConsistencySignature | UnmaskingShares | Abort
#: What a server sends (``Server.advance`` returns it; ``Client.receive`` takes it).
ServerMessage: TypeAlias = ShareKeysRequest | MaskedInputRequest | ConsistencyCheckRequest | UnmaskingRequest | Abort


# ---------------------------------------------------------------------------
# Federated-learning control messages (``lepton_secagg.fl``; wire tags >= 40).
#
# They travel on the FL server's port before (or instead of) an aggregation:
# a connection's first frame is ``Hello``, ``ModelRequest`` or
# ``PhaseRequest``; after a ``PhaseOpen`` the same connection carries one
# ordinary aggregation (``Join``, configuration, protocol rounds).  None of
# them carries anything about a client's update: updates, weights and
# evaluation counts only travel masked, inside ``MaskedInput``.


@dataclass(frozen=True)
class TensorBlob:
    """One tensor of a model: name, dtype name (``FlatSpec`` naming: ``"float32"``...), shape, little-endian bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Hello:
    """FL client -> server: register an organisation (the same name always gets the same client id)."""

    organisation: str


@dataclass(frozen=True)
class Welcome:
    """FL server -> client: the organisation's client id, the cohort size, the number of rounds, the model's name."""

    client_id: int
    num_clients: int
    rounds: int
    model: str


@dataclass(frozen=True)
class ModelRequest:
    """FL client -> server: download model ``name`` at ``version`` (-1: the latest)."""

    name: str
    version: int


@dataclass(frozen=True)
class ModelReply:
    """FL server -> client: one registered global model version and its tensors."""

    name: str
    version: int
    round: int
    contributors: int
    digest: bytes
    architecture: str
    tensors: tuple[TensorBlob, ...] = field(repr=False)


@dataclass(frozen=True)
class PhaseRequest:
    """FL client -> server: join the ``phase`` ("train" or "eval") of ``round`` (-1: the next one still open).

    ``version`` is the model version a training update is relative to
    (-1 for an evaluation).
    """

    name: str
    phase: str
    round: int
    client_id: int
    version: int


@dataclass(frozen=True)
class PhaseOpen:
    """FL server -> client: the phase is open; what the client needs to pin the aggregation's ``Config``.

    ``clip`` and ``max_weight`` fix the training quantiser (0 for an evaluation);
    the client rebuilds the ``Config`` from these fields and its own model and
    refuses a configuration frame that differs.
    """

    name: str
    phase: str
    round: int
    version: int
    num_clients: int
    threshold: int
    bits: int
    vector_length: int
    session_label: bytes
    clip: float
    max_weight: int


FL_MESSAGES = (Hello, Welcome, ModelRequest, ModelReply, PhaseRequest, PhaseOpen)

#: Every message ``wire`` encodes and decodes.
Message: TypeAlias = ClientMessage | ServerMessage | Join | Hello | Welcome | ModelRequest | ModelReply | PhaseRequest | PhaseOpen
