"""The client session: a sans-I/O state machine over ``_client_rounds``.

The caller moves bytes (or message objects); the session never touches a
socket, a clock or a thread.  ``start()`` gives the first message;
``receive(msg)`` takes each server message and gives the reply.  Every
transition is looked up in ``_state.CLIENT_TRANSITIONS``; a message the table
does not hold for the current round raises ``RemoteProtocolError``; a failed
handler raises and leaves the session unchanged, so the caller decides
whether to ``abort()``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import cast, overload

import numpy.typing as npt

from . import _client_rounds
from ._state import CLIENT_TRANSITIONS, Round, Start
from .config import Config
from .device_input import DeviceInput, check_host_vector
from .exceptions import DecodeError, LocalProtocolError, RemoteProtocolError
from .hazmat import pipeline, ring
from .hazmat.agreement import KeyPair, keypair_from_private
from .hazmat.prg import key_size
from .hazmat.quantize import Quantizer
from .hazmat.rng import Rng, resolve
from .hazmat.sign import Identity
from .messages import (
    Abort,
    AdvertiseKeys,
    ClientMessage,
    ConsistencyCheckRequest,
    ConsistencySignature,
    MaskedInput,
    MaskedInputRequest,
    ServerMessage,
    ShareKeys,
    ShareKeysRequest,
    UnmaskingRequest,
    UnmaskingShares,
)
from .policy import Policy
from .wire import decode_client_state, encode_client_state

__all__ = ["Client"]


class Client:
    """One client of one aggregation session.

    Args:
        cfg: the session configuration.
        client_id: this client's id, 0..n-1.
        rng: the source of every secret (default: the OS CSPRNG).
        identity: the Ed25519 identity; required in active mode, and its verify
            key must be ``cfg.identities[client_id]``.  A client with an
            identity refuses any configuration but active mode.
        policy: what this client accepts (``Policy``).  None: ``cfg`` comes
            from the caller, who vouches for it (``Policy(config=cfg)``); pass
            a policy whenever ``cfg`` came from the server.

    Raises:
        ConfigRefused: ``cfg`` breaks the policy (the message names the field).
        TypeError / ValueError: bad arguments.
    """

    def __init__(self, cfg: Config, client_id: int, rng: Rng | None = None, identity: Identity | None = None,
                 policy: Policy | None = None) -> None:
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, not {type(cfg).__name__}.")
        if isinstance(client_id, bool) or not isinstance(client_id, int):
            raise TypeError(f"client_id must be an int, not {type(client_id).__name__}.")
        if not 0 <= client_id < cfg.num_clients:
            raise ValueError(f"client_id must be in 0..{cfg.num_clients - 1}, got {client_id}.")
        if identity is not None and not isinstance(identity, Identity):
            raise TypeError(f"identity must be an Identity, not {type(identity).__name__}.")
        (policy if policy is not None else Policy(config=cfg)).check(cfg, client_id, identity)
        if cfg.mode == "active":
            if cfg.identities is None:
                raise ValueError("active mode needs cfg.identities, every client's verify key.")
            if not isinstance(identity, Identity):
                raise ValueError("active mode needs this client's Identity.")
            if identity.verify_key != cfg.identities[client_id]:
                raise ValueError(f"the identity does not match cfg.identities[{client_id}].")
        self._ctx = _client_rounds.ClientContext(cfg, client_id, identity, resolve(rng), cfg.graph.neighbors(client_id))
        self._state = _client_rounds.ClientState()
        self._round = Round.ADVERTISE_KEYS
        self._table = CLIENT_TRANSITIONS[cfg.mode]

    @property
    def client_id(self) -> int:
        return self._ctx.client_id

    @property
    def config(self) -> Config:
        """The session configuration."""
        return self._ctx.cfg

    @property
    def round(self) -> Round:
        """The round whose server message the client expects next (or a terminal state)."""
        return self._round

    def set_input(self, vector: npt.ArrayLike | DeviceInput) -> None:
        """Set the vector to aggregate: length ``cfg.vector_length``, values in [0, 2^bits).

        ``vector`` is a numpy-compatible integer vector, or a ``DeviceInput``
        (``lepton_secagg.device_input``): an adapter's vector that is masked
        where it lives (e.g. on a GPU) and crosses to host memory once, masked.
        A device input is bound now: checked against the session, and any
        secret it needs drawn from this client's rng.

        Raises:
            LocalProtocolError: the masked input was already sent.
            TypeError / ValueError: a bad vector.
        """
        if self._round not in (Round.ADVERTISE_KEYS, Round.SHARE_KEYS, Round.MASKED_INPUT):
            raise LocalProtocolError(f"the input cannot change in round {self._round.value}.", round=self._round.value, client_id=self.client_id)
        cfg = self._ctx.cfg
        if isinstance(vector, DeviceInput):
            bound = vector.bind(cfg.vector_length, cfg.bits, cfg.prg, self._ctx.rng)
            self._state = replace(self._state, input=None, float_input=None, device_input=bound, clipped=None)
            return
        vec = ring.check_vector(vector, cfg.vector_length, cfg.bits)
        self._state = replace(self._state, input=vec, float_input=None, device_input=None, clipped=None)

    def set_float_input(self, values: npt.ArrayLike, quantizer: Quantizer, *, weight: int | None = None) -> None:
        """Set a float update, to be quantised and masked in one pass when the masked input is due.

        The fused pass (``hazmat.pipeline``) clips, scales and rounds the
        values stochastically (its rounding stream keyed from this client's
        rng), adds the weight slot and every mask, and writes the ring words
        into the array the wire sends: the update is read once and never
        copied.  So a float32/float64 ``values`` is kept by reference: do not
        change it until the masked input is sent.  NaN or infinite values are
        found during that pass (the round then raises ``LocalProtocolError``
        and the session is unchanged).  ``clipped`` reports how many values
        were clipped, once the masked input is computed.

        Args:
            values: the 1-D float update; ``quantizer.encoded_length(len(values))``
                must be ``cfg.vector_length``.
            quantizer: a ``Quantizer`` whose ``bits`` is ``cfg.bits``.
            weight: the client's weight, 1..max_weight, for a weighted quantizer.

        Raises:
            LocalProtocolError: the masked input was already sent.
            TypeError / ValueError: bad values, quantizer or weight.
        """
        if self._round not in (Round.ADVERTISE_KEYS, Round.SHARE_KEYS, Round.MASKED_INPUT):
            raise LocalProtocolError(f"the input cannot change in round {self._round.value}.", round=self._round.value, client_id=self.client_id)
        cfg = self._ctx.cfg
        array = pipeline.check_float_input(quantizer, values, weight)
        if quantizer.bits != cfg.bits:
            raise ValueError(f"the quantizer sums in {quantizer.bits} bits, the session in {cfg.bits}.")
        if quantizer.encoded_length(array.size) != cfg.vector_length:
            raise ValueError(
                f"{array.size} values encode to {quantizer.encoded_length(array.size)} elements; "
                f"the session's vectors have {cfg.vector_length}."
            )
        pending = _client_rounds.FloatInput(array, quantizer, weight, self._ctx.rng.bytes(key_size(cfg.prg)))
        self._state = replace(self._state, input=None, float_input=pending, device_input=None, clipped=None)

    @property
    def clipped(self) -> int | None:
        """How many values of the float input lay outside [-clip, clip]; None until its masked input is computed."""
        return self._state.clipped

    def start(self) -> AdvertiseKeys:
        """The first message, ``AdvertiseKeys``."""
        if self._round is not Round.ADVERTISE_KEYS:
            raise LocalProtocolError("start() was already called.", round=self._round.value, client_id=self.client_id)
        # the tables map (ADVERTISE_KEYS, Start) to advertise_keys, which returns AdvertiseKeys
        return cast(AdvertiseKeys, self._step(Start, Start()))

    # Each request gets its round's reply (or raises); an Abort gets None.
    @overload
    def receive(self, msg: ShareKeysRequest) -> ShareKeys: ...
    @overload
    def receive(self, msg: MaskedInputRequest) -> MaskedInput: ...
    @overload
    def receive(self, msg: ConsistencyCheckRequest) -> ConsistencySignature: ...
    @overload
    def receive(self, msg: UnmaskingRequest) -> UnmaskingShares: ...
    @overload
    def receive(self, msg: Abort) -> None: ...
    @overload
    def receive(self, msg: ServerMessage) -> ClientMessage | None: ...

    def receive(self, msg: ServerMessage) -> ClientMessage | None:
        """Process one server message; returns the reply to send, or None.

        Raises:
            RemoteProtocolError, DecryptionError, SignatureError: the message
                is invalid; the session is unchanged.
            LocalProtocolError: the input is needed and not set.
        """
        if isinstance(msg, Start):
            raise LocalProtocolError("use start() to begin; Start is not a server message.", round=self._round.value, client_id=self.client_id)
        return self._step(type(msg), msg)

    def export_state(self) -> bytes:
        """The whole session as bytes, for frameworks whose clients do not live between calls.

        The bytes contain this client's private keys and shares: keep them
        where you would keep a private key, never send them.  ``restore``
        turns them back into a session.
        """
        st = self._state
        if st.float_input is not None:  # the same ring vector the fused pass would mask
            st = replace(st, input=st.float_input.quantized(self._ctx.cfg.prg))
        elif st.device_input is not None:  # the host copy of the unmasked ring vector
            cfg = self._ctx.cfg
            host = check_host_vector(st.device_input.unmasked(), cfg.vector_length, cfg.bits, "unmasked()")
            st = replace(st, input=host)
        return encode_client_state({
            "client_id": self.client_id,
            "round": self._round.value,
            "encryption": None if st.encryption is None else st.encryption.private,
            "masking": None if st.masking is None else st.masking.private,
            "seed": st.seed,
            "input": st.input,
            "session_id": st.session_id,
            "peers": st.peers,
            "box_keys": st.box_keys,
            "shares": st.shares,
            "survivors": st.survivors,
        })

    @classmethod
    def restore(cls, cfg: Config, data: bytes, rng: Rng | None = None, identity: Identity | None = None,
                policy: Policy | None = None) -> "Client":
        """The session saved by ``export_state``, under the same ``cfg``.

        Raises:
            DecodeError: ``data`` is not a client state for ``cfg``.
        """
        fields = decode_client_state(data, cfg)
        try:
            round_ = Round(fields["round"])
        except ValueError:
            raise DecodeError(f"unknown round {fields['round']!r} in the client state.") from None
        client = cls(cfg, fields["client_id"], rng=rng, identity=identity, policy=policy)
        shares = fields["shares"]
        if any(v is not None and len(v) != 2 for v in shares.values()):
            raise DecodeError("malformed shares in the client state.")
        def keypair(private: bytes | None) -> KeyPair | None:
            return None if private is None else keypair_from_private(private)

        client._state = _client_rounds.ClientState(
            encryption=keypair(fields["encryption"]),
            masking=keypair(fields["masking"]),
            seed=fields["seed"],
            input=None if fields["input"] is None else fields["input"].copy(),
            session_id=fields["session_id"],
            peers=fields["peers"],
            box_keys=fields["box_keys"],
            shares=shares,
            survivors=fields["survivors"],
        )
        st = client._state
        if round_ is Round.MASKED_INPUT and st.masking is not None and st.seed is not None:  # not saved: derived again from the saved keys
            mask_keys = _client_rounds.derive_mask_keys(client._ctx, st.masking.private, st.seed, st.peers, st.session_id)
            client._state = replace(st, mask_keys=mask_keys)
        client._round = round_
        return client

    def abort(self, reason: str) -> Abort:
        """Leave the session: forget every secret and return the ``Abort`` to send."""
        self._state = _client_rounds.ClientState()
        self._round = Round.ABORTED
        return Abort(str(reason)[:1024])

    def _step(self, kind: type, event: ServerMessage | Start) -> ClientMessage | None:
        try:
            name, next_round = self._table[(self._round, kind)]
        except (KeyError, TypeError):
            raise RemoteProtocolError(
                f"{getattr(kind, '__name__', kind)} is not expected by client {self.client_id} in round {self._round.value}.",
                round=self._round.value,
                client_id=self.client_id,
            ) from None
        handler: _client_rounds.Handler = getattr(_client_rounds, name)
        state, reply = handler(self._ctx, self._state, event)
        self._state, self._round = state, next_round  # commit only on success
        return reply

    def __repr__(self) -> str:
        return f"Client(id={self.client_id}, round={self._round.value})"
