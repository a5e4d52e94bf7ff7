"""The client's round handlers: pure functions ``(ctx, state, msg) -> (state, reply)``.

Each handler checks the server's message completely before it computes
anything, and returns a new state; the session commits it only on success,
so a refused message leaves the client exactly as it was.  Checks that
protect the client's secrets (Bonawitz et al. 2017 §4; Bell et al. 2020):

* its own keys must come back unchanged, every listed peer must be one of its
  neighbours, and at least ``t`` of them must be live at every round;
* in active mode every peer key must carry that peer's identity signature,
  and unmasking needs ``t`` neighbours' signatures on the very survivor set
  it signed itself, each bound to the config, the session id and the
  signer's own keys of this session (so none replays from another session);
* for each peer it reveals the self-mask share (peer survived) *or* the
  mask-key share (peer dropped), never both: the survivor set splits its
  peers into two disjoint groups, and it answers one unmasking request only.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from . import _session as S
from ._state import Start
from .config import Config
from .device_input import BoundDeviceInput, check_host_vector
from .exceptions import DecryptionError, LocalProtocolError, RemoteProtocolError, SignatureError
from .hazmat import aead, pipeline, ring, shamir
from .hazmat.agreement import KeyPair, generate_keypair
from .hazmat.masking import add_masks
from .hazmat.quantize import Quantizer
from .hazmat.ring import RingVector
from .hazmat.rng import Rng
from .hazmat.sign import Identity, verify
from .messages import (
    Abort,
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

__all__ = [
    "ClientContext", "FloatInput", "ClientState", "Handler",
    "advertise_keys", "share_keys", "masked_input", "consistency_check", "unmasking", "abort",
]


@dataclass(frozen=True)
class ClientContext:
    """What does not change during a session: config, id, identity, rng, neighbourhood."""

    cfg: Config
    client_id: int
    identity: Identity | None
    rng: Rng
    neighborhood: tuple[int, ...]


@dataclass(frozen=True)
class FloatInput:
    """A float update waiting to be quantised and masked in one pass (``Client.set_float_input``)."""

    values: npt.NDArray[np.floating[Any]] = field(repr=False)
    quantizer: Quantizer
    weight: int | None
    round_key: bytes = field(repr=False)

    def quantized(self, suite: str) -> RingVector:
        """The ring vector the fused pass masks (the same rounding stream)."""
        return pipeline.quantize_keyed(self.quantizer, self.values, weight=self.weight, round_key=self.round_key, suite=suite)[0]


@dataclass(frozen=True)
class ClientState:
    """The client's protocol data; each round's handler returns a new one."""

    encryption: KeyPair | None = field(default=None, repr=False)
    masking: KeyPair | None = field(default=None, repr=False)
    seed: bytes | None = field(default=None, repr=False)
    input: RingVector | None = field(default=None, repr=False)
    float_input: FloatInput | None = field(default=None, repr=False)  # instead of input
    device_input: BoundDeviceInput | None = field(default=None, repr=False)  # instead of input, masked where it lives
    clipped: int | None = None  # values of float_input (or a float device_input) outside [-clip, clip], once encoded
    session_id: bytes = b""
    peers: dict[int, KeyEntry] = field(default_factory=dict, repr=False)  # id -> KeyEntry, live at share_keys
    box_keys: dict[int, bytes] = field(default_factory=dict, repr=False)  # peer -> share-box key
    # the PRG key of each mask this client adds (its own id -> self mask, peer ->
    # pairwise mask), derived at share_keys so the masked-input round (the one
    # that waits on the update) does no key agreement or derivation; dropped once used
    mask_keys: dict[int, bytes] = field(default_factory=dict, repr=False)
    shares: dict[int, tuple[bytes, bytes]] = field(default_factory=dict, repr=False)  # owner -> (self-mask share, mask-key share)
    survivors: tuple[int, ...] | None = None  # the set signed in active mode


#: A handler named in ``_state.CLIENT_TRANSITIONS``; the table hands it only its own message type.
Handler: TypeAlias = Callable[[ClientContext, ClientState, ServerMessage | Start], tuple[ClientState, ClientMessage | None]]


def advertise_keys(ctx: ClientContext, state: ClientState, _event: Start) -> tuple[ClientState, AdvertiseKeys]:
    """Round 0: draw two X25519 key pairs and the self-mask seed; advertise the public keys and a commitment to the seed."""
    enc, mask = generate_keypair(ctx.rng), generate_keypair(ctx.rng)
    seed = ctx.rng.bytes(32)
    commitment = S.seed_commitment(ctx.client_id, seed)
    signature = b""
    if ctx.cfg.mode == "active":
        signature = _identity(ctx).sign(S.advertise_statement(ctx.cfg, ctx.client_id, enc.public, mask.public, commitment))
    msg = AdvertiseKeys(ctx.client_id, enc.public, mask.public, commitment, signature)
    return replace(state, encryption=enc, masking=mask, seed=seed), msg


def share_keys(ctx: ClientContext, state: ClientState, msg: ShareKeysRequest) -> tuple[ClientState, ShareKeys]:
    """Round 1: check the relayed keys, then seal Shamir shares of the seed and mask key for each neighbour."""
    cfg, me = ctx.cfg, ctx.client_id
    peers = {e.client_id: e for e in msg.keys}
    if len(peers) != len(msg.keys):
        raise _remote("the key list names a client twice", "share_keys", me)
    own = peers.get(me)
    enc, masking, seed = _drawn(ctx, state, "share_keys")
    mine = (enc.public, masking.public, S.seed_commitment(me, seed))
    if own is None or (own.encryption_key, own.mask_key, own.seed_commitment) != mine:
        raise _remote("the key list does not carry this client's own keys and seed commitment unchanged", "share_keys", me)
    _check_subset(ctx, peers, "the key list", "share_keys")
    _check_enough(ctx, len(peers), "live neighbours in the key list", "share_keys")
    if cfg.mode == "active":
        for e in msg.keys:
            try:
                verify(S.identities(cfg)[e.client_id], S.advertise_statement(cfg, e.client_id, e.encryption_key, e.mask_key, e.seed_commitment), e.signature)
            except SignatureError:
                raise SignatureError(f"the keys relayed for client {e.client_id} are not signed by its identity.", round="share_keys", client_id=me) from None
    if cfg.neighbors is None and msg.session_id != S.session_id(cfg, msg.keys):
        raise _remote("the session id does not match the advertised keys", "share_keys", me)
    size = len(ctx.neighborhood)
    seed_shares, key_shares = shamir.split_many([seed, masking.private], size, cfg.threshold, ctx.rng)
    at = ctx.neighborhood.index(me)  # a neighbourhood includes its client
    own_shares = (seed_shares[at].value, key_shares[at].value)
    boxes: list[tuple[int, bytes]] = []
    box_keys: dict[int, bytes] = {}
    for pos, holder in enumerate(ctx.neighborhood):
        if holder not in peers or holder == me:
            continue
        plain = S.pack_shares(me, holder, seed_shares[pos].value, key_shares[pos].value)
        try:
            key = S.box_key(enc.private, peers[holder].encryption_key, msg.session_id, me, holder)
        except ValueError as exc:
            raise _remote(f"client {holder}'s encryption key is unusable ({exc})", "share_keys", me) from None
        box_keys[holder] = key
        boxes.append((holder, aead.seal(key, plain, S.box_context(msg.session_id, me, holder), ctx.rng)))
    mask_keys = derive_mask_keys(ctx, masking.private, seed, peers, msg.session_id)
    new = replace(state, session_id=msg.session_id, peers=peers, box_keys=box_keys, mask_keys=mask_keys, shares={me: own_shares})
    return new, ShareKeys(me, tuple(boxes))


def masked_input(ctx: ClientContext, state: ClientState, msg: MaskedInputRequest) -> tuple[ClientState, MaskedInput]:
    """Round 2: open the neighbours' boxes (during the masking pass, for a float input) and send y = x + PRG(b) + sum of signed pairwise masks."""
    cfg, me = ctx.cfg, ctx.client_id
    # set_input / set_float_input keep exactly one of the three set
    source = state.float_input if state.float_input is not None else state.input
    device = state.device_input
    if source is None and device is None:
        raise LocalProtocolError(
            "the input is not set; call set_input() or set_float_input() before answering the masked-input request.",
            round="masked_input", client_id=me,
        )
    _check_session(ctx, state, msg.session_id, "masked_input")
    shares = dict(state.shares)

    def open_boxes() -> None:
        """Open each neighbour's box into ``shares``; raises on the first bad one, or when too few shared."""
        for sender, box in msg.boxes:
            if sender == me or sender not in state.peers:
                raise _remote(f"a share box comes from client {sender}, which is not a live neighbour", "masked_input", me)
            key = state.box_keys[sender]
            try:
                plain = aead.open_box(key, box, S.box_context(state.session_id, sender, me))
                owner, holder, seed_share, key_share = S.unpack_shares(plain)
            except DecryptionError:
                raise DecryptionError(f"the share box from client {sender} failed authentication.", round="masked_input", client_id=me) from None
            except ValueError:
                raise _remote(f"the share box from client {sender} is malformed", "masked_input", me) from None
            if (owner, holder) != (sender, me):
                raise _remote(f"the share box from client {sender} is addressed to another pair", "masked_input", me)
            shares[sender] = (seed_share, key_share)
        _check_enough(ctx, len(shares), "neighbours that shared their keys", "masked_input")

    # the masks are those of the box senders, known before the boxes are opened: with a
    # float input the boxes open while the kernel's threads work (nothing is sent if one fails)
    if me not in state.mask_keys:  # a state restored without its keys; the tables run share_keys first otherwise
        raise LocalProtocolError("the mask keys are not derived yet; share_keys comes first.", round="masked_input", client_id=me)
    keys = [state.mask_keys[me]]
    signs = [1]
    for peer in sorted({sender for sender, _ in msg.boxes} - {me}):
        if peer in state.mask_keys:  # an unknown sender fails open_boxes
            keys.append(state.mask_keys[peer])
            signs.append(S.pairwise_sign(me, peer))
    clipped = None
    if isinstance(source, FloatInput):
        f = source
        try:
            vector, clipped = pipeline.encode_masked(
                f.quantizer, f.values, weight=f.weight, round_key=f.round_key, keys=keys, signs=signs, suite=cfg.prg,
                meanwhile=open_boxes,
            )
        except ValueError as exc:
            raise LocalProtocolError(f"the float input cannot be encoded: {exc}", round="masked_input", client_id=me) from None
    elif device is not None:
        open_boxes()
        try:
            vector, clipped = device.masked(keys, signs)
        except ValueError as exc:
            raise LocalProtocolError(f"the device input cannot be masked: {exc}", round="masked_input", client_id=me) from None
        check_host_vector(vector, cfg.vector_length, cfg.bits, "the device input's masked()")
    elif source is not None:
        open_boxes()
        vector = source.copy()
        add_masks(vector, keys, signs, cfg.prg)
        ring.reduce(vector, cfg.bits)
    return replace(state, shares=shares, clipped=clipped, float_input=None, device_input=None, mask_keys={}), MaskedInput(me, vector, cfg.bits)


def derive_mask_keys(ctx: ClientContext, private: bytes, seed: bytes, peers: dict[int, KeyEntry], session: bytes) -> dict[int, bytes]:
    """The PRG keys of this client's masks: its self mask (under its own id) and the pair's with each live neighbour in ``peers``."""
    keys = {ctx.client_id: S.self_mask_key(ctx.cfg, seed, session, ctx.client_id)}
    for peer in ctx.neighborhood:
        if peer == ctx.client_id or peer not in peers:
            continue
        try:
            keys[peer] = S.pairwise_mask_key(ctx.cfg, private, peers[peer].mask_key, session, ctx.client_id, peer)
        except ValueError as exc:
            raise _remote(f"client {peer}'s mask key is unusable ({exc})", "share_keys", ctx.client_id) from None
    return keys


def consistency_check(ctx: ClientContext, state: ClientState, msg: ConsistencyCheckRequest) -> tuple[ClientState, ConsistencySignature]:
    """Round 3 (active mode): check the survivor set and sign it."""
    _check_session(ctx, state, msg.session_id, "consistency_check")
    _check_survivors(ctx, state, msg.survivors, "consistency_check")
    signature = _identity(ctx).sign(S.survivors_statement(ctx.cfg, state.session_id, state.peers[ctx.client_id], msg.survivors))
    return replace(state, survivors=msg.survivors), ConsistencySignature(ctx.client_id, signature)


def unmasking(ctx: ClientContext, state: ClientState, msg: UnmaskingRequest) -> tuple[ClientState, UnmaskingShares]:
    """Round 4: reveal survivors' self-mask shares and dropped peers' mask-key shares, one kind per peer."""
    cfg, me = ctx.cfg, ctx.client_id
    _check_session(ctx, state, msg.session_id, "unmasking")
    survivors = _check_survivors(ctx, state, msg.survivors, "unmasking")
    if cfg.mode == "active":
        if msg.survivors != state.survivors:
            raise _remote("the survivor set differs from the one this client signed", "unmasking", me)
        signers: set[int] = set()
        for signer, signature in msg.signatures:
            if signer not in survivors or signer not in state.shares:
                raise _remote(f"a consistency signature comes from client {signer}, not a surviving neighbour", "unmasking", me)
            try:
                # verified against the keys the signer advertised in *this* session
                verify(S.identities(cfg)[signer], S.survivors_statement(cfg, state.session_id, state.peers[signer], msg.survivors), signature)
            except SignatureError:
                raise SignatureError(f"client {signer}'s consistency signature does not verify.", round="unmasking", client_id=me) from None
            signers.add(signer)
        _check_enough(ctx, len(signers), "neighbours' signatures on the survivor set", "unmasking")
    elif msg.signatures:
        raise _remote("signatures are sent in active mode only", "unmasking", me)
    seed_out: list[tuple[int, bytes]] = []
    key_out: list[tuple[int, bytes]] = []
    for owner in sorted(state.shares):
        seed_share, key_share = state.shares[owner]
        if owner in survivors:
            seed_out.append((owner, seed_share))
        elif owner != me:
            key_out.append((owner, key_share))
    return replace(state, shares={}, box_keys={}), UnmaskingShares(me, tuple(seed_out), tuple(key_out))


def abort(ctx: ClientContext, state: ClientState, msg: Abort) -> tuple[ClientState, None]:
    """Any round: the server ended the session; forget every secret."""
    return ClientState(), None


# --- checks -------------------------------------------------------------------------


def _remote(what: str, round: str, me: int) -> RemoteProtocolError:
    return RemoteProtocolError(f"The server broke the protocol: {what}.", round=round, client_id=me)


def _drawn(ctx: ClientContext, state: ClientState, round: str) -> tuple[KeyPair, KeyPair, bytes]:
    """The two key pairs and the seed drawn in ``advertise_keys``, which the transition tables run first."""
    if state.encryption is None or state.masking is None or state.seed is None:
        raise LocalProtocolError("the keys are not drawn yet; start() comes first.", round=round, client_id=ctx.client_id)
    return state.encryption, state.masking, state.seed


def _identity(ctx: ClientContext) -> Identity:
    """The client's identity, which ``Client`` requires in active mode (the only mode that signs)."""
    if ctx.identity is None:
        raise LocalProtocolError("active mode needs this client's Identity.", client_id=ctx.client_id)
    return ctx.identity


def _check_session(ctx: ClientContext, state: ClientState, session: bytes, round: str) -> None:
    if session != state.session_id:
        raise _remote("the message belongs to another session", round, ctx.client_id)


def _check_subset(ctx: ClientContext, ids: Iterable[int], what: str, round: str) -> None:
    stray = sorted(set(ids) - set(ctx.neighborhood))
    if stray:
        raise _remote(f"{what} names clients {stray[:5]} that are not neighbours", round, ctx.client_id)


def _check_enough(ctx: ClientContext, count: int, what: str, round: str) -> None:
    if count < ctx.cfg.threshold:
        raise _remote(f"only {count} {what}, fewer than the threshold {ctx.cfg.threshold}", round, ctx.client_id)


def _check_survivors(ctx: ClientContext, state: ClientState, survivors: tuple[int, ...], round: str) -> set[int]:
    """The survivor set restricted to this client's neighbourhood, after every check."""
    me = ctx.client_id
    if list(survivors) != sorted(set(survivors)):
        raise _remote("the survivor list is not sorted and unique", round, me)
    mine = set(survivors) & set(ctx.neighborhood)
    if me not in mine:
        raise _remote("the survivor list claims this live client dropped", round, me)
    stray = sorted(mine - set(state.shares))
    if stray:
        raise _remote(f"the survivor list names clients {stray[:5]} that never shared keys with this client", round, me)
    _check_enough(ctx, len(mine), "surviving neighbours", round)
    return mine
