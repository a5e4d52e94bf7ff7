"""The server's round handlers: receive one client's reply, or close a round.

``receive_*`` handlers check one client's message completely against the
round's expectations and only then record it (a masked input is added to the
running sum at once, so the server holds O(m) memory whatever n is).
``close_*`` handlers run when the caller advances: non-responders count as
dropped in that round, clients whose live neighbourhood fell below the
threshold are dropped too (they could neither mask safely nor be unmasked),
and the next round's requests are built.  Fewer than ``t`` live clients ends
the session with ``TooFewSurvivors``.

Unmasking (Bonawitz et al. 2017, round 4) reconstructs each survivor's
self-mask seed and each dropped client's mask key from its neighbours'
shares, decoding them as a Reed-Solomon codeword: wrong shares (up to half
the surplus over t) are corrected and their senders named as culprits, more
stop the session instead of corrupting the sum.  Every reconstructed secret
is checked against what its owner committed to in its first message (the
seed's hash, the mask key's public key): a decoder steered to a wrong
codeword by more forged shares than it can correct ends the session without
a sum and without naming anyone, never with a wrong sum.  Then all those masks leave the sum in one
batched kernel call.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np

from . import _session as S
from .config import Config
from .exceptions import Aborted, ReconstructionError, SecAggError, SignatureError, TooFewSurvivors
from .hazmat import ring, shamir
from .hazmat.agreement import keypair_from_private, shared_secret
from .hazmat.masking import add_masks
from .hazmat.ring import RingVector
from .hazmat.sign import verify
from .messages import (
    AdvertiseKeys,
    ClientMessage,
    ConsistencyCheckRequest,
    ConsistencySignature,
    KeyEntry,
    MaskedInput,
    MaskedInputRequest,
    ServerMessage,
    ShareKeys,
    ShareKeysRequest,
    UnmaskingRequest,
    UnmaskingShares,
)


class Refused(SecAggError):
    """One client's message is invalid; the server aborts that client only."""


@dataclass(frozen=True)
class AggregationResult:
    """The outcome of a session.

    Attributes:
        sum: the sum of the included inputs mod 2^bits (uint32 or uint64 array).
        included: sorted ids whose input is in the sum.
        dropped: round name -> sorted ids that stopped (or were stopped) in that round.
        session_id: the 32-byte session id.
        culprits: ids whose revealed shares were wrong (corrected, and listed as
            dropped at unmasking; their inputs, already summed, stay in the sum).
    """

    sum: RingVector = field(repr=False)
    included: tuple[int, ...]
    dropped: dict[str, tuple[int, ...]]
    session_id: bytes = field(repr=False)
    culprits: tuple[int, ...] = ()


@dataclass
class ServerState:
    """The server's protocol data (mutated only after a handler's checks pass)."""

    live: set[int] = field(default_factory=set)  # clients expected to answer this round
    replied: set[int] = field(default_factory=set)  # live clients that answered this round
    dropped: dict[int, str] = field(default_factory=dict)  # client id -> round name
    keys: dict[int, KeyEntry] = field(default_factory=dict)  # client id -> KeyEntry
    advertised: set[int] = field(default_factory=set)  # U1
    session_id: bytes = b""
    sharers: set[int] = field(default_factory=set)  # U2
    boxes: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)  # recipient -> list of (sender, box)
    total: RingVector | None = None
    survivors: tuple[int, ...] = ()  # U3
    signatures: dict[int, bytes] = field(default_factory=dict)  # client id -> consistency signature
    seed_shares: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict, repr=False)  # owner -> list of (holder, value)
    key_shares: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict, repr=False)
    result: AggregationResult | None = None
    error: Aborted | None = None


#: A ``receive_*`` handler named in ``_state.SERVER_RECEIVE``; the table hands it only its own message type.
ReceiveHandler: TypeAlias = Callable[[Config, ServerState, int, ClientMessage], None]
#: A ``close_*`` handler named in ``_state.SERVER_ADVANCE``: the next round's message for each live client.
CloseHandler: TypeAlias = Callable[[Config, ServerState], dict[int, ServerMessage]]


# --- receiving ------------------------------------------------------------------------


def receive_keys(cfg: Config, st: ServerState, cid: int, msg: AdvertiseKeys) -> None:
    for key in (msg.encryption_key, msg.mask_key):
        try:
            shared_secret(bytes(range(1, 33)), key)  # refuses low-order points
        except ValueError:
            raise Refused(f"client {cid} advertised a low-order X25519 key.", round="advertise_keys", client_id=cid) from None
    if cfg.mode == "active":
        try:
            verify(S.identities(cfg)[cid], S.advertise_statement(cfg, cid, msg.encryption_key, msg.mask_key, msg.seed_commitment), msg.signature)
        except SignatureError:
            raise Refused(f"client {cid}'s keys are not signed by its identity.", round="advertise_keys", client_id=cid) from None
    elif msg.signature:
        raise Refused(f"client {cid} sent a signature in semi-honest mode.", round="advertise_keys", client_id=cid)
    st.keys[cid] = KeyEntry(cid, msg.encryption_key, msg.mask_key, msg.seed_commitment, msg.signature)


def receive_boxes(cfg: Config, st: ServerState, cid: int, msg: ShareKeys) -> None:
    expected = {v for v in cfg.graph.neighbors(cid) if v in st.advertised} - {cid}
    got = [r for r, _ in msg.boxes]
    if set(got) != expected or len(got) != len(expected):
        raise Refused(f"client {cid} must send one box to each live neighbour.", round="share_keys", client_id=cid)
    if any(len(box) > 4096 for _, box in msg.boxes):
        raise Refused(f"client {cid} sent an oversized share box.", round="share_keys", client_id=cid)
    for recipient, box in msg.boxes:
        st.boxes.setdefault(recipient, []).append((cid, box))


def receive_masked_input(cfg: Config, st: ServerState, cid: int, msg: MaskedInput) -> None:
    vec = msg.vector
    if vec.dtype != cfg.dtype or vec.shape != (cfg.vector_length,):
        raise Refused(f"client {cid}'s masked input has the wrong dtype or length.", round="masked_input", client_id=cid)
    if cfg.bits < 8 * vec.itemsize and vec.size and int(vec.max()) >> cfg.bits:
        raise Refused(f"client {cid}'s masked input is not reduced mod 2^{cfg.bits}.", round="masked_input", client_id=cid)
    if st.total is None:
        st.total = np.zeros(cfg.vector_length, dtype=cfg.dtype)
    np.add(st.total, vec, out=st.total)


def receive_signature(cfg: Config, st: ServerState, cid: int, msg: ConsistencySignature) -> None:
    try:
        verify(S.identities(cfg)[cid], S.survivors_statement(cfg, st.session_id, st.keys[cid], st.survivors), msg.signature)
    except SignatureError:
        raise Refused(f"client {cid}'s consistency signature does not verify.", round="consistency_check", client_id=cid) from None
    st.signatures[cid] = msg.signature


def receive_shares(cfg: Config, st: ServerState, cid: int, msg: UnmaskingShares) -> None:
    nbhd = cfg.graph.neighbors(cid)
    survivors = set(st.survivors)
    want_seed = [o for o in nbhd if o in survivors]
    want_key = [o for o in nbhd if o in st.sharers and o not in survivors]
    if [o for o, _ in msg.self_mask_shares] != want_seed or [o for o, _ in msg.mask_key_shares] != want_key:
        raise Refused(
            f"client {cid} must reveal exactly the self-mask shares of surviving neighbours and the key shares of dropped ones.",
            round="unmasking",
            client_id=cid,
        )
    if any(len(v) > 1024 for _, v in msg.self_mask_shares + msg.mask_key_shares):
        raise Refused(f"client {cid} sent an oversized share.", round="unmasking", client_id=cid)
    for store, pairs in ((st.seed_shares, msg.self_mask_shares), (st.key_shares, msg.mask_key_shares)):
        for owner, value in pairs:
            store.setdefault(owner, []).append((cid, value))


# --- closing rounds ---------------------------------------------------------------------


def close_advertise_keys(cfg: Config, st: ServerState) -> dict[int, ServerMessage]:
    st.advertised = set(st.live)
    st.session_id = S.session_id(cfg, list(st.keys[c] for c in st.live))
    out: dict[int, ServerMessage] = {}
    for cid in sorted(st.live):
        entries = tuple(st.keys[v] for v in cfg.graph.neighbors(cid) if v in st.live)
        out[cid] = ShareKeysRequest(st.session_id, entries)
    return out


def close_share_keys(cfg: Config, st: ServerState) -> dict[int, ServerMessage]:
    st.sharers = set(st.live)
    out: dict[int, ServerMessage] = {}
    for cid in sorted(st.live):
        boxes = tuple(sorted((s, b) for s, b in st.boxes.get(cid, ()) if s in st.live))
        out[cid] = MaskedInputRequest(st.session_id, boxes)
    st.boxes = {}
    return out


def close_masked_input(cfg: Config, st: ServerState) -> dict[int, ServerMessage]:
    st.survivors = tuple(sorted(st.live))
    request = ConsistencyCheckRequest if cfg.mode == "active" else UnmaskingRequest
    return {cid: request(st.session_id, st.survivors) for cid in st.survivors}


def close_consistency_check(cfg: Config, st: ServerState) -> dict[int, ServerMessage]:
    out: dict[int, ServerMessage] = {}
    for cid in sorted(st.live):
        sigs = tuple((v, st.signatures[v]) for v in cfg.graph.neighbors(cid) if v in st.signatures)
        out[cid] = UnmaskingRequest(st.session_id, st.survivors, sigs)
    return out


def close_unmasking(cfg: Config, st: ServerState) -> dict[int, ServerMessage]:
    survivors = st.survivors
    keys: list[bytes] = []
    signs: list[int] = []
    culprits: set[int] = set()
    seeds = _reconstruct(cfg, st.seed_shares, survivors, "self-mask seed", culprits)
    for owner in survivors:
        if S.seed_commitment(owner, seeds[owner]) != st.keys[owner].seed_commitment:
            # Forged shares beyond the decoding radius can steer the decoder to a
            # wrong seed; it would unmask a wrong sum and blame the honest holders.
            raise ReconstructionError(
                f"the self-mask seed reconstructed for client {owner} does not match its commitment: shares were "
                "forged beyond what decoding can correct; the session ends without a sum and without naming anyone.",
                round="unmasking",
            )
        keys.append(S.self_mask_key(cfg, seeds[owner], st.session_id, owner))
        signs.append(-1)
    alive = set(survivors)
    dropped = sorted(u for u in st.sharers - alive if any(v in alive for v in cfg.graph.neighbors(u)))
    secrets = _reconstruct(cfg, st.key_shares, dropped, "mask key", culprits)
    for u in dropped:
        private = secrets[u]
        if keypair_from_private(private).public != st.keys[u].mask_key:
            raise ReconstructionError(
                f"the shares of client {u}'s mask key reconstruct a key it never advertised: shares were forged beyond "
                "what decoding can correct; the session ends without a sum and without naming anyone.",
                round="unmasking",
            )
        for v in cfg.graph.neighbors(u):
            if v in alive:
                keys.append(S.pairwise_mask_key(cfg, private, st.keys[v].mask_key, st.session_id, u, v))
                signs.append(-S.pairwise_sign(v, u))
    total = st.total if st.total is not None else np.zeros(cfg.vector_length, dtype=cfg.dtype)
    add_masks(total, keys, signs, cfg.prg)
    ring.reduce(total, cfg.bits)
    st.total = None
    for cid in culprits:  # their unmasking answers were refused; their inputs stay in the sum
        st.dropped.setdefault(cid, "unmasking")
    names: dict[str, list[int]] = {}
    for cid, rnd in st.dropped.items():
        names.setdefault(rnd, []).append(cid)
    st.result = AggregationResult(total, survivors, {r: tuple(sorted(ids)) for r, ids in names.items()}, st.session_id, tuple(sorted(culprits)))
    return {}


def _reconstruct(
    cfg: Config, store: dict[int, list[tuple[int, bytes]]], owners: Sequence[int], what: str, culprits: set[int]
) -> dict[int, bytes]:
    """owner -> secret, for each owner, from the (holder, value) shares in ``store``.

    Shares are a Reed-Solomon codeword: wrong ones, up to half the surplus
    over t, are corrected, and their holders are added to ``culprits``.
    """
    lists: list[list[tuple[int, bytes]]] = []
    holders: list[tuple[int, ...]] = []
    for owner in owners:
        nbhd = cfg.graph.neighbors(owner)
        position = {v: i + 1 for i, v in enumerate(nbhd)}  # Shamir x-coordinates
        holders.append(nbhd)
        pairs = store.get(owner, [])
        if len(pairs) < cfg.threshold:
            raise TooFewSurvivors(
                f"only {len(pairs)} neighbours of client {owner} revealed shares of its {what}; {cfg.threshold} are needed.",
                survivors=len(pairs),
                threshold=cfg.threshold,
                round="unmasking",
            )
        lists.append([(position[holder], value) for holder, value in pairs])
    try:
        secrets, wrong = shamir.reconstruct_many_robust(lists, cfg.threshold)
    except ReconstructionError as exc:
        raise ReconstructionError(f"the {what} shares are inconsistent beyond correction: {exc}", round="unmasking") from None
    for nbhd, indices in zip(holders, wrong):
        culprits.update(nbhd[i - 1] for i in indices)
    return dict(zip(owners, secrets))
