"""The protocol's rounds and both roles' transition tables.

Rule 1: every transition of either role is an entry in a table here; a
(round, message type) pair that no table holds is a protocol violation.
Rule 2: this module knows no crypto and no arithmetic; the handlers named in
the tables live in ``_client_rounds`` and ``_server_rounds``.

A client waits in the round whose request it expects next: it starts in
``ADVERTISE_KEYS``, where the local ``Start`` event makes it advertise its
keys, and ends in ``COMPLETED`` or ``ABORTED``.  The server collects one
round's replies while in that round; ``advance`` closes the round through
the ``SERVER_ADVANCE`` entry.  ``docs/protocol.md`` draws these tables.
"""
from __future__ import annotations

import enum

from .messages import (
    Abort,
    AdvertiseKeys,
    ConsistencyCheckRequest,
    ConsistencySignature,
    MaskedInput,
    MaskedInputRequest,
    ShareKeys,
    ShareKeysRequest,
    UnmaskingRequest,
    UnmaskingShares,
)

__all__ = [
    "Round",
    "Start",
    "CLIENT_TRANSITIONS",
    "SERVER_RECEIVE",
    "SERVER_ADVANCE",
    "rounds_for",
]


class Round(enum.Enum):
    """Protocol rounds plus the two terminal states."""

    ADVERTISE_KEYS = "advertise_keys"
    SHARE_KEYS = "share_keys"
    MASKED_INPUT = "masked_input"
    CONSISTENCY_CHECK = "consistency_check"
    UNMASKING = "unmasking"
    COMPLETED = "completed"
    ABORTED = "aborted"


class Start:
    """The local event that makes a client advertise its keys."""


R = Round

# mode -> {(round, event type): (handler name in _client_rounds, next round)}
CLIENT_TRANSITIONS = {
    "semi-honest": {
        (R.ADVERTISE_KEYS, Start): ("advertise_keys", R.SHARE_KEYS),
        (R.SHARE_KEYS, ShareKeysRequest): ("share_keys", R.MASKED_INPUT),
        (R.MASKED_INPUT, MaskedInputRequest): ("masked_input", R.UNMASKING),
        (R.UNMASKING, UnmaskingRequest): ("unmasking", R.COMPLETED),
    },
    "active": {
        (R.ADVERTISE_KEYS, Start): ("advertise_keys", R.SHARE_KEYS),
        (R.SHARE_KEYS, ShareKeysRequest): ("share_keys", R.MASKED_INPUT),
        (R.MASKED_INPUT, MaskedInputRequest): ("masked_input", R.CONSISTENCY_CHECK),
        (R.CONSISTENCY_CHECK, ConsistencyCheckRequest): ("consistency_check", R.UNMASKING),
        (R.UNMASKING, UnmaskingRequest): ("unmasking", R.COMPLETED),
    },
}
# The server may end the session in any round a client can be in.
for _table in CLIENT_TRANSITIONS.values():
    for _round in {r for r, _ in list(_table)}:
        _table[(_round, Abort)] = ("abort", R.ABORTED)

# (round, client message type) -> handler name in _server_rounds
SERVER_RECEIVE = {
    (R.ADVERTISE_KEYS, AdvertiseKeys): "receive_keys",
    (R.SHARE_KEYS, ShareKeys): "receive_boxes",
    (R.MASKED_INPUT, MaskedInput): "receive_masked_input",
    (R.CONSISTENCY_CHECK, ConsistencySignature): "receive_signature",
    (R.UNMASKING, UnmaskingShares): "receive_shares",
}

# mode -> {round: (handler name in _server_rounds, next round)}
SERVER_ADVANCE = {
    "semi-honest": {
        R.ADVERTISE_KEYS: ("close_advertise_keys", R.SHARE_KEYS),
        R.SHARE_KEYS: ("close_share_keys", R.MASKED_INPUT),
        R.MASKED_INPUT: ("close_masked_input", R.UNMASKING),
        R.UNMASKING: ("close_unmasking", R.COMPLETED),
    },
    "active": {
        R.ADVERTISE_KEYS: ("close_advertise_keys", R.SHARE_KEYS),
        R.SHARE_KEYS: ("close_share_keys", R.MASKED_INPUT),
        R.MASKED_INPUT: ("close_masked_input", R.CONSISTENCY_CHECK),
        R.CONSISTENCY_CHECK: ("close_consistency_check", R.UNMASKING),
        R.UNMASKING: ("close_unmasking", R.COMPLETED),
    },
}


def rounds_for(mode: str) -> tuple[str, ...]:
    """The names of the rounds a session of ``mode`` goes through, in order."""
    return tuple(r.value for r in SERVER_ADVANCE[mode])
